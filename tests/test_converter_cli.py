"""Converters: exclusive outputs under concurrency, umask modes, and one
line (exit 1) naming the path and the reason for every failure.

The reasons have fixed, distinct words (``mmcsn.checkpoint.errors``):
not found / is a directory / no permission / corrupt or truncated /
refused ... would run code / wrong model family / exists.
"""
import io
import os
import pickle
import re
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from conftest import load_tool

import mmcsn  # noqa: F401
from mmcsn.checkpoint import OutputExistsError, save_checkpoint_atomic
from mmcsn.models.backbones.csn import CSN

REPO = Path(__file__).resolve().parents[1]
CONVERTERS = sorted(p.stem for p in (REPO / 'tools' / 'convert').glob(
    '*_to_mmcsn.py'))
PASSTHROUGH = 'mmaction_to_mmcsn'
# words of each reason; each must be absent from every other reason's line
REASONS = {
    'not_found': 'not found: ',
    'directory': 'is a directory',
    'permission': 'no permission',
    'corrupt': 'is corrupt or truncated',
    'code': 'would run code',
    'family': 'wrong model family',
    'exists': 'exists; pass --force',
}


def _cli(name: str):
    return load_tool(f'tools/convert/{name}.py')


def _run(name: str, argv, capsys):
    code = _cli(name).main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def _csn_file(path: Path) -> Path:
    torch.save({'state_dict': CSN(depth=50, base_channels=4).state_dict()},
               path)
    return path


def _blvnet_file(path: Path) -> Path:
    """A file with bLVNet-TAM keys (values irrelevant for the errors)."""
    sd = OrderedDict((f'baseline_model.{k}', torch.zeros(1))
                     for k in ('conv1.weight', 'b_conv0.weight',
                               'bl_init.weight'))
    torch.save(sd, path)
    return path


class _Marker:

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path, )


def _legacy_flipped() -> bytes:
    """A legacy torch.save file with one digit of a storage key changed
    (a bare AssertionError inside torch before the fix)."""
    buf = io.BytesIO()
    torch.save({'w': torch.zeros(64)}, buf,
               _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    at = data.rfind(re.findall(rb'\d{6,}', data)[-1])
    return data[:at] + (b'1' if data[at:at + 1] != b'1' else b'2') + \
        data[at + 1:]


def _deny(monkeypatch, path: Path, mode: int) -> None:
    """Take read (input) or write (folder) permission from ``path``.

    As root, permissions do not bind: the OS refusal is simulated at the
    call mmcsn makes, with the error the OS would give.
    """
    if os.geteuid() != 0:
        path.chmod(mode)
        return
    import tempfile

    import mmcsn.checkpoint.io as ckpt_io
    real_open, real_mkstemp = open, tempfile.mkstemp

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, 'Permission denied', str(path))
        return real_open(file, *args, **kwargs)

    def guarded_mkstemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir) == str(path):
            raise PermissionError(13, 'Permission denied', str(path))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(ckpt_io, 'open', guarded_open, raising=False)
    monkeypatch.setattr(tempfile, 'mkstemp', guarded_mkstemp)


def _case(kind: str, script: str, tmp: Path, monkeypatch):
    """(argv, reason, path that must be named) of one failure."""
    good = _csn_file(tmp / 'good.pth') if script != 'blvnet_to_mmcsn' \
        else _blvnet_file(tmp / 'good.pth')
    out = tmp / 'out.pth'
    if kind == 'not_found':
        return [tmp / 'missing.pth', out], 'not_found', tmp / 'missing.pth'
    if kind == 'input_is_dir':
        (tmp / 'adir').mkdir()
        return [tmp / 'adir', out], 'directory', tmp / 'adir'
    if kind == 'output_is_dir':
        (tmp / 'odir').mkdir()
        return [good, tmp / 'odir'], 'directory', tmp / 'odir'
    if kind == 'unreadable':
        _deny(monkeypatch, good, 0)
        return [good, out], 'permission', good
    if kind == 'readonly_folder':
        folder = tmp / 'ro'
        folder.mkdir()
        _deny(monkeypatch, folder, 0o555)
        return [good, folder / 'o.pth'], 'permission', folder
    if kind == 'exists':
        out.write_bytes(b'precious')
        return [good, out], 'exists', out
    if kind == 'code':
        bad = tmp / 'evil.pth'
        torch.save({'state_dict': {'conv1_w': torch.zeros(1)},
                    'x': _Marker(str(tmp / 'PWNED'))}, bad)
        return [bad, out], 'code', bad
    if kind == 'code_bare_pickle':
        bad = tmp / 'evil.pkl'
        bad.write_bytes(pickle.dumps(
            {'blobs': {'x': _Marker(str(tmp / 'PWNED'))}}, protocol=2))
        return [bad, out], 'code', bad
    if kind == 'family':
        other = _blvnet_file(tmp / 'other.pth') \
            if script != 'blvnet_to_mmcsn' else _csn_file(tmp / 'other.pth')
        return [other, out], 'family', other
    data = {
        'empty': b'',
        'text': b'weights: none\n',
        'png': bytes.fromhex('89504e470d0a1a0a0000000d49484452'),
        'truncated_pickle': pickle.dumps({'blobs': {'a': 1.0}},
                                         protocol=2)[:12],
        'legacy_one_byte': _legacy_flipped(),
    }[kind]
    bad = tmp / f'{kind}.pth'
    bad.write_bytes(data)
    return [bad, out], 'corrupt', bad


KINDS = ['not_found', 'input_is_dir', 'output_is_dir', 'unreadable',
         'readonly_folder', 'exists', 'code', 'code_bare_pickle', 'family',
         'empty', 'text', 'png', 'truncated_pickle', 'legacy_one_byte']


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('script', CONVERTERS)
def test_every_failure_is_one_line_with_its_reason(tmp_path, capsys,
                                                   monkeypatch, script,
                                                   kind):
    argv, reason, named = _case(kind, script, tmp_path, monkeypatch)
    before = sorted(p.name for p in tmp_path.rglob('*'))
    code, err = _run(script, argv, capsys)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert REASONS[reason] in err, err
    assert repr(str(named)) in err or str(named) in err, err
    others = [w for r, w in REASONS.items() if r != reason]
    assert not [w for w in others if w in err], err
    assert 'Traceback' not in err
    assert not (tmp_path / 'PWNED').exists()
    assert sorted(p.name for p in tmp_path.rglob('*')) == before
    if kind == 'exists':
        assert argv[1].read_bytes() == b'precious'


@pytest.mark.slow
def test_real_command_line_prints_one_line(tmp_path):
    """The script as users run it: exit status 1, one line, no trace; a
    truncated caffe2 pickle is corrupt, not 'refused'."""
    src = tmp_path / 'c2.pkl'
    src.write_bytes(pickle.dumps({'blobs': {'conv1_w': 1.0}}, protocol=2)[:12])
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools/convert/caffe2_to_mmcsn.py'),
         str(src), str(tmp_path / 'o.pth')],
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith('error') or 'Traceback' in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"error: checkpoint '{src}' is corrupt or "
                                'truncated'), proc.stderr
    assert 'refused' not in proc.stderr


# ------------------------------------------------------- concurrency
def _racing_save(monkeypatch, n: int = 2):
    """Make ``n`` writers finish their temp files before any names one."""
    barrier = threading.Barrier(n, timeout=30)
    real = torch.save

    def save(obj, f, *args, **kwargs):
        real(obj, f, *args, **kwargs)
        barrier.wait()  # every writer has passed the exists-check

    monkeypatch.setattr(torch, 'save', save)


def test_two_writers_of_one_new_output_cannot_both_win(tmp_path,
                                                       monkeypatch):
    """Without --force exactly one writer creates the file; the other is
    refused and the file holds the winner's data. (Before the exclusive
    link both returned and one output silently replaced the other.)"""
    dst = tmp_path / 'out.pth'
    _racing_save(monkeypatch)
    results = {}

    def write(i: int) -> None:
        try:
            save_checkpoint_atomic({'w': torch.full((4, ), float(i))}, dst)
            results[i] = 'written'
        except OutputExistsError as err:
            results[i] = err

    threads = [threading.Thread(target=write, args=(i, )) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    written = [i for i, r in results.items() if r == 'written']
    refused = [r for r in results.values() if r != 'written']
    assert len(written) == 1 and len(refused) == 1, results
    assert 'exists; pass --force' in str(refused[0])
    monkeypatch.undo()
    got = torch.load(dst, weights_only=True)['w']
    assert torch.equal(got, torch.full((4, ), float(written[0])))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pth']


def test_force_replaces_atomically_under_concurrency(tmp_path, monkeypatch):
    """With --force both writers succeed and the result is one of them,
    whole (never a mix, never a temp file left)."""
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'old')
    _racing_save(monkeypatch)
    threads = [threading.Thread(
        target=save_checkpoint_atomic,
        args=({'w': torch.full((4, ), float(i))}, dst),
        kwargs=dict(force=True)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.undo()
    got = torch.load(dst, weights_only=True)['w']
    assert any(torch.equal(got, torch.full((4, ), float(i))) for i in (1, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pth']


@pytest.mark.slow
def test_two_converter_processes_race_for_one_output(tmp_path):
    """Two real converter processes, one new output: one exits 0, the
    other 1 with 'exists'."""
    src = _csn_file(tmp_path / 'src.pth')
    dst = tmp_path / 'out.pth'
    script = REPO / 'tools' / 'convert' / f'{PASSTHROUGH}.py'
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, str(script), str(src),
                               str(dst)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    loser = [err for p, (_, err) in zip(procs, outs) if p.returncode == 1]
    assert 'exists; pass --force' in loser[0]


# --------------------------------------------------------------- umask
@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_output_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save_checkpoint_atomic({'w': torch.ones(1)},
                                      tmp_path / 'o.pth')
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_converter_output_is_readable_by_others(tmp_path, capsys):
    """The user-facing case: a shared cluster folder, umask 022."""
    src = _csn_file(tmp_path / 'src.pth')
    old = os.umask(0o022)
    try:
        code, err = _run(PASSTHROUGH, [src, tmp_path / 'o.pth'], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    assert os.stat(tmp_path / 'o.pth').st_mode & 0o777 == 0o644
