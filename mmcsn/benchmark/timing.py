"""Timed calls: eval forward / train step runners, interleaved rounds, and
the machine's fp32 GEMM roof measured in the same rounds.

Rounds run every model once, the order reversed every other round, so slow
phases of a shared machine hit A and B (and the GEMM roof) alike::

    warmup x (A, B, gemm)  ->  round 0: A B gemm | round 1: gemm B A | ...
"""
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from mmcsn.utils import recognizer_forward

__all__ = ['gemm_runner', 'make_runner', 'time_interleaved']

Progress = Optional[Callable[[str], None]]


def make_runner(model: nn.Module,
                shape: Sequence[int],
                mode: str,
                device: torch.device,
                input_grad: bool = False) -> Callable[[], None]:
    """A closure running one eval forward or one train step.

    Args:
        model (nn.Module): The model; switched to ``mode``.
        shape (Sequence[int]): Backbone input shape.
        mode (str): ``'eval'`` (forward under ``no_grad``) or ``'train'``
            (forward + backward of ``output.sum()``, grads reset, no
            optimizer).
        device (torch.device): Where the input lives.
        input_grad (bool): Train steps also compute the input gradient.
    """
    if mode not in ('eval', 'train'):
        raise ValueError(f"mode={mode!r}: expected 'eval' or 'train'")
    forward = recognizer_forward(
        model, shape, random=True,
        requires_grad=input_grad and mode == 'train')
    if mode == 'eval':
        model.eval()

        def run():
            with torch.no_grad():
                forward(device)
    else:
        model.train()

        def run():
            out = forward(device)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.float().sum().backward()
            for p in model.parameters():
                p.grad = None
            for x in forward.inputs.values():
                x.grad = None

    return run


def gemm_runner(size: int, device: torch.device) -> Callable[[], None]:
    """A closure running one fp32 ``torch.mm`` of two ``size`` squares.

    Its rate, ``2 * size**3`` FLOPs per call, is the roof a conv net's
    eval forward is measured against (same process, same threads).
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f'GEMM size must be a positive int, got {size!r}')
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)

    def run():
        torch.mm(a, b)

    run.flops = 2 * size**3
    return run


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(runs: Dict[str, Callable[[], None]],
                     iters: int,
                     warmup: int,
                     device: torch.device,
                     progress: Progress = None,
                     label: str = '') -> Dict[str, List[float]]:
    """Seconds per call of each runner, interleaved, order swapped.

    Args:
        runs (dict): Name -> closure.
        iters (int): Timed rounds.
        warmup (int): Untimed calls of each runner first.
        device (torch.device): Synchronised around CUDA calls.
        progress (Callable, optional): Called with one line per phase and
            per round (e.g. ``print`` to stderr).
        label (str): Prefix of the progress lines.
    """
    say = progress or (lambda line: None)
    for name, run in runs.items():
        for i in range(warmup):
            say(f'{label}warmup {i + 1}/{warmup} {name}')
            run()
    times = {name: [] for name in runs}
    names = list(runs)
    for i in range(iters):
        for name in (names if i % 2 == 0 else names[::-1]):
            _sync(device)
            start = time.perf_counter()
            runs[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
        say(f'{label}round {i + 1}/{iters}: ' + ', '.join(
            f'{name} {times[name][-1] * 1e3:.1f} ms' for name in names))
    return times
