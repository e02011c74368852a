"""Why a checkpoint cannot be used: one exception class per reason.

Every error is a :class:`CheckpointError` (a ``ValueError``) whose message
names the file and says the reason in fixed words, so a CLI prints it as
one line and a caller can branch on the class (or on ``reason``) instead
of parsing text. The classes for a missing file, a directory, a missing
permission and an existing output are also the matching ``OSError``
subclasses, so ``except FileNotFoundError`` keeps working.

================================  =========================================
class                             words in the message
================================  =========================================
CheckpointNotFoundError           ``not found``
CheckpointIsADirectoryError       ``is a directory``
CheckpointPermissionError         ``no permission``
CorruptCheckpointError            ``is corrupt or truncated``
UnsafeCheckpointError             ``refused to load ... would run code``
WrongFamilyError                  ``wrong model family``
NoStateDictError                  ``holds no state_dict``
KeyMismatchError                  ``does not fit``
OutputExistsError                 ``exists; pass --force``
ChecksumError                     ``sha256 mismatch``
DownloadError                     ``cannot download``
================================  =========================================
"""
from typing import Optional

__all__ = [
    'CheckpointError', 'CheckpointNotFoundError',
    'CheckpointIsADirectoryError', 'CheckpointPermissionError',
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'WrongFamilyError',
    'NoStateDictError', 'KeyMismatchError', 'OutputExistsError',
    'ChecksumError', 'DownloadError', 'os_error'
]


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, unsafe or does not fit a model.

    Args:
        message (str): The whole message (names the file and the reason).
        path (str, optional): The file concerned. Defaults to None.
    """

    reason = 'unusable checkpoint'

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The file does not exist."""
    reason = 'not found'


class CheckpointIsADirectoryError(CheckpointError, IsADirectoryError):
    """A directory was given where a file is needed."""
    reason = 'is a directory'


class CheckpointPermissionError(CheckpointError, PermissionError):
    """The file cannot be read, or the output cannot be written."""
    reason = 'no permission'


class CorruptCheckpointError(CheckpointError):
    """Empty, truncated, damaged or not a checkpoint at all."""
    reason = 'corrupt or truncated'


class UnsafeCheckpointError(CheckpointError):
    """The pickle needs objects that could run code: refused unread."""
    reason = 'would run code'


class WrongFamilyError(CheckpointError):
    """A readable checkpoint of another model family or layout."""
    reason = 'wrong model family'


class NoStateDictError(CheckpointError):
    """A readable file that holds no weights (no tensor mapping)."""
    reason = 'holds no state_dict'


class KeyMismatchError(CheckpointError):
    """Weights of the right family that do not fit the model built.

    ``report`` holds the ``missing`` / ``unexpected`` / ``mismatched``
    key lists.
    """
    reason = 'does not fit'

    def __init__(self, message: str, path: Optional[str] = None,
                 report: Optional[dict] = None) -> None:
        super().__init__(message, path)
        self.report = report or {}


class OutputExistsError(CheckpointError, FileExistsError):
    """The output exists and ``--force`` (``force=True``) was not given."""
    reason = 'exists'


class ChecksumError(CheckpointError):
    """A downloaded or cached file's sha256 is not the expected one."""
    reason = 'sha256 mismatch'


class DownloadError(CheckpointError):
    """A URL could not be fetched and no cached copy exists."""
    reason = 'cannot download'


def os_error(err: OSError, path: str, role: str = 'checkpoint',
             action: str = 'read') -> CheckpointError:
    """Turn an ``OSError`` about ``path`` into a one-line reason.

    Args:
        err (OSError): What the OS said.
        path (str): The path concerned.
        role (str): What the path is ('checkpoint', 'output', ...).
        action (str): 'read' or 'write'.

    Returns:
        CheckpointError: The matching subclass, message naming the path.
    """
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return CheckpointNotFoundError(f'{role} not found: {path!r}', path)
    if isinstance(err, IsADirectoryError):
        return CheckpointIsADirectoryError(
            f'{role} {path!r} is a directory, not a file', path)
    if isinstance(err, PermissionError):
        return CheckpointPermissionError(
            f'no permission to {action} {role} {path!r} '
            f'({err.strerror or err})', path)
    return CheckpointError(
        f'cannot {action} {role} {path!r}: {err.strerror or err}', path)
