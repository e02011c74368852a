"""Safe reading, unwrapping and atomic writing of checkpoint files.

Reading uses ``torch.load(weights_only=True)`` (a pickle cannot run code)
and turns every way a file can be unusable into one
:mod:`~mmcsn.checkpoint.errors` class with fixed words; writing goes to a
temporary file that is fsynced and then given its final name in one step,
exclusively unless ``force``, so a kill mid-write never leaves a truncated
checkpoint and two writers never silently replace each other's output.
"""
import os
import pickle
import stat
import tempfile
from collections import OrderedDict
from typing import BinaryIO, Callable, Dict, List, Mapping, Optional, Union

import numpy as np
import torch

from .errors import (
    CheckpointError,
    CheckpointIsADirectoryError,
    CorruptCheckpointError,
    NoStateDictError,
    OutputExistsError,
    UnsafeCheckpointError,
    os_error,
)
from .strict import describe_key_mismatch, load_state_dict_checked

__all__ = [
    'CheckpointError', 'atomic_write', 'check_readable', 'check_output',
    'checkpoint_kind', 'load_checkpoint_file', 'unwrap_state_dict',
    'save_checkpoint_atomic', 'load_state_dict_checked',
    'describe_key_mismatch'
]

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, os.PathLike]

# torch.save's legacy (non-zip) format starts with a pickle of this number.
_LEGACY_MAGIC = b'\x8a\n' + torch.serialization.MAGIC_NUMBER.to_bytes(
    10, 'little')
_ZIP_MAGIC = b'PK\x03\x04'


def check_readable(path: PathLike, role: str = 'checkpoint') -> str:
    """Return ``path`` as str if it is a non-empty readable regular file.

    Raises:
        CheckpointError: The subclass for not found / is a directory / no
            permission / empty (corrupt) / not a regular file.
    """
    path = os.fspath(path)
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise CheckpointIsADirectoryError(
                f'{role} {path!r} is a directory, not a file', path)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(
                f'{role} {path!r} is not a regular file', path)
        if info.st_size == 0:
            raise CorruptCheckpointError(
                f'{role} {path!r} is corrupt or truncated: it is empty '
                '(0 bytes)', path)
        with open(path, 'rb'):
            pass
    except OSError as err:
        raise os_error(err, path, role) from err
    return path


def checkpoint_kind(path: PathLike) -> str:
    """``'torch'`` for a ``torch.save`` file (zip or legacy), else
    ``'pickle'`` (a bare pickle such as VMZ's caffe2 blobs)."""
    with open(path, 'rb') as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC) or _LEGACY_MAGIC in head[:32]:
        return 'torch'
    return 'pickle'


def load_checkpoint_file(path: PathLike,
                         map_location: str = 'cpu') -> object:
    """Read a ``torch.save`` file with ``torch.load(weights_only=True)``.

    Args:
        path (str | PathLike): The file to read.
        map_location (str): Where tensors go. Defaults to ``'cpu'``.

    Returns:
        object: Whatever the file holds (a state_dict or a dict around one).

    Raises:
        CheckpointNotFoundError: ``path`` does not exist (also a
            ``FileNotFoundError``).
        CheckpointIsADirectoryError: ``path`` is a directory.
        CheckpointPermissionError: ``path`` cannot be read.
        CorruptCheckpointError: Empty, truncated, damaged or not a torch
            checkpoint.
        UnsafeCheckpointError: The pickle needs objects outside the
            weights-only allow-list (it could run code); nothing was run.
    """
    path = check_readable(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise  # a restricted allow-listed callable refused something
    except pickle.UnpicklingError as err:
        detail = _weights_only_detail(err)
        if any(word in detail for word in _UNSAFE_WORDS):
            raise UnsafeCheckpointError(
                f'refused to load {path!r}: it would run code (it needs '
                'objects outside the weights-only allow-list). Details: '
                f'{detail}', path) from err
        raise CorruptCheckpointError(
            f'checkpoint {path!r} is corrupt or truncated (or not a torch '
            f'checkpoint): {detail}', path) from err
    except OSError as err:
        raise os_error(err, path) from err
    except Exception as err:
        # A damaged byte stream surfaces as whatever the parser hit first:
        # EOFError, RuntimeError (zip), AssertionError / struct.error /
        # IndexError / KeyError (legacy pickle), UnicodeDecodeError, ...
        raise CorruptCheckpointError(
            f'checkpoint {path!r} is corrupt or truncated (or not a torch '
            f'checkpoint): {type(err).__name__}: {_first_line(err)}',
            path) from err


# Words of torch's weights-only unpickler errors that mean "this pickle
# asks for a global / a call / an object outside the allow-list", as
# opposed to a malformed byte stream ("Unsupported operand ...").
_UNSAFE_WORDS = ('GLOBAL', 'global', 'reduce', 'allowlisted', 'allowed',
                 'new object', 'persistent_load', 'refus')


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ''


def _weights_only_detail(err: Exception) -> str:
    """The unpickler's own reason, without torch's generic advice."""
    boilerplate = ('Weights only load failed', 'Please file an issue',
                   'Check the documentation', '(1)', '(2)')
    for line in str(err).splitlines():
        line = line.split('WeightsUnpickler error:')[-1].strip()
        if line and not line.startswith(boilerplate):
            return line
    return type(err).__name__


# Wrappers a state_dict comes in: mmengine / most repos, torchvision-style
# training scripts, PyTorchVideo, VMZ caffe2 pickles.
_WRAPPERS = ('state_dict', 'model', 'model_state', 'blobs')


def unwrap_state_dict(obj: object,
                      prefixes: tuple = ('module.', )) -> StateDict:
    """Return the weights inside a loaded checkpoint.

    Peels one ``'state_dict'`` / ``'model'`` / ``'model_state'`` /
    ``'blobs'`` wrapper and strips any of ``prefixes`` (DataParallel's
    ``module.``). Values are tensors, or numpy arrays for caffe2 blobs
    (the converters turn those into tensors).

    Args:
        obj (object): What :func:`load_checkpoint_file` returned.
        prefixes (tuple[str]): Key prefixes to strip. Defaults to
            ``('module.',)``.

    Returns:
        OrderedDict[str, Tensor | ndarray]: The weights, order kept.

    Raises:
        NoStateDictError: ``obj`` holds no mapping of tensors / arrays.
    """
    if isinstance(obj, Mapping):
        for wrapper in _WRAPPERS:
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    weights = (torch.Tensor, np.ndarray)
    if not isinstance(obj, Mapping) or not any(
            isinstance(v, weights) for v in obj.values()):
        raise NoStateDictError(
            'checkpoint holds no state_dict: expected a mapping of tensors, '
            f'or a dict with one of {list(_WRAPPERS)}; got '
            + (f'keys {list(obj)[:5]}' if isinstance(obj, Mapping) else
               f'a {type(obj).__name__}'))
    out = OrderedDict()
    for key, value in obj.items():
        for prefix in prefixes:
            if isinstance(key, str) and key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def save_checkpoint_atomic(obj: object,
                           path: PathLike,
                           force: bool = False,
                           protect: Optional[List[PathLike]] = None) -> str:
    """Write ``obj`` with ``torch.save``, atomically and exclusively.

    See :func:`atomic_write` (this is ``atomic_write(path, lambda f:
    torch.save(obj, f), force, protect)``).

    Args:
        obj (object): What to save.
        path (str | PathLike): Destination.
        force (bool): Overwrite an existing ``path``. Defaults to False.
        protect (list[str], optional): Paths that must never be written
            (the converter's input). Defaults to None.

    Returns:
        str: The absolute path written.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        CheckpointIsADirectoryError: ``path`` is a directory.
        CheckpointPermissionError: The folder is not writable.
        ValueError: ``path`` is one of ``protect``.
    """
    return atomic_write(path, lambda f: torch.save(obj, f), force, protect)


def atomic_write(path: PathLike,
                 write: Callable[[BinaryIO], None],
                 force: bool = False,
                 protect: Optional[List[PathLike]] = None) -> str:
    """Write a file atomically and, unless ``force``, exclusively.

    ``write`` fills a temporary file in the destination folder (created
    if missing), which is fsynced. Without ``force`` it then gets its
    final name with ``os.link``, which fails if the name exists -- so of
    two writers racing for one new output exactly one wins and the other
    gets :class:`OutputExistsError`; with ``force`` ``os.replace`` swaps
    it in. Either way a reader sees the old file or the complete new
    one, a failed ``write`` leaves nothing behind, and the folder is
    fsynced so the rename survives a crash. The mode follows the umask
    (``0o666 & ~umask``), as ``open()`` would. The one home of atomic
    output: checkpoints, extracted features, ONNX exports.

    Args:
        path (str | PathLike): Destination.
        write (Callable[[BinaryIO], None]): Called once with the open
            binary temporary file.
        force (bool): Overwrite an existing ``path``. Defaults to False.
        protect (list[str], optional): Paths that must never be written
            (a tool's inputs). Defaults to None.

    Returns:
        str: The absolute path written.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        CheckpointIsADirectoryError: ``path`` is a directory.
        CheckpointPermissionError: The folder is not writable.
        ValueError: ``path`` is one of ``protect``.
    """
    path = check_output(path, force, protect)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
            dir=folder)
    except OSError as err:
        raise os_error(err, folder, 'output folder', 'write') from err
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600
        if force:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    except CheckpointError:
        raise
    except OSError as err:
        raise os_error(err, path, 'output', 'write') from err
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_dir(folder)
    return path


def check_output(path: PathLike,
                 force: bool = False,
                 protect: Optional[List[PathLike]] = None) -> str:
    """Refuse an output early, before any work: the same checks as
    :func:`save_checkpoint_atomic` (which repeats them race-free).

    Returns:
        str: The absolute output path.

    Raises:
        ValueError: ``path`` is one of ``protect``.
        CheckpointIsADirectoryError: ``path`` is a directory.
        OutputExistsError: ``path`` exists and ``force`` is False.
        CheckpointPermissionError: Its folder cannot be written.
    """
    path = os.path.abspath(os.fspath(path))
    for other in protect or []:
        other = os.path.abspath(os.fspath(other))
        if other == path or (os.path.exists(other) and os.path.exists(path)
                             and os.path.samefile(other, path)):
            raise ValueError(
                f'refusing to write {path!r}: it is the input file; choose '
                'another output path')
    if os.path.isdir(path):
        raise CheckpointIsADirectoryError(
            f'output {path!r} is a directory; give a file name', path)
    if os.path.lexists(path) and not force:
        raise _exists(path)
    folder = os.path.dirname(path)
    probe_in = folder
    while not os.path.isdir(probe_in):  # the nearest existing ancestor
        probe_in = os.path.dirname(probe_in)
    try:  # a probe file: os.access would not see ACLs, read-only mounts
        fd, probe = tempfile.mkstemp(prefix='.mmcsn-probe.', dir=probe_in)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise os_error(err, probe_in, 'output folder', 'write') from err
    return path


def _exists(path: str) -> OutputExistsError:
    return OutputExistsError(
        f'output {path!r} exists; pass --force (force=True) to overwrite '
        'it', path)


def _link_exclusive(tmp: str, path: str) -> None:
    """Give ``tmp`` the name ``path`` only if nothing has that name."""
    try:
        os.link(tmp, path)  # fails with EEXIST, atomically
    except FileExistsError:
        raise _exists(path) from None
    except OSError:
        # no hard links here (some FUSE / FAT mounts): reserve the name
        # exclusively, then move the complete file over the reservation
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise _exists(path) from None
        os.replace(tmp, path)


def _umask() -> int:
    """The process umask, read without changing it where possible."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: set and restore at once
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

