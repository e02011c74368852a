"""Every argument of every registered mmcsn class, checked at build time.

One table (:data:`ARGS`): for each registered class, each ``__init__``
argument has values that must build and values that must be refused with
``TypeError`` (wrong type) or ``ValueError`` (right type, wrong value), by
a message naming the class, the argument and the value. :data:`CROSS` holds
the cross-argument rules. The classes come from MMAction2's registries
(filtered to mmcsn's), so a new class, or a new argument of an existing one,
without a row here fails :func:`test_table_covers_every_argument`.

Models are built on the ``meta`` device: no memory, no weight init.
Inputs, public functions and CLIs: ``test_bad_input_is_explained``.
"""
import functools
import inspect
import re
from pathlib import Path

import mmaction.registry as mmaction_registry
import mmengine.registry as mmengine_registry
import pytest
import torch
from conftest import load_tool
from mmengine.registry import Registry

import mmcsn  # noqa: F401  (registers)
from mmcsn.checkpoint.csn import convert_to_mmcsn_recognizer
from mmcsn.models.backbones.csn import CSN
from mmcsn.models.backbones.csn_blocks import BLOCK_MODES
from mmcsn.models.common.tam import TemporalAggregation, temporal_aggregate
from mmcsn.models.necks.tam_neck import TAMNeck
from mmcsn.validate import ArgSpec, Int

REPO = Path(__file__).resolve().parents[1]
T, V = TypeError, ValueError
BOOL = ([True, False], [('no', T), (0, T), (1, T), (None, T)])


class W:
    """A good value that needs other arguments to build."""

    def __init__(self, value, **extra) -> None:
        self.value, self.extra = value, extra

    def __repr__(self) -> str:
        return f'{self.value!r} with {self.extra}'


def mmcsn_classes() -> dict:
    """``{name: class}`` of every mmcsn class in any registry."""
    found = {}
    for module in (mmaction_registry, mmengine_registry):
        for reg in vars(module).values():
            if isinstance(reg, Registry):
                for name, obj in reg.module_dict.items():
                    if getattr(obj, '__module__', '').startswith('mmcsn'):
                        found[name] = obj
    return found


CLASSES = mmcsn_classes()

# class -> the fewest arguments that build it (smallest sizes)
BASE = {
    'CSN': dict(depth=50, base_channels=4),
    'bLResNet': dict(depth=50, num_segments=2),
    'TemporalAggregation': dict(channels=4, num_segments=2),
    'TAMNeck': dict(in_channels=4, num_segments=2),
    'CheckedDecordInit': dict(),
    'CheckedDecordDecode': dict(),
    'RNGStateHook': dict(),
    'StrictLoadHook': dict(),
    'DenseI3DHead': dict(num_classes=3, in_channels=8),
}

CSN_ARGS = {
    'depth': ([26, 50, 101, 152], [(34, V), (50.0, T), (True, T),
                                   ('50', T)]),
    'pretrained': ([None], [(3, T), (b'a.pth', T), (['a.pth'], T)]),
    'temporal_strides': ([(1, 1, 1, 1), [1, 2, 2, 2],
                          W((1, 2), num_stages=2, out_indices=(1, ))],
                         [((1, 2, 2, 2, 2), V), ((1, 0, 2, 2), V),
                          ((1, 2), V), ((1, 2.0, 2, 2), T), ('1222', T),
                          (2, T)]),
    'conv1_kernel': ([(3, 7, 7), [1, 3, 3], 3],
                     [((3, 7), V), ((3, 0, 7), V), ((3.0, 7, 7), T),
                      ('377', T), (None, T)]),
    'conv1_stride_t': ([1, 2], [(0, V), (1.0, T), (True, T)]),
    'pool1_stride_t': ([1, 2], [(0, V), (1.0, T), (True, T)]),
    'norm_cfg': ([dict(type='BN3d', requires_grad=True, eps=1e-3),
                  dict(type='BN3d')],
                 [('BN3d', T), (dict(eps=1e-3), V), (dict(type=3), T),
                  (dict(type='BNX'), V)]),
    'inflate_style': (['3x3x3', '3x1x1'], [('3x3', V), (None, T)]),
    'bottleneck_mode': ([m for m in BLOCK_MODES if 'G' not in m] +
                        [W('bottleneck-G', groups=2)],
                        [('dw', V), (1, T), (None, T)]),
    'bn_frozen': BOOL,
    'stage_blocks': ([None, (1, 1, 1, 1), [2, 1, 1, 1]],
                     [((0, 1, 1, 1), V), ((1, 1, 1), V),
                      ((1.0, 1, 1, 1), T), (4, T)]),
    'pretrained2d': ([False], [(True, V), (0, T)]),
    'in_channels': ([1, 3], [(0, V), (3.0, T), (True, T)]),
    'num_stages': ([W(1, out_indices=(0, )), W(2, out_indices=(1, )), 4],
                   [(0, V), (5, V), (2.0, T), (True, T)]),
    'base_channels': ([1, 8], [(0, V), (-8, V), (8.0, T)]),
    'out_indices': ([(3, ), [0, 3], (0, 1, 2, 3), 3],
                    [((3, 3), V), ((4, ), V), ((), V), ((-1, ), V),
                     ((3.0, ), T), ('3', T), (None, T)]),
    'spatial_strides': ([(1, 2, 2, 2), [1, 1, 1, 1]],
                        [((1, 2, 2, 2, 2), V), ((1, 0, 2, 2), V),
                         ((1, 2.0, 2, 2), T), (2, T)]),
    'dilations': ([(1, 1, 1, 1), W((1, 2, 1, 1), bottleneck_mode='simple')],
                  [((0, 1, 1, 1), V), ((1, 1, 1), V), ((1.0, 1, 1, 1), T)]),
    'conv1_stride_s': ([1, 2], [(0, V), (2.0, T)]),
    'pool1_stride_s': ([1, 2], [(0, V), (2.0, T)]),
    'with_pool1': BOOL,
    'with_pool2': BOOL,
    'style': (['pytorch', 'caffe'], [('tf', V), (None, T)]),
    'frozen_stages': ([-1, 0, 4], [(-2, V), (5, V), (1.0, T)]),
    'inflate': ([(1, 1, 1, 1), (0, 1, 0, 1), [(1, 0, 1), 1, 1, 1]],
                [((2, 1, 1, 1), V), ((1, 1, 1), V), (((1, 0), 1, 1, 1), V),
                 ((True, 1, 1, 1), T), ('1111', T)]),
    'conv_cfg': ([dict(type='Conv3d')], [('Conv3d', T), (dict(), V),
                                         (dict(type='ConvX'), V)]),
    'act_cfg': ([dict(type='ReLU', inplace=True), dict(type='ReLU')],
                [(None, T), (dict(inplace=True), V),
                 (dict(type='ReLUX'), V)]),
    'norm_eval': BOOL,
    'with_cp': BOOL,
    'non_local': ([(0, 0, 0, 0), [0, (0, 0, 0, 0), 0, 0]],
                  [((0, 1, 0, 0), V), ((0, 0, 0), V), ((0.0, 0, 0, 0), T)]),
    'non_local_cfg': ([dict(), dict(sub_sample=True)], [('x', T),
                                                        (None, T)]),
    'zero_init_residual': BOOL,
    'groups': ([None, 1, W(4, bottleneck_mode='bottleneck-DG')],
               [(2, V), (0, V), (2.0, T)]),
    'expansion': ([None, 1, 4], [(0, V), (4.0, T)]),
    'memory_format': (['channels_last_3d', 'contiguous'], [('nhwc', V),
                                                           (None, T)]),
    'fuse_bn_eval': BOOL,
    'pointwise_gemm': BOOL,
    'init_cfg': ([None, dict(type='Kaiming', layer='Conv3d'),
                  [dict(type='Constant', val=1, layer='BatchNorm3d')]],
                 [(dict(type='Pretrained'), V), ('Kaiming', T), ([], V),
                  (dict(layer='Conv3d'), V)]),
}

BLRESNET_ARGS = {
    'depth': ([50, 101, 152], [(18, V), (50.0, T), (None, T)]),
    'alpha': ([1, 2, 64], [(0, V), (65, V), (2.0, T)]),
    'beta': ([1, 4], [(0, V), (2.5, T), (True, T)]),
    'num_segments': ([2, 4], [(3, V), (0, V), (2.0, T)]),
    'with_tam': BOOL,
    'blending_frames': ([1, 3, 5], [(2, V), (0, V), (3.0, T)]),
    'in_channels': ([1, 3, 10], [(0, V), (3.0, T)]),
    'out_indices': ([(3, ), [0, 1, 2, 3], 2],
                    [((3, 3), V), ((4, ), V), ((), V), ('3', T)]),
    'frozen_stages': ([-1, 0, 4], [(-2, V), (5, V), (0.0, T)]),
    'norm_eval': BOOL,
    'with_cp': BOOL,
    'conv_cfg': ([None, dict(type='Conv2d')], [('Conv2d', T), (dict(), V),
                                               (dict(type='ConvX'), V)]),
    'norm_cfg': ([dict(type='BN2d'), dict(type='BN2d', requires_grad=True)],
                 [(None, T), (dict(), V), (dict(type='BNX'), V)]),
    'pretrained': ([None], [(1, T), (['a.pth'], T)]),
    'init_cfg': ([None, dict(type='Kaiming', layer='Conv2d')],
                 [(dict(type='Pretrained'), V), ('x', T)]),
}

POSITIVE = ([1, 4], [(0, V), (4.0, T), (True, T)])
ODD = ([1, 3, 5], [(2, V), (0, V), (3.0, T)])
ON_ERROR = (['raise', 'skip'], [('ignore', V), (None, T)])

ARGS = {
    'CSN': CSN_ARGS,
    'bLResNet': BLRESNET_ARGS,
    'TemporalAggregation': {
        'channels': POSITIVE,
        'num_segments': POSITIVE,
        'blending_frames': ODD,
    },
    'TAMNeck': {
        'in_channels': POSITIVE,
        'num_segments': POSITIVE,
        'blending_frames': ODD,
        'collapse': (['mean', 'max'], [('sum', V), (None, T)]),
        'in_index': ([-1, 0], [('last', T), (1.0, T), (True, T)]),
        'init_cfg': ([None, dict(type='Constant', val=1, layer='Conv2d')],
                     [(dict(type='Pretrained'), V), ('x', T)]),
    },
    'CheckedDecordInit': {
        'io_backend': (['disk', 'http'], [('dsk', V), (None, T)]),
        'num_threads': ([0, 1, 4], [(-1, V), (1.0, T)]),
        'on_error': ON_ERROR,
        'min_frames': ([1, 8], [(0, V), (2.5, T)]),
    },
    'CheckedDecordDecode': {
        'mode': (['accurate', 'efficient'], [('fast', V), (None, T)]),
        'on_error': ON_ERROR,
    },
    'RNGStateHook': {
        'isolate_val': BOOL
    },
    'StrictLoadHook': {
        'strict': ([None, True, False], [('yes', T), (1, T)])
    },
    'DenseI3DHead': {
        'num_classes': POSITIVE,
        'in_channels': POSITIVE,
        'pool_size': ([(4, 7, 7), [1, 7, 7]], [((4, 7), V), ((0, 7, 7), V),
                                              ((4.0, 7, 7), T), (7, T)]),
        'dropout_ratio': ([0, 0.0, 0.5], [(1.0, V), (-0.1, V), ('0.5', T),
                                          (True, T)]),
    },
}

# (class, arguments, error, argument the message must name)
CROSS = [
    ('CSN', dict(pretrained='a.pth', init_cfg=dict(
        type='Pretrained', checkpoint='b.pth')), V, 'pretrained'),
    ('CSN', dict(bottleneck_mode='bottleneck-G'), V, 'groups'),
    ('CSN', dict(bottleneck_mode='simple-G', groups=3), V, 'groups'),
    ('CSN', dict(bottleneck_mode='bottleneck-DG', groups=8), V, 'groups'),
    ('CSN', dict(bottleneck_mode='simple', expansion=4), V, 'expansion'),
    ('CSN', dict(dilations=(1, 2, 1, 1)), V, 'dilations'),
    ('CSN', dict(bottleneck_mode='ip', dilations=(1, 1, 1, 2)), V,
     'dilations'),
    ('CSN', dict(inflate=((1, 0), 1, 1, 1)), V, r'inflate\[0\]'),
    ('CSN', dict(num_stages=2), V, r'out_indices\[0\]'),
    ('CSN', dict(num_stages=2, out_indices=(1, ), frozen_stages=3), V,
     'frozen_stages'),
    ('CSN', dict(num_stages=2, out_indices=(1, ), stage_blocks=(1, 1, 1,
                                                                1)), V,
     'stage_blocks'),
    ('CSN', dict(num_stages=3, out_indices=(2, ), spatial_strides=(1, 2)),
     V, 'spatial_strides'),
    ('CSN', dict(stage_blocks=(1, 1, 1, 1), inflate=(1, (1, 0), 1, 1)), V,
     r'inflate\[1\]'),
    # a bad argument is blamed, not the one whose bound it sets
    ('CSN', dict(num_stages=2.0), T, 'num_stages'),
    ('CSN', dict(base_channels=0, bottleneck_mode='bottleneck-G',
                 groups=2), V, 'base_channels'),
]


def _build(name: str, **kwargs):
    cls = CLASSES[name]
    with torch.device('meta'):
        return cls(**dict(BASE[name], **kwargs))


def _cases(kind: str):
    for name, args in ARGS.items():
        for arg, (good, bad) in args.items():
            values = good if kind == 'good' else bad
            for i, value in enumerate(values):
                yield pytest.param(name, arg, value, id=f'{name}-{arg}-{i}')


@pytest.mark.parametrize('name, arg, value', list(_cases('good')))
def test_good_value_builds(name, arg, value):
    extra = value.extra if isinstance(value, W) else {}
    value = value.value if isinstance(value, W) else value
    _build(name, **{arg: value}, **extra)


@pytest.mark.parametrize('name, arg, bad', list(_cases('bad')))
def test_bad_value_is_refused_by_name(name, arg, bad):
    value, error = bad
    # "<Class>: <arg>[i] must be <what is valid>, got <value>"
    pattern = rf'^{name}: {arg}(\[\d+\])?(\[.type.\])? must be .+, got '
    with pytest.raises(error, match=pattern):
        _build(name, **{arg: value})


@pytest.mark.parametrize('name, kwargs, error, arg', CROSS,
                         ids=[f'{c[0]}-{c[3]}' for c in CROSS])
def test_cross_argument_rule(name, kwargs, error, arg):
    with pytest.raises(error, match=rf'^{name}: {arg} must be .+, got '):
        _build(name, **kwargs)


def test_the_same_mistake_gets_the_same_error():
    # issue 11: beta=2.5 was a ValueError, TAMNeck(num_segments=2.0) a
    # TypeError; a float where an int belongs is a TypeError everywhere
    for name, arg in (('bLResNet', 'beta'), ('TAMNeck', 'num_segments'),
                      ('CSN', 'num_stages'), ('TemporalAggregation',
                                              'channels')):
        with pytest.raises(TypeError, match='got 2.5 \\(float\\)'):
            _build(name, **{arg: 2.5})


def test_table_covers_every_argument():
    """Every registered class uses the layer; every argument has a row."""
    assert {'CSN', 'bLResNet', 'TAMNeck', 'CheckedDecordInit'} <= set(
        CLASSES)
    for name, cls in CLASSES.items():
        init = cls.__init__
        params = [
            p.name for p in list(inspect.signature(init).parameters.values())
            [1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if not params:  # e.g. a hook without arguments
            continue
        assert isinstance(getattr(init, 'arg_spec', None), ArgSpec), \
            f'{name}.__init__ is not decorated with an mmcsn.validate.ArgSpec'
        assert set(init.arg_spec.rules) == set(params)
        rows = ARGS.get(name, {})
        assert set(rows) == set(params), (
            f'{name}: arguments without a row in ARGS: '
            f'{sorted(set(params) - set(rows))}; rows without an '
            f'argument: {sorted(set(rows) - set(params))}')
        for arg, (good, bad) in rows.items():
            kinds = {e for _, e in bad}
            assert good and kinds, f'{name}.{arg} needs good and bad values'


def test_an_argument_without_a_rule_fails_at_import():
    # negative control of the coverage guarantee
    with pytest.raises(TypeError, match=r"no rule for \['b'\]"):

        class Module:

            @ArgSpec('Module', a=Int())
            def __init__(self, a: int, b: int = 0) -> None:
                pass


def test_configs_lists_are_tuples_after_the_check():
    model = _build('CSN', out_indices=[0, 3], temporal_strides=[1, 1, 2, 2])
    assert model.out_indices == (0, 3)
    assert model.temporal_strides == (1, 1, 2, 2)


# ---------------------------------------------------------------- inputs
@functools.lru_cache(maxsize=None)
def _built(kind: str) -> torch.nn.Module:
    """Modules whose *inputs* are checked, built once per session."""
    return {
        'csn': lambda: CSN(depth=50, base_channels=4),
        'blres': lambda: CLASSES['bLResNet'](depth=50, num_segments=2),
        'tam': lambda: TemporalAggregation(4, 2),
        'neck': lambda: TAMNeck(4, 2),
    }[kind]()


def _call(kind: str, *shape: int, method: str = 'forward') -> object:
    return getattr(_built(kind), method)(torch.zeros(*shape))


def _convert(**kwargs) -> object:
    sd = {
        f'backbone.{k}': v
        for k, v in CSN(depth=50, base_channels=4).state_dict().items()
    }
    return convert_to_mmcsn_recognizer(sd, **kwargs)


def _cli(script: str, *argv: str) -> None:
    load_tool(f'tools/convert/{script}.py').parse_args(list(argv))


P = functools.partial
# (id, call, exception, pattern)
INPUTS = [
    ('csn-input-rank', P(_call, 'csn', 1, 3, 8, 8), V,
     r'x must be 5-d \(N, 3, T, H, W\), got shape \(1, 3, 8, 8\)'),
    ('csn-input-channels', P(_call, 'csn', 1, 1, 4, 8, 8), V,
     r'got shape \(1, 1, 4, 8, 8\)'),
    ('blres-input-rank', P(_call, 'blres', 2, 3, 2, 32, 32), V,
     r'x must be \(N \* num_segments, 3, H, W\), got shape '
     r'\(2, 3, 2, 32, 32\)'),
    ('blres-input-frames', P(_call, 'blres', 3, 3, 32, 32), V,
     r'batch size 3 \(x\.shape\[0\]\) is not divisible by '
     r'num_segments=2'),
    ('tam-input-rank', P(_call, 'tam', 2, 4, 3), V,
     r'x must be 4-d \(N \* num_segments, C, H, W\), got shape '
     r'\(2, 4, 3\)'),
    ('tam-input-channels', P(_call, 'tam', 2, 5, 3, 3), V,
     r'input has 5 channels, but this module was built with channels=4'),
    ('tam-input-frames', P(_call, 'tam', 3, 4, 3, 3), V,
     r'batch size 3 \(x\.shape\[0\]\) is not divisible by '
     r'num_segments=2'),
    ('tam-5d-rank', P(_call, 'tam', 2, 4, 3, 3, method='forward_5d'), V,
     r'x must be 5-d \(N, C, T, H, W\), got shape \(2, 4, 3, 3\)'),
    ('tam-fn-weights', P(temporal_aggregate, torch.zeros(1, 2, 4),
                         torch.zeros(3, 5)), V,
     r'weights must have shape \(K, C\) with C = x\.shape\[channel_dim\] '
     r'= 4, got \(3, 5\)'),
    ('tam-fn-type', P(temporal_aggregate, [1, 2], torch.zeros(3, 5)), T,
     r'x must be a Tensor, got list'),
    ('neck-input-channels', P(_call, 'neck', 1, 5, 2, 3, 3), V,
     r'expected 4 channels \(in_channels\), got a map of shape '
     r'\(1, 5, 2, 3, 3\)'),
    ('neck-input-frames', P(_call, 'neck', 1, 4, 3, 3, 3), V,
     r'the map has 3 frames on dim 2, not a multiple of num_segments=2'),
    ('convert-mode', P(_convert, mode='dw'), V, r"mode.*'dw'"),
    ('convert-depth', P(_convert, depth=101), V, r'depth=101'),
    ('cli-vmz-mode', P(_cli, 'vmz_to_mmcsn', 'a', 'b', '--mode', 'dw'),
     SystemExit, None),
]


@pytest.mark.parametrize('call, error, pattern', [c[1:] for c in INPUTS],
                         ids=[c[0] for c in INPUTS])
def test_bad_input_is_explained(call, error, pattern, capsys):
    with pytest.raises(error, match=pattern) as info:
        call()
    if error is SystemExit:  # argparse: exit status 2 and the choices
        assert info.value.code == 2
        assert 'invalid choice' in capsys.readouterr().err


def test_messages_name_value_and_valid_choices():
    with pytest.raises(ValueError) as info:
        _build('CSN', bottleneck_mode='dw')
    msg = str(info.value)
    assert re.search(r"bottleneck_mode must be one of \[.*'ir'.*\], "
                     r"got 'dw'$", msg), msg


def test_a_config_dumped_to_json_still_builds(tmp_path):
    """JSON/YAML turn a config's tuples into lists; both are accepted."""
    from mmengine.config import Config
    cfg = Config(dict(model=dict(
        type='CSN', depth=50, base_channels=4, out_indices=(2, 3),
        temporal_strides=(1, 1, 2, 2), inflate=((1, 0, 1), 1, 1, 1))))
    cfg.dump(str(tmp_path / 'cfg.json'))
    model = Config.fromfile(str(tmp_path / 'cfg.json')).model
    assert isinstance(model.out_indices, list)
    with torch.device('meta'):
        built = mmaction_registry.MODELS.build(model)
    assert built.out_indices == (2, 3)
    assert built.temporal_strides == (1, 1, 2, 2)
