"""Safe reading, strict loading and atomic writing of checkpoints.

Every checkpoint mmcsn touches -- converter inputs, ``pretrained=`` and
``init_cfg`` files -- goes through :func:`load_checkpoint_file`, which uses
``torch.load(weights_only=True)`` so a pickle cannot run code, and every
file mmcsn writes goes through :func:`save_checkpoint_atomic`, so a kill
mid-write never leaves a truncated checkpoint and nothing a user owns is
overwritten by accident.
"""
import os
import pickle
import struct
import tempfile
import zipfile
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Union

import torch
import torch.nn as nn

__all__ = [
    'CheckpointError', 'load_checkpoint_file', 'unwrap_state_dict',
    'save_checkpoint_atomic', 'load_state_dict_checked',
    'describe_key_mismatch'
]

StateDict = Dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, unsafe or does not fit a model."""


def load_checkpoint_file(path: Union[str, os.PathLike],
                         map_location: str = 'cpu') -> object:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path (str | PathLike): The file to read.
        map_location (str): Where tensors go. Defaults to ``'cpu'``.

    Returns:
        object: Whatever the file holds (a state_dict or a dict around one).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file is empty, truncated, not a torch
            checkpoint, or contains objects that would need code to load.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path!r}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path!r} is empty (0 bytes)')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _weights_only_detail(err)
        if any(word in detail for word in _UNSAFE_WORDS):
            raise CheckpointError(
                f'refused to load {path!r}: it contains objects outside the '
                f'weights-only allow-list (a pickle that may run code). '
                f'Details: {detail}') from err
        raise CheckpointError(
            f'cannot read {path!r} as a torch checkpoint (corrupt or not a '
            f'checkpoint): {detail}') from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            struct.error, IndexError, KeyError) as err:
        # struct.error / IndexError: a truncated legacy (non-zip) pickle
        raise CheckpointError(
            f'cannot read {path!r} as a torch checkpoint (truncated or '
            f'not a checkpoint): {type(err).__name__}: {err}') from err


# Words of torch's weights-only unpickler errors that mean "this pickle
# asks for a global / a call / an object outside the allow-list", as
# opposed to a malformed byte stream ("Unsupported operand ...").
_UNSAFE_WORDS = ('GLOBAL', 'global', 'reduce', 'allowlisted',
                 'new object', 'persistent_load')


def _weights_only_detail(err: Exception) -> str:
    """The unpickler's own reason, without torch's generic advice."""
    boilerplate = ('Weights only load failed', 'Please file an issue',
                   'Check the documentation', '(1)', '(2)')
    for line in str(err).splitlines():
        line = line.split('WeightsUnpickler error:')[-1].strip()
        if line and not line.startswith(boilerplate):
            return line
    return type(err).__name__


def unwrap_state_dict(obj: object,
                      prefixes: tuple = ('module.', )) -> StateDict:
    """Return the tensor state_dict inside a loaded checkpoint.

    Accepts a plain state_dict or a dict with ``'state_dict'``,
    ``'model'`` or ``'model_state'`` (PyTorchVideo), and strips any of
    ``prefixes`` (DataParallel's ``module.``) from the keys.

    Args:
        obj (object): What :func:`load_checkpoint_file` returned.
        prefixes (tuple[str]): Key prefixes to strip. Defaults to
            ``('module.',)``.

    Returns:
        OrderedDict[str, Tensor]: The state_dict, order kept.
    """
    if isinstance(obj, Mapping):
        for wrapper in ('state_dict', 'model', 'model_state'):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            'checkpoint holds no state_dict: expected a mapping of tensors, '
            "or a dict with a 'state_dict', 'model' or 'model_state' entry")
    out = OrderedDict()
    for key, value in obj.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def save_checkpoint_atomic(obj: object,
                           path: Union[str, os.PathLike],
                           force: bool = False,
                           protect: Optional[List[str]] = None) -> str:
    """Write ``obj`` with ``torch.save`` atomically.

    The data goes to a temporary file in the destination folder, is
    fsynced, and is renamed over ``path`` only when complete.

    Args:
        obj (object): What to save.
        path (str | PathLike): Destination.
        force (bool): Overwrite an existing ``path``. Defaults to False.
        protect (list[str], optional): Paths that must never be written
            (the converter's input). Defaults to None.

    Returns:
        str: The absolute path written.
    """
    path = os.path.abspath(os.fspath(path))
    for other in protect or []:
        other = os.path.abspath(os.fspath(other))
        if other == path or (os.path.exists(other) and os.path.exists(path)
                             and os.path.samefile(other, path)):
            raise ValueError(
                f'refusing to write {path!r}: it is the input file; choose '
                'another output path')
    if os.path.exists(path) and not force:
        raise FileExistsError(
            f'{path!r} exists; pass force=True (--force) to overwrite it')
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return path


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


def load_state_dict_checked(module: nn.Module,
                            state_dict: Mapping[str, torch.Tensor],
                            strict: bool = True,
                            logger=None) -> Dict[str, List[str]]:
    """Load ``state_dict`` and report every key that did not fit.

    Unlike ``nn.Module.load_state_dict(strict=False)`` nothing is dropped
    silently: with ``strict=True`` any missing, unexpected or
    shape-mismatched key raises :class:`CheckpointError` naming the keys;
    with ``strict=False`` the fitting keys are loaded and what was skipped
    is logged (through ``logger`` or mmengine's current logger).

    Args:
        module (nn.Module): The model to load into.
        state_dict (Mapping[str, Tensor]): The weights.
        strict (bool): Whether any mismatch is an error. Defaults to True.
        logger (logging.Logger, optional): Where to log skipped keys.
            Defaults to None (mmengine's ``MMLogger``).

    Returns:
        dict: ``missing``, ``unexpected`` and ``mismatched`` key lists.
    """
    own = module.state_dict()
    mismatched = [
        k for k, v in state_dict.items()
        if k in own and tuple(own[k].shape) != tuple(v.shape)
    ]
    fitting = OrderedDict(
        (k, v) for k, v in state_dict.items() if k not in mismatched)
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    report = dict(
        missing=missing, unexpected=unexpected, mismatched=mismatched)
    summary = describe_key_mismatch(missing, unexpected, mismatched)
    if summary and strict:
        raise CheckpointError(
            f'state_dict does not fit {type(module).__name__}: {summary}. '
            'Pass strict=False to load the matching keys only.')
    module.load_state_dict(fitting, strict=False)
    if summary:
        if logger is None:
            from mmengine.logging import MMLogger
            logger = MMLogger.get_current_instance()
        logger.warning(f'partial load into {type(module).__name__}, '
                       f'skipped {summary}')
    return report
