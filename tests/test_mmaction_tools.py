"""MMAction2's own ``tools/train.py`` / ``tools/test.py`` on mmcsn configs.

This is how existing MMAction2 projects call mmcsn: the scripts shipped in
the mmaction2 wheel (``mmaction/.mim/tools``), unchanged, with mmcsn
loaded only through the config's ``custom_imports``. The test run also
covers the stack fixes end to end: ``import mmaction.models`` (drn shim)
and loading the checkpoint mmengine wrote with ``weights_only=True``.
"""
import subprocess
import sys
from pathlib import Path

import mmaction
import pytest

REPO = Path(__file__).resolve().parents[1]
MIM_TOOLS = Path(mmaction.__file__).parent / '.mim' / 'tools'
TINY_CSN = REPO / 'configs/csn/ircsn_tiny-r50_1xb2-8x2x1-2e_demo-rgb.py'


def _data_options(root: Path) -> list:
    """``--cfg-options`` pointing the tiny config at the generated clips."""
    options = ['train_cfg.max_epochs=1']
    for split, ann in (('train', 'train.txt'), ('val', 'val.txt'),
                       ('test', 'test.txt')):
        options += [
            f'{split}_dataloader.dataset.ann_file={root / ann}',
            f'{split}_dataloader.dataset.data_prefix.video={root}',
        ]
    return ['--cfg-options'] + options


def _run(script: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(script), *args], cwd=str(REPO),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = proc.stdout.decode(errors='replace')
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow  # train + test subprocesses
@pytest.mark.parametrize('tools', ['mmaction', 'mmcsn'])
def test_train_then_test_with_the_tools(tools, demo_data_root, tmp_path):
    tool_dir = MIM_TOOLS if tools == 'mmaction' else REPO / 'tools'
    work = tmp_path / 'work'
    options = _data_options(demo_data_root)
    out = _run(tool_dir / 'train.py', str(TINY_CSN), '--work-dir',
               str(work), *options)
    assert 'Epoch(train)' in out and 'acc/top1' in out
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    out = _run(tool_dir / 'test.py', str(TINY_CSN), str(checkpoint),
               '--work-dir', str(tmp_path / 'test'), *options)
    assert 'Epoch(test)' in out and 'acc/top1' in out


def test_entry_tunes_malloc_then_runs_the_bundled_script(monkeypatch):
    from mmcsn.utils import entry
    calls = []
    monkeypatch.setattr(entry, 'prepare_entry_process',
                        lambda caught: calls.append('tune'))
    monkeypatch.setattr(entry.runpy, 'run_path',
                        lambda path, run_name: calls.append(
                            (path, run_name)))
    # the checkpoint checks (tests/test_strict_load.py) wrap the run
    monkeypatch.setattr(entry, 'run_guarded', lambda name, run: (
        calls.append(('guard', name)), run()))
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', 'CFG', 'CKPT'])
    entry.run_mmaction_tool('test.py')
    assert calls == ['tune', ('guard', 'test.py'),
                     (str(MIM_TOOLS / 'test.py'), '__main__')]
    assert sys.argv[1:] == ['CFG', 'CKPT']
    with pytest.raises(FileNotFoundError, match='does not ship'):
        entry.mmaction_tool('no_such_tool.py')
