"""The demo dataset generator: determinism, layout, decodability, pairs."""
import filecmp
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DATA
from mmaction.datasets.transforms import DecordDecode, DecordInit, SampleFrames

import mmcsn  # noqa: F401  (stack fixes before mmaction.datasets)


def _files(root: Path):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*')
                  if p.is_file())


def _decode(path: Path, clip_len: int) -> np.ndarray:
    """Decode every frame through MMAction2's video pipeline."""
    results = dict(filename=str(path), start_index=0, modality='RGB')
    for t in (DecordInit(), SampleFrames(clip_len=clip_len, frame_interval=1,
                                         num_clips=1, test_mode=True),
              DecordDecode()):
        results = t(results)
    assert results['total_frames'] == clip_len
    return np.stack(results['imgs'])


def test_layout_and_split_sizes(demo_data_root, make_motion_clips):
    classes = (demo_data_root / 'classes.txt').read_text().split()
    assert tuple(classes) == make_motion_clips.CLASSES
    expected = dict(train=3, val=1, test=1)  # 5 per class: 60/20/20 %
    seen = set()
    for split, per_class in expected.items():
        rows = make_motion_clips.read_annotations(
            str(demo_data_root / f'{split}.txt'))
        labels = [label for _, label in rows]
        assert sorted(labels) == sorted(list(range(8)) * per_class)
        for rel, label in rows:
            assert rel.startswith(f'videos/{split}/{classes[label]}_')
            assert (demo_data_root / rel).is_file()
            seen.add(rel)
    assert len(seen) == 8 * 5  # no clip shared between splits


def test_same_seed_identical_other_seed_differs(tmp_path, demo_data_root,
                                                make_motion_clips):
    again, other = tmp_path / 'again', tmp_path / 'other'
    make_motion_clips.generate_dataset(str(again), **TINY_DATA)
    make_motion_clips.generate_dataset(str(other),
                                       **dict(TINY_DATA, seed=1))
    names = _files(demo_data_root)
    assert names == _files(again) == _files(other)
    videos = [n for n in names if n.endswith('.mp4')]
    _, mismatch, errors = filecmp.cmpfiles(
        demo_data_root, again, names, shallow=False)
    assert not mismatch and not errors  # byte-identical files and labels
    first = videos[0]
    np.testing.assert_array_equal(
        _decode(demo_data_root / first, TINY_DATA['frames']),
        _decode(again / first, TINY_DATA['frames']))
    for txt in ('train.txt', 'val.txt', 'test.txt', 'classes.txt'):
        # the label files only list names, so they match across seeds
        assert (other / txt).read_text() == (again / txt).read_text()
    differing = [v for v in videos
                 if (other / v).read_bytes() != (again / v).read_bytes()]
    assert differing == videos


def test_decodes_through_mmaction_pipeline(demo_data_root,
                                           make_motion_clips):
    rows = make_motion_clips.read_annotations(
        str(demo_data_root / 'test.txt'))
    for rel, _ in rows:
        imgs = _decode(demo_data_root / rel, TINY_DATA['frames'])
        assert imgs.shape == (TINY_DATA['frames'], 32, 32, 3)
        assert imgs.dtype == np.uint8
        # the object moves or changes: consecutive frames differ
        assert np.abs(np.diff(imgs.astype(np.int16), axis=0)).max() > 50


@pytest.mark.parametrize('pair', range(4))
def test_partner_class_is_time_reversed(make_motion_clips, pair):
    render = make_motion_clips.render_clip
    seed = [7, pair]
    forward = render(np.random.default_rng(seed), 2 * pair, size=32,
                     frames=8)
    backward = render(np.random.default_rng(seed), 2 * pair + 1, size=32,
                      frames=8)
    np.testing.assert_array_equal(backward, forward[::-1])
    assert not np.array_equal(backward, forward)


@pytest.mark.parametrize('pair', range(4))
def test_motion_direction_of_first_class(make_motion_clips, pair):
    """The even class moves left / up, rotates clockwise or grows."""
    clip = make_motion_clips.render_clip(
        np.random.default_rng([3, pair]), 2 * pair, size=64, frames=16)
    # the moving object is what differs from the median (static) image
    moving = np.abs(clip.astype(np.int16) -
                    np.median(clip, axis=0)).sum(-1) > 120
    first, last = moving[0], moving[-1]
    ys, xs = np.nonzero(first)
    ye, xe = np.nonzero(last)
    if pair == 0:
        assert xe.mean() < xs.mean() - 10
    elif pair == 1:
        assert ye.mean() < ys.mean() - 10
    elif pair == 3:
        assert last.sum() > 2 * first.sum()
    else:  # rotation: similar area, different pixels
        assert 0.5 < last.sum() / first.sum() < 2
        assert (first & last).sum() < 0.9 * first.sum()


@pytest.mark.parametrize('kind', ['empty', 'truncated', 'random',
                                  'zero_frames', 'text'])
def test_broken_videos_fail_to_decode(tmp_path, make_motion_clips, kind):
    assert kind in make_motion_clips.BROKEN_KINDS
    path = make_motion_clips.write_broken_video(
        str(tmp_path / f'{kind}.mp4'), kind)
    with pytest.raises(Exception):
        DecordInit()(dict(filename=path, start_index=0, modality='RGB'))


def test_broken_set_and_bad_arguments(tmp_path, make_motion_clips):
    rels = make_motion_clips.write_broken_set(str(tmp_path))
    listed = make_motion_clips.read_annotations(str(tmp_path / 'broken.txt'))
    assert [r for r, _ in listed] == rels
    assert len(rels) == len(make_motion_clips.BROKEN_KINDS)
    with pytest.raises(ValueError, match="kind='bogus'.*valid choices"):
        make_motion_clips.write_broken_video(str(tmp_path / 'x.mp4'),
                                             'bogus')
    with pytest.raises(ValueError, match='label=8 is not valid'):
        make_motion_clips.render_clip(np.random.default_rng(0), 8)
    with pytest.raises(ValueError, match='num_per_class=2'):
        make_motion_clips.generate_dataset(str(tmp_path), num_per_class=2)
