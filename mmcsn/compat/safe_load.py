"""Let ``torch.load(weights_only=True)`` read mmengine's own checkpoints.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, which
rejects the few non-tensor objects mmengine writes into every checkpoint
(the ``HistoryBuffer`` of its message hub, numpy scalars and arrays).
``tools/test.py``, ``--resume`` and ``init_recognizer`` then fail on files
mmengine wrote itself. We allow exactly those globals -- nothing that can
run code -- and keep ``weights_only`` on. Never set
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``: it re-enables arbitrary pickles.
"""
import builtins
from typing import List

import numpy as np
import torch

__all__ = ['mmengine_safe_globals', 'install_safe_globals']


def mmengine_safe_globals() -> List[object]:
    """The globals found in checkpoints written by mmengine's runner.

    Returns:
        list: Classes and functions to pass to
        ``torch.serialization.add_safe_globals``.
    """
    from mmengine.logging import HistoryBuffer
    core = getattr(np, '_core', None) or np.core  # numpy 2 vs 1
    allowed = [
        HistoryBuffer,
        core.multiarray.scalar,
        core.multiarray._reconstruct,
        np.ndarray,
        np.dtype,
        # numpy pickles a scalar as scalar(dtype, bytes) and an array via
        # _reconstruct; both look dtypes up with ``getattr``. getattr on
        # the allow-listed numpy objects above cannot reach code.
        builtins.getattr,
    ]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes)
                    if n.endswith('DType')]
    return allowed


def install_safe_globals() -> None:
    """Register :func:`mmengine_safe_globals` with torch (idempotent)."""
    torch.serialization.add_safe_globals(mmengine_safe_globals())
