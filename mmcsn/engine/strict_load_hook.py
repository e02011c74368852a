"""Refuse a checkpoint that does not fit the model, on every runner load.

mmengine's ``Runner.load_checkpoint`` -- used by ``tools/test.py``,
``load_from`` and ``--resume`` -- loads with ``strict=False``: a
checkpoint of another architecture (ip-CSN weights in an ir-CSN config,
width 16 into width 8) only logs a warning, and the test prints the
accuracy of partly random weights with exit status 0. Every runner load
calls ``after_load_checkpoint`` *before* the weights go in::

    Runner.load_checkpoint(file)            (test, load_from, resume)
      -> _load_checkpoint(file)             (mmcsn's checked reader)
      -> hooks.after_load_checkpoint(ckpt)  <- StrictLoadHook: compare
      -> load into the model, strict=False     keys and shapes, raise
      -> (resume) message hub, optimizer       or log what is skipped

so this hook, named in the config, makes MMAction2's own scripts strict
without forking them.
"""
import os.path as osp
import re
from typing import Dict, Mapping, Optional

import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmcsn.checkpoint.errors import KeyMismatchError, NoStateDictError
from mmcsn.checkpoint.strict import describe_key_mismatch
from mmcsn.validate import ArgSpec, Bool, Maybe

__all__ = ['StrictLoadHook', 'compare_state_dicts']

# the config key that opts out (``--cfg-options strict_load=False``)
CFG_KEY = 'strict_load'


def compare_state_dicts(own: Mapping[str, torch.Tensor],
                        loaded: Mapping[str, object]) -> Dict[str, list]:
    """Keys of ``loaded`` that do not fit a model whose state is ``own``.

    Args:
        own (Mapping[str, Tensor]): ``model.state_dict()``.
        loaded (Mapping[str, object]): The checkpoint's weights.

    Returns:
        dict: ``missing``, ``unexpected`` and ``mismatched`` key lists.
    """
    mismatched = [
        k for k, v in loaded.items() if k in own and (
            not isinstance(v, torch.Tensor) or v.shape != own[k].shape)
    ]
    return dict(
        # BatchNorm's step counter is not a weight, and torch itself fills
        # it in for checkpoints written before it existed (VMZ, caffe2)
        missing=[k for k in own if k not in loaded
                 and not k.endswith('.num_batches_tracked')],
        unexpected=[k for k in loaded if k not in own],
        mismatched=mismatched)


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Make ``tools/test.py``, ``load_from`` and ``--resume`` strict.

    At ``after_load_checkpoint`` the checkpoint's ``state_dict`` (with
    mmengine's ``module.`` prefix stripping) is compared with the model's:
    any missing, unexpected or shape-mismatched key raises
    :class:`~mmcsn.checkpoint.errors.KeyMismatchError` naming the first
    few of each and their counts, before any weight is loaded (and, on
    resume, before training starts). Partial loading is an explicit
    opt-in, ``strict=False`` here or ``--cfg-options strict_load=False``
    on the command line; it logs every skipped key.

    Example::

        custom_hooks = [dict(type='StrictLoadHook')]

    Args:
        strict (bool, optional): Refuse a checkpoint that does not fit.
            Defaults to None: the config's ``strict_load`` (True if
            unset).
    """

    priority = 'VERY_HIGH'

    @ArgSpec('StrictLoadHook', strict=Maybe(Bool()))
    def __init__(self, strict: Optional[bool] = None) -> None:
        self.strict = strict

    def _is_strict(self, runner) -> bool:
        if self.strict is not None:
            return self.strict
        value = getattr(runner, 'cfg', {}).get(CFG_KEY, True)
        if not isinstance(value, bool):
            raise TypeError(f'{CFG_KEY}={value!r} must be True or False')
        return value

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Compare the checkpoint with the model; refuse or log."""
        source = _source(runner)
        loaded = checkpoint.get('state_dict', checkpoint) \
            if isinstance(checkpoint, Mapping) else checkpoint
        if not isinstance(loaded, Mapping) or not any(
                isinstance(v, torch.Tensor) for v in loaded.values()):
            raise NoStateDictError(
                f'checkpoint {source!r} holds no state_dict: expected a '
                "mapping of tensors or a dict with a 'state_dict'", source)
        loaded = {re.sub(r'^module\.', '', k): v for k, v in loaded.items()}
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        report = compare_state_dicts(model.state_dict(), loaded)
        summary = describe_key_mismatch(**report)
        if not summary:
            return
        name = type(model).__name__
        if self._is_strict(runner):
            raise KeyMismatchError(
                f'checkpoint {source!r} does not fit the {name} of this '
                f'config: {summary}. It is probably from another model or '
                'width; to load only the matching keys pass --cfg-options '
                f'{CFG_KEY}=False', source, report)
        runner.logger.warning(
            f'{CFG_KEY}=False: partial load of {source!r} into {name}, '
            f'skipped {summary}; the skipped parameters keep their '
            'initial values')


def _source(runner) -> str:
    """The file the runner is loading (for messages)."""
    load_from: Optional[str] = getattr(runner, '_load_from', None)
    if load_from:
        return str(load_from)
    last = osp.join(getattr(runner, 'work_dir', ''), 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            return f.read().strip()
    return '<checkpoint>'
