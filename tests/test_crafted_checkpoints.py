"""Crafted checkpoints cannot run code through mmcsn's allow-list.

The gadgets are written opcode by opcode (protocol 2, as ``torch.save``
writes) and packed as real torch zip checkpoints. Each one uses only
globals that a genuine mmengine checkpoint uses (``getattr``,
``HistoryBuffer``, numpy's), so no scan of the file's globals can tell
it apart. A negative control shows the worst one *does* run code under
the naive allow-list mmcsn used to register (real ``getattr`` and
``HistoryBuffer``): the tests below are not vacuous.

Paths covered here: ``torch.load(weights_only=True)`` after ``import
mmcsn``, ``--resume`` through mmcsn's and MMAction2's ``train.py``,
``tools/test.py``, ``load_from``, ``init_recognizer``, ``pretrained=``,
``init_cfg`` and every converter CLI. Genuine checkpoints of a real run
(epoch, best and iter files) still load, resume exactly and test.
"""
import copy
import io
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

import mmaction
import numpy as np
import pytest
import torch
from conftest import run_script

import mmcsn  # noqa: F401  (installs the allow-list)
from mmcsn.compat.safe_load import safe_global_names

REPO = Path(__file__).resolve().parents[1]
MIM_TOOLS = Path(mmaction.__file__).parent / '.mim' / 'tools'
DEMO_CFG = REPO / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'
CONVERTERS = sorted((REPO / 'tools' / 'convert').glob('*_to_mmcsn.py'))
REFUSED = 'refused'


# --------------------------------------------------------- pickle crafting
class G:
    """GLOBAL module.name"""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class Call:
    """REDUCE: func(*args)"""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args


class New:
    """NEWOBJ cls(*args), then BUILD with ``state`` (if not None)."""

    def __init__(self, cls, state=None, args=()) -> None:
        self.cls, self.state, self.args = cls, state, args


class Build:
    """BUILD: ``obj`` then its ``state``."""

    def __init__(self, obj, state) -> None:
        self.obj, self.state = obj, state


def _emit(obj, out: io.BytesIO) -> None:
    w = out.write
    if isinstance(obj, G):
        w(b'c' + f'{obj.module}\n{obj.name}\n'.encode())
    elif isinstance(obj, Call):
        _emit(obj.func, out)
        _emit(tuple(obj.args), out)
        w(b'R')
    elif isinstance(obj, New):
        _emit(obj.cls, out)
        _emit(tuple(obj.args), out)
        w(b'\x81')
        if obj.state is not None:
            _emit(obj.state, out)
            w(b'b')
    elif isinstance(obj, Build):
        _emit(obj.obj, out)
        _emit(obj.state, out)
        w(b'b')
    elif obj is None:
        w(b'N')
    elif obj is True or obj is False:
        w(b'\x88' if obj else b'\x89')
    elif isinstance(obj, int):
        w(b'J' + struct.pack('<i', obj))
    elif isinstance(obj, float):
        w(b'G' + struct.pack('>d', obj))
    elif isinstance(obj, str):
        data = obj.encode('utf-8')
        w(b'X' + struct.pack('<I', len(data)) + data)
    elif isinstance(obj, bytes):  # as protocol 2 writes bytes
        _emit(Call(G('_codecs', 'encode'), obj.decode('latin1'), 'latin1'),
              out)
    elif isinstance(obj, tuple):
        w(b'(')
        for item in obj:
            _emit(item, out)
        w(b't')
    elif isinstance(obj, list):
        w(b']')
        if obj:
            w(b'(')
            for item in obj:
                _emit(item, out)
            w(b'e')
    elif isinstance(obj, dict):
        w(b'}')
        if obj:
            w(b'(')
            for key, value in obj.items():
                _emit(key, out)
                _emit(value, out)
            w(b'u')
    else:
        raise TypeError(f'cannot craft {obj!r}')


def craft(obj) -> bytes:
    out = io.BytesIO()
    out.write(b'\x80\x02')
    _emit(obj, out)
    out.write(b'.')
    return out.getvalue()


def write_checkpoint(path: Path, payload: bytes) -> Path:
    """A real ``torch.save`` zip whose ``data.pkl`` is ``payload``."""
    torch.save({}, path)
    with zipfile.ZipFile(path) as src:
        entries = [(i.filename, src.read(i)) for i in src.infolist()]
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as dst:
        for name, data in entries:
            dst.writestr(name, payload if name.endswith('/data.pkl')
                         else data)
    return path


# ------------------------------------------------------------- the gadgets
GETATTR = G('__builtin__', 'getattr')  # what protocol 2 writes
HB = G('mmengine.logging.history_buffer', 'HistoryBuffer')
NP_DTYPE = G('numpy', 'dtype')
NP_NDARRAY = G('numpy', 'ndarray')
RECONSTRUCT = G('numpy._core.multiarray', '_reconstruct')
SCALAR = G('numpy._core.multiarray', 'scalar')


def attr(obj, name: str) -> Call:
    return Call(GETATTR, obj, name)


def f8(values) -> Build:
    """A float64 array exactly as numpy pickles it."""
    arr = np.asarray(values, dtype=np.float64)
    dtype = Build(Call(NP_DTYPE, 'f8', False, True),
                  (3, '<', None, None, None, -1, -1, 0))
    return Build(Call(RECONSTRUCT, NP_NDARRAY, (0, ), b'b'),
                 (1, arr.shape, dtype, False, arr.tobytes()))


def buffer(**extra) -> New:
    """A HistoryBuffer as mmengine pickles it, plus ``extra`` state."""
    state = dict(max_length=1000000, _log_history=f8([1.0, 2.0]),
                 _count_history=f8([1.0, 1.0]),
                 statistics_methods={n: attr(HB, n)
                                     for n in ('min', 'max')})
    state.update(extra)
    return New(HB, state)


def exec_payload(marker: Path) -> Call:
    """``(exec, (code,))`` reached from ``getattr`` alone, wrapped so that
    calling the result with 4 returns it: a ``__reduce_ex__`` that
    ``copy.deepcopy`` (MessageHub.load_state_dict) calls."""
    builtins = attr(GETATTR, '__self__')  # getattr.__self__ is builtins
    run = (attr(builtins, 'exec'), (f'open({str(marker)!r}, "w").close()',))
    return attr((0, 0, 0, 0, run), '__getitem__')


def gadgets(marker: Path) -> Dict[str, object]:
    """Name -> crafted object; none may load, none may run code."""
    return {
        # getattr chains to builtins and module globals
        'reduce_ex_to_exec': buffer(__reduce_ex__=exec_payload(marker)),
        'getattr_self_builtins': attr(GETATTR, '__self__'),
        'getattr_init_globals': attr(attr(HB, '__init__'), '__globals__'),
        'getattr_subclasses': attr(HB, '__subclasses__'),
        'getattr_dunder_class': attr((), '__class__'),
        'getattr_numpy': attr(NP_DTYPE, '__call__'),
        'getattr_on_array': attr(f8([1.0]), 'min'),
        'getattr_array_name': Call(GETATTR, HB, f8([1.0])),
        # an allowed instance whose state carries a callable or a hook
        'buffer_deepcopy_hook': buffer(__deepcopy__=attr(HB, 'min')),
        'buffer_setstate_hook': buffer(__setstate__=attr(HB, 'mean')),
        'buffer_reduce_ex_hook': buffer(__reduce_ex__=attr(HB, 'max')),
        'buffer_callable_field': buffer(_log_history=attr(HB, 'min')),
        'buffer_method_swapped': buffer(
            statistics_methods={'min': attr(HB, 'max')}),
        'buffer_method_added': buffer(
            statistics_methods={'evil': attr(HB, 'min')}),
        'buffer_class_table': buffer(_statistics_methods={}),
        'buffer_list_history': buffer(_log_history=[1.0, 2.0]),
        'buffer_bad_length': buffer(max_length='1000000'),
        'buffer_with_args': New(HB, None, args=([1.0], [1])),
        'buffer_called': Call(HB, [1.0], [1]),
        'buffer_twice': Build(buffer(), {'x': 1}),
        # torch's own tensor-subclass rebuild, which sets state itself
        'buffer_via_rebuild_from_type': Call(
            G('torch._tensor', '_rebuild_from_type_v2'), HB, HB, (),
            {'__deepcopy__': attr(HB, 'min')}),
        # numpy objects that would hold Python objects
        'dtype_object': Call(NP_DTYPE, 'O8', False, True),
        'dtype_structured': Call(NP_DTYPE, 'V8', False, True),
        'dtype_array_align': Call(NP_DTYPE, 'f8', f8([1.0]), True),
        'reconstruct_array_shape': Call(RECONSTRUCT, NP_NDARRAY, f8([0.0]),
                                        b'b'),
        'dtype_class_object': Call(G('numpy.dtypes', 'ObjectDType')),
        'reconstruct_object': Call(RECONSTRUCT, NP_NDARRAY, (2, ), 'O'),
        'ndarray_called': Call(NP_NDARRAY, (2, ), 'O'),
        'ndarray_class_direct': Call(G('numpy', 'ndarray'), (2, ), 'f8'),
        'scalar_object': Call(SCALAR, Call(NP_DTYPE, 'O8', False, True),
                              b'\0' * 8),
        'scalar_short_data': Call(SCALAR, Call(NP_DTYPE, 'f8', False, True),
                                  b'\0' * 3),
    }


def nest(where: str, obj) -> dict:
    """Put ``obj`` where it would sit in an mmengine checkpoint."""
    hub = dict(log_scalars={}, runtime_info={}, resumed_keys={})
    ckpt = dict(meta=dict(epoch=1, iter=3), state_dict={}, message_hub=hub)
    if where == 'message_hub':
        hub['runtime_info']['x'] = obj
    elif where == 'meta':
        ckpt['meta']['x'] = obj
    else:
        ckpt['state_dict']['w'] = obj
    return ckpt


def _load(path: Path):
    return torch.load(path, map_location='cpu', weights_only=True)


# ------------------------------------------------------- the allow-list
EXPECTED_NAMES = {
    'builtins.getattr',
    'mmengine.logging.history_buffer.HistoryBuffer',
    'numpy.ndarray', 'numpy.dtype',
    'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar',
    'numpy.core.multiarray._reconstruct', 'numpy.core.multiarray.scalar',
}


def _registered() -> Dict[str, object]:
    out = {}
    for entry in torch.serialization.get_safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (
            entry, f'{entry.__module__}.{entry.__qualname__}')
        out[name] = obj
    return out


def test_allow_list_is_exactly_the_expected_names():
    names = set(safe_global_names())
    reachable = {n for n in names if '\n' not in n}
    assert reachable == EXPECTED_NAMES
    # the rest can only be BUILD targets: numpy's array and numeric dtype
    # classes, under names no GLOBAL opcode can spell
    build_only = {safe_global_names()[n] for n in names - reachable}
    codes = 'b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 f16 c8 c16 c32'.split()
    assert build_only == {np.ndarray} | {type(np.dtype(c)) for c in codes}
    assert not any(t.__name__ in ('ObjectDType', 'VoidDType')
                   for t in build_only)
    # and this is what torch really has, after import mmcsn
    assert set(_registered()) >= names


REGISTERED_BY_IMPORT = '''
import torch
before = set(map(repr, torch.serialization.get_safe_globals()))
import mmcsn
from mmcsn.compat.safe_load import mmengine_safe_globals
added = {e for e in torch.serialization.get_safe_globals()
         if repr(e) not in before}
# torch.distributed.tensor (imported by mmengine) registers torch's own
added = {e for e in added if isinstance(e, tuple)
         or not e.__module__.startswith('torch.')}
assert added == set(mmengine_safe_globals()), added
print('OK')
'''


def test_import_mmcsn_registers_nothing_else():
    """Process-wide, ``import mmcsn`` adds exactly mmcsn's pairs."""
    proc = subprocess.run([sys.executable, '-c', REGISTERED_BY_IMPORT],
                          cwd=str(REPO), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stderr


def test_real_getattr_and_history_buffer_are_not_registered():
    from mmengine.logging import HistoryBuffer
    objs = list(_registered().values())
    assert all(o is not getattr for o in objs)
    assert all(o is not HistoryBuffer for o in objs)


# --------------------------------------------- torch.load(weights_only)
@pytest.mark.parametrize('where', ['message_hub', 'meta', 'state_dict'])
@pytest.mark.parametrize('name', sorted(gadgets(Path('m'))))
def test_gadget_refused_by_torch_load(name, where, tmp_path):
    marker = tmp_path / 'PWNED'
    obj = nest(where, gadgets(marker)[name])
    path = write_checkpoint(tmp_path / f'{name}.pth', craft(obj))
    with pytest.raises(pickle.UnpicklingError) as info:
        _load(path)
    message = str(info.value)
    assert (REFUSED in message or 'Unsupported global' in message
            or 'Can only' in message), message
    assert not marker.exists()


def test_refusal_names_what_was_asked(tmp_path):
    obj = nest('meta', attr(attr(HB, '__init__'), '__globals__'))
    path = write_checkpoint(tmp_path / 'g.pth', craft(obj))
    with pytest.raises(pickle.UnpicklingError,
                       match=r"refused by mmcsn allow-list: getattr\("
                       r"HistoryBuffer, '__init__'\)"):
        _load(path)


def test_getattr_yields_inert_names(tmp_path):
    """The one lookup genuine files need returns a name, not the method,
    so no callable from a file lands anywhere (here: as the __deepcopy__
    of an OrderedDict, which torch itself lets a pickle set)."""
    hooked = Build(Call(G('collections', 'OrderedDict')),
                   {'__deepcopy__': attr(HB, 'min')})
    path = write_checkpoint(tmp_path / 'n.pth',
                            craft({'f': attr(HB, 'mean'), 'od': hooked}))
    loaded = _load(path)
    assert repr(loaded['f']) == "StatisticName('mean')"
    assert not callable(loaded['f'])
    assert not callable(loaded['od'].__deepcopy__)


NAIVE_LOAD = '''
import copy, sys, torch, numpy as np
from mmengine.logging import HistoryBuffer
core = np._core
naive = [getattr, HistoryBuffer, core.multiarray.scalar,
         core.multiarray._reconstruct, np.ndarray, np.dtype]
naive += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
with torch.serialization.safe_globals(naive):
    ckpt = torch.load(sys.argv[1], weights_only=True)
copy.deepcopy(ckpt['message_hub']['runtime_info'])  # as MessageHub does
'''


def test_negative_control_gadget_runs_code_under_a_naive_allow_list(
        tmp_path):
    """The allow-list mmcsn used to install (real getattr, real
    HistoryBuffer) lets the gadget run code on resume's deepcopy."""
    marker = tmp_path / 'PWNED'
    obj = nest('message_hub', gadgets(marker)['reduce_ex_to_exec'])
    path = write_checkpoint(tmp_path / 'evil.pth', craft(obj))
    proc = subprocess.run([sys.executable, '-c', NAIVE_LOAD, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()  # the gadget is real ...
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError, match=REFUSED):
        _load(path)  # ... and mmcsn's allow-list refuses it
    assert not marker.exists()


def test_dtype_build_cannot_set_the_object_flag(tmp_path):
    """BUILD on a fresh dtype copy can mark float64 as holding objects;
    mmcsn hands out numpy's builtin dtype, whose state cannot change."""
    evil = Build(Call(NP_DTYPE, 'f8', False, True),
                 (3, '|', None, ('a', ), {'a': (Call(NP_DTYPE, 'f8', False,
                                                     True), 0)}, 8, 1, 63))
    path = write_checkpoint(tmp_path / 'd.pth', craft({'d': evil}))
    dtype = _load(path)['d']
    assert dtype == np.dtype('f8')
    assert not dtype.hasobject and dtype.fields is None
    assert not np.dtype('f8').hasobject


def test_crafted_genuine_shapes_load(tmp_path):
    """The crafting itself is right: a genuine-shaped buffer loads."""
    from mmengine.logging import HistoryBuffer
    path = write_checkpoint(tmp_path / 'ok.pth',
                            craft(nest('message_hub', buffer())))
    hub = _load(path)['message_hub']
    buf = hub['runtime_info']['x']
    assert type(buf) is HistoryBuffer
    assert buf.mean() == 1.5 and buf.statistics('max') == 2.0
    assert set(vars(buf)) == {'max_length', '_log_history',
                              '_count_history'}
    copy.deepcopy(hub)


def test_numpy1_checkpoints_load(tmp_path):
    """numpy 1.x writes ``numpy.core.multiarray`` and ``dtype(c, 0, 1)``."""
    core = 'numpy.core.multiarray'
    dtype = Build(Call(NP_DTYPE, 'i8', 0, 1),
                  (3, '<', None, None, None, -1, -1, 0))
    arr = Build(Call(G(core, '_reconstruct'), NP_NDARRAY, (0, ), b'b'),
                (1, (2, ), dtype, False, np.arange(2).tobytes()))
    scalar = Call(G(core, 'scalar'), dtype, np.float64(0).tobytes())
    path = write_checkpoint(tmp_path / 'np1.pth',
                            craft({'a': arr, 's': scalar}))
    loaded = _load(path)
    assert loaded['a'].tolist() == [0, 1] and loaded['s'] == 0


# --------------------------------------------------- a real mmengine run
def _options(root: Path, epochs: int = 1) -> List[str]:
    options = [f'train_cfg.max_epochs={epochs}',
               'default_hooks.checkpoint.max_keep_ckpts=5',
               'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.ann_file={root}/{split}.txt',
                    f'{split}_dataloader.dataset.data_prefix.video={root}']
    return options


def _run(script: Path, *args: str, ok: bool = True):
    return run_script(script, *args, ok=ok)


@pytest.fixture(scope='module')
def genuine(tmp_path_factory, demo_data_root) -> Dict[str, Path]:
    """Checkpoints of real mmcsn/mmengine runs (2 epochs; and iter-based
    checkpoints of a 1-epoch run)."""
    root = tmp_path_factory.mktemp('genuine')
    _run(REPO / 'tools/train.py', DEMO_CFG, '--work-dir', root / 'epochs',
         '--cfg-options', *_options(demo_data_root, epochs=2))
    _run(REPO / 'tools/train.py', DEMO_CFG, '--work-dir', root / 'iters',
         '--cfg-options', *_options(demo_data_root),
         'default_hooks.checkpoint.by_epoch=False',
         'default_hooks.checkpoint.interval=1')
    best = sorted((root / 'epochs').glob('best_*.pth'))
    iters = sorted((root / 'iters').glob('iter_*.pth'))
    assert best and iters
    return dict(epoch_1=root / 'epochs/epoch_1.pth',
                epoch_2=root / 'epochs/epoch_2.pth', best=best[-1],
                iter=iters[-1], root=root, data=demo_data_root)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['epoch_1', 'epoch_2', 'best', 'iter'])
def test_genuine_checkpoints_load(genuine, kind):
    from mmengine.logging import HistoryBuffer
    ckpt = _load(genuine[kind])
    hub = ckpt['message_hub']
    buffers = list(hub['log_scalars'].values())
    assert buffers and all(type(b) is HistoryBuffer for b in buffers)
    assert all(b.statistics('mean') == b.mean() for b in buffers)
    copy.deepcopy(hub)  # what resume does
    assert isinstance(ckpt['meta']['epoch'], int)
    assert ckpt['state_dict']
    assert kind == 'best' or ckpt['optimizer']  # best: weights only
    # the file really uses the globals this allow-list serves
    assert {'__builtin__ getattr', 'numpy dtype',
            'numpy._core.multiarray _reconstruct',
            'mmengine.logging.history_buffer HistoryBuffer'} <= _globals_in(
                genuine[kind])


def _globals_in(path: Path) -> set:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('data.pkl'))
        data = archive.read(name)
    return {arg for op, arg, _ in pickletools.genops(data)
            if op.name == 'GLOBAL'}


@pytest.mark.slow
def test_genuine_resume_is_exact_and_tests(genuine, tmp_path):
    work = tmp_path / 'resumed'
    _run(REPO / 'tools/train.py', DEMO_CFG, '--work-dir', work,
         '--resume', genuine['epoch_1'], '--cfg-options',
         *_options(genuine['data'], epochs=2))
    expected = _load(genuine['epoch_2'])['state_dict']
    resumed = _load(work / 'epoch_2.pth')['state_dict']
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    _, out = _run(REPO / 'tools/test.py', DEMO_CFG, genuine['best'],
                  '--work-dir', tmp_path / 'test', '--cfg-options',
                  *_options(genuine['data']))
    assert 'acc/top1' in out


# ------------------------------------------- every path a file enters
@pytest.fixture(scope='module')
def evil(tmp_path_factory) -> Dict[str, Path]:
    """The code-running gadget in a checkpoint shaped like a real one."""
    root = tmp_path_factory.mktemp('evil')
    marker = root / 'PWNED'
    obj = nest('message_hub', gadgets(marker)['reduce_ex_to_exec'])
    obj['meta'].update(epoch=1, iter=3)
    path = write_checkpoint(root / 'evil.pth', craft(obj))
    return dict(path=path, marker=marker)


def _assert_refused(rc: int, out: str, evil: Dict[str, Path]) -> None:
    assert rc != 0, out[-3000:]
    assert REFUSED in out, out[-3000:]
    assert not evil['marker'].exists()


@pytest.mark.slow
def test_resume_through_mmcsn_train_refused(evil, demo_data_root, tmp_path):
    rc, out = _run(REPO / 'tools/train.py', DEMO_CFG, '--work-dir',
                   tmp_path, '--resume', evil['path'], '--cfg-options',
                   *_options(demo_data_root), ok=False)
    _assert_refused(rc, out, evil)
    assert 'Traceback' not in out
    assert out.strip().splitlines()[-1].startswith('error: ')
    assert not list(tmp_path.glob('*.pth'))  # nothing trained


@pytest.mark.slow
@pytest.mark.parametrize('how', ['resume', 'load_from'])
def test_mmaction_train_refused(how, evil, demo_data_root, tmp_path):
    extra = (['--resume', evil['path'], '--cfg-options']
             if how == 'resume' else
             ['--cfg-options', f'load_from={evil["path"]}'])
    rc, out = _run(MIM_TOOLS / 'train.py', DEMO_CFG, '--work-dir', tmp_path,
                   *extra, *_options(demo_data_root), ok=False)
    _assert_refused(rc, out, evil)
    assert not list(tmp_path.glob('*.pth'))


@pytest.mark.slow
@pytest.mark.parametrize('tools', ['mmcsn', 'mmaction'])
def test_test_py_refused(tools, evil, demo_data_root, tmp_path):
    script = (REPO / 'tools' if tools == 'mmcsn' else MIM_TOOLS) / 'test.py'
    rc, out = _run(script, DEMO_CFG, evil['path'], '--work-dir', tmp_path,
                   '--cfg-options', *_options(demo_data_root), ok=False)
    _assert_refused(rc, out, evil)
    if tools == 'mmcsn':
        assert out.strip().splitlines()[-1].startswith('error: ')
        assert 'Traceback' not in out


def test_init_recognizer_refused(evil):
    from mmaction.apis import init_recognizer
    with pytest.raises(Exception, match=REFUSED):
        init_recognizer(str(DEMO_CFG), str(evil['path']), device='cpu')
    assert not evil['marker'].exists()


@pytest.mark.parametrize('how', ['pretrained', 'init_cfg'])
def test_backbone_intake_refused(how, evil):
    from mmcsn.models.backbones.csn import CSN
    kwargs = (dict(pretrained=str(evil['path'])) if how == 'pretrained'
              else dict(init_cfg=dict(type='Pretrained',
                                      checkpoint=str(evil['path']))))
    model = CSN(depth=50, base_channels=4, stage_blocks=(1, 1, 1, 1),
                **kwargs)
    with pytest.raises(Exception, match=REFUSED):
        model.init_weights()
    assert not evil['marker'].exists()


@pytest.mark.parametrize('script', CONVERTERS, ids=lambda p: p.stem)
def test_converters_refuse(script, evil, tmp_path, capsys):
    from conftest import load_tool
    out = tmp_path / 'out.pth'
    module = load_tool(script.relative_to(REPO).as_posix())
    code = module.main([str(evil['path']), str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert 'would run code' in err and REFUSED in err, err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not evil['marker'].exists()
