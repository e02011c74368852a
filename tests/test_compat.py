"""The stack fixes in ``mmcsn.compat``: each is shown needed and working.

Every check runs in a fresh interpreter so that whether mmcsn was imported
is under the test's control.
"""
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_py(code: str, env: dict = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(
        p for p in [str(REPO), full_env.get('PYTHONPATH', '')] if p)
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, env=full_env,
                          timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- drn shim
def test_drn_missing_breaks_mmaction_without_mmcsn():
    proc = run_py('import mmaction.models')
    assert proc.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in proc.stderr


def test_drn_shim_used_when_module_missing():
    proc = run_py('''
        import mmcsn
        from mmcsn.compat import shim_active
        import mmaction.models.localizers.drn as drn
        from mmaction.registry import MODELS
        names = ['Recognizer2D', 'Recognizer3D', 'ResNet3dCSN', 'TSNHead',
                 'I3DHead']
        assert all(MODELS.get(n) is not None for n in names), names
        assert shim_active() and drn.MMCSN_SHIM
        assert MODELS.get('DRN') is None  # placeholder is not registered
        try:
            drn.DRN()
        except ImportError as err:
            assert '#2714' in str(err)
        else:
            raise SystemExit('placeholder DRN built')
        print('OK')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert 'OK' in proc.stdout


def test_drn_shim_leaves_a_real_module_alone(tmp_path):
    """With a complete mmaction on the path, the real drn is imported."""
    import mmaction
    src = Path(mmaction.__file__).parent
    dst = tmp_path / 'mmaction'
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        '.mim', '__pycache__', 'configs'))
    drn = dst / 'models' / 'localizers' / 'drn'
    drn.mkdir()
    (drn / '__init__.py').write_text('')
    (drn / 'drn.py').write_text('class DRN:\n    REAL = True\n')
    proc = run_py('''
        import mmcsn
        import mmaction
        from mmcsn.compat import shim_active
        import mmaction.models.localizers.drn.drn as drn
        assert mmaction.__file__.startswith(%r), mmaction.__file__
        assert drn.DRN.REAL and not hasattr(drn, 'MMCSN_SHIM')
        assert not shim_active()
        print('OK')
    ''' % str(tmp_path), env={'PYTHONPATH': f'{tmp_path}{os.pathsep}{REPO}'})
    assert proc.returncode == 0, proc.stderr
    assert 'OK' in proc.stdout


# ------------------------------------------------------- weights_only loads
MAKE_MMENGINE_CKPT = '''
    import numpy as np, torch
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('ckpt')
    hub.update_scalar('train/loss', np.float32(1.5))
    hub.update_info('iter', np.int64(3))
    torch.save({'meta': {'epoch': 1, 'seed': np.int64(5)},
                'state_dict': {'w': torch.ones(2)},
                'message_hub': hub.state_dict()}, %r)
'''


def test_mmengine_checkpoint_needs_and_gets_the_allow_list(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    assert run_py(MAKE_MMENGINE_CKPT % path).returncode == 0
    load = 'import torch; torch.load(%r, weights_only=True)' % path
    without = run_py(load)
    assert without.returncode != 0
    assert 'UnpicklingError' in without.stderr
    with_fix = run_py('''
        import mmcsn, torch
        from mmengine.runner import load_checkpoint
        ck = torch.load(%r, weights_only=True)
        assert ck['meta']['epoch'] == 1
        print('OK')
    ''' % path)
    assert with_fix.returncode == 0, with_fix.stderr


def test_allow_list_still_refuses_code(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    proc = run_py(f'''
        import os, torch
        class Evil:
            def __reduce__(self):
                return (os.system, ('touch {marker}',))
        torch.save({{'state_dict': Evil()}}, {str(path)!r})
    ''')
    assert proc.returncode == 0, proc.stderr
    proc = run_py(f'''
        import mmcsn, torch
        torch.load({str(path)!r}, weights_only=True)
    ''')
    assert proc.returncode != 0
    assert 'UnpicklingError' in proc.stderr
    assert not marker.exists()


def test_allow_list_has_no_code_runners():
    """Every name a pickle can reach is served by a checked stand-in
    defined in mmcsn (the exact set: tests/test_crafted_checkpoints.py)."""
    from mmcsn.compat import mmengine_safe_globals
    for obj, name in mmengine_safe_globals():
        if '\n' in name:  # BUILD-only: numpy's array and numeric dtypes
            assert obj.__module__.startswith('numpy'), name
        else:
            assert obj.__module__ == 'mmcsn.compat.safe_load', name
    assert all(obj is not getattr for obj, _ in mmengine_safe_globals())


# ------------------------------------------------------- CPU distributed
DIST_INIT = '''
    {prefix}
    import torch.distributed as dist
    from mmengine.dist import init_dist
    init_dist('pytorch', backend='{backend}')
    assert dist.is_initialized() and dist.get_world_size() == 1
    print('OK')
'''


@pytest.fixture
def dist_env():
    return dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))


@pytest.mark.skipif(
    __import__('torch').cuda.is_available(), reason='CPU-only fix')
def test_cpu_dist_init_fails_without_mmcsn(dist_env):
    proc = run_py(DIST_INIT.format(prefix='', backend='gloo'), dist_env)
    assert proc.returncode != 0
    assert 'cuda' in proc.stderr.lower()


@pytest.mark.skipif(
    __import__('torch').cuda.is_available(), reason='CPU-only fix')
def test_cpu_dist_init_with_mmcsn(dist_env):
    proc = run_py(
        DIST_INIT.format(prefix='import mmcsn', backend='gloo'), dist_env)
    assert proc.returncode == 0, proc.stderr
    assert 'OK' in proc.stdout


@pytest.mark.skipif(
    __import__('torch').cuda.is_available(), reason='CPU-only fix')
def test_cpu_dist_replaces_nccl_with_gloo(dist_env):
    # MMAction2's runtime base asks for nccl: without CUDA mmcsn uses gloo
    # (tests/test_dist_train.py covers the DDP wrapper and the log line)
    code = DIST_INIT.format(prefix='import mmcsn', backend='nccl').replace(
        "print('OK')", "assert dist.get_backend() == 'gloo'; print('OK')")
    proc = run_py(code, dist_env)
    assert proc.returncode == 0, proc.stderr
    assert 'OK' in proc.stdout


# ------------------------------------------------------------ mmcv-lite
def test_mmcsn_needs_no_compiled_mmcv_ops():
    """mmcv-lite suffices: with ``mmcv.ops`` made unimportable, every mmcsn
    module still imports, builds and runs (the README's promise)."""
    proc = run_py('''
        import importlib.abc, sys

        class NoMmcvOps(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == 'mmcv.ops' or name.startswith('mmcv.ops.'):
                    raise ImportError('mmcv.ops blocked by the test')
                if name == 'mmcv._ext':
                    raise ImportError('mmcv._ext blocked by the test')

        sys.meta_path.insert(0, NoMmcvOps())
        import torch
        import mmcsn
        from mmcsn.models.backbones import CSN, bLResNet
        from mmcsn.models.necks import TAMNeck
        with torch.no_grad():
            CSN(depth=50, base_channels=8,
                stage_blocks=(1, 1, 1, 1)).eval()(
                torch.randn(1, 3, 4, 32, 32))
            bLResNet(depth=50, num_segments=4).eval()(
                torch.randn(4, 3, 32, 32))
            TAMNeck(in_channels=8, num_segments=4)(
                (torch.randn(2, 8, 4, 3, 3), ))
        loaded = [m for m in sys.modules if m.startswith('mmcv.ops')]
        assert not loaded, loaded
        print('ok')
    ''')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'ok' in proc.stdout
