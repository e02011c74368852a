"""Process set-up of mmcsn's own entry points (``tools/*.py``).

One home for what a training / testing / inference *process* (not a
library user) changes about itself, applied by
:func:`prepare_entry_process` at the top of every mmcsn tool:

* glibc malloc thresholds (:func:`tune_malloc`): with glibc's defaults,
  every buffer above the (dynamic) mmap threshold is a fresh ``mmap``
  returned to the kernel on free, so each conv call first-touches its
  output again: 4,700-7,400 page faults per call, and an ir-CSN-50 eval
  forward 1.5-1.8x slower than with the thresholds raised
  (``docs/benchmarks.md``). Setting ``MALLOC_MMAP_THRESHOLD_`` and
  ``MALLOC_TRIM_THRESHOLD_`` before the process starts has the same
  effect. The cost: memory freed by torch stays in the process (RSS does
  not shrink after a peak).
* known-harmless upstream warnings (:data:`KNOWN_WARNINGS`), silenced by
  exact message, never at ``import mmcsn``: a library user keeps every
  warning.

The versions a run used are logged into the work dir's log by
:class:`mmcsn.engine.VersionInfoHook` (which mmcsn's entry points add).
"""
import ctypes
import ctypes.util
import logging
import os
import re
import sys
import warnings
from typing import Sequence, Tuple

__all__ = [
    'tune_malloc', 'OPT_OUT_ENV', 'KNOWN_WARNINGS', 'KNOWN_LOG_WARNINGS',
    'quiet_known_warnings', 'prepare_entry_process'
]

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


# (category, start of the message) of Python warnings every mmcsn command
# printed on this stack, each harmless for mmcsn:
KNOWN_WARNINGS: Tuple[Tuple[type, str], ...] = (
    # mmcv-lite has no compiled ops; mmcsn never uses mmcv.ops
    (UserWarning, 'Fail to import ``MultiScaleDeformableAttention``'),
    # mmengine imports pkg_resources (pinned setuptools<82 keeps it)
    (UserWarning, 'pkg_resources is deprecated as an API'),
)
# Starts of mmengine logger WARNING lines with the same status: DecordInit's
# io_backend='disk' builds a FileClient (deprecated name, same backend).
KNOWN_LOG_WARNINGS: Tuple[str, ...] = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


class _KnownLogWarnings(logging.Filter):
    """Drops :data:`KNOWN_LOG_WARNINGS` records; keeps everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        return not message.startswith(KNOWN_LOG_WARNINGS)


def quiet_known_warnings() -> None:
    """Silence :data:`KNOWN_WARNINGS` and :data:`KNOWN_LOG_WARNINGS`.

    Only the exact messages are matched, so any other warning (from the
    same modules too) still shows. Call it in entry points, before
    importing mmcsn/mmaction (the import warnings come first); idempotent.
    """
    for category, start in KNOWN_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=re.escape(start), category=category)
    from mmengine.logging import MMLogger

    # Every runner creates its own MMLogger (named after the run) after
    # this call, so the filter goes on the class: Logger.handle asks
    # self.filter(), which walks the instance's filters.
    if not getattr(MMLogger, '_mmcsn_quiet', False):
        known = _KnownLogWarnings()
        original = MMLogger.filter

        def _filter(self, record):
            return known.filter(record) and original(self, record)

        MMLogger.filter = _filter
        MMLogger._mmcsn_quiet = True


def prepare_entry_process(caught: Sequence[warnings.WarningMessage] = (),
                          malloc_tuning: bool = True) -> None:
    """What every mmcsn entry point does first.

    Silences the known warnings (:func:`quiet_known_warnings`), shows the
    other ``caught`` ones, and raises the malloc thresholds
    (:func:`tune_malloc`; opt out with ``MMCSN_NO_MALLOC_TUNING=1``).
    Importing this module imports mmcsn, which is when the upstream
    warnings fire, so a tool records them and hands them over::

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            from mmcsn.utils.runtime import prepare_entry_process
        prepare_entry_process(caught)

    Args:
        caught (Sequence[WarningMessage]): Warnings recorded while
            importing; the unknown ones are re-issued (through the
            normal filters). Defaults to none.
        malloc_tuning (bool): Raise the malloc thresholds. False for a
            tool that measures the default allocator (``benchmark.py
            --malloc-tuning off``). Defaults to True.
    """
    quiet_known_warnings()
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if malloc_tuning:
        tune_malloc()
