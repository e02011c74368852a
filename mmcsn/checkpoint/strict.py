"""Fit a state_dict to a module and name every key that does not fit."""
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional

import torch
import torch.nn as nn

from .errors import KeyMismatchError

__all__ = ['compare_state_dicts', 'describe_key_mismatch',
           'load_state_dict_checked']


def compare_state_dicts(own: Mapping[str, torch.Tensor],
                        loaded: Mapping[str, object]) -> Dict[str, list]:
    """Keys of ``loaded`` that do not fit a model whose state is ``own``.

    The one key comparison of mmcsn: :class:`~mmcsn.engine.StrictLoadHook`
    (``tools/test.py``, ``load_from``, ``--resume``) and
    :func:`load_state_dict_checked` (``tools/infer.py``, the converters,
    ``pretrained=``) both judge a file with it.

    Args:
        own (Mapping[str, Tensor]): ``model.state_dict()``.
        loaded (Mapping[str, object]): The checkpoint's weights.

    Returns:
        dict: ``missing``, ``unexpected`` and ``mismatched`` key lists.
    """
    mismatched = [
        k for k, v in loaded.items() if k in own and (
            not isinstance(v, torch.Tensor)
            or tuple(v.shape) != tuple(own[k].shape))
    ]
    return dict(
        # BatchNorm's step counter is not a weight, and torch itself fills
        # it in for checkpoints written before it existed (VMZ, caffe2)
        missing=[k for k in own if k not in loaded
                 and not k.endswith('.num_batches_tracked')],
        unexpected=[k for k in loaded if k not in own],
        mismatched=mismatched)


def describe_key_mismatch(missing: List[str],
                          unexpected: List[str],
                          mismatched: List[str],
                          limit: int = 5) -> str:
    """Summarise key problems by name (first ``limit``) and by count."""
    parts = []
    for label, keys in (('missing', missing), ('unexpected', unexpected),
                        ('shape-mismatched', mismatched)):
        if keys:
            shown = ', '.join(keys[:limit])
            more = f', ... (+{len(keys) - limit} more)' \
                if len(keys) > limit else ''
            parts.append(f'{len(keys)} {label} key(s): {shown}{more}')
    return '; '.join(parts)


def load_state_dict_checked(
        module: nn.Module,
        state_dict: Mapping[str, torch.Tensor],
        strict: bool = True,
        logger=None,
        allowed_missing: Optional[Callable[[str], bool]] = None,
        source: Optional[str] = None) -> Dict[str, List[str]]:
    """Load ``state_dict`` and report every key that did not fit.

    Unlike ``nn.Module.load_state_dict(strict=False)`` nothing is dropped
    silently: with ``strict=True`` any missing, unexpected or
    shape-mismatched key raises :class:`KeyMismatchError` naming the keys;
    with ``strict=False`` the fitting keys are loaded and what was skipped
    is logged (through ``logger`` or mmengine's current logger).

    ``allowed_missing`` names a group of the module's keys a source may
    lack as a whole (bLResNet's TAMs in an ImageNet file): they keep their
    init and are logged, but only when the state_dict has *none* of that
    group -- a file holding some of them is judged strictly.

    Args:
        module (nn.Module): The model to load into.
        state_dict (Mapping[str, Tensor]): The weights.
        strict (bool): Whether any mismatch is an error. Defaults to True.
        logger (logging.Logger, optional): Where to log skipped keys.
            Defaults to None (mmengine's ``MMLogger``).
        allowed_missing (Callable[[str], bool], optional): Predicate of
            the module keys that may be absent together. Defaults to None.
        source (str, optional): The file, named in the error. Defaults to
            None.

    Returns:
        dict: ``missing``, ``unexpected`` and ``mismatched`` key lists and
        ``kept_init`` (allowed-missing keys left at their init).
    """
    found = compare_state_dicts(module.state_dict(), state_dict)
    missing, unexpected, mismatched = (
        found['missing'], found['unexpected'], found['mismatched'])
    fitting = OrderedDict(
        (k, v) for k, v in state_dict.items() if k not in mismatched)
    kept_init = []
    if allowed_missing is not None and not any(
            allowed_missing(k) for k in state_dict):
        kept_init = [k for k in missing if allowed_missing(k)]
        missing = [k for k in missing if not allowed_missing(k)]
    report = dict(missing=missing, unexpected=unexpected,
                  mismatched=mismatched, kept_init=kept_init)
    summary = describe_key_mismatch(missing, unexpected, mismatched)
    what = f'checkpoint {source!r}' if source else 'state_dict'
    if summary and strict:
        raise KeyMismatchError(
            f'{what} does not fit {type(module).__name__}: {summary}. '
            'Pass strict=False to load the matching keys only.', source,
            report)
    module.load_state_dict(fitting, strict=False)
    if summary or kept_init:
        if logger is None:
            from mmengine.logging import MMLogger
            logger = MMLogger.get_current_instance()
        if summary:
            logger.warning(f'partial load into {type(module).__name__}, '
                           f'skipped {summary}')
        if kept_init:
            logger.warning(
                f'{what} has none of {len(kept_init)} '
                f'{type(module).__name__} tensors, which keep their init: '
                f'{", ".join(kept_init[:5])}'
                + (f', ... (+{len(kept_init) - 5} more)'
                   if len(kept_init) > 5 else ''))
    return report
