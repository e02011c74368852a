"""Feature extraction: windows, pipeline parity, bad videos, resume, ranks.

A tiny ir-CSN (base_channels 8, one block per stage) on the demo config's
test pipeline (resize to 32x32) keeps every forward in milliseconds; the
subprocess tests (SIGKILL + resume, torchrun with 2 gloo ranks) are marked
slow.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mmcsn  # noqa: F401
from mmcsn.apis.feature_io import output_state, save_video_features
from mmcsn.apis.features import FeatureExtractor, extract_features
from mmcsn.apis.precision import cpu_bf16_support
from mmcsn.apis.video_list import read_video_list, shard_entries
from mmcsn.apis.windows import (
    WindowSpec,
    num_full_windows,
    num_windows,
    window_frame_indices,
    window_starts,
    window_times,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOL = REPO_ROOT / 'tools' / 'extract_features.py'
DEMO_CFG = (REPO_ROOT /
            'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py')
SPEC = WindowSpec(clip_len=8, frame_interval=2, stride=4)


# ----------------------------------------------------------- windows
@pytest.mark.parametrize(
    'frames, spec, expected',
    [
        # exact fit: (10 - 4) // 3 + 1 = 3 full windows, nothing left
        (10, WindowSpec(4, 1, 3), 3),
        # one frame more: a padded tail window
        (11, WindowSpec(4, 1, 3), 4),
        # shorter than one span (15 frames): one padded window
        (5, WindowSpec(8, 2, 4), 1),
        (1, WindowSpec(8, 2, 4), 1),
        # exactly one span
        (15, WindowSpec(8, 2, 4), 1),
        (16, WindowSpec(8, 2, 4), 2),
        # stride larger than the span: gaps are by design, a tail only
        # when the next start is inside the video
        (20, WindowSpec(4, 1, 10), 2),
        (21, WindowSpec(4, 1, 10), 3),
        (24, WindowSpec(4, 1, 10), 3),
        # stride 1 covers everything with full windows
        (100, WindowSpec(16, 1, 1), 85),
    ])
def test_num_windows_tail_rule(frames, spec, expected):
    assert num_windows(frames, spec) == expected


@pytest.mark.parametrize('frames', [1, 7, 15, 16, 40, 97])
@pytest.mark.parametrize(
    'spec', [WindowSpec(8, 2, 4), WindowSpec(4, 1, 3), WindowSpec(3, 5, 20)])
def test_windows_cover_the_video_and_pad_at_most_once(frames, spec):
    inds = window_frame_indices(frames, spec)
    span = (spec.clip_len - 1) * spec.frame_interval + 1
    assert inds.shape == (num_windows(frames, spec), spec.clip_len)
    assert inds.min() == 0 and inds.max() <= frames - 1
    np.testing.assert_array_equal(inds[:, 0], window_starts(frames, spec))
    assert (inds[:, 0] < frames).all()  # no window starts past the end
    unclamped = inds[:, :1] + np.arange(spec.clip_len) * spec.frame_interval
    padded = (unclamped > frames - 1).any(1)
    assert padded.sum() <= 1 and not padded[:-1].any()  # only the last
    assert len(inds) - padded.sum() == num_full_windows(frames, spec)
    if spec.stride <= span:
        # the last frame is read by some window
        assert inds[-1, -1] == frames - 1 or frames - 1 in inds


def test_window_indices_and_times_are_explicit():
    np.testing.assert_array_equal(
        window_frame_indices(11, WindowSpec(4, 1, 3)),
        [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9, 10, 10, 10]])
    times = window_times(11, 2.0, WindowSpec(4, 1, 3))
    np.testing.assert_allclose(times[0], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(times[-1], [4.5, 5.0, 5.5])  # clipped end


@pytest.mark.parametrize('bad, match', [
    (dict(clip_len=0), 'clip_len must be an int >= 1, got 0'),
    (dict(stride=1.5), 'stride must be an int >= 1, got 1.5'),
    (dict(frame_interval=True), 'frame_interval must be an int >= 1'),
])
def test_window_spec_validation(bad, match):
    spec = WindowSpec(**dict(dict(clip_len=4), **bad))
    with pytest.raises(ValueError, match=match):
        num_windows(10, spec)
    with pytest.raises(ValueError, match='num_frames must be an int >= 1'):
        num_windows(0, WindowSpec(4))


# ------------------------------------------------------- video list
def test_video_list_paths_shards_and_refusals(tmp_path):
    lst = tmp_path / 'list.txt'
    lst.write_text('a/x.mp4 1\n\nb.avi\n' + str(tmp_path / 'v/c.mkv') +
                   ' 0\n')
    entries = read_video_list(str(lst), 'OUT', str(tmp_path / 'v'))
    assert [e.out for e in entries] == [
        os.path.join('OUT', 'a', 'x.npy'), os.path.join('OUT', 'b.npy'),
        os.path.join('OUT', 'c.npy')
    ]
    shards = [shard_entries(entries, r, 2) for r in range(2)]
    assert sorted(e.index for s in shards for e in s) == [0, 1, 2]
    with pytest.warns(UserWarning, match='listed again'):
        lst.write_text('a.mp4\na.mp4\n')
        assert len(read_video_list(str(lst), 'OUT', str(tmp_path))) == 1
    lst.write_text('a.mp4\na.avi\n')
    with pytest.raises(ValueError, match="would both write"):
        read_video_list(str(lst), 'OUT', str(tmp_path))
    lst.write_text('../outside.mp4\n')
    with pytest.raises(ValueError, match='is not inside the video root'):
        read_video_list(str(lst), 'OUT', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='video list not found'):
        read_video_list(str(tmp_path / 'nope.txt'), 'OUT')


def test_output_state_refuses_foreign_or_other_settings(tmp_path):
    npy = str(tmp_path / 'v.npy')
    settings = dict(window=dict(clip_len=8), feature_layer='x',
                    compute_dtype='fp32', config_sha256='a',
                    checkpoint_sha256='b')
    assert output_state(npy, settings) == ('todo', '')
    save_video_features(npy, np.ones((3, 4)), dict(settings, num_windows=3))
    assert output_state(npy, settings) == ('done', '')
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]
    state, why = output_state(npy, dict(settings, compute_dtype='bf16'))
    assert state == 'conflict' and 'compute_dtype differ' in why
    Path(npy).write_bytes(b'user data, not ours')
    state, why = output_state(npy, settings)
    assert state == 'conflict' and 'not a readable .npy' in why


# ------------------------------------------------- model and clips
@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    """A tiny ir-CSN config on the demo pipeline and its checkpoint."""
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    root = tmp_path_factory.mktemp('tiny_model')
    config = root / 'tiny_csn.py'
    config.write_text(
        f'_base_ = [{str(DEMO_CFG)!r}]\n'
        'model = dict(backbone=dict(base_channels=8), '
        'cls_head=dict(in_channels=256))\n')
    init_default_scope('mmaction')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    # non-trivial BN parameters and statistics, as a trained model has
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.rand(n, generator=gen) * 0.2
            m.running_mean = torch.rand(n, generator=gen) * 0.1 - 0.05
            m.running_var = torch.rand(n, generator=gen) * 0.2 + 0.1
    checkpoint = root / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return str(config), str(checkpoint)


def _clips(make_motion_clips, root: Path, lengths, seed=0):
    rng = np.random.default_rng(seed)
    names = []
    for i, frames in enumerate(lengths):
        name = f'clips/c{i}_{frames}f.mp4'
        make_motion_clips.write_video(
            str(root / name),
            make_motion_clips.render_clip(rng, i % 8, 32, frames))
        names.append(name)
    return names


def _write_list(path: Path, names) -> str:
    path.write_text(''.join(f'{n} {i % 3}\n' for i, n in enumerate(names)))
    return str(path)


def _reference_feature(config, checkpoint, video, frame_inds):
    """Config's test pipeline on given frames, extract_feat, mean-pool."""
    from mmaction.registry import TRANSFORMS
    from mmengine.config import Config
    from mmengine.dataset import Compose

    from mmcsn.apis.inference import init_recognizer_strict
    cfg = Config.fromfile(config)
    model = init_recognizer_strict(cfg, checkpoint)
    steps = cfg.test_dataloader.dataset.pipeline
    assert [s['type'] for s in steps[:3]] == [
        'CheckedDecordInit', 'SampleFrames', 'CheckedDecordDecode'
    ]
    results = TRANSFORMS.build(steps[0])(
        dict(filename=video, start_index=0, modality='RGB'))
    results.update(frame_inds=np.asarray(frame_inds), clip_len=8,
                   num_clips=1, frame_interval=2)
    results = Compose(steps[2:])(results)
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[results['inputs']],
                 data_samples=[results['data_samples']]), False)
        feats, _ = model.extract_feat(data['inputs'], stage='backbone')
    return feats.mean((2, 3, 4))[0].numpy()


def test_window_feature_equals_the_config_pipeline(tiny_model, bikes_clip,
                                                   tmp_path):
    config, checkpoint = tiny_model
    lst = tmp_path / 'list.txt'
    lst.write_text(f'{bikes_clip.name} 0\n')
    spec = WindowSpec(8, 2, 48)
    summary, failures = extract_features(
        config, checkpoint, str(lst), str(tmp_path / 'out'),
        video_root=str(bikes_clip.parent), spec=spec, batch_size=3,
        num_workers=0, show_progress=False)
    assert failures == [] and summary.done == 1
    feats = np.load(tmp_path / 'out' / 'bikes.npy')
    meta = json.loads((tmp_path / 'out' / 'bikes.json').read_text())
    # 250 frames: (250 - 15) // 48 + 1 = 5 full windows + padded tail
    assert meta['num_frames'] == 250 and meta['fps'] == 25.0
    assert feats.shape == (6, 256) == (meta['num_windows'],
                                       meta['feature_dim'])
    assert feats.dtype == np.float32 and meta['last_window_padded']
    assert (feats > 0).mean() > 0.5  # a live model, not all-zero ReLUs
    inds = window_frame_indices(250, spec)
    for k in (1, 5):  # a middle window and the padded tail
        ref = _reference_feature(config, checkpoint, str(bikes_clip),
                                 inds[k])
        tol = 1e-4 * np.abs(ref).max()
        assert np.abs(feats[k] - ref).max() <= tol, k
    # negative control: a window one frame later is far off
    shifted = _reference_feature(config, checkpoint, str(bikes_clip),
                                 inds[1] + 1)
    assert np.abs(feats[1] - shifted).max() > 100 * tol


def test_bad_videos_are_listed_and_the_others_go_on(
        tiny_model, make_motion_clips, tmp_path):
    config, checkpoint = tiny_model
    good = _clips(make_motion_clips, tmp_path, [20, 9])
    bad = []
    for kind in sorted(make_motion_clips.BROKEN_KINDS):
        bad.append(f'broken/{kind}.mp4')
        make_motion_clips.write_broken_video(str(tmp_path / bad[-1]), kind)
    short = _clips(make_motion_clips, tmp_path / 'short', [5], seed=1)
    names = bad[:2] + good[:1] + bad[2:] + [f'short/{short[0]}'] + good[1:]
    lst = _write_list(tmp_path / 'list.txt', names + ['missing.mp4'])
    out = tmp_path / 'out'
    summary, failures = extract_features(
        config, checkpoint, lst, str(out), video_root=str(tmp_path),
        spec=SPEC, num_workers=1, show_progress=False)
    assert summary.done == 2 and summary.failed == len(bad) + 2
    listed = (out / 'failed.txt').read_text().splitlines()
    assert sorted(line.split('\t')[0] for line in listed) == sorted(
        bad + [f'short/{short[0]}', 'missing.mp4'])
    assert any('too short: 5 frame(s)' in line for line in listed)
    for name in good:
        stem = out / Path(name).with_suffix('.npy')
        assert np.load(stem).shape[1] == 256
    assert not list(out.rglob('broken/*.npy'))
    # a rerun skips the done videos and lists the same failures
    again, failures2 = extract_features(
        config, checkpoint, lst, str(out), video_root=str(tmp_path),
        spec=SPEC, num_workers=0, show_progress=False)
    assert (again.done, again.skipped) == (0, 2)
    assert sorted(v for v, _ in failures2) == sorted(v for v, _ in failures)


def test_layer_option_pools_another_stage(tiny_model, make_motion_clips,
                                          tmp_path):
    config, checkpoint = tiny_model
    names = _clips(make_motion_clips, tmp_path, [16])
    lst = _write_list(tmp_path / 'list.txt', names)
    extractor = FeatureExtractor(config, checkpoint, SPEC, layer=1,
                                 num_workers=0)
    entries = read_video_list(lst, str(tmp_path / 'out'), str(tmp_path))
    summary, _ = extractor.run(entries, str(tmp_path / 'out'),
                               show_progress=False)
    out = tmp_path / 'out' / Path(names[0]).with_suffix('.npy')
    assert np.load(out).shape == (num_windows(16, SPEC), 64)  # stage 1
    assert 'stage 1' in json.loads(out.with_suffix('.json').read_text())[
        'feature_layer']
    with pytest.raises(ValueError, match='batch_size must be an int >= 1'):
        FeatureExtractor(config, checkpoint, SPEC, batch_size=0)


# ------------------------------------------------------- subprocesses
def _tool(args, env_extra=None, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env_extra or {}))
    return [sys.executable, str(TOOL)] + args, env


def _outputs(out: Path):
    return {p.relative_to(out): p for p in out.rglob('*')
            if p.suffix in ('.npy', '.json')}


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tiny_model, make_motion_clips,
                                     tmp_path):
    config, checkpoint = tiny_model
    names = _clips(make_motion_clips, tmp_path, [40] * 10)
    make_motion_clips.write_broken_video(str(tmp_path / 'bad.mp4'),
                                         'truncated')
    lst = _write_list(tmp_path / 'list.txt', names + ['bad.mp4'])
    out = tmp_path / 'out'
    args = [config, checkpoint, '--video-list', lst, '--video-root',
            str(tmp_path), '--out-dir', str(out), '--clip-len', '8',
            '--frame-interval', '2', '--window-stride', '1',
            '--batch-size', '1', '--num-workers', '0']
    cmd, env = _tool(args)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.rglob('*.npy')) and proc.poll() is None:
        assert time.time() < deadline, 'no output after 120 s'
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    first = _outputs(out)
    done = [p for p in first if p.suffix == '.npy']
    assert 1 <= len(done) < len(names), 'the kill did not land mid-run'
    for path in first.values():  # every file left loads
        if path.suffix == '.npy':
            assert np.load(path).shape == (26, 256)
        else:
            assert json.loads(path.read_text())['num_windows'] == 26
    stamps = {p: (first[p].stat().st_mtime_ns, first[p].read_bytes())
              for p in done}
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           timeout=240)
    assert rerun.returncode == 1, rerun.stderr[-2000:]  # bad.mp4 failed
    assert f'skipped {len(done)} (already extracted)' in rerun.stderr
    assert 'bad.mp4' in (out / 'failed.txt').read_text()
    final = _outputs(out)
    assert len([p for p in final if p.suffix == '.npy']) == len(names)
    for p, (mtime, data) in stamps.items():  # nothing done was rewritten
        assert final[p].stat().st_mtime_ns == mtime
        assert final[p].read_bytes() == data
    assert not [p for p in out.rglob('*') if p.name.endswith('.tmp')]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_equal_one_process(tiny_model, make_motion_clips,
                                     tmp_path):
    config, checkpoint = tiny_model
    names = _clips(make_motion_clips, tmp_path, [16, 24, 9, 31, 12])
    make_motion_clips.write_broken_video(str(tmp_path / 'bad.mp4'), 'text')
    lst = _write_list(tmp_path / 'list.txt', names + ['bad.mp4'])

    def args(out):
        return [config, checkpoint, '--video-list', lst, '--video-root',
                str(tmp_path), '--out-dir', str(tmp_path / out),
                '--window-stride', '4', '--batch-size', '4',
                '--num-workers', '0']

    cmd, env = _tool(args('one'))
    one = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=240)
    # tools/dist_extract_features.sh = torchrun --launcher pytorch
    two_args = args('two')
    cmd = [str(REPO_ROOT / 'tools' / 'dist_extract_features.sh')
           ] + two_args[:2] + ['2'] + two_args[2:]
    env = dict(env, PORT=str(_free_port()), PYTHON=sys.executable)
    two = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=240)
    assert one.returncode == 1 and two.returncode == 1, two.stderr[-3000:]
    assert 'summary: done 5, skipped 0 (already extracted), failed 1' in \
        two.stderr
    a, b = _outputs(tmp_path / 'one'), _outputs(tmp_path / 'two')
    assert a.keys() == b.keys() and len(a) == 2 * len(names)
    for rel in a:
        if rel.suffix == '.npy':
            np.testing.assert_array_equal(np.load(a[rel]), np.load(b[rel]))
        else:
            assert json.loads(a[rel].read_text()) == json.loads(
                b[rel].read_text())
    assert (tmp_path / 'one' / 'failed.txt').read_text() == \
        (tmp_path / 'two' / 'failed.txt').read_text()
    assert not list((tmp_path / 'two').glob('failed.rank*'))


def test_decode_error_mid_video_writes_nothing_for_it(
        tiny_model, make_motion_clips, tmp_path, monkeypatch):
    # a file whose header is fine but whose frames stop decoding halfway
    # (decord raises only at decode time): simulated at the decoder
    from mmcsn.apis.clip_source import WindowPipeline
    config, checkpoint = tiny_model
    names = _clips(make_motion_clips, tmp_path, [40, 40])
    lst = _write_list(tmp_path / 'list.txt', names)
    real = WindowPipeline.windows

    def flaky(self, opened, inds):
        if 'c1_' in opened['filename'] and inds.min() > 0:
            raise IOError('cannot decode frames 4..30: corrupt packet')
        return real(self, opened, inds)

    monkeypatch.setattr(WindowPipeline, 'windows', flaky)
    out = tmp_path / 'out'
    summary, failures = extract_features(
        config, checkpoint, lst, str(out), video_root=str(tmp_path),
        spec=SPEC, batch_size=2, num_workers=0, show_progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    assert failures == [(names[1], 'OSError: cannot decode frames 4..30: '
                         'corrupt packet')]
    assert not (out / Path(names[1]).with_suffix('.npy')).exists()
    assert not (out / Path(names[1]).with_suffix('.json')).exists()


def test_unsupported_dtype_stops_before_any_work(tiny_model, tmp_path,
                                                 monkeypatch, capsys):
    from conftest import load_tool

    from mmcsn.apis import precision
    config, checkpoint = tiny_model
    monkeypatch.setattr(precision, 'cpu_bf16_support',
                        lambda: (False, 'the CPU lacks avx512_bf16'))
    lst = tmp_path / 'list.txt'
    lst.write_text('a.mp4\n')
    tool = load_tool('tools/extract_features.py')
    code = tool.main([config, checkpoint, '--video-list', str(lst),
                      '--out-dir', str(tmp_path / 'out'), '--dtype', 'bf16'])
    assert code == 2
    err = capsys.readouterr().err
    assert 'error: bf16 inference on this CPU is not supported: the CPU ' \
        'lacks avx512_bf16' in err
    assert not (tmp_path / 'out' / 'a.npy').exists()
    code = tool.main([config, checkpoint, '--video-list', str(lst),
                      '--out-dir', str(tmp_path / 'out'), '--dtype', 'fp16'])
    assert code == 2 and 'fp16 inference is CUDA-only' in \
        capsys.readouterr().err


@pytest.mark.skipif(not cpu_bf16_support()[0], reason=cpu_bf16_support()[1])
def test_2d_model_bf16_features_match_fp32(make_motion_clips, tmp_path):
    # bLVNet-TAM (Recognizer2D, 8 frames as segments): its bn(conv(x))
    # pairs are only found by the traced fold, run on a captured input
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    config = str(REPO_ROOT /
                 'configs/demo/blvnet-tam_r50_1xb8-1x1x8-12e_motion-rgb.py')
    init_default_scope('mmaction')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    checkpoint = tmp_path / 'blv.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    names = _clips(make_motion_clips, tmp_path, [20])
    lst = _write_list(tmp_path / 'list.txt', names)
    entries = read_video_list(lst, str(tmp_path), str(tmp_path))
    feats = {}
    for dtype in ('fp32', 'bf16'):
        extractor = FeatureExtractor(config, str(checkpoint), dtype=dtype,
                                     num_workers=0)
        assert extractor.spec == WindowSpec(8, 1, 8)  # from num_clips=8
        out = tmp_path / dtype
        extractor.run(read_video_list(lst, str(out), str(tmp_path)),
                      str(out), show_progress=False)
        bns = [m for m in extractor.model.backbone.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert bns == []
        feats[dtype] = np.load(out / Path(names[0]).with_suffix('.npy'))
    assert entries and feats['fp32'].shape == (num_windows(20, WindowSpec(
        8, 1, 8)), 2048)
    a, b = feats['fp32'], feats['bf16']
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(
        b, axis=1)
    assert cos.min() >= 0.99
