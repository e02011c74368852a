"""Strict test-time loading, the resume guard and one-line errors.

- ``StrictLoadHook`` (in every shipped config) makes mmcsn's and
  MMAction2's ``tools/test.py`` and ``--resume`` refuse a checkpoint that
  does not fit the model (width 16 into width 8, ip-CSN into ir-CSN),
  naming the keys; ``strict_load=False`` opts into a logged partial load.
- mmcsn's ``tools/train.py --resume`` refuses a work dir that has
  checkpoints but no ``last_checkpoint`` (mmengine would restart at epoch
  1 over them), and a checkpoint of another model before training.
- Empty / text / PNG / truncated / directory checkpoints end mmcsn's tools
  with one ``error:`` line and exit status 1.
"""
import logging
import os
import sys
from pathlib import Path
from typing import List

import mmaction
import pytest
import torch
from conftest import run_script
from mmengine.config import Config

import mmcsn  # noqa: F401  (registers the hook, the checked loader)
from mmcsn.checkpoint.errors import (
    CheckpointError,
    CheckpointIsADirectoryError,
    CorruptCheckpointError,
    KeyMismatchError,
    NoStateDictError,
)
from mmcsn.engine import StrictLoadHook, load_from_local_checked
from mmcsn.engine.resume_guard import (
    ResumeError,
    check_tool_args,
    newest_checkpoint,
    run_guarded,
)

REPO = Path(__file__).resolve().parents[1]
MIM_TOOLS = Path(mmaction.__file__).parent / '.mim' / 'tools'
DEMO_CFG = REPO / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'
PNG = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00'
       b'\x01\x08\x02\x00\x00\x00\x90wS\xde')


# ------------------------------------------------------------ the hook
class _Model(torch.nn.Module):

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 1)
        self.bn = torch.nn.BatchNorm2d(width)


class _Runner:

    def __init__(self, cfg=None, model=None) -> None:
        self.cfg = Config(cfg or {})
        self.model = model or _Model()
        self._load_from = 'some/ckpt.pth'
        self.work_dir = '.'
        self.logger = logging.getLogger('mmcsn-test-strict-load')


def _ckpt(model: torch.nn.Module, prefix: str = '') -> dict:
    return dict(meta={}, state_dict={prefix + k: v for k, v in
                                     model.state_dict().items()})


def test_fitting_checkpoint_passes():
    runner = _Runner()
    StrictLoadHook().after_load_checkpoint(runner, _ckpt(runner.model))
    # DataParallel's prefix is stripped, as mmengine does
    StrictLoadHook().after_load_checkpoint(
        runner, _ckpt(runner.model, 'module.'))


def test_width_mismatch_refused_naming_keys():
    runner = _Runner()
    with pytest.raises(KeyMismatchError) as info:
        StrictLoadHook().after_load_checkpoint(runner, _ckpt(_Model(8)))
    message = str(info.value)
    assert "checkpoint 'some/ckpt.pth' does not fit the _Model" in message
    assert '6 shape-mismatched key(s): conv.weight, conv.bias' in message
    assert 'strict_load=False' in message
    assert info.value.report['mismatched'][:2] == ['conv.weight',
                                                   'conv.bias']


def test_missing_bn_counter_is_not_a_misfit():
    runner = _Runner()
    state = _ckpt(runner.model)
    del state['state_dict']['bn.num_batches_tracked']  # pre-1.0 torch file
    StrictLoadHook().after_load_checkpoint(runner, state)


def test_hook_and_checked_load_judge_alike():
    """tools/test.py (the hook) and tools/infer.py
    (``load_state_dict_checked``) share one comparison."""
    from mmcsn.checkpoint.strict import load_state_dict_checked
    runner = _Runner()
    state = _ckpt(runner.model)
    del state['state_dict']['bn.num_batches_tracked']
    StrictLoadHook().after_load_checkpoint(runner, state)
    report = load_state_dict_checked(_Model(), state['state_dict'])
    assert not report['missing'] and not report['mismatched']
    del state['state_dict']['bn.weight']  # a real misfit: both refuse
    with pytest.raises(KeyMismatchError, match=r'1 missing key\(s\)'):
        StrictLoadHook().after_load_checkpoint(runner, state)
    with pytest.raises(KeyMismatchError, match=r'1 missing key\(s\)'):
        load_state_dict_checked(_Model(), state['state_dict'])


def test_missing_and_unexpected_counted():
    runner = _Runner()
    state = _ckpt(runner.model)
    del state['state_dict']['bn.weight']
    state['state_dict']['head.fc.weight'] = torch.zeros(1)
    with pytest.raises(KeyMismatchError,
                       match=r'1 missing key\(s\): bn.weight; 1 unexpected '
                       r'key\(s\): head.fc.weight'):
        StrictLoadHook().after_load_checkpoint(runner, state)


@pytest.mark.parametrize('how', ['hook', 'config'])
def test_partial_load_is_explicit_and_logged(how, caplog):
    hook = StrictLoadHook(strict=False) if how == 'hook' else \
        StrictLoadHook()
    runner = _Runner(cfg=dict(strict_load=False) if how == 'config'
                     else None)
    with caplog.at_level(logging.WARNING, 'mmcsn-test-strict-load'):
        hook.after_load_checkpoint(runner, _ckpt(_Model(8)))
    assert 'partial load' in caplog.text
    assert 'shape-mismatched key(s): conv.weight' in caplog.text


def test_hook_argument_wins_over_config():
    runner = _Runner(cfg=dict(strict_load=False))
    with pytest.raises(KeyMismatchError):
        StrictLoadHook(strict=True).after_load_checkpoint(
            runner, _ckpt(_Model(8)))


def test_bad_arguments_and_checkpoints():
    with pytest.raises(TypeError, match='strict must be a bool'):
        StrictLoadHook(strict='no')
    with pytest.raises(TypeError, match='strict_load=1 must be True'):
        StrictLoadHook().after_load_checkpoint(
            _Runner(cfg=dict(strict_load=1)), _ckpt(_Model(8)))
    with pytest.raises(NoStateDictError, match='holds no state_dict'):
        StrictLoadHook().after_load_checkpoint(
            _Runner(), dict(meta={}, state_dict={'a': 1}))


def test_every_shipped_config_is_strict_and_keeps_rng_states():
    configs = [p for p in sorted((REPO / 'configs').rglob('*.py'))
               if '_base_' not in p.parts]
    assert len(configs) > 20
    for path in configs:
        hooks = [h['type'] for h in
                 Config.fromfile(str(path)).get('custom_hooks', [])]
        assert {'StrictLoadHook', 'RNGStateHook'} <= set(hooks), path


def test_negative_control_mmengine_alone_loads_a_misfit(tmp_path):
    """Without the hook mmengine's load only warns: what the hook fixes."""
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    model = _Model(4)
    before = model.conv.weight.clone()
    _load_checkpoint_to_model(model, _ckpt(_Model(8)), strict=False)
    assert torch.equal(model.conv.weight, before)  # skipped, no error


# ------------------------------------------------------- the guard
def _touch(path: Path, data: bytes = b'x') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_resume_without_last_checkpoint_refused(tmp_path):
    work = tmp_path / 'work'
    _touch(work / 'epoch_1.pth')
    newest = _touch(work / 'epoch_2.pth')
    os.utime(work / 'epoch_1.pth', (1, 1))
    argv = ['cfg.py', '--work-dir', str(work), '--resume']
    with pytest.raises(ResumeError) as info:
        check_tool_args('train.py', argv)
    message = str(info.value)
    assert 'no ' in message and 'last_checkpoint' in message
    assert f'--resume {newest}' in message and 'overwrite' in message
    # what mmengine reads: with last_checkpoint resume goes ahead
    (work / 'last_checkpoint').write_text(str(newest))
    check_tool_args('train.py', argv)
    # no --resume, or an empty work dir: nothing to protect
    check_tool_args('train.py', ['cfg.py', '--work-dir', str(work)])
    check_tool_args('train.py', ['cfg.py', '--work-dir',
                                 str(tmp_path / 'new'), '--resume'])


def test_guard_finds_the_work_dir_like_mmaction(tmp_path, monkeypatch):
    work = tmp_path / 'from_options'
    _touch(work / 'iter_40.pth')
    with pytest.raises(ResumeError, match='iter_40.pth'):
        check_tool_args('train.py', [
            'cfg.py', '--work-dir', str(tmp_path / 'other'), '--resume',
            '--cfg-options', f'work_dir={work}'])
    # default: ./work_dirs/<config name>
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / 'work_dirs/demo/epoch_3.pth')
    cfg = _touch(tmp_path / 'demo.py', b'x = 1\n')
    with pytest.raises(ResumeError, match='epoch_3.pth'):
        check_tool_args('train.py', [str(cfg), '--resume'])


def test_newest_checkpoint(tmp_path):
    assert newest_checkpoint(str(tmp_path)) is None
    _touch(tmp_path / 'epoch_9.pth')
    _touch(tmp_path / 'epoch_10.pth')
    os.utime(tmp_path / 'epoch_9.pth', (5, 5))
    os.utime(tmp_path / 'epoch_10.pth', (5, 5))
    assert newest_checkpoint(str(tmp_path)).endswith('epoch_10.pth')


def test_run_guarded_turns_checkpoint_errors_into_one_line(monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['train.py', 'cfg.py'])

    def misfit():
        raise KeyMismatchError("checkpoint 'x.pth' does not fit: ...")

    with pytest.raises(SystemExit) as info:
        run_guarded('train.py', misfit)
    assert info.value.code == "error: checkpoint 'x.pth' does not fit: ..."

    def bug():
        raise RuntimeError('not a checkpoint problem')

    with pytest.raises(RuntimeError):  # anything else keeps its traceback
        run_guarded('train.py', bug)


@pytest.mark.parametrize('kind', ['empty', 'directory', 'missing'])
def test_named_checkpoints_checked_first(kind, tmp_path):
    path = tmp_path / 'ckpt.pth'
    if kind == 'empty':
        _touch(path, b'')
    elif kind == 'directory':
        path.mkdir()
    words = dict(empty='is corrupt or truncated', directory='is a directory',
                 missing='not found')[kind]
    for tool, argv in (('test.py', ['cfg.py', str(path)]),
                       ('train.py', ['cfg.py', '--resume', str(path)])):
        with pytest.raises(CheckpointError, match=words):
            check_tool_args(tool, argv)


@pytest.mark.parametrize('kind', ['text', 'png', 'truncated', 'directory'])
def test_runner_loads_go_through_the_checked_reader(kind, tmp_path):
    """What mmengine's Runner calls for a local file (test.py, resume,
    load_from, init_recognizer)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    assert CheckpointLoader._get_checkpoint_loader('x.pth') is \
        load_from_local_checked
    path = tmp_path / 'ckpt.pth'
    if kind == 'text':
        _touch(path, b'epoch 1, top1 0.93\n')
    elif kind == 'png':
        _touch(path, PNG)
    elif kind == 'truncated':
        torch.save(_ckpt(_Model()), path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.mkdir()
    error = CheckpointIsADirectoryError if kind == 'directory' \
        else CorruptCheckpointError
    with pytest.raises(error, match=str(path)):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


# ------------------------------------------------ through the tools
def _options(root: Path, width: int = 16) -> List[str]:
    options = ['train_cfg.max_epochs=1',
               f'model.backbone.base_channels={width}',
               f'model.cls_head.in_channels={width * 32}']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.ann_file={root}/{split}.txt',
                    f'{split}_dataloader.dataset.data_prefix.video={root}']
    return options


def _run(script: Path, *args) -> tuple:
    return run_script(script, *args, ok=False)


@pytest.fixture(scope='module')
def other_model(tmp_path_factory) -> Path:
    """An mmengine-style checkpoint of the demo model at width 16 (the
    configs below build width 8, or ip-CSN)."""
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(DEMO_CFG))
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('other') / 'width16.pth'
    torch.save(dict(meta=dict(epoch=1, iter=3),
                    state_dict=model.state_dict()), path)
    return path


def _last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize('tools,change', [('mmcsn', 'width'),
                                          ('mmaction', 'ip')])
def test_test_py_refuses_a_misfit(tools, change, other_model,
                                  demo_data_root, tmp_path):
    script = (REPO / 'tools' if tools == 'mmcsn' else MIM_TOOLS) / 'test.py'
    options = _options(demo_data_root, 8 if change == 'width' else 16)
    if change == 'ip':
        options.append('model.backbone.bottleneck_mode=ip')
    rc, out = _run(script, DEMO_CFG, other_model, '--work-dir', tmp_path,
                   '--cfg-options', *options)
    assert rc != 0, out[-3000:]
    assert 'does not fit' in out and 'backbone.' in out, out[-3000:]
    assert ('shape-mismatched key(s)' if change == 'width'
            else 'missing key(s)') in out
    assert 'Epoch(test)' not in out
    if tools == 'mmcsn':
        assert _last_line(out).startswith('error: checkpoint ')
        assert 'Traceback' not in out


@pytest.mark.slow
def test_test_py_partial_load_opt_in(other_model, demo_data_root, tmp_path):
    rc, out = _run(REPO / 'tools/test.py', DEMO_CFG, other_model,
                   '--work-dir', tmp_path, '--cfg-options',
                   *_options(demo_data_root, 8), 'strict_load=False')
    assert rc == 0, out[-3000:]
    assert 'strict_load=False: partial load' in out
    assert 'Epoch(test)' in out


@pytest.mark.slow
def test_resume_of_another_model_refused_before_training(
        other_model, demo_data_root, tmp_path):
    rc, out = _run(REPO / 'tools/train.py', DEMO_CFG, '--work-dir',
                   tmp_path, '--resume', other_model, '--cfg-options',
                   *_options(demo_data_root, 8))
    assert rc == 1, out[-3000:]
    assert _last_line(out).startswith('error: checkpoint ')
    assert 'shape-mismatched' in _last_line(out)
    assert 'Epoch(train)' not in out and not list(tmp_path.glob('*.pth'))


@pytest.mark.slow
def test_resume_guard_keeps_the_checkpoints(other_model, demo_data_root,
                                            tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    kept = (work / 'epoch_1.pth')
    kept.write_bytes(other_model.read_bytes())
    rc, out = _run(REPO / 'tools/train.py', DEMO_CFG, '--work-dir', work,
                   '--resume', '--cfg-options', *_options(demo_data_root))
    assert rc == 1, out[-3000:]
    assert _last_line(out) == (
        f"error: --resume found no '{work}/last_checkpoint' but '{work}' "
        'holds checkpoints: training would start again at epoch 1 and '
        f"overwrite them. The newest is '{kept}'; resume from it with: "
        f'--resume {kept}')
    assert kept.read_bytes() == other_model.read_bytes()
    assert sorted(p.name for p in work.iterdir()) == ['epoch_1.pth']


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tools_one_line_for_a_png(tool, demo_data_root, tmp_path):
    png = _touch(tmp_path / 'weights.pth', PNG)
    args = (['--resume', png] if tool == 'train' else [png])
    rc, out = _run(REPO / f'tools/{tool}.py', DEMO_CFG, *args, '--work-dir',
                   tmp_path / 'w', '--cfg-options',
                   *_options(demo_data_root))
    assert rc == 1, out[-3000:]
    assert 'Traceback' not in out
    assert _last_line(out).startswith(f"error: checkpoint '{png}' is "
                                      'corrupt or truncated')
