"""Bad arguments and inputs raise ValueError/TypeError with a clear message.

One row per check: the call, the exception type and a pattern that names
the argument, the bad value and (where there is a finite set) the valid
choices. Models are built at the smallest size that reaches the check.
"""
import functools
import importlib.util
from pathlib import Path

import pytest
import torch

import mmcsn  # noqa: F401
from mmcsn.checkpoint.csn import convert_to_mmcsn_recognizer
from mmcsn.datasets import CheckedDecordInit
from mmcsn.engine import RNGStateHook
from mmcsn.models.backbones.blresnet import bLResNet
from mmcsn.models.backbones.csn import CSN
from mmcsn.models.common.tam import TemporalAggregation, temporal_aggregate
from mmcsn.models.necks.tam_neck import TAMNeck

REPO = Path(__file__).resolve().parents[1]
P = functools.partial


def _csn(**kwargs) -> CSN:
    return CSN(**dict(dict(depth=50, base_channels=4), **kwargs))


def _blres(**kwargs) -> bLResNet:
    return bLResNet(**dict(dict(depth=50, num_segments=2), **kwargs))


@functools.lru_cache(maxsize=None)
def _built(kind: str) -> torch.nn.Module:
    """Modules whose *inputs* are checked, built once per session."""
    return {
        'csn': lambda: _csn(),
        'blres': lambda: _blres(),
        'tam': lambda: TemporalAggregation(4, 2),
        'neck': lambda: TAMNeck(4, 2),
    }[kind]()


def _call(kind: str, *shape: int, method: str = 'forward') -> object:
    return getattr(_built(kind), method)(torch.zeros(*shape))


def _convert(**kwargs) -> object:
    sd = {f'backbone.{k}': v for k, v in _csn().state_dict().items()}
    return convert_to_mmcsn_recognizer(sd, **kwargs)


def _cli(script: str, *argv: str) -> None:
    spec = importlib.util.spec_from_file_location(
        f'_cli_{script}', REPO / 'tools' / 'convert' / f'{script}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.parse_args(list(argv))


# (id, call, exception, pattern)
CASES = [
    # ---- CSN arguments
    ('csn-depth', P(CSN, depth=34), ValueError,
     r'depth must be one of \[26, 50, 101, 152\], got 34'),
    ('csn-mode', P(_csn, bottleneck_mode='dw'), ValueError,
     r"bottleneck_mode must be one of \[.*'ir'.*'ip'.*\], got 'dw'"),
    ('csn-style', P(_csn, style='tf'), ValueError,
     r"style must be one of \['pytorch', 'caffe'\], got 'tf'"),
    ('csn-inflate-style', P(_csn, inflate_style='3x3'), ValueError,
     r"inflate_style must be one of \['3x3x3', '3x1x1'\], got '3x3'"),
    ('csn-num-stages', P(_csn, num_stages=5), ValueError,
     r'num_stages must be one of \[1, 2, 3, 4\], got 5'),
    ('csn-groups-divide', P(_csn, bottleneck_mode='bottleneck-G',
                            groups=3), ValueError,
     r'groups=3 must divide every grouped width \[.*\]; it does not '
     r'divide \[4, 8'),
    ('csn-groups-missing', P(_csn, bottleneck_mode='bottleneck-G'),
     ValueError, r"groups must be a positive int for bottleneck_mode="
     r"'bottleneck-G', got None"),
    ('csn-groups-unused', P(_csn, groups=2), ValueError,
     r"groups applies only to bottleneck_mode in \[.*\], got groups=2 "
     r"with 'ir'"),
    ('csn-out-indices', P(_csn, out_indices=(4, )), ValueError,
     r'out_indices must be a non-empty subset of \[0, 1, 2, 3\], got '
     r'\(4,\)'),
    ('csn-out-indices-empty', P(_csn, out_indices=()), ValueError,
     r'out_indices must be a non-empty subset of \[0, 1, 2, 3\], got '
     r'\(\)'),
    ('csn-frozen-stages', P(_csn, frozen_stages=5), ValueError,
     r'frozen_stages must be one of \[-1, 0, 1, 2, 3, 4\], got 5'),
    ('csn-strides-len', P(_csn, spatial_strides=(1, 2)), ValueError,
     r'spatial_strides needs one entry per stage \(num_stages=4\), got '
     r'\(1, 2\)'),
    ('csn-dilation-dw', P(_csn, dilations=(1, 2, 1, 1)), ValueError,
     r"dilations must be all 1 for bottleneck_mode='ir', got "
     r'\(1, 2, 1, 1\)'),
    ('csn-expansion-simple', P(_csn, bottleneck_mode='simple',
                               expansion=4), ValueError,
     r'expansion must be None or 1 for simple blocks, got 4'),
    ('csn-memory-format', P(_csn, memory_format='nhwc'), ValueError,
     r"memory_format must be one of \['channels_last_3d', 'contiguous'\],"
     r" got 'nhwc'"),
    ('csn-input-rank', P(_call, 'csn', 1, 3, 8, 8), ValueError,
     r'x must be 5-d \(N, 3, T, H, W\), got shape \(1, 3, 8, 8\)'),
    ('csn-input-channels', P(_call, 'csn', 1, 1, 4, 8, 8), ValueError,
     r'got shape \(1, 1, 4, 8, 8\)'),
    ('csn-pretrained-type', P(_csn, pretrained=3), TypeError,
     r"pretrained must be a str or None, got <class 'int'>"),
    # ---- bLResNet arguments
    ('blres-depth', P(bLResNet, depth=18), ValueError,
     r'depth must be one of \[50, 101, 152\], got 18'),
    ('blres-alpha', P(_blres, alpha=0), ValueError,
     r'alpha must be a positive int \(1, 2, \.\.\.\), got 0'),
    ('blres-alpha-too-big', P(_blres, alpha=128), ValueError,
     r'alpha must be in \[1, 64\], got 128'),
    ('blres-beta', P(_blres, beta=2.5), ValueError,
     r'beta must be a positive int \(1, 2, \.\.\.\), got 2\.5'),
    ('blres-num-segments-odd', P(_blres, num_segments=3), ValueError,
     r'num_segments must be even \(.*2, 4, \.\.\..*\), got 3'),
    ('blres-blending', P(_blres, blending_frames=2), ValueError,
     r'blending_frames must be an odd int >= 1 \(1, 3, 5, \.\.\.\), got 2'),
    ('blres-out-indices', P(_blres, out_indices=(4, )), ValueError,
     r'out_indices must be distinct stage indices in 0\.\.3 '
     r'\(layer1\.\.layer4\), got \(4,\)'),
    ('blres-frozen-stages', P(_blres, frozen_stages=7), ValueError,
     r'frozen_stages must be an int in -1\.\.4, got 7'),
    ('blres-pretrained-type', P(_blres, pretrained=1), TypeError,
     r'pretrained must be a str or None, got int'),
    # ---- TemporalAggregation / TAMNeck arguments
    ('tam-channels', P(TemporalAggregation, 0, 2), ValueError,
     r'channels must be a positive int \(1, 2, \.\.\.\), got 0'),
    ('tam-segments', P(TemporalAggregation, 4, True), ValueError,
     r'num_segments must be a positive int \(1, 2, \.\.\.\), got True'),
    ('tam-blending', P(TemporalAggregation, 4, 2, blending_frames=4),
     ValueError, r'blending_frames must be an odd int >= 1 '
     r'\(1, 3, 5, \.\.\.\), got 4'),
    ('neck-collapse', P(TAMNeck, 4, 2, collapse='sum'), ValueError,
     r"collapse must be one of \('mean', 'max'\), got 'sum'"),
    ('neck-in-channels', P(TAMNeck, 0, 2), ValueError,
     r'in_channels must be >= 1, got 0'),
    ('neck-num-segments', P(TAMNeck, 4, 2.0), TypeError,
     r'num_segments must be an int, got 2\.0'),
    ('neck-in-index', P(TAMNeck, 4, 2, in_index='last'), TypeError,
     r"in_index must be an int, got 'last'"),
    ('neck-blending', P(TAMNeck, 4, 2, blending_frames=2), ValueError,
     r'blending_frames must be an odd int >= 1 \(1, 3, 5, \.\.\.\), got 2'),
    # ---- inputs
    ('blres-input-rank', P(_call, 'blres', 2, 3, 2, 32, 32), ValueError,
     r'x must be \(N \* num_segments, 3, H, W\), got shape '
     r'\(2, 3, 2, 32, 32\)'),
    ('blres-input-channels', P(_call, 'blres', 2, 1, 32, 32), ValueError,
     r'x must be \(N \* num_segments, 3, H, W\), got shape '
     r'\(2, 1, 32, 32\)'),
    ('blres-input-frames', P(_call, 'blres', 3, 3, 32, 32), ValueError,
     r'batch size 3 \(x\.shape\[0\]\) is not divisible by '
     r'num_segments=2'),
    ('tam-input-rank', P(_call, 'tam', 2, 4, 3), ValueError,
     r'x must be 4-d \(N \* num_segments, C, H, W\), got shape '
     r'\(2, 4, 3\)'),
    ('tam-input-channels', P(_call, 'tam', 2, 5, 3, 3), ValueError,
     r'input has 5 channels, but this module was built with channels=4'),
    ('tam-input-frames', P(_call, 'tam', 3, 4, 3, 3), ValueError,
     r'batch size 3 \(x\.shape\[0\]\) is not divisible by '
     r'num_segments=2'),
    ('tam-5d-rank', P(_call, 'tam', 2, 4, 3, 3, method='forward_5d'),
     ValueError, r'x must be 5-d \(N, C, T, H, W\), got shape '
     r'\(2, 4, 3, 3\)'),
    ('tam-fn-weights', P(temporal_aggregate, torch.zeros(1, 2, 4),
                         torch.zeros(3, 5)), ValueError,
     r'weights must have shape \(K, C\) with C = x\.shape\[channel_dim\] '
     r'= 4, got \(3, 5\)'),
    ('tam-fn-type', P(temporal_aggregate, [1, 2], torch.zeros(3, 5)),
     TypeError, r'x must be a Tensor, got list'),
    ('neck-input-channels', P(_call, 'neck', 1, 5, 2, 3, 3), ValueError,
     r'expected 4 channels \(in_channels\), got a map of shape '
     r'\(1, 5, 2, 3, 3\)'),
    ('neck-input-frames', P(_call, 'neck', 1, 4, 3, 3, 3), ValueError,
     r'the map has 3 frames on dim 2, not a multiple of num_segments=2'),
    ('neck-input-rank', P(_call, 'neck', 1, 4, 3, 3), ValueError,
     r'TAMNeck expects a 5-D map \(N, C, T, H, W\), got shape '
     r'\(1, 4, 3, 3\)'),
    # ---- public functions and CLIs
    ('convert-mode', P(_convert, mode='dw'), ValueError,
     r"mode must be one of \('ir', 'ip'\) or None \(detect\), got 'dw'"),
    ('convert-source', P(_convert, source='tf'), ValueError,
     r"source must be 'auto' or one of \[.*'vmz_pt'.*\], got 'tf'"),
    ('convert-depth', P(_convert, depth=101), ValueError,
     r'depth=101 but the checkpoint is depth 50'),
    ('cli-vmz-mode', P(_cli, 'vmz_to_mmcsn', 'a', 'b', '--mode', 'dw'),
     SystemExit, None),
    ('cli-caffe2-depth', P(_cli, 'caffe2_to_mmcsn', 'a', 'b', '--depth',
                           '34'), SystemExit, None),
    # ---- mmcsn's own transforms and hooks
    ('video-on-error', P(CheckedDecordInit, on_error='ignore'), ValueError,
     r"on_error='ignore' is not supported; valid choices: "
     r"\('raise', 'skip'\)"),
    ('rng-hook-isolate', P(RNGStateHook, isolate_val='yes'), TypeError,
     r"isolate_val='yes' must be a bool; valid choices: True, False"),
]


@pytest.mark.parametrize('call, error, pattern',
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_explained(call, error, pattern, capsys):
    with pytest.raises(error, match=pattern) as info:
        call()
    if error is SystemExit:  # argparse: exit status 2 and the choices
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert 'invalid choice' in err and 'choose from' in err


def test_table_covers_every_module():
    prefixes = {c[0].split('-')[0] for c in CASES}
    assert {'csn', 'blres', 'tam', 'neck', 'convert', 'cli'} <= prefixes
