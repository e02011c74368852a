"""Read VMZ caffe2 blob pickles without letting them run code.

The VMZ caffe2 model zoo (``facebookresearch/VMZ``, ``c2/``) publishes
pickles of ``{'blobs': {name: numpy array}}``, often written by Python 2.
They are not ``torch.save`` files, so ``torch.load`` cannot read them; a
restricted unpickler rebuilds numpy arrays, dtypes and scalars only, and
any other global in the pickle (a crafted file that would run code) is
refused before anything is called. numpy's own globals resolve to the
checked stand-ins of :mod:`mmcsn.compat.safe_load` (numeric dtypes only,
numpy's builtin dtype instances whose BUILD cannot set the has-object
flag), never to the real ``numpy.dtype`` / ``_reconstruct``.
"""
import collections
import pickle
from _codecs import encode

import numpy as np

from ..compat import safe_load
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


class _DTypeBuild:
    """What ``numpy.dtype(code, False, True)`` yields here: a numeric dtype
    whose BUILD state (byte order, flags) is checked, never applied."""

    __slots__ = ('dtype', )

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def __setstate__(self, state: object) -> None:
        safe_load.check_dtype_state(self.dtype, state)


class _ArrayBuild:
    """What ``_reconstruct`` yields here; its BUILD makes a real array from
    a checked dtype (replaced by that array once the pickle is read)."""

    __slots__ = ('array', )

    def __setstate__(self, state: object) -> None:
        if type(state) is not tuple or len(state) != 5 or type(
                state[3]) not in (bool, int) or type(
                    state[4]) not in (bytes, str):
            raise safe_load._refuse('numpy array state numpy never writes '
                                    '(only raw numeric data is allowed)')
        dtype = _dtype_of(state[2], 'numpy array')
        array = np.ndarray((0, ), np.int8)
        array.__setstate__(state[:2] + (dtype, ) + state[3:])
        self.array = array


def _dtype_of(value: object, where: str) -> np.dtype:
    if type(value) is not _DTypeBuild:
        raise safe_load._refuse(f'{where} without a numpy dtype')
    return value.dtype


def _dtype(*args) -> _DTypeBuild:
    return _DTypeBuild(safe_load._checked_dtype(*args))


def _reconstruct(*args) -> _ArrayBuild:
    safe_load._checked_reconstruct(*args)  # checks numpy's exact call
    return _ArrayBuild()


def _scalar(dtype=None, data=None, *args) -> np.generic:
    if type(data) is str:  # Python 2 str, read as latin1
        data = data.encode('latin1')
    return safe_load._checked_scalar(
        _dtype_of(dtype, 'numpy scalar'), data, *args)


def _frombuffer(buf=None, dtype=None, shape=None, order='C',
                *args) -> np.ndarray:
    """numpy's protocol-5 ``_frombuffer`` for numeric arrays only."""
    dtype = _dtype_of(dtype, 'numpy _frombuffer')
    safe_load._check_numeric_dtype(dtype, 'numpy _frombuffer')
    if (args or not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer))
            or type(shape) is not tuple
            or any(type(n) is not int or n < 0 for n in shape)
            or order not in ('C', 'F')):
        raise safe_load._refuse('numpy _frombuffer with arguments numpy '
                                'never writes')
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


_STAND_INS = {
    'ndarray': safe_load._NDArrayName,
    'dtype': _dtype,
    '_reconstruct': _reconstruct,
    'scalar': _scalar,
    '_frombuffer': _frombuffer,
    'encode': encode,
    'OrderedDict': collections.OrderedDict,
}


def _finish(obj: object) -> object:
    """Swap each array under construction for its array, checking that it
    is numeric with native byte order."""
    if type(obj) is _ArrayBuild:
        if not hasattr(obj, 'array'):
            raise safe_load._refuse('numpy array without its data (BUILD)')
        obj = obj.array
    if type(obj) is _DTypeBuild:
        obj = obj.dtype
    if isinstance(obj, (np.ndarray, np.generic)):
        safe_load._check_numeric_dtype(obj.dtype, 'caffe2 blob')
        if not obj.dtype.isnative:
            raise safe_load._refuse('caffe2 blob with non-native byte order '
                                    f'{obj.dtype.str!r}')
    elif isinstance(obj, dict):
        for key in obj:
            obj[key] = _finish(obj[key])
    elif isinstance(obj, list):
        obj[:] = [_finish(item) for item in obj]
    elif isinstance(obj, tuple):
        obj = tuple(_finish(item) for item in obj)
    return obj


class BlobUnpickler(pickle.Unpickler):
    """Unpickler that only resolves :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> object:
        """Resolve an allowed global to its stand-in; refuse the rest."""
        if (module, name) not in ALLOWED_GLOBALS:
            raise _Refused(
                f'global {module}.{name} is not allowed in a caffe2 blob '
                'pickle (only numpy arrays are)')
        return _STAND_INS[name]


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
        obj = _finish(obj)
    except (_Refused, safe_load.RefusedByAllowList) as err:
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
