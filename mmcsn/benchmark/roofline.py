"""Achieved GFLOP/s of an eval forward against the fp32 GEMM roof.

The roof is the rate of an fp32 ``torch.mm`` of two ``size`` squares
(:func:`mmcsn.benchmark.gemm_runner`), timed in the same interleaved rounds
as the models and with the same threads, so that load on a shared machine
slows both alike. A model's FLOPs are 2 x its conv + linear multiply-adds
(:func:`mmcsn.utils.count_complexity`, the complexity tool's count): the
work a dense implementation must do, whatever its kernels.
"""
import statistics
from typing import Dict, List, Sequence

import torch.nn as nn

from mmcsn.utils import count_complexity

from .twins import BenchSpec

__all__ = ['eval_gflop', 'add_roofline']

# twins that run A's graph but cannot be counted themselves
_SAME_GRAPH = ('compile', 'onnxruntime')


def eval_gflop(models: Dict[str, nn.Module],
               spec: BenchSpec) -> Dict[str, float]:
    """GFLOP of one eval forward of each model at ``spec.shape``."""
    shape: Sequence[int] = spec.shape
    gflop = {'A': 2 * count_complexity(models['A'], shape)['macs'] / 1e9}
    if 'B' in models:
        gflop['B'] = (
            gflop['A'] if spec.compare_impl in _SAME_GRAPH else
            2 * count_complexity(models['B'], shape)['macs'] / 1e9)
    return gflop


def add_roofline(entry: dict, gemm_seconds: List[float], size: int,
                 gflop: Dict[str, float]) -> None:
    """Add ``entry['roof']`` and each model's ``gflop``,
    ``gflops_per_s`` and ``roof_fraction`` (from medians), and
    ``best_roof_fraction`` (from each side's fastest round: other load only
    ever adds time, so on a shared machine this is the steadier estimate).

    Args:
        entry (dict): One mode's results: name -> ``{'median_ms': ...,
            'times_ms': [...]}``.
        gemm_seconds (list[float]): The GEMM's timed calls.
        size (int): The GEMM's matrix size.
        gflop (dict): Name -> GFLOP of one call (:func:`eval_gflop`).
    """
    flop = 2 * size**3 / 1e9
    median = statistics.median(gemm_seconds)
    roof, best_roof = flop / median, flop / min(gemm_seconds)
    entry['roof'] = dict(
        size=size,
        median_ms=median * 1e3,
        times_ms=[t * 1e3 for t in gemm_seconds],
        gflops_per_s=roof,
        best_gflops_per_s=best_roof)
    for name, value in gflop.items():
        if name in entry:
            rate = value / (entry[name]['median_ms'] / 1e3)
            best = value / (min(entry[name]['times_ms']) / 1e3)
            entry[name].update(
                gflop=value,
                gflops_per_s=rate,
                roof_fraction=rate / roof,
                best_roof_fraction=best / best_roof)
