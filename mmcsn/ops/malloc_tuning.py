"""glibc malloc thresholds that stop per-call page faults on CPU.

With glibc's defaults, every buffer above the (dynamic) mmap threshold is
a fresh ``mmap`` and is returned to the kernel on free, so each conv call
first-touches its output again: 4,700-7,400 page faults per call, and an
ir-CSN-50 eval forward 1.5-1.8x slower than with the thresholds raised
(``docs/benchmarks.md``). :func:`tune_malloc` raises them with
``mallopt``; setting ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` before the process starts has the same effect.

The cost: memory freed by torch stays in the process (RSS does not shrink
after a peak) instead of going back to the OS.
"""
import ctypes
import ctypes.util
import os
import sys

__all__ = ['tune_malloc', 'OPT_OUT_ENV']

# set to 1 to make tune_malloc a no-op (e.g. memory-constrained servers)
OPT_OUT_ENV = 'MMCSN_NO_MALLOC_TUNING'

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_DEFAULT_THRESHOLD = 1 << 30  # 1 GiB; mallopt takes a C int


def tune_malloc(threshold: int = _DEFAULT_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds (no-op elsewhere).

    Args:
        threshold (int): Bytes for both thresholds; buffers below it are
            served from (and freed back to) the heap. At most ``2**31 - 1``.
            Defaults to 1 GiB.

    Returns:
        bool: True if glibc accepted both settings; False on other
        platforms/C libraries, when ``MMCSN_NO_MALLOC_TUNING=1``, or when
        the user already set the ``MALLOC_*_THRESHOLD_`` variables (their
        choice wins).
    """
    if not isinstance(threshold, int) or not 0 < threshold < 2**31:
        raise ValueError('threshold must be an int in (0, 2**31), got '
                         f'{threshold!r}')
    if os.environ.get(OPT_OUT_ENV, '0') not in ('', '0'):
        return False
    if ('MALLOC_MMAP_THRESHOLD_' in os.environ
            or 'MALLOC_TRIM_THRESHOLD_' in os.environ):
        return False
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.gnu_get_libc_version  # only glibc has it (not musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_trim = mallopt(_M_TRIM_THRESHOLD, threshold)
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, threshold)
    return bool(ok_trim and ok_mmap)
