"""Distributed initialisation for CPU-only torch builds.

mmengine 0.10's ``_init_dist_pytorch`` calls ``torch.cuda.set_device``
unconditionally, which raises on a CPU build of torch, and its slurm path
divides by ``torch.cuda.device_count()``. When (and only when) CUDA is not
available we initialise the process group directly from the launcher's
environment; with CUDA the original functions run unchanged. The process
group is destroyed at exit: without that one gloo rank was seen to abort
with SIGABRT after training had finished.
"""
import atexit
import functools
import os
import subprocess
from typing import Callable

import torch
import torch.distributed as torch_dist

__all__ = [
    'install_cpu_dist_init', 'cpu_init_dist_pytorch', 'cpu_init_dist_slurm'
]


def _destroy() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def cpu_init_dist_pytorch(backend: str = 'gloo',
                          init_backend: str = 'torch',
                          **kwargs) -> None:
    """Initialise a gloo process group from torchrun's environment.

    Args:
        backend (str): torch.distributed backend; ``nccl`` needs CUDA so it
            is refused here. Defaults to ``'gloo'``.
        init_backend (str): Only ``'torch'`` is supported without CUDA.
            Defaults to ``'torch'``.
    """
    if backend == 'nccl':
        raise ValueError(
            "backend='nccl' needs CUDA, which this torch build lacks; set "
            "env_cfg = dict(dist_cfg=dict(backend='gloo')) for CPU runs")
    if init_backend != 'torch':
        raise ValueError(f"init_backend={init_backend!r} is not supported "
                         "without CUDA; valid choices: 'torch'")
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)
    atexit.register(_destroy)


def cpu_init_dist_slurm(backend: str = 'gloo', port=None,
                        init_backend: str = 'torch', **kwargs) -> None:
    """Initialise a gloo process group from slurm's environment.

    Mirrors mmengine's ``_init_dist_slurm`` (master address from
    ``scontrol``, port from ``port``/``MASTER_PORT``/29500) without the
    CUDA device selection.

    Args:
        backend (str): torch.distributed backend. Defaults to ``'gloo'``.
        port (int, optional): Master port. Defaults to None.
        init_backend (str): Only ``'torch'``. Defaults to ``'torch'``.
    """
    proc_id = int(os.environ['SLURM_PROCID'])
    node_list = os.environ['SLURM_NODELIST']
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)
    cpu_init_dist_pytorch(backend, init_backend, **kwargs)


def install_cpu_dist_init() -> bool:
    """Patch mmengine's launcher inits when CUDA is unavailable.

    Returns:
        bool: True if the CPU path was installed.
    """
    if torch.cuda.is_available():
        return False
    from mmengine.dist import utils as dist_utils
    if getattr(dist_utils._init_dist_pytorch, '_mmcsn_cpu', False):
        return True
    dist_utils._init_dist_pytorch = _cpu_fallback(
        dist_utils._init_dist_pytorch, cpu_init_dist_pytorch)
    dist_utils._init_dist_slurm = _cpu_fallback(
        dist_utils._init_dist_slurm, cpu_init_dist_slurm)
    return True


def _cpu_fallback(original: Callable, cpu_init: Callable) -> Callable:
    """Call ``cpu_init`` while CUDA is unavailable, else ``original``."""

    @functools.wraps(original)
    def init(*args, **kwargs):
        if torch.cuda.is_available():
            return original(*args, **kwargs)
        return cpu_init(*args, **kwargs)

    init._mmcsn_cpu = True
    return init
