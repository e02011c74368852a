"""Two-process data-parallel training on CPU (gloo) via dist_train.sh.

Each rank imports this module through ``custom_imports`` and runs
:class:`MmcsnDumpRankWeightsHook`, which saves that rank's weights before
and after training; the test then checks that training changed them and
that both ranks ended with identical weights (and BN buffers).
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from conftest import REPO_ROOT, load_tool
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmcsn.checkpoint.io import load_checkpoint_file, save_checkpoint_atomic

CONFIG = REPO_ROOT / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'


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


def test_two_process_cpu_training(demo_data_root, tmp_path: Path):
    demo = load_tool('tools/demo.py')
    # a config on top of the demo one: the hook cannot be given through
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
        **demo.epoch_options(2),
        'train_cfg.max_epochs': 1,
        # 24 train clips / (2 ranks x 4) = 3 iterations per rank
        'train_dataloader.batch_size': 4,
        'val_dataloader.dataset.indices': 4,
        'log_level': 'WARNING',
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
