"""A resumed message hub cannot make mmengine delete what the user owns.

mmengine's ``CheckpointHook`` removes the path a resumed checkpoint names
in ``best_ckpt`` (file or whole directory) at the first better score, and
the files named by formatting ``keep_ckpt_ids``. ``StrictLoadHook`` vets
both before mmengine applies the hub. Also: ``check_tool_args`` parses
MMAction2's own option table.
"""
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import List

import pytest
import torch
import torch.nn as nn
from conftest import run_script
from mmengine.logging import MMLogger

import mmcsn  # noqa: F401
from mmcsn.checkpoint.errors import CheckpointError, UnsafeCheckpointError
from mmcsn.checkpoint.io import load_checkpoint_file
from mmcsn.engine import StrictLoadHook
from mmcsn.engine.resume_guard import check_tool_args

REPO = Path(__file__).resolve().parents[1]
DEMO_CFG = REPO / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'
BEST = 'best_acc_top1_epoch_1.pth'


# ------------------------------------------------ the hook, unit level
def _runner(work_dir: Path):
    return types.SimpleNamespace(
        model=nn.Linear(2, 2), work_dir=str(work_dir), cfg={},
        logger=MMLogger.get_instance('test_resume_state'),
        _load_from='crafted.pth')


def _ckpt(**runtime_info) -> dict:
    return dict(state_dict=nn.Linear(2, 2).state_dict(),
                message_hub=dict(log_scalars={}, resumed_keys={},
                                 runtime_info=dict(runtime_info)))


@pytest.mark.parametrize('ids', [['../../victim'], [1, '2'], [1.0], 'abc',
                                 [True]])
def test_keep_ckpt_ids_not_ints_refused(tmp_path, ids):
    with pytest.raises(UnsafeCheckpointError, match='keep_ckpt_ids'):
        StrictLoadHook().after_load_checkpoint(
            _runner(tmp_path), _ckpt(keep_ckpt_ids=ids))


def test_unsafe_best_paths_dropped_safe_ones_kept(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    outside = tmp_path / 'victim'
    outside.mkdir()
    (work / 'best_link.pth').symlink_to(outside)
    (work / 'thesis.tex').write_text('mine')
    (work / 'best_in.pth').symlink_to(work / 'thesis.tex')
    good = str(work / BEST)
    ckpt = _ckpt(
        keep_ckpt_ids=[1, 2], best_score=0.5,
        best_ckpt=str(outside),                                # outside
        best_ckpt_a=str(work / '..' / 'victim' / BEST),        # traverses
        best_ckpt_b=str(work / 'epoch_1.pth'),                 # not best_*
        best_ckpt_c=str(work / 'best_link.pth'),               # symlink out
        best_ckpt_d=7,                                         # not a str
        best_ckpt_f=str(work / 'best_in.pth'),                 # -> not best
        best_ckpt_e=good)                                      # genuine
    StrictLoadHook().after_load_checkpoint(_runner(work), ckpt)
    info = ckpt['message_hub']['runtime_info']
    assert info == dict(keep_ckpt_ids=[1, 2], best_score=0.5,
                        best_ckpt_e=good)


def test_strict_false_does_not_skip_the_hub_check(tmp_path):
    with pytest.raises(UnsafeCheckpointError):
        StrictLoadHook(strict=False).after_load_checkpoint(
            _runner(tmp_path), _ckpt(keep_ckpt_ids=['x']))


# ------------------------------------------------ a real mmengine run
def _options(root: Path, epochs: int) -> List[str]:
    options = [f'train_cfg.max_epochs={epochs}',
               'default_hooks.checkpoint.max_keep_ckpts=5']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.ann_file={root}/{split}.txt',
                    f'{split}_dataloader.dataset.data_prefix.video={root}']
    return options


def _train(work: Path, data: Path, *extra, ok: bool = True):
    return run_script(REPO / 'tools/train.py', DEMO_CFG, '--work-dir', work,
                      *extra, '--cfg-options', *_options(data, epochs=2),
                      ok=ok)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_data_root):
    """One epoch of a real run: ``epoch_1.pth`` and its best file."""
    work = tmp_path_factory.mktemp('resume_state') / 'first'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, str(REPO / 'tools/train.py'), str(DEMO_CFG),
         '--work-dir', str(work), '--cfg-options',
         *_options(demo_data_root, epochs=1)],
        cwd=str(REPO), env=env, check=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=300)
    assert (work / BEST).is_file()
    return work, demo_data_root


def _craft(src: Path, dst: Path, **runtime_info) -> Path:
    ckpt = load_checkpoint_file(src)
    ckpt['message_hub']['runtime_info'].update(runtime_info)
    torch.save(ckpt, dst)
    return dst


def _victims(root: Path):
    victim_dir = root / 'victim_dir'
    victim_dir.mkdir()
    (victim_dir / 'thesis.tex').write_text('years of work')
    victim_file = root / 'victim.txt'
    victim_file.write_text('mine')
    return victim_dir, victim_file


@pytest.mark.slow
def test_crafted_best_ckpt_deletes_nothing(trained, tmp_path):
    first, data = trained
    victim_dir, victim_file = _victims(tmp_path)
    crafted = _craft(first / 'epoch_1.pth', tmp_path / 'crafted.pth',
                     best_ckpt=str(victim_dir), best_score=-1.0,
                     best_ckpt_acc_top1=str(victim_file))
    work = tmp_path / 'work'
    _, out = _train(work, data, '--resume', crafted)
    # without the check mmengine rmtree()s victim_dir here
    assert (victim_dir / 'thesis.tex').read_text() == 'years of work'
    assert victim_file.read_text() == 'mine'
    assert 'dropped message hub entry best_ckpt=' in out
    assert (work / 'best_acc_top1_epoch_2.pth').is_file()  # it trained on


@pytest.mark.slow
def test_crafted_keep_ckpt_ids_refused_in_one_line(trained, tmp_path):
    first, data = trained
    victim_dir, _ = _victims(tmp_path)
    (tmp_path / 'work').mkdir()
    crafted = _craft(first / 'epoch_1.pth', tmp_path / 'crafted.pth',
                     keep_ckpt_ids=['/../../victim_dir', 1, 2, 3, 4, 5])
    rc, out = _train(tmp_path / 'work', data, '--resume', crafted, ok=False)
    last = out.strip().splitlines()[-1]
    assert rc == 1 and last.startswith('error: refused to resume'), out
    assert 'keep_ckpt_ids' in last and 'Traceback' not in out
    assert (victim_dir / 'thesis.tex').read_text() == 'years of work'


@pytest.mark.slow
def test_genuine_best_in_work_dir_is_still_replaced(trained, tmp_path):
    first, data = trained
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('epoch_1.pth', BEST):
        (work / name).write_bytes((first / name).read_bytes())
    # what mmengine writes when the best file was saved before epoch_1.pth
    # (a score of -1 so that epoch 2 is better)
    _craft(first / 'epoch_1.pth', work / 'epoch_1.pth',
           best_ckpt=str(work / BEST), best_score=-1.0)
    _, out = _train(work, data, '--resume', work / 'epoch_1.pth')
    assert 'dropped message hub entry' not in out
    assert not (work / BEST).exists()  # replaced, as mmengine does
    assert (work / 'best_acc_top1_epoch_2.pth').is_file()


# ------------------------------------- MMAction2's own option table
def test_value_options_are_not_taken_for_the_config(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_3.pth').write_bytes(b'x')
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f'work_dir = {str(work)!r}\n')
    # used to raise FileNotFoundError for the config 'none'
    with pytest.raises(CheckpointError, match='epoch_3.pth'):
        check_tool_args('train.py', ['--launcher', 'none', str(cfg),
                                     '--seed', '1', '--resume'])
    with pytest.raises(CheckpointError, match='epoch_3.pth'):
        check_tool_args('train.py', [str(cfg), '--local-rank', '0',
                                     '--resume', '--amp'])


def test_test_py_checks_the_checkpoint_not_the_dump(tmp_path):
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointError, match='missing.pth'):
        check_tool_args('test.py', ['--dump', 'r.pkl', 'cfg.py', missing])
    with pytest.raises(CheckpointError, match='missing.pth'):
        check_tool_args('test.py', ['--show-dir', 'vis', '--launcher',
                                    'none', 'cfg.py', missing, '--show'])


@pytest.mark.parametrize('tool, argv', [
    ('train.py', []),
    ('train.py', ['--launcher']),
    ('train.py', ['no_such_config.py', '--resume']),
    ('test.py', ['cfg.py']),
    ('test.py', ['--dump']),
])
def test_unparsable_arguments_skip_the_guard(tool, argv):
    check_tool_args(tool, argv)  # MMAction2's script reports these
