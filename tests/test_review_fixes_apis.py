"""Review fixes of the apis: one atomic writer (modes follow the umask,
exclusive ONNX export), one test-pipeline lookup, robust failure counting,
and a config digest over ``_base_`` files.

A tiny ir-CSN (base_channels 8) on the demo pipeline keeps each forward in
milliseconds.
"""
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmcsn  # noqa: F401
from mmcsn.apis.feature_io import save_video_features, write_failed_list
from mmcsn.apis.features import (
    FeatureExtractor,
    config_sha256,
    default_window_spec,
    extract_features,
)
from mmcsn.apis.windows import WindowSpec
from mmcsn.checkpoint.errors import OutputExistsError
from mmcsn.checkpoint.io import atomic_write

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CFG = (REPO_ROOT /
            'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py')
EXPORT = REPO_ROOT / 'tools/deploy/export_onnx.py'
SPEC = WindowSpec(clip_len=8, frame_interval=2, stride=4)


@pytest.fixture
def umask():
    """Set the process umask for one test, restore it afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------- atomic write, modes
@pytest.mark.parametrize('mask', [0o022, 0o077, 0o002],
                         ids=['022', '077', '002'])
def test_feature_outputs_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    npy = tmp_path / 'out' / 'v.npy'
    save_video_features(str(npy), np.ones((2, 3)), dict(num_windows=2))
    failed = tmp_path / 'out' / 'failed.txt'
    write_failed_list(str(failed), [('a.mp4', 'broken')])
    for path in (npy, npy.with_suffix('.json'), failed):
        # mkstemp alone gives 0600 whatever the umask (the old bug)
        assert _mode(path) == 0o666 & ~mask, (path, oct(_mode(path)))
    assert not [p for p in os.listdir(npy.parent) if p.endswith('.tmp')]


def test_atomic_write_is_exclusive_and_leaves_nothing_on_error(tmp_path):
    out = tmp_path / 'a.bin'
    atomic_write(out, lambda f: f.write(b'one'))
    with pytest.raises(OutputExistsError, match='pass --force'):
        atomic_write(out, lambda f: f.write(b'two'))
    assert out.read_bytes() == b'one'

    def broken(f):
        f.write(b'half')
        raise RuntimeError('writer died')

    with pytest.raises(RuntimeError, match='writer died'):
        atomic_write(out, broken, force=True)
    assert out.read_bytes() == b'one'
    assert sorted(os.listdir(tmp_path)) == ['a.bin']
    atomic_write(out, lambda f: f.write(b'two'), force=True)
    assert out.read_bytes() == b'two'


# ------------------------------------------------------------ export
def _export(args):
    from conftest import load_tool
    return load_tool('tools/deploy/export_onnx.py').main(
        [str(DEMO_CFG), *args, '--shape', '1', '3', '8', '32', '32'])


def test_export_refuses_an_existing_output_without_force(tmp_path):
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'an older export the user keeps')
    with pytest.raises(OutputExistsError, match='pass --force'):
        _export([str(out)])
    assert out.read_bytes() == b'an older export the user keeps'
    # negative control: --force overwrites it with a real graph
    _export([str(out), '--force'])
    import onnx
    assert onnx.load(str(out)).graph.input[0].name == 'input'


def test_export_keeps_the_users_part_file(tmp_path):
    out = tmp_path / 'model.onnx'
    part = tmp_path / 'model.onnx.part'  # the old fixed temporary name
    part.write_bytes(b'my own file')
    _export([str(out)])
    assert part.read_bytes() == b'my own file'
    assert out.stat().st_size > 1000
    assert sorted(os.listdir(tmp_path)) == ['model.onnx', 'model.onnx.part']


@pytest.mark.slow  # a subprocess (imports mmcsn: ~5 s)
def test_export_cli_existing_output_is_one_line_exit_1(tmp_path):
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'keep')
    proc = subprocess.run(
        [sys.executable, str(EXPORT), str(DEMO_CFG), str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'error: output ') and 'exists; pass --force' in proc.stderr
    assert out.read_bytes() == b'keep'


# ---------------------------------------------------- test pipeline
def _two_pipeline_config(tmp_path) -> str:
    """Dataloader pipeline (nested in a RepeatDataset): 4 frames, 24 px;
    test_pipeline: 8 frames, 32 px."""
    cfg = tmp_path / 'two_pipelines.py'
    cfg.write_text(
        f'_base_ = [{str(DEMO_CFG)!r}]\n'
        'model = dict(backbone=dict(base_channels=8), '
        'cls_head=dict(in_channels=256))\n'
        'loader_pipeline = [\n'
        "    dict(type='DecordInit'),\n"
        "    dict(type='SampleFrames', clip_len=4, frame_interval=3, "
        'num_clips=1, test_mode=True),\n'
        "    dict(type='DecordDecode'),\n"
        "    dict(type='Resize', scale=(24, 24), keep_ratio=False),\n"
        "    dict(type='FormatShape', input_format='NCTHW'),\n"
        "    dict(type='PackActionInputs')]\n"
        'test_pipeline = [\n'
        "    dict(type='DecordInit'),\n"
        "    dict(type='SampleFrames', clip_len=8, frame_interval=2, "
        'num_clips=1, test_mode=True),\n'
        "    dict(type='DecordDecode'),\n"
        "    dict(type='Resize', scale=(32, 32), keep_ratio=False),\n"
        "    dict(type='FormatShape', input_format='NCTHW'),\n"
        "    dict(type='PackActionInputs')]\n"
        'test_dataloader = dict(dataset=dict(_delete_=True, '
        "type='RepeatDataset', times=1, dataset=dict("
        "type='VideoDataset', ann_file='x.txt', "
        'pipeline=loader_pipeline, test_mode=True)))\n')
    return str(cfg)


def test_all_consumers_pick_the_dataloader_pipeline(tmp_path):
    from mmcsn.apis.inference import _test_pipeline, init_recognizer_strict
    from mmcsn.utils.builders import (
        input_shape_from_config,
        test_pipeline_of,
    )
    cfg = Config.fromfile(_two_pipeline_config(tmp_path))
    assert cfg.test_pipeline[1]['clip_len'] == 8  # they do differ
    chosen = test_pipeline_of(cfg)
    assert chosen[1]['clip_len'] == 4 and chosen[3]['scale'] == (24, 24)
    # tools (export, complexity, benchmark)
    assert input_shape_from_config(cfg) == ([1, 3, 4, 24, 24], 1)
    # the feature extractor
    spec = default_window_spec(cfg)
    assert (spec.clip_len, spec.frame_interval) == (4, 3)
    # inference: its own pipeline and MMAction2's inference_recognizer
    sampler = _test_pipeline(cfg).transforms[1]
    assert (sampler.clip_len, sampler.frame_interval) == (4, 3)
    model = init_recognizer_strict(cfg, None)
    assert model.cfg.test_pipeline == chosen
    assert cfg.test_pipeline[1]['clip_len'] == 8  # caller's cfg untouched
    # without a dataloader the test_pipeline is used
    cfg.pop('test_dataloader')
    assert test_pipeline_of(cfg)[1]['clip_len'] == 8


# ------------------------------------------------------ config digest
def test_config_digest_follows_base_files(tmp_path):
    base = tmp_path / 'base.py'
    child = tmp_path / 'child.py'
    base.write_text('model = dict(type="X", depth=50)\n')
    child.write_text("_base_ = ['base.py']\nwindow = 8\n")
    first = config_sha256(str(child))
    assert config_sha256(str(child)) == first  # deterministic
    base.write_text('model = dict(type="X", depth=101)\n')
    assert config_sha256(str(child)) != first  # the top file is unchanged


# ----------------------------------------------------- extraction run
@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    """A tiny ir-CSN config on the demo pipeline and its checkpoint."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    root = tmp_path_factory.mktemp('tiny_model_fixes')
    base = root / 'base.py'
    base.write_text(f'_base_ = [{str(DEMO_CFG)!r}]\n')
    config = root / 'tiny_csn.py'
    config.write_text(
        "_base_ = ['base.py']\n"
        'model = dict(backbone=dict(base_channels=8), '
        'cls_head=dict(in_channels=256))\n')
    init_default_scope('mmaction')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    checkpoint = root / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return str(config), str(checkpoint)


def _clips(make_motion_clips, root: Path, names, frames=24):
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        make_motion_clips.write_video(
            str(root / name),
            make_motion_clips.render_clip(rng, i % 8, 32, frames))
    lst = root / 'list.txt'
    lst.write_text(''.join(f'{n} 0\n' for n in names))
    return str(lst)


def test_extractor_settings_hash_the_resolved_config(tiny_model, tmp_path):
    config, checkpoint = tiny_model
    extractor = FeatureExtractor(config, checkpoint, SPEC, num_workers=0)
    assert extractor.settings['config_sha256'] == config_sha256(config)


def test_unwritable_output_fails_that_video_only(
        tiny_model, make_motion_clips, tmp_path):
    config, checkpoint = tiny_model
    lst = _clips(make_motion_clips, tmp_path, ['sub/a.mp4', 'b.mp4'])
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'sub').write_text('a file where a folder must go')
    summary, failures = extract_features(
        config, checkpoint, lst, str(out), video_root=str(tmp_path),
        spec=SPEC, batch_size=4, num_workers=0, show_progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    assert [v for v, _ in failures] == ['sub/a.mp4']
    assert failures[0][1].startswith('cannot write features: ')
    assert (out / 'b.npy').exists()
    assert (out / 'sub').read_text() == 'a file where a folder must go'
    listed = (out / 'failed.txt').read_text().splitlines()
    assert [line.split('\t')[0] for line in listed] == ['sub/a.mp4']


def test_forward_then_decode_error_counts_a_video_once(
        tiny_model, make_motion_clips, tmp_path, monkeypatch):
    from mmcsn.apis.clip_source import WindowPipeline
    config, checkpoint = tiny_model
    lst = _clips(make_motion_clips, tmp_path, ['a.mp4', 'b.mp4'])
    real_windows, real_forward = WindowPipeline.windows, \
        FeatureExtractor.forward
    first_batch_of_b = []

    def flaky_windows(self, opened, inds):
        # b.mp4 decodes its first batch, then its frames stop decoding
        if 'b.mp4' in opened['filename']:
            if inds.min() > 0:
                raise IOError('corrupt packet')
            first_batch_of_b.append(True)
        return real_windows(self, opened, inds)

    def flaky_forward(self, inputs):
        if first_batch_of_b:  # the forward of b's first batch fails
            first_batch_of_b.clear()
            raise RuntimeError('out of memory')
        return real_forward(self, inputs)

    monkeypatch.setattr(WindowPipeline, 'windows', flaky_windows)
    monkeypatch.setattr(FeatureExtractor, 'forward', flaky_forward)
    out = tmp_path / 'out'
    summary, failures = extract_features(
        config, checkpoint, lst, str(out), video_root=str(tmp_path),
        spec=SPEC, batch_size=2, num_workers=0, show_progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    assert failures == [('b.mp4', 'model forward failed: RuntimeError: '
                         'out of memory')]
    assert (out / 'failed.txt').read_text().count('b.mp4') == 1
    assert not (out / 'b.npy').exists()
