"""Untrusted checkpoints cannot run code; nothing a user owns is lost.

- Every checkpoint read in ``mmcsn/`` and ``tools/`` goes through the
  weights-only helper or a restricted unpickler (static check).
- A pickle whose ``__reduce__`` would create a marker directory is refused
  with a clear error by ``load_checkpoint_file``, every converter CLI and
  ``pretrained=`` / ``init_cfg`` of the backbones; the marker never
  appears.
- Strict loads name missing / unexpected / shape-mismatched keys;
  ``strict=False`` logs what it skipped.
- Converters never write over their input, refuse an existing output
  without ``--force``, and write atomically (an exception or a SIGKILL
  mid-write leaves the old destination intact).
- Broken files (empty, text, PNG, truncated, a legacy file with one byte
  changed, a byte-flip fuzz) are ``CorruptCheckpointError`` naming the
  file, never an exception from inside torch.

The mmengine-checkpoint allow-list itself is covered in test_compat.py;
the one-line CLI errors, races and umask in test_converter_cli.py; the
intake and URLs in test_intake.py.
"""
import ast
import functools
import io
import logging
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, List

import pytest
import torch
import torch.nn as nn
from conftest import load_tool

import mmcsn  # noqa: F401
from mmcsn.checkpoint import (
    CheckpointError,
    CheckpointIsADirectoryError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_file,
    load_state_dict_checked,
    save_checkpoint_atomic,
)
from mmcsn.models.backbones.blresnet import bLResNet
from mmcsn.models.backbones.csn import CSN

REPO = Path(__file__).resolve().parents[1]
CONVERTERS = sorted((REPO / 'tools' / 'convert').glob('*_to_mmcsn.py'))
# the converter whose input is a state_dict in mmcsn's own layout, so a
# tiny CSN is a valid input for the overwrite / atomicity tests
PASSTHROUGH = REPO / 'tools' / 'convert' / 'mmaction_to_mmcsn.py'


class _Marker:
    """Pickles as ``os.mkdir(path)``: loading it would run code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path, )


def _tiny_csn(**kwargs) -> CSN:
    return CSN(depth=50, base_channels=4, **kwargs)


def _malicious(tmp_path: Path, fmt: str) -> Path:
    """A checkpoint with real weights plus the marker object."""
    marker = str(tmp_path / 'PWNED')
    sd = {f'backbone.{k}': v for k, v in _tiny_csn().state_dict().items()}
    obj = {'state_dict': sd, 'meta': _Marker(marker)}
    path = tmp_path / f'evil_{fmt}.pth'
    if fmt == 'zip':  # torch.save's format
        torch.save(obj, path)
    else:  # a bare pickle, as a legacy .pth or caffe2 .pkl would be
        path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def _run_converter(script: Path, argv: List[str], capsys) -> tuple:
    module = load_tool(script.relative_to(REPO).as_posix())
    code = module.main(argv)
    return code, capsys.readouterr().err


# ----------------------------------------------------------------- static
_SOURCES = sorted((REPO / 'mmcsn').rglob('*.py')) + sorted(
    (REPO / 'tools').rglob('*.py'))


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return '.'.join(reversed(parts))


def _unsafe_sites(path: Path) -> List[str]:
    """Checkpoint reads in ``path`` that are not provably safe."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO).as_posix() if REPO in path.parents \
        else path.name
    bad = []
    for node in ast.walk(tree):
        where = f'{rel}:{getattr(node, "lineno", "?")}'
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            kwargs = {k.arg: k.value for k in node.keywords}
            if name.endswith('torch.load') or name == 'load' and isinstance(
                    node.func, ast.Name):
                weights_only = kwargs.get('weights_only')
                if rel != 'mmcsn/checkpoint/io.py' or not (
                        isinstance(weights_only, ast.Constant)
                        and weights_only.value is True):
                    bad.append(f'{where} {name}(...) outside the helper')
            elif name in ('pickle.load', 'pickle.loads', 'marshal.loads',
                          'dill.load', 'cloudpickle.load', 'joblib.load'):
                bad.append(f'{where} {name}(...)')
            elif name.endswith('Unpickler') and name.startswith('pickle'):
                bad.append(f'{where} unrestricted {name}(...)')
            elif name in ('np.load', 'numpy.load'):
                flag = kwargs.get('allow_pickle')
                if not (isinstance(flag, ast.Constant)
                        and flag.value is False) and flag is not None:
                    bad.append(f'{where} {name}(allow_pickle=...)')
            for key, value in kwargs.items():
                if key == 'weights_only' and isinstance(
                        value, ast.Constant) and value.value is False:
                    bad.append(f'{where} weights_only=False')
        elif isinstance(node, ast.ClassDef):
            bases = [_dotted(b) for b in node.bases]
            if any(b.endswith('Unpickler') for b in bases):
                methods = {n.name for n in node.body
                           if isinstance(n, ast.FunctionDef)}
                if 'find_class' not in methods:
                    bad.append(f'{where} Unpickler {node.name} without a '
                               'restricting find_class')
        elif isinstance(node, ast.Constant) and node.value == \
                'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD':
            bad.append(f'{where} sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    return bad


def test_every_checkpoint_read_is_weights_only_or_restricted():
    assert len(_SOURCES) > 10  # the scan really sees the package
    bad = [site for path in _SOURCES for site in _unsafe_sites(path)]
    assert bad == []


def test_static_check_catches_an_unsafe_load(tmp_path):
    """The scanner above is not vacuous."""
    probe = tmp_path / 'probe.py'
    probe.write_text(textwrap.dedent('''
        import pickle, torch
        a = torch.load('x.pth')
        b = torch.load('x.pth', weights_only=False)
        c = pickle.load(open('x', 'rb'))
        class U(pickle.Unpickler):
            pass
    '''))
    assert len(_unsafe_sites(probe)) == 5, _unsafe_sites(probe)


# -------------------------------------------------------------- malicious
@pytest.mark.parametrize('fmt', ['zip', 'pickle'])
def test_load_checkpoint_file_refuses_code(tmp_path, fmt):
    path = _malicious(tmp_path, fmt)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'refused to load .*evil_.*would run code'):
        load_checkpoint_file(path)
    assert not (tmp_path / 'PWNED').exists()


def test_marker_really_runs_when_loaded_unsafely(tmp_path):
    """Sanity: the malicious file is malicious (so the tests can fail)."""
    path = _malicious(tmp_path, 'zip')
    torch.load(path, weights_only=False)
    assert (tmp_path / 'PWNED').is_dir()


@pytest.mark.parametrize('fmt', ['zip', 'pickle'])
@pytest.mark.parametrize('script', CONVERTERS, ids=lambda p: p.stem)
def test_converter_cli_refuses_code(tmp_path, capsys, script, fmt):
    src = _malicious(tmp_path, fmt)
    dst = tmp_path / 'out.pth'
    code, err = _run_converter(script, [str(src), str(dst)], capsys)
    assert code != 0
    assert 'refused to load' in err and src.name in err
    assert not (tmp_path / 'PWNED').exists()
    assert not dst.exists()


def test_converter_cli_refuses_code_in_a_subprocess(tmp_path):
    """The real command line, exit status and message."""
    src = _malicious(tmp_path, 'zip')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(PASSTHROUGH), str(src), str(tmp_path / 'o')],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert 'refused to load' in proc.stderr
    assert not (tmp_path / 'PWNED').exists()


@pytest.mark.parametrize('how', ['pretrained', 'init_cfg'])
@pytest.mark.parametrize('backbone', ['CSN', 'bLResNet'])
def test_backbone_pretrained_refuses_code(tmp_path, backbone, how):
    path = str(_malicious(tmp_path, 'zip'))
    build = _tiny_csn if backbone == 'CSN' else functools.partial(
        bLResNet, depth=50, num_segments=2)
    if how == 'pretrained':
        model = build(pretrained=path)
    else:
        model = build(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError, match='refused to load'):
        model.init_weights()
    assert not (tmp_path / 'PWNED').exists()


# -------------------------------------------------------- strict / partial
class _Net(nn.Module):

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.a = nn.Linear(2, width)
        self.b = nn.Linear(width, 2)


def test_strict_load_names_every_kind_of_mismatch():
    sd = _Net().state_dict()
    sd['b.weight'] = torch.zeros(2, 5)  # shape mismatch
    del sd['a.bias']  # missing
    sd['c.weight'] = torch.zeros(1)  # unexpected
    pattern = (r'1 missing key\(s\): a\.bias; 1 unexpected key\(s\): '
               r'c\.weight; 1 shape-mismatched key\(s\): b\.weight')
    with pytest.raises(CheckpointError, match=pattern):
        load_state_dict_checked(_Net(), sd)


def test_strict_load_lists_the_first_keys_and_the_count():
    net = nn.Sequential(*[nn.Linear(1, 1) for _ in range(8)])
    with pytest.raises(CheckpointError,
                       match=r'16 missing key\(s\): 0\.weight, 0\.bias, '
                       r'1\.weight, 1\.bias, 2\.weight, \.\.\. '
                       r'\(\+11 more\)'):
        load_state_dict_checked(net, {})


def test_partial_load_logs_what_it_skipped():
    source = _Net(width=3)
    target = _Net(width=4)  # a.* and b.weight do not fit
    target.b.bias.data.zero_()
    records = []
    logger = logging.getLogger('mmcsn-test-partial')
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        report = load_state_dict_checked(
            target, source.state_dict(), strict=False, logger=logger)
    finally:
        logger.removeHandler(handler)
    assert report['mismatched'] == ['a.weight', 'a.bias', 'b.weight']
    assert torch.equal(target.b.bias, source.b.bias)  # the rest loaded
    (message, ) = [r.getMessage() for r in records]
    assert '3 shape-mismatched key(s): a.weight, a.bias, b.weight' in \
        message


def test_csn_pretrained_with_wrong_shapes_names_the_keys(tmp_path):
    path = tmp_path / 'wrong_width.pth'
    torch.save(CSN(depth=50, base_channels=8).state_dict(), path)
    with pytest.raises(CheckpointError,
                       match=r'shape-mismatched key\(s\): conv1\.conv\.'
                       r'weight'):
        _tiny_csn(pretrained=str(path)).init_weights()


# ------------------------------------------------------ inputs / outputs
def _valid_source(tmp_path: Path) -> Path:
    """A backbone-only checkpoint of a tiny CSN (MMAction2 layout)."""
    src = tmp_path / 'src.pth'
    torch.save({'state_dict': _tiny_csn().state_dict()}, src)
    return src


def _legacy_bytes() -> bytes:
    """A legacy (non-zip) torch.save file of a small state_dict."""
    buf = io.BytesIO()
    torch.save({'w': torch.zeros(64), 'b': torch.zeros(3)}, buf,
               _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _legacy_one_byte_changed() -> bytes:
    """One digit of the trailing storage-key list changed: torch raises a
    bare AssertionError ('storage key ... not found')."""
    data = _legacy_bytes()
    at = data.rfind(re.findall(rb'\d{6,}', data)[-1])
    return data[:at] + (b'1' if data[at:at + 1] != b'1' else b'2') + \
        data[at + 1:]


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({'w': torch.ones(1000)}, buf)
    return buf.getvalue()


# 1x1 PNG: a real image file given by mistake
_PNG = bytes.fromhex(
    '89504e470d0a1a0a0000000d4948445200000001000000010806000000'
    '1f15c4890000000d49444154789c6360000000000400010d0a2db40000'
    '000049454e44ae426082')


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


_CORRUPT = {
    'empty': lambda: b'',
    'text': lambda: b'not a checkpoint\n',
    'png': lambda: _PNG,
    'random': lambda: bytes(range(256)) * 4,
    'truncated_zip': lambda: _zip_bytes()[:len(_zip_bytes()) // 2],
    'truncated_pickle': lambda: pickle.dumps({'w': 1.5}, protocol=2)[:9],
    'legacy_one_byte': _legacy_one_byte_changed,
}


@pytest.mark.parametrize('kind', sorted(_CORRUPT))
def test_load_checkpoint_file_calls_broken_files_corrupt(tmp_path, kind):
    path = tmp_path / f'{kind}.pth'
    path.write_bytes(_CORRUPT[kind]())
    pattern = re.escape(repr(str(path))) + ' is corrupt or truncated'
    with pytest.raises(CorruptCheckpointError, match=pattern):
        load_checkpoint_file(path)


def test_legacy_file_with_one_byte_changed_is_an_assertion_in_torch(
        tmp_path):
    """Negative control: torch itself fails with a bare AssertionError."""
    path = tmp_path / 'legacy.pth'
    path.write_bytes(_CORRUPT['legacy_one_byte']())
    with pytest.raises(AssertionError):
        torch.load(path, weights_only=True)


def test_every_single_byte_change_is_a_checkpoint_error(tmp_path):
    """Fuzz a legacy file: each flipped byte loads or gives a clear error.
    """
    data = _legacy_bytes()
    path = tmp_path / 'fuzz.pth'
    for at in range(0, len(data), max(1, len(data) // 96)):
        path.write_bytes(_flip(data, at))
        try:
            load_checkpoint_file(path)
        except CheckpointError as err:
            assert repr(str(path)) in str(err), (at, err)


def test_missing_and_directory_inputs_say_so(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        load_checkpoint_file(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointNotFoundError, match='not found'):
        load_checkpoint_file(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointIsADirectoryError, match='is a directory'):
        load_checkpoint_file(tmp_path)


def test_converter_never_writes_its_input(tmp_path, capsys):
    src = _valid_source(tmp_path)
    before = src.read_bytes()
    for argv in ([str(src), str(src)], [str(src), str(src), '--force']):
        code, err = _run_converter(PASSTHROUGH, argv, capsys)
        assert code == 1 and 'input file' in err
    assert src.read_bytes() == before


def test_converter_needs_force_to_overwrite(tmp_path, capsys):
    src = _valid_source(tmp_path)
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'precious')
    code, err = _run_converter(PASSTHROUGH, [str(src), str(dst)], capsys)
    assert code == 1 and '--force' in err
    assert dst.read_bytes() == b'precious'
    code, _ = _run_converter(
        PASSTHROUGH, [str(src), str(dst), '--force'], capsys)
    assert code == 0
    written = load_checkpoint_file(dst)['state_dict']
    source = load_checkpoint_file(src)['state_dict']
    assert written.keys() == {f'backbone.{k}' for k in source}
    for key, value in source.items():
        assert torch.equal(written[f'backbone.{key}'], value), key


def _half_then(fail: Callable[[], None]) -> Callable:
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[:len(data) // 2])
        f.flush()
        fail()

    return save


def test_failed_write_keeps_the_old_destination(tmp_path, capsys,
                                                monkeypatch):
    src = _valid_source(tmp_path)
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old weights')

    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', _half_then(interrupt))
    with pytest.raises(KeyboardInterrupt):
        _run_converter(PASSTHROUGH, [str(src), str(dst), '--force'], capsys)
    assert dst.read_bytes() == b'old weights'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pth',
                                                          'src.pth']


def test_sigkill_mid_write_keeps_the_old_destination(tmp_path):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old weights')
    script = textwrap.dedent(f'''
        import os, signal, torch
        from mmcsn.checkpoint.io import save_checkpoint_atomic
        real = torch.save
        def save(obj, f, *a, **k):
            real(obj, f, *a, **k)
            f.flush()
            f.truncate(f.tell() // 2)  # half written ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and killed
        torch.save = save
        save_checkpoint_atomic({{'w': torch.ones(100000)}}, {str(dst)!r},
                               force=True)
    ''')
    proc = subprocess.run([sys.executable, '-c', script],
                          env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert dst.read_bytes() == b'old weights'
    # the half-written data went to a hidden temporary file, never dst
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != 'out.pth']
    assert len(leftovers) == 1 and leftovers[0].startswith('.out.pth.')


def test_save_checkpoint_atomic_refuses_existing_and_input(tmp_path):
    dst = tmp_path / 'a.pth'
    save_checkpoint_atomic({'w': torch.ones(1)}, dst)
    with pytest.raises(FileExistsError, match=r"a\.pth' exists; pass --force"):
        save_checkpoint_atomic({'w': torch.zeros(1)}, dst)
    with pytest.raises(ValueError, match='input file'):
        save_checkpoint_atomic({'w': torch.zeros(1)}, dst, force=True,
                               protect=[str(dst)])
    assert torch.equal(load_checkpoint_file(dst)['w'], torch.ones(1))
