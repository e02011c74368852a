"""tools/infer.py and mmcsn.apis.inference on real mp4 files.

A tiny ir-CSN (the demo config) with saved random weights: the labels are
noise, but every path a user takes is real: strict checkpoint loading,
the config's test pipeline on real H.264 clips, broken videos, the label
map, the moviepy check and MMAction2's visualizer writing a video.
"""
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_tool

from mmcsn.apis import init_recognizer_strict, recognize_videos
from mmcsn.apis.inference import load_label_map
from mmcsn.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'
TOOL = REPO / 'tools/infer.py'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    """The demo model's random init, saved as mmengine's runner does."""
    torch.manual_seed(0)
    model = init_recognizer_strict(str(CONFIG), None)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


def _infer(*args: str) -> subprocess.CompletedProcess:
    """tools/infer.py in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=str(REPO),
        capture_output=True, text=True, timeout=300)


@pytest.fixture
def infer_main(monkeypatch, capsys):
    """tools/infer.py's main() in this process: (exit code, out, err)."""
    tool = load_tool('tools/infer.py')
    # the process set-up (malloc, warning filters) is tested elsewhere
    monkeypatch.setattr(tool, 'prepare_entry_process', lambda caught: None)

    def run(*args):
        try:
            code = tool.main(list(args))
        except SystemExit as exit_:  # argparse
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.slow  # a subprocess per CLI call
def test_cli_topk_per_video_and_broken_videos_named(
        checkpoint, demo_data_root, bikes_clip, make_motion_clips,
        tmp_path):
    broken = make_motion_clips.write_broken_video(
        str(tmp_path / 'broken.mp4'), 'truncated')
    good = sorted((demo_data_root / 'videos' / 'test').glob('*.mp4'))[0]
    missing = tmp_path / 'missing.mp4'
    proc = _infer(str(good), broken, str(missing), str(bikes_clip),
                  '--config', str(CONFIG), '--checkpoint', str(checkpoint),
                  '--label-map', str(demo_data_root / 'classes.txt'),
                  '--topk', '3')
    assert proc.returncode == 1, proc.stderr  # some failed: non-zero
    classes = (demo_data_root / 'classes.txt').read_text().split()
    out = proc.stdout.splitlines()
    # both good videos: a header with the time, then 3 ranked labels
    for video in (good, bikes_clip):
        (i, ) = [n for n, line in enumerate(out) if line.startswith(
            str(video))]
        assert out[i].endswith(' s)'), out[i]
        ranked = out[i + 1:i + 4]
        assert [r.split('.')[0].strip() for r in ranked] == ['1', '2', '3']
        names = [r.split()[1] for r in ranked]
        assert set(names) <= set(classes) and len(set(names)) == 3
        scores = [float(r.split()[2]) for r in ranked]
        assert scores == sorted(scores, reverse=True)
    failed = [line for line in proc.stderr.splitlines()
              if line.startswith('FAILED')]
    assert len(failed) == 2, proc.stderr
    assert 'broken.mp4' in failed[0] and 'missing.mp4' in failed[1]
    assert '2 of 4 videos failed' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_cli_all_good_exits_zero(checkpoint, demo_data_root, infer_main):
    clip = sorted((demo_data_root / 'videos' / 'test').glob('*.mp4'))[0]
    code, out, err = infer_main(str(clip), '--config', str(CONFIG),
                                '--checkpoint', str(checkpoint), '--topk',
                                '2')
    assert code == 0, err
    assert out.count('class ') == 2  # no label map: 'class <i>'


def test_checkpoint_of_another_model_is_refused(checkpoint, tmp_path,
                                                bikes_clip, infer_main):
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    state['backbone.extra.weight'] = torch.zeros(1)
    state.pop(next(k for k in state if k.startswith('cls_head')))
    wrong = tmp_path / 'wrong.pth'
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match='backbone.extra.weight'):
        init_recognizer_strict(str(CONFIG), str(wrong))
    code, out, err = infer_main(str(bikes_clip), '--config', str(CONFIG),
                                '--checkpoint', str(wrong))
    assert code == 1 and 'backbone.extra.weight' in err and out == ''


class _RunsCode:

    def __reduce__(self):
        return (Path.touch, (Path(self.marker), ))


def test_malicious_checkpoint_runs_nothing(tmp_path, bikes_clip,
                                           infer_main):
    marker = tmp_path / 'pwned'
    payload = _RunsCode()
    payload.marker = str(marker)
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': payload}, evil)
    code, out, err = infer_main(str(bikes_clip), '--config', str(CONFIG),
                                '--checkpoint', str(evil))
    assert code == 1 and 'refused' in err and out == '', err
    assert not marker.exists()


def test_bad_arguments(checkpoint, tmp_path, infer_main):
    with pytest.raises(ValueError, match="device must be 'cpu'"):
        init_recognizer_strict(str(CONFIG), None, device='gpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            init_recognizer_strict(str(CONFIG), None, device='cuda')
    model = init_recognizer_strict(str(CONFIG), str(checkpoint))
    with pytest.raises(ValueError, match='topk must be an int >= 1'):
        next(recognize_videos(model, ['x.mp4'], topk=0))
    short = tmp_path / 'labels.txt'
    short.write_text('a\nb\n')
    with pytest.raises(ValueError, match='has 2 names but the model has 8'):
        load_label_map(str(short), 8)
    code, _, err = infer_main('x.mp4', '--config', str(tmp_path / 'no.py'),
                              '--checkpoint', str(checkpoint))
    assert code == 2 and "--config" in err and 'no such file' in err
    code, _, err = infer_main('x.mp4', '--config', str(CONFIG),
                              '--checkpoint', str(checkpoint), '--topk', '0')
    assert code == 2 and '--topk must be >= 1' in err


def test_out_video_without_moviepy_says_how_to_install(
        checkpoint, bikes_clip, tmp_path, monkeypatch, infer_main):
    # moviepy absent, or moviepy 2 (no moviepy.editor)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name.startswith('moviepy') else find_spec(name, *a))
    import mmcsn.apis.inference as engine

    def must_not_build(*args, **kwargs):
        raise AssertionError('model built before the moviepy check')

    monkeypatch.setattr(engine, 'init_recognizer_strict', must_not_build)
    code, out, err = infer_main(str(bikes_clip), '--config', str(CONFIG),
                                '--checkpoint', str(checkpoint),
                                '--out-video', str(tmp_path / 'out'))
    assert code == 1 and out == ''
    assert err.strip().splitlines() == [
        'error: --out-video needs moviepy<2 (not installed or a version '
        'that does not work): pip install "mmcsn[viz]"'
    ]
    assert not (tmp_path / 'out').exists()


@pytest.fixture
def fake_moviepy(monkeypatch):
    """``moviepy.editor.ImageSequenceClip`` recording what it is given."""
    written = []

    class ImageSequenceClip:

        def __init__(self, frames, fps):
            self.frames, self.fps = np.stack(frames), fps

        def write_videofile(self, path, **kwargs):
            written.append((path, self.frames, self.fps))
            Path(path).write_bytes(b'fake mp4')

    editor = types.ModuleType('moviepy.editor')
    editor.ImageSequenceClip = ImageSequenceClip
    package = types.ModuleType('moviepy')
    package.editor = editor
    monkeypatch.setitem(sys.modules, 'moviepy', package)
    monkeypatch.setitem(sys.modules, 'moviepy.editor', editor)
    return written


def test_out_video_through_mmaction_visualizer(checkpoint, demo_data_root,
                                               tmp_path, fake_moviepy):
    import decord
    clip = sorted((demo_data_root / 'videos' / 'test').glob('*.mp4'))[0]
    model = init_recognizer_strict(str(CONFIG), str(checkpoint))
    out_dir = tmp_path / 'vis'
    (pred, ) = recognize_videos(model, [str(clip)], topk=2,
                                out_dir=str(out_dir), fps=12)
    assert pred.error is None and len(pred.topk) == 2
    assert pred.out_video == str(out_dir / clip.name)
    ((path, frames, fps), ) = fake_moviepy
    assert path == pred.out_video and fps == 12
    original = decord.VideoReader(str(clip))
    assert frames.shape[0] == len(original)
    # the predictions are drawn on: frames differ from the decoded ones
    first = original[0].asnumpy()[..., ::-1]  # the writer gets BGR flips
    assert frames.shape[1:] == first.shape
    assert not np.array_equal(frames[0], first)
    # a second run never overwrites the file: that video reports an error
    before = Path(path).read_bytes()
    (again, ) = recognize_videos(model, [str(clip)], out_dir=str(out_dir))
    assert 'FileExistsError' in again.error and clip.name in again.error
    assert Path(path).read_bytes() == before and len(fake_moviepy) == 1
