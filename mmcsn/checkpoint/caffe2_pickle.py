"""Read VMZ caffe2 blob pickles without letting them run code.

The VMZ caffe2 model zoo (``facebookresearch/VMZ``, ``c2/``) publishes
pickles of ``{'blobs': {name: numpy array}}``, often written by Python 2.
They are not ``torch.save`` files, so ``torch.load`` cannot read them; a
restricted unpickler rebuilds numpy arrays, dtypes and scalars only, and
any other global in the pickle (a crafted file that would run code) is
refused before anything is called.
"""
import importlib
import importlib.util
import pickle

from .errors import (
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)
from .io import check_readable

__all__ = ['ALLOWED_GLOBALS', 'BlobUnpickler', 'load_caffe2_pickle']

# The only globals a pickle of numpy arrays needs; everything else is
# refused, so unpickling cannot call arbitrary code.
ALLOWED_GLOBALS = frozenset([
    ('numpy', 'ndarray'),  # array type given to _reconstruct
    ('numpy', 'dtype'),  # dtype objects
    ('numpy.core.multiarray', '_reconstruct'),  # arrays, numpy 1 / py2
    ('numpy._core.multiarray', '_reconstruct'),  # arrays, numpy 2
    ('numpy.core.multiarray', 'scalar'),  # numpy scalars (lr, iter)
    ('numpy._core.multiarray', 'scalar'),  # numpy scalars, numpy 2
    ('numpy.core.numeric', '_frombuffer'),  # arrays, protocol 5
    ('numpy._core.numeric', '_frombuffer'),  # arrays, protocol 5, numpy 2
    ('_codecs', 'encode'),  # bytes in protocol-2 pickles made by py3
    ('collections', 'OrderedDict'),  # an ordered blob dict
])


class _Refused(pickle.UnpicklingError):
    """A global outside :data:`ALLOWED_GLOBALS` (not a damaged stream)."""


class BlobUnpickler(pickle.Unpickler):
    """Unpickler that only resolves :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> object:
        """Resolve an allowed global; refuse everything else."""
        if (module, name) not in ALLOWED_GLOBALS:
            raise _Refused(
                f'global {module}.{name} is not allowed in a caffe2 blob '
                'pickle (only numpy arrays are)')
        if module.startswith('numpy.core.') and importlib.util.find_spec(
                'numpy._core') is not None:
            # numpy 2 moved numpy.core to numpy._core (old name warns)
            module = 'numpy._core.' + module[len('numpy.core.'):]
        return getattr(importlib.import_module(module), name)


def load_caffe2_pickle(path: str) -> dict:
    """Read a caffe2 blob pickle safely.

    Args:
        path (str): The ``.pkl`` file.

    Returns:
        dict: The unpickled dict (``{'blobs': {...}}`` or the blobs).

    Raises:
        CheckpointError: Not found / is a directory / no permission
            (subclasses as for :func:`load_checkpoint_file`).
        UnsafeCheckpointError: A global outside the numpy allow-list.
        CorruptCheckpointError: Truncated, damaged, not a pickle, or not a
            dict.
    """
    path = check_readable(path)
    try:
        with open(path, 'rb') as f:
            # latin1: Python 2 str holds raw bytes (numpy array data)
            obj = BlobUnpickler(f, encoding='latin1').load()
    except _Refused as err:
        raise UnsafeCheckpointError(
            f'refused to load {path!r}: it would run code ({err})',
            path) from err
    except CheckpointError:
        raise
    except Exception as err:
        # a damaged stream: UnpicklingError ("truncated"), EOFError,
        # ValueError, TypeError, ... from the opcodes it hit
        raise CorruptCheckpointError(
            f'checkpoint {path!r} is corrupt or truncated (neither a '
            'torch.save file nor a complete caffe2 blob pickle): '
            f'{type(err).__name__}: {err}',
            path) from err
    if not isinstance(obj, dict):
        raise CorruptCheckpointError(
            f'checkpoint {path!r} is corrupt or not a checkpoint: it holds '
            f'a {type(obj).__name__}, not a blob dict', path)
    return obj
