"""Distributed runs on CPU-only machines, with no config change.

mmengine 0.10's ``_init_dist_pytorch`` calls ``torch.cuda.set_device``
unconditionally, which raises on a CPU build of torch, and its slurm path
divides by ``torch.cuda.device_count()``; MMAction2's runtime base asks
for ``backend='nccl'``, which needs CUDA; and the Runner wraps the model
in ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``, which torch
refuses for a CPU module. When (and only when) CUDA is not available:

* the launcher inits initialise the process group directly from the
  launcher's environment, with ``gloo`` in place of ``nccl``;
* ``MMDistributedDataParallel`` drops ``device_ids`` / ``output_device``
  for a module whose parameters are all on the CPU;
* one line in the run's log (rank 0) says so.

With CUDA nothing is patched, and the patched functions call the
originals whenever CUDA is available. The process group is destroyed at
exit: without that one gloo rank was seen to abort with SIGABRT after
training had finished.
"""
import atexit
import functools
import os
import subprocess
from typing import Callable, Optional

import torch
import torch.distributed as torch_dist

__all__ = [
    'install_cpu_dist_init', 'cpu_init_dist_pytorch', 'cpu_init_dist_slurm',
    'cpu_ddp_kwargs'
]

# backend the config asked for when it was replaced (for the log line)
_REPLACED_BACKEND: Optional[str] = None


def _destroy() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def cpu_init_dist_pytorch(backend: str = 'gloo',
                          init_backend: str = 'torch',
                          **kwargs) -> None:
    """Initialise a CPU process group from torchrun's environment.

    Args:
        backend (str): torch.distributed backend. ``'nccl'`` (MMAction2's
            default) needs CUDA and is replaced by ``'gloo'``. Defaults to
            ``'gloo'``.
        init_backend (str): Only ``'torch'`` is supported without CUDA.
            Defaults to ``'torch'``.
    """
    global _REPLACED_BACKEND
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} is not supported '
                         "without CUDA; valid choices: 'torch'")
    if backend == 'nccl':
        _REPLACED_BACKEND, backend = backend, 'gloo'
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)
    atexit.register(_destroy)


def cpu_init_dist_slurm(backend: str = 'gloo', port=None,
                        init_backend: str = 'torch', **kwargs) -> None:
    """Initialise a CPU process group from slurm's environment.

    Mirrors mmengine's ``_init_dist_slurm`` (master address from
    ``scontrol``, port from ``port``/``MASTER_PORT``/29500) without the
    CUDA device selection.

    Args:
        backend (str): torch.distributed backend; ``'nccl'`` becomes
            ``'gloo'``. Defaults to ``'gloo'``.
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


def cpu_ddp_kwargs(module: torch.nn.Module, kwargs: dict) -> dict:
    """DDP arguments for ``module``, with no device for a CPU module.

    torch's ``DistributedDataParallel`` refuses ``device_ids`` (which the
    Runner sets to ``[LOCAL_RANK]``) unless the module is on one GPU.

    Args:
        module (nn.Module): The module to wrap.
        kwargs (dict): The arguments given to the wrapper.

    Returns:
        dict: ``kwargs``, without ``device_ids`` / ``output_device`` when
        CUDA is unavailable and every parameter is on the CPU.
    """
    params = list(module.parameters())
    on_cpu = bool(params) and all(p.device.type == 'cpu' for p in params)
    if torch.cuda.is_available() or not on_cpu:
        return kwargs
    kwargs = dict(kwargs, device_ids=None, output_device=None)
    _log_cpu_run()
    return kwargs


def _log_cpu_run() -> None:
    """The one line (rank 0) that says this run is distributed on CPU."""
    from mmengine.logging import print_log
    if torch_dist.is_initialized() and torch_dist.get_rank() != 0:
        return
    backend = (torch_dist.get_backend()
               if torch_dist.is_initialized() else 'none')
    replaced = (f' (config asked for {_REPLACED_BACKEND!r})'
                if _REPLACED_BACKEND else '')
    print_log(
        f'mmcsn: CUDA is unavailable: distributed on CPU with backend '
        f'{backend!r}{replaced} and DistributedDataParallel(device_ids='
        'None); GPU runs are unchanged', logger='current')


def install_cpu_dist_init() -> bool:
    """Patch mmengine's launcher inits and DDP wrapper without CUDA.

    Returns:
        bool: True if the CPU path was installed.
    """
    if torch.cuda.is_available():
        return False
    from mmengine.dist import utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel
    if getattr(dist_utils._init_dist_pytorch, '_mmcsn_cpu', False):
        return True
    dist_utils._init_dist_pytorch = _cpu_fallback(
        dist_utils._init_dist_pytorch, cpu_init_dist_pytorch)
    dist_utils._init_dist_slurm = _cpu_fallback(
        dist_utils._init_dist_slurm, cpu_init_dist_slurm)
    MMDistributedDataParallel.__init__ = _cpu_ddp_init(
        MMDistributedDataParallel.__init__)
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


def _cpu_ddp_init(original: Callable) -> Callable:
    """``MMDistributedDataParallel.__init__`` through :func:`cpu_ddp_kwargs`.
    """

    @functools.wraps(original)
    def __init__(self, module, detect_anomalous_params: bool = False,
                 **kwargs):
        original(self, module,
                 detect_anomalous_params=detect_anomalous_params,
                 **cpu_ddp_kwargs(module, kwargs))

    __init__._mmcsn_cpu = True
    return __init__
