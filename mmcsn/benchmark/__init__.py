"""The library under ``tools/analysis/benchmark.py``.

* :mod:`.twins` -- models A and B (a config and its comparison twin);
* :mod:`.timing` -- eval / train runners, interleaved rounds, GEMM runner;
* :mod:`.roofline` -- achieved GFLOP/s and fraction of the GEMM roof;
* :mod:`.memory` -- peak memory in a fresh process;
* :mod:`.profiling` -- top ops, one module class's share of a step;
* :mod:`.report` -- the Markdown table;
* :mod:`.blvnet_reference` -- the official bLVNet-TAM formulation, the
  ``official`` twin.

Not imported by ``import mmcsn``.
"""
from .memory import peak_memory, tensor_peak
from .profiling import module_share, top_ops
from .report import TABLE_HEADER, md_row, roofline_line
from .roofline import add_roofline, eval_gflop
from .timing import gemm_runner, make_runner, time_interleaved
from .twins import IMPLS, BenchSpec, build_models, is_trainable, max_abs_diff

__all__ = [
    'IMPLS', 'BenchSpec', 'build_models', 'is_trainable', 'max_abs_diff',
    'make_runner', 'gemm_runner', 'time_interleaved', 'eval_gflop',
    'add_roofline', 'peak_memory', 'tensor_peak', 'module_share', 'top_ops',
    'TABLE_HEADER', 'md_row', 'roofline_line'
]
