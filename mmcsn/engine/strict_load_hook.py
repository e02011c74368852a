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
      -> (resume) message hub, optimizer       or log what is skipped;
                                               vet the message hub's
                                               paths mmengine deletes

so this hook, named in the config, makes MMAction2's own scripts strict
without forking them.
"""
import os.path as osp
import re
from typing import Mapping, Optional

import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmcsn.checkpoint.errors import (
    KeyMismatchError,
    NoStateDictError,
    UnsafeCheckpointError,
)
from mmcsn.checkpoint.strict import compare_state_dicts, describe_key_mismatch
from mmcsn.validate import ArgSpec, Bool, Maybe

__all__ = ['StrictLoadHook', 'compare_state_dicts']

# the config key that opts out (``--cfg-options strict_load=False``)
CFG_KEY = 'strict_load'


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

    Whatever ``strict`` is, the checkpoint's message hub is vetted first
    (see :func:`_check_message_hub`): paths mmengine's ``CheckpointHook``
    would delete on resume must be ``best_*.pth`` files in the work dir.

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
        """Check the message hub, compare the weights; refuse or log."""
        source = _source(runner)
        _check_message_hub(runner, checkpoint, source)
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


# mmengine's CheckpointHook names its best checkpoints
# ``best_<indicator>_<epoch_N|iter_N>.pth`` (``_save_best_checkpoint``)
_BEST_NAME = re.compile(r'^best_.+\.pth$')


def _check_message_hub(runner, checkpoint: object, source: str) -> None:
    """Refuse or drop the paths a resumed message hub makes mmengine delete.

    On resume mmengine's ``CheckpointHook`` takes ``best_ckpt`` /
    ``best_ckpt_<key>`` from the checkpoint's message hub and removes that
    path (file or whole directory) at the first better score, and formats
    each ``keep_ckpt_ids`` entry into a file name it removes. Both are
    data from the file, so a crafted checkpoint could delete anything the
    user can. This runs before mmengine applies the hub (``Runner.resume``
    calls ``load_checkpoint`` -> ``after_load_checkpoint`` first): a
    ``keep_ckpt_ids`` that is not a list of ints is refused, and a best
    path that is not a ``best_*.pth`` inside ``runner.work_dir`` is
    dropped with a warning (a checkpoint resumed from another work dir
    then simply keeps its old best file).
    """
    hub = checkpoint.get('message_hub') \
        if isinstance(checkpoint, Mapping) else None
    info = hub.get('runtime_info') if isinstance(hub, Mapping) \
        else getattr(hub, 'runtime_info', None)
    if not isinstance(info, dict):
        return
    ids = info.get('keep_ckpt_ids', [])
    if not isinstance(ids, (list, tuple)) or not all(
            type(i) is int for i in ids):
        raise UnsafeCheckpointError(
            f'refused to resume from {source!r}: its message hub\'s '
            f'keep_ckpt_ids={_short(ids)} is not a list of ints; mmengine '
            'would delete the files it names', source)
    work_dir = osp.realpath(str(getattr(runner, 'work_dir', '')))
    for key in [k for k in info
                if k == 'best_ckpt' or str(k).startswith('best_ckpt_')]:
        path = info[key]
        if isinstance(path, str) and _is_own_best(path, work_dir):
            continue
        del info[key]
        runner.logger.warning(
            f'{source!r}: dropped message hub entry {key}={_short(path)} '
            f'(not a best_*.pth in the work dir {work_dir!r}); mmengine '
            'would delete it when a better checkpoint is saved')


def _is_own_best(path: str, work_dir: str) -> bool:
    """Whether ``path`` (and what it resolves to) is a ``best_*.pth`` in
    ``work_dir``: the only kind of file mmengine's hook writes there."""
    real = osp.realpath(path)
    return bool(_BEST_NAME.match(osp.basename(path))
                and _BEST_NAME.match(osp.basename(real))
                and osp.commonpath([work_dir, real]) == work_dir)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'
