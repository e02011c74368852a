"""Data-parallel training and testing on CPU (gloo) via dist_train.sh.

* A user config on MMAction2's bases (the tiny CSN config inherits
  ``mmaction::_base_/default_runtime.py``: ``backend='nccl'``, no
  ``model_wrapper_cfg``) trains on 2 CPU processes with no override: mmcsn
  picks gloo and a CPU DDP wrapper and says so in ONE log line. Each rank
  imports this module through ``custom_imports`` and runs
  :class:`MmcsnDumpRankWeightsHook`, which saves that rank's weights before
  and after training; the test checks that training changed them and that
  both ranks ended with identical weights (and BN buffers).
* The README's CPU commands run as written (data, train, test), in a
  scratch directory, with size options appended.
* The CPU path is shown needed (torch refuses ``device_ids`` for a CPU
  module without it) and absent where CUDA is available.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, load_tool
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmcsn.checkpoint.io import load_checkpoint_file, save_checkpoint_atomic

CONFIG = REPO_ROOT / 'configs/csn/ircsn_tiny-r50_1xb2-8x2x1-2e_demo-rgb.py'
CPU_LINE = 'mmcsn: CUDA is unavailable: distributed on CPU'


@HOOKS.register_module(force=True)
class MmcsnDumpRankWeightsHook(Hook):
    """Save ``rank<r>_{before,after}.pth`` (state_dict) into ``out_dir``.

    Args:
        out_dir (str): Output directory.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def _dump(self, runner, when: str) -> None:
        model = runner.model
        model = getattr(model, 'module', model)  # unwrap DDP
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        save_checkpoint_atomic(
            sd, os.path.join(self.out_dir, f'rank{runner.rank}_{when}.pth'),
            force=True)

    def before_train(self, runner) -> None:
        self._dump(runner, 'before')

    def after_train(self, runner) -> None:
        self._dump(runner, 'after')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two training processes
def test_two_process_cpu_training(demo_data_root, tmp_path: Path):
    demo = load_tool('tools/demo.py')
    base = Config.fromfile(CONFIG)  # what a user config on MMAction2 has
    assert base.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in base
    # a config on top of it: the hook cannot be given through
    # --cfg-options (mmengine's parser does not take dicts in lists)
    config = tmp_path / 'dist_cfg.py'
    config.write_text(
        f"_base_ = [{str(CONFIG)!r}]\n"
        "custom_imports = dict(imports=['mmcsn', 'test_dist_train'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='MmcsnDumpRankWeightsHook', "
        f"out_dir={str(tmp_path)!r})]\n")
    options = {
        **demo.data_options(str(demo_data_root)),
        'train_cfg.max_epochs': 1,
        # 24 train clips / (2 ranks x 4) = 3 iterations per rank
        'train_dataloader.batch_size': 4,
        'val_dataloader.dataset.indices': 4,
    }
    env = dict(
        os.environ,
        PORT=str(_free_port()),
        PYTHON=sys.executable,
        PYTHONPATH=str(REPO_ROOT / 'tests'),
        OMP_NUM_THREADS='1')
    cmd = [
        str(REPO_ROOT / 'tools/dist_train.sh'),
        str(config), '2', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options'
    ] + [f'{k}={v}' for k, v in options.items()]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (log, ) = (tmp_path / 'work').glob('*/*.log')
    assert log.read_text().count(CPU_LINE) == 1  # rank 0, once
    assert "backend 'gloo' (config asked for 'nccl')" in log.read_text()

    weights = {(r, w): load_checkpoint_file(tmp_path / f'rank{r}_{w}.pth')
               for r in (0, 1) for w in ('before', 'after')}
    after0, after1 = weights[0, 'after'], weights[1, 'after']
    assert after0.keys() == after1.keys()
    for key in after0:
        assert torch.equal(after0[key], after1[key]), key
    # both ranks started from the same weights and training moved them
    changed = [k for k in after0
               if k.endswith('weight')
               and not torch.equal(weights[0, 'before'][k], after0[k])]
    assert len(changed) > 10
    for key in weights[0, 'before']:
        assert torch.equal(weights[0, 'before'][key],
                           weights[1, 'before'][key]), key
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def _readme_cpu_commands() -> list:
    """The CPU commands of README.md's "Distributed training" section."""
    text = (REPO_ROOT / 'README.md').read_text()
    section = text[text.index('## Distributed training'):]
    block = section[section.index('```shell\n') + 9:]
    block = block[:block.index('```')]
    lines = block.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith('# CPU'))
    commands = []
    for line in lines[start + 1:]:
        if line.startswith('#'):
            break
        commands.append(line.split('  #')[0].strip())
    return commands


@pytest.mark.slow  # two training processes, then two testing processes
def test_readme_cpu_commands_run_as_written(tmp_path: Path):
    """Run from a scratch directory that looks like the repository root
    (links to configs/ and tools/), so data/ and work_dirs/ land there.
    Appended options only make the run small: smaller data, 1 epoch."""
    data, train, test = _readme_cpu_commands()
    assert data.startswith('python tools/data/make_motion_clips.py')
    assert train.startswith('tools/dist_train.sh configs/demo/')
    assert test.startswith('tools/dist_test.sh configs/demo/')
    for name in ('configs', 'tools'):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    small = {
        data: ' --num-per-class 5 --frames 8',
        train: ' --cfg-options train_cfg.max_epochs=1 '
               'train_dataloader.batch_size=4',
        test: '',
    }
    env = dict(
        os.environ,
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1')
    outputs = []
    for command in (data, train, test):
        proc = subprocess.run(
            command + small[command], shell=True, cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f'{command}\n{out[-4000:]}'
        outputs.append(out)
    assert (tmp_path / 'data/demo/train.txt').is_file()
    assert (tmp_path / 'work_dirs/dist/epoch_1.pth').is_file()
    assert outputs[1].count(CPU_LINE) == 1
    assert outputs[2].count(CPU_LINE) == 1
    assert 'acc/top1' in outputs[2]


# ------------------------------------------------ the CPU path, unit level
def run_py(code: str, **env) -> subprocess.CompletedProcess:
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()),
               OMP_NUM_THREADS='1', **env)
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=env, timeout=120)


DDP_CPU = '''
{prefix}
import torch
import torch.distributed as dist
from mmengine.dist import init_dist
from mmengine.model.wrappers import MMDistributedDataParallel
init_dist('pytorch', backend='nccl')  # MMAction2's runtime default
model = MMDistributedDataParallel(
    module=torch.nn.Linear(2, 2), device_ids=[0], broadcast_buffers=False)
print('WRAPPED', dist.get_backend(), model.device_ids)
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only path')
def test_runner_ddp_defaults_fail_on_cpu_without_mmcsn():
    # mmengine alone (init_dist's CUDA call: tests/test_compat.py): with
    # the group made by hand, DDP refuses the device_ids the Runner passes
    proc = run_py(DDP_CPU.format(prefix='').replace(
        "init_dist('pytorch', backend='nccl')",
        "dist.init_process_group('gloo', rank=0, world_size=1)"))
    assert proc.returncode != 0
    assert 'device_ids' in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only path')
def test_runner_defaults_work_on_cpu_with_mmcsn():
    proc = run_py(DDP_CPU.format(prefix='import mmcsn'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'WRAPPED gloo None' in proc.stdout
    assert (proc.stdout + proc.stderr).count(CPU_LINE) == 1


def test_nothing_is_patched_when_cuda_is_available():
    """CUDA simulated: mmengine's inits and DDP wrapper stay the originals.
    """
    proc = run_py('''
import torch
torch.cuda.is_available = lambda: True
from mmengine.dist import utils
from mmengine.model.wrappers import MMDistributedDataParallel as DDP
originals = (utils._init_dist_pytorch, utils._init_dist_slurm, DDP.__init__)
import mmcsn
from mmcsn.compat import install_cpu_dist_init
assert install_cpu_dist_init() is False
assert (utils._init_dist_pytorch, utils._init_dist_slurm,
        DDP.__init__) == originals
print('UNTOUCHED')
''', CUDA_VISIBLE_DEVICES='0')  # mmengine's logger reads it under CUDA
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'UNTOUCHED' in proc.stdout


def test_patched_functions_defer_to_originals_once_cuda_is_there(
        monkeypatch):
    from mmcsn.compat import cpu_dist
    calls = []
    init = cpu_dist._cpu_fallback(lambda *a, **k: calls.append('original'),
                                  lambda *a, **k: calls.append('cpu'))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    init('nccl')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    init('nccl')
    assert calls == ['cpu', 'original']
    # the DDP arguments: kept with CUDA, dropped for a CPU module without
    kwargs = dict(device_ids=[0], broadcast_buffers=False)
    module = torch.nn.Linear(2, 2)
    assert cpu_dist.cpu_ddp_kwargs(module, kwargs) == kwargs
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert cpu_dist.cpu_ddp_kwargs(module, kwargs) == dict(
        device_ids=None, output_device=None, broadcast_buffers=False)
    with torch.device('meta'):  # not on the CPU: left to torch
        assert cpu_dist.cpu_ddp_kwargs(torch.nn.Linear(2, 2), kwargs) == (
            kwargs)
