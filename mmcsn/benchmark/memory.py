"""Peak memory of one model and mode, measured in a fresh process.

A fresh process per (model, mode) so that neither the other model nor an
earlier mode's allocator cache counts::

    parent: peak_memory(spec, 'A', 'train')
      `-> python -c <_CHILD> '<spec JSON>' A train ...
            build A (B is never built) -> 2 calls -> JSON line on stdout

On CPU the figure is the peak of live tensor memory allocated by one call
(the profiler's allocation record replayed, :func:`tensor_peak`), plus the
peak RSS (``VmHWM``) growth over two calls (``rss_peak_bytes``, noisier:
allocator caching, other load); on CUDA ``max_memory_allocated``.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import warnings
from typing import Callable, Optional, Sequence

import torch

from .timing import Progress, make_runner
from .twins import BenchSpec, build_models

__all__ = ['peak_memory', 'tensor_peak']


def tensor_peak(run: Callable[[], None]) -> int:
    """Peak bytes of live CPU tensor memory allocated during ``run()``.

    Replays the profiler's allocation record (allocations inside each op,
    frees and allocations between ops) in time order. Unlike peak RSS it
    does not depend on the allocator's caching or on other processes.
    """
    from torch.profiler import profile

    with profile(profile_memory=True) as prof:
        run()
    deltas = []
    for event in prof.events():
        delta = (
            event.cpu_memory_usage
            if event.name == '[memory]' else event.self_cpu_memory_usage)
        if delta:
            deltas.append((event.time_range.start, delta))
    live = peak = 0
    for _, delta in sorted(deltas, key=lambda d: d[0]):
        live += delta
        peak = max(peak, live)
    return peak


def _status_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _measure(spec: BenchSpec, which: str, mode: str, device: str,
             input_grad: bool) -> dict:
    """In the child: peak memory of one model and mode."""
    model = build_models(spec)[which].to(device)  # the other one is freed
    device = torch.device(device)
    run = make_runner(model, spec.shape, mode, device, input_grad)
    if device.type == 'cuda':
        run()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        peak = torch.cuda.max_memory_allocated(device) - base
        return dict(peak_bytes=peak, base_bytes=base)
    base = _status_kb('VmRSS') * 1024
    run()
    run()
    rss = _status_kb('VmHWM') * 1024 - base
    return dict(peak_bytes=tensor_peak(run), rss_peak_bytes=rss)


def peak_memory(spec: BenchSpec,
                which: str,
                mode: str,
                device: str = 'cpu',
                input_grad: bool = False,
                malloc_tuning: bool = True,
                progress: Progress = None) -> dict:
    """Peak memory of model ``which`` (``'A'``/``'B'``) in ``mode``.

    Returns:
        dict: ``peak_bytes`` (and ``rss_peak_bytes`` on CPU,
        ``base_bytes`` on CUDA).
    """
    import mmcsn

    say = progress or (lambda line: None)
    cmd = [
        sys.executable, '-c', _CHILD,
        json.dumps(dataclasses.asdict(spec)), which, mode, '--device',
        device, '--malloc-tuning', 'on' if malloc_tuning else 'off'
    ]
    if input_grad:
        cmd.append('--input-grad')
    env = dict(os.environ)
    # the child imports this same mmcsn, installed or not
    root = os.path.dirname(os.path.dirname(os.path.abspath(mmcsn.__file__)))
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (root, env.get('PYTHONPATH')) if p)
    say(f'memory {which} {mode}: measuring in a fresh process ...')
    start = time.perf_counter()
    # the child's stderr (its progress, any error) reaches the user as is
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f'measuring the memory of {which} ({mode}) '
                           f'failed in its subprocess (exit status '
                           f'{out.returncode}; its error is printed above)')
    result = json.loads(out.stdout.strip().splitlines()[-1])
    say(f'memory {which} {mode}: {result["peak_bytes"] / 2**20:.0f} MB '
        f'({time.perf_counter() - start:.0f} s)')
    return result


# the child records the warnings importing mmcsn raises, then silences the
# known-harmless ones as every mmcsn entry point does
_CHILD = '''import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    from mmcsn.benchmark.memory import _child
_child(caught=caught)
'''


def _child(argv: Optional[list] = None, caught: Sequence = ()) -> None:
    """The child process: build one model, print its peak as JSON."""
    from mmcsn.utils.runtime import quiet_known_warnings

    quiet_known_warnings()
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    parser = argparse.ArgumentParser(prog='mmcsn.benchmark.memory')
    parser.add_argument('spec')
    parser.add_argument('which', choices=('A', 'B'))
    parser.add_argument('mode', choices=('eval', 'train'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--malloc-tuning', choices=('on', 'off'),
                        default='on')
    parser.add_argument('--input-grad', action='store_true')
    args = parser.parse_args(argv)
    spec = BenchSpec(**json.loads(args.spec))
    if args.malloc_tuning == 'on':
        from mmcsn.utils.runtime import tune_malloc
        tune_malloc()
    torch.set_num_threads(spec.threads)
    print(json.dumps(
        _measure(spec, args.which, args.mode, args.device, args.input_grad)))

