"""A run killed mid-epoch and resumed ends with the uninterrupted weights.

A tiny MMAction2 3D recognizer (ResNet3d with 4 base channels, I3DHead
with dropout) trains on generated clips with random sampling, crops and
flips. Run B is started with MMAction2's own ``tools/train.py`` in a
subprocess and SIGKILLed in epoch 2, after ``epoch_1.pth`` is written;
it is then resumed like ``--resume`` does. Its final weights must equal
those of an uninterrupted run A with :class:`RNGStateHook`, and differ
without the hook (which shows the hook is what makes them equal).
"""
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import mmaction
import numpy as np
import pytest
import torch

import mmcsn  # noqa: F401  (registers RNGStateHook)
from mmcsn.checkpoint import load_checkpoint_file
from mmcsn.engine import RNGStateHook, get_rng_state, set_rng_state

REPO = Path(__file__).resolve().parents[1]
TRAIN_PY = Path(mmaction.__file__).parent / '.mim' / 'tools' / 'train.py'
EPOCHS = 4

# A test-only hook that slows epochs >= 2 in the run we kill, so the kill
# lands mid-epoch whatever the machine's speed. It neither draws random
# numbers nor touches the model.
HELPER = '''
import time
from mmaction.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class SlowAfterFirstEpochHook(Hook):

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.epoch >= 1:
            time.sleep(2)
'''

CONFIG = '''
default_scope = 'mmaction'
custom_imports = dict(imports=['mmcsn', 'resume_helper'],
                      allow_failed_imports=False)
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
        base_channels=4, num_stages=2, spatial_strides=(1, 2),
        temporal_strides=(1, 1), dilations=(1, 1), out_indices=(1, ),
        conv1_kernel=(1, 3, 3), inflate=(1, 1)),
    cls_head=dict(type='I3DHead', in_channels=8, num_classes=2,
                  dropout_ratio=0.5, average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           mean=[128., 128., 128.], std=[64., 64., 64.],
                           format_shape='NCTHW'))
train_pipeline = [
    dict(type='CheckedDecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=1, num_clips=1),
    dict(type='CheckedDecordDecode'),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(24, 24), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file='{data}/ann.txt',
                 data_prefix=dict(video='{data}'),
                 pipeline=train_pipeline))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs={epochs},
                 val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                    weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[2],
                        gamma=0.5)]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1),
    logger=dict(type='LoggerHook', interval=1))
custom_hooks = {hooks}
randomness = dict(seed=0, deterministic=True)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
log_level = 'WARNING'
'''


def _make_data(root: Path) -> Path:
    data = root / 'data'
    data.mkdir()
    lines = []
    for i in range(8):
        label = i % 2
        rng = np.random.RandomState(i)
        writer = cv2.VideoWriter(
            str(data / f'clip{i}.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 8,
            (32, 32))
        for t in range(8):
            # a moving bright square, direction by label, plus noise
            frame = rng.randint(0, 60, (32, 32, 3), dtype=np.uint8)
            x = 2 + 3 * t if label == 0 else 26 - 3 * t
            frame[12:20, x:x + 6] = 255
            writer.write(frame)
        writer.release()
        lines.append(f'clip{i}.mp4 {label}\n')
    (data / 'ann.txt').write_text(''.join(lines))
    (root / 'resume_helper.py').write_text(HELPER)
    return data


def _config(root: Path, name: str, hooks: list) -> Path:
    path = root / f'{name}.py'
    path.write_text(
        CONFIG.format(data=root / 'data', epochs=EPOCHS, hooks=hooks))
    return path


def _env(cfg_path: Path) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), str(cfg_path.parent),
         os.environ.get('PYTHONPATH', '')]))


def _train(cfg_path: Path, work_dir: Path, resume: str = '') -> None:
    """Run MMAction2's own ``tools/train.py`` to the end.

    Every run gets a fresh process, so all of them start from the same
    interpreter state (thread count, allocator) whatever ran before in
    the test session; ``resume`` is what a user passes to ``--resume``.
    """
    cmd = [sys.executable, str(TRAIN_PY), str(cfg_path), '--work-dir',
           str(work_dir)]
    if resume:
        cmd += ['--resume'] if resume == 'auto' else ['--resume', resume]
    proc = subprocess.run(cmd, env=_env(cfg_path), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]


def _final_weights(work_dir: Path) -> dict:
    return load_checkpoint_file(
        work_dir / f'epoch_{EPOCHS}.pth')['state_dict']


def _kill_after_first_epoch(cfg_path: Path, work_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_PY), str(cfg_path), '--work-dir',
         str(work_dir)], env=_env(cfg_path), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    # last_checkpoint is written after epoch_1.pth is complete
    while not (work_dir / 'last_checkpoint').exists():
        if proc.poll() is not None:
            raise AssertionError(
                'training ended before its first checkpoint:\n' +
                proc.stderr.read().decode()[-3000:])
        assert time.time() < deadline, 'no checkpoint within 120 s'
        time.sleep(0.05)
    time.sleep(0.5)  # well inside epoch 2 (each of its iters sleeps 2 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert (work_dir / 'epoch_1.pth').exists()
    assert not (work_dir / 'epoch_2.pth').exists()


@pytest.mark.slow  # four training subprocesses
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    _make_data(tmp_path)
    hook = [dict(type='RNGStateHook')]
    with_hook = _config(tmp_path, 'with_hook', hook)
    killed = _config(tmp_path, 'killed',
                     hook + [dict(type='SlowAfterFirstEpochHook')])
    without_hook = _config(tmp_path, 'without_hook', [])

    _train(with_hook, tmp_path / 'uninterrupted')
    _kill_after_first_epoch(killed, tmp_path / 'killed')
    # `--resume`: resume from the work dir's last_checkpoint
    _train(with_hook, tmp_path / 'killed', resume='auto')
    _train(without_hook, tmp_path / 'resumed_without_hook',
           resume=str(tmp_path / 'killed' / 'epoch_1.pth'))

    expected = _final_weights(tmp_path / 'uninterrupted')
    resumed = _final_weights(tmp_path / 'killed')
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    # the hook is what makes them equal: without it resume diverges
    unhooked = _final_weights(tmp_path / 'resumed_without_hook')
    assert any(not torch.equal(unhooked[k], v) for k, v in expected.items())
    # the stored states need no weights_only allow-list
    saved = load_checkpoint_file(tmp_path / 'killed' / 'epoch_1.pth')
    assert set(saved['rng_state']['state']) >= {'python', 'numpy', 'torch'}
    torch.save(saved['rng_state'], tmp_path / 'rng.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(tmp_path / 'rng.pth')) == []


def test_rng_state_round_trips_through_weights_only(tmp_path):
    state = get_rng_state()
    torch.save(state, tmp_path / 'rng.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(tmp_path / 'rng.pth')) == []
    draws = (np.random.rand(3), torch.rand(3),
             [random.random() for _ in range(3)])
    set_rng_state(torch.load(tmp_path / 'rng.pth', weights_only=True))
    np.testing.assert_array_equal(np.random.rand(3), draws[0])
    assert torch.equal(torch.rand(3), draws[1])
    assert [random.random() for _ in range(3)] == draws[2]


class _FakeRunner:

    def __init__(self, resume: bool) -> None:
        self._resume = resume
        self.logger = logging.getLogger('mmcsn-test-rng-hook')


def test_hook_restores_only_when_resuming():
    hook = RNGStateHook()
    checkpoint = {}
    hook.before_save_checkpoint(_FakeRunner(False), checkpoint)
    expected = torch.rand(3)
    for resume in (False, True):
        hook.after_load_checkpoint(_FakeRunner(resume), checkpoint)
        hook.before_train(_FakeRunner(resume))
        # load_from (fine-tuning/testing) keeps the current streams
        assert torch.equal(torch.rand(3), expected) == resume


def test_validation_does_not_consume_the_training_streams():
    hook = RNGStateHook()
    before = get_rng_state()
    hook.before_val(_FakeRunner(False))
    torch.rand(5), np.random.rand(5), random.random()  # validation draws
    checkpoint = {}
    hook.before_save_checkpoint(_FakeRunner(False), checkpoint)  # best ckpt
    hook.after_val(_FakeRunner(False))
    expected = torch.rand(3)
    set_rng_state(before)
    assert torch.equal(torch.rand(3), expected)
    set_rng_state(checkpoint['rng_state']['state'])
    assert torch.equal(torch.rand(3), expected)
