"""Broken videos give an error naming the file, or are skipped in training.

Kinds of broken file: empty, random bytes, a truncated mp4 (moov atom
lost), an mp4 with no frames (``cv2.VideoWriter`` released unwritten), an
mp4 whose frame data is overwritten after a valid header (fails only when
decoded) and a missing file.
"""
import logging
import os
import re
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import pytest
from conftest import load_tool
from mmaction.datasets import VideoDataset
from mmaction.registry import TRANSFORMS
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

import mmcsn  # noqa: F401  (registers the transforms)
from mmcsn.datasets import (
    CheckedDecordDecode,
    CheckedDecordInit,
    VideoReadError,
)

KINDS = ['empty', 'random', 'truncated', 'zero_frames', 'corrupt_data',
         'missing']
FRAMES = 16


def _write_clip(path: Path, frames: int = FRAMES, seed: int = 0) -> Path:
    """A real mp4 of random-noise frames (noise: no codec can shrink it)."""
    rng = np.random.RandomState(seed)
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8, (32, 32))
    for _ in range(frames):
        writer.write(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()
    return path


def _write_broken(path: Path, kind: str) -> Path:
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'random':
        path.write_bytes(np.random.RandomState(1).bytes(4096))
    elif kind == 'truncated':
        data = _write_clip(path).read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'zero_frames':
        cv2.VideoWriter(
            str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
            (32, 32)).release()
    elif kind == 'corrupt_data':
        # the header (moov) stays valid: decord opens the file and fails
        # only when the frames are decoded
        data = bytearray(_write_clip(path).read_bytes())
        start = data.index(b'mdat') + 4
        end = data.index(b'moov') - 4
        third = (end - start) // 3
        data[start + third:start + 2 * third] = \
            np.random.RandomState(2).bytes(third)
        path.write_bytes(bytes(data))
    elif kind != 'missing':
        raise ValueError(kind)
    return path


def _pipeline(checked: bool, on_error: str = 'raise') -> Compose:
    if checked:
        init = dict(type='CheckedDecordInit', on_error=on_error)
        decode = dict(type='CheckedDecordDecode', on_error=on_error)
    else:
        init, decode = dict(type='DecordInit'), dict(type='DecordDecode')
    # clip_len=FRAMES decodes every frame, so corrupt data is reached
    cfgs = [init, dict(type='SampleFrames', clip_len=FRAMES, num_clips=1),
            decode]
    return Compose([TRANSFORMS.build(c) for c in cfgs])


def _sample(path: Path, label: int = 3) -> dict:
    return dict(filename=str(path), label=label, start_index=0,
                modality='RGB')


@pytest.mark.parametrize('kind', KINDS[:-1])
def test_mmaction2_errors_do_not_name_the_file(tmp_path, kind):
    """Why the checked transforms exist: MMAction2's message is decord's."""
    path = _write_broken(tmp_path / f'clip_{kind}.mp4', kind)
    with pytest.raises(Exception) as info:
        _pipeline(checked=False)(_sample(path))
    assert path.name not in str(info.value)


@pytest.mark.parametrize('kind', KINDS)
def test_checked_pipeline_names_the_file(tmp_path, kind):
    path = _write_broken(tmp_path / f'clip_{kind}.mp4', kind)
    pattern = re.escape(repr(str(path))) + r' \(label 3\)'
    with pytest.raises(VideoReadError, match=pattern):
        _pipeline(checked=True)(_sample(path))


def test_checked_pipeline_matches_mmaction2_on_a_good_video(tmp_path):
    path = _write_clip(tmp_path / 'good.mp4')
    ours = _pipeline(checked=True)(_sample(path))
    theirs = _pipeline(checked=False)(_sample(path))
    assert ours['total_frames'] == theirs['total_frames'] == FRAMES
    assert len(ours['imgs']) == FRAMES
    for a, b in zip(ours['imgs'], theirs['imgs']):
        np.testing.assert_array_equal(a, b)


def test_min_frames_refuses_short_videos(tmp_path):
    path = _write_clip(tmp_path / 'short.mp4', frames=4)
    init = CheckedDecordInit(min_frames=8)
    with pytest.raises(VideoReadError,
                       match=r'short\.mp4.*4 frame\(s\).*min_frames=8'):
        init(_sample(path))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(on_error='ignore'), ValueError,
     r"on_error must be one of \['raise', 'skip'\], got 'ignore'"),
    (dict(min_frames=0), ValueError, r'min_frames must be a positive int'),
    (dict(min_frames=2.5), TypeError, r'min_frames must be .* got 2\.5'),
    (dict(io_backend='dsk'), ValueError,
     r"io_backend must be one of \[.*'disk'.*\], got 'dsk'"),
])
def test_init_arguments_are_validated(kwargs, error, match):
    # the whole table is tests/test_validation.py; these are the ones a
    # dataset config gets wrong
    with pytest.raises(error, match=match):
        CheckedDecordInit(**kwargs)


def test_decode_arguments_are_validated():
    with pytest.raises(ValueError, match=r"mode must be one of .*'accurate'"
                       r".*got 'fast'"):
        CheckedDecordDecode(mode='fast')
    with pytest.raises(TypeError, match=r"on_error must be one of .*'skip'"
                       r".*got None"):
        CheckedDecordDecode(on_error=None)


class _Capture(logging.Handler):

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _dataset(tmp_path: Path, entries: List[Tuple[str, int]],
             test_mode: bool, on_error: str, **kwargs) -> VideoDataset:
    ann = tmp_path / 'ann.txt'
    ann.write_text(''.join(f'{name} {label}\n' for name, label in entries))
    init = dict(type='CheckedDecordInit', on_error=on_error)
    decode = dict(type='CheckedDecordDecode', on_error=on_error)
    # every frame is decoded, so corrupt data anywhere is reached
    pipeline = [init, dict(type='SampleFrames', clip_len=FRAMES,
                           num_clips=1, test_mode=test_mode), decode]
    # the runner builds datasets in the 'mmaction' scope; so do we
    with DefaultScope.overwrite_default_scope('mmaction'):
        return VideoDataset(
            str(ann), pipeline, data_prefix=dict(video=str(tmp_path)),
            test_mode=test_mode, **kwargs)


def test_training_skips_broken_videos_with_their_labels(tmp_path):
    """A skipped video is replaced by another *with its own* label."""
    entries = []
    for label in range(3):
        _write_clip(tmp_path / f'good{label}.mp4', seed=label)
        entries.append((f'good{label}.mp4', label))
    for kind in KINDS:
        _write_broken(tmp_path / f'bad_{kind}.mp4', kind)
        entries.append((f'bad_{kind}.mp4', 9))
    dataset = _dataset(tmp_path, entries, test_mode=False, on_error='skip')
    capture = _Capture()
    logger = MMLogger.get_current_instance()
    logger.addHandler(capture)
    try:
        for idx in range(3, len(entries)):
            data = dataset[idx]
            name = os.path.basename(data['filename'])
            assert name.startswith('good')
            assert data['label'] == int(name[len('good'):-len('.mp4')])
            assert len(data['imgs']) == FRAMES
    finally:
        logger.removeHandler(capture)
    for kind in KINDS:
        assert any(f'bad_{kind}.mp4' in m and 'skipped' in m
                   for m in capture.messages), kind


def test_training_gives_up_when_every_video_is_broken(tmp_path):
    """No hang: mmengine stops after ``max_refetch`` retries."""
    entries = []
    for kind in KINDS:
        _write_broken(tmp_path / f'bad_{kind}.mp4', kind)
        entries.append((f'bad_{kind}.mp4', 0))
    dataset = _dataset(tmp_path, entries, test_mode=False, on_error='skip',
                       max_refetch=5)
    with pytest.raises(Exception, match='Cannot find valid image after 5'):
        dataset[0]


def test_test_mode_raises_naming_the_file(tmp_path):
    _write_clip(tmp_path / 'good.mp4')
    _write_broken(tmp_path / 'bad.mp4', 'truncated')
    dataset = _dataset(tmp_path, [('good.mp4', 0), ('bad.mp4', 1)],
                       test_mode=True, on_error='raise')
    assert dataset[0]['label'] == 0
    with pytest.raises(VideoReadError, match=r'bad\.mp4.*\(label 1\)'):
        dataset[1]


def _demo_generator():
    return load_tool('tools/data/make_motion_clips.py')


def test_demo_generator_broken_videos_are_named(tmp_path):
    """Every kind the demo's ``write_broken_video`` makes is caught."""
    gen = _demo_generator()
    assert len(gen.BROKEN_KINDS) >= 4
    for kind in sorted(gen.BROKEN_KINDS):
        path = Path(gen.write_broken_video(
            str(tmp_path / f'demo_{kind}.mp4'), kind))
        with pytest.raises(VideoReadError,
                           match=re.escape(repr(str(path)))):
            _pipeline(checked=True)(_sample(path))


REPO = Path(__file__).resolve().parents[1]


def _video_configs() -> List[Path]:
    """Every shipped config that reads video files (not raw frames)."""
    configs = []
    for path in sorted(REPO.glob('configs/**/*.py')):
        if '_base_' not in path.parts and 'Decord' in _resolved_text(path):
            configs.append(path)
    return configs


def _resolved_text(path: Path) -> str:
    cfg = Config.fromfile(str(path))
    return repr(cfg.train_dataloader.dataset.pipeline) + repr(
        cfg.test_dataloader.dataset.pipeline)


@pytest.mark.parametrize('config', _video_configs(),
                         ids=lambda p: p.stem)
def test_shipped_configs_name_or_skip_broken_videos(tmp_path, config):
    """Train pipelines skip a broken video, val/test ones name it."""
    cfg = Config.fromfile(str(config))
    bad = _write_broken(tmp_path / 'bad.mp4', 'truncated')
    for split, on_error in (('train', 'skip'), ('val', 'raise'),
                            ('test', 'raise')):
        steps = cfg[f'{split}_dataloader'].dataset.pipeline
        types = [step['type'] for step in steps]
        assert 'DecordInit' not in types and 'DecordDecode' not in types
        checked = [s for s in steps if s['type'].startswith('CheckedDecord')]
        assert len(checked) == 2, types
        assert all(s.get('on_error', 'raise') == on_error for s in checked)
        with DefaultScope.overwrite_default_scope('mmaction'):
            pipeline = Compose([TRANSFORMS.build(s) for s in steps])
        sample = _sample(bad, label=5)
        if on_error == 'skip':
            assert pipeline(sample) is None  # the dataset refetches
        else:
            with pytest.raises(VideoReadError, match=r'bad\.mp4'):
                pipeline(sample)
