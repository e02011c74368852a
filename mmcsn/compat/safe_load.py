"""Let ``torch.load(weights_only=True)`` read mmengine's own checkpoints.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, which
rejects the few non-tensor objects mmengine writes into every checkpoint:
the message hub's ``HistoryBuffer`` (whose statistics methods are pickled
as ``getattr(HistoryBuffer, 'min')``), numpy scalars and arrays. mmcsn
keeps ``weights_only`` on and registers, under the names these pickles
use, *checked stand-ins* instead of the real callables, because the real
ones are gadgets::

    builtins.getattr   real: any attribute of anything reachable
                       -> getattr(cls, '__init__').__globals__ ... builtins
                       here: only HistoryBuffer.{min,max,current,mean},
                       as inert names (StatisticName), not the methods
    HistoryBuffer      real: __setstate__ copies any state into the
                       instance and its class-wide method table (a callable
                       there is called later, e.g. by deepcopy on resume)
                       here: only max_length and two 1-D numeric arrays
    numpy.dtype        real: BUILD on a fresh dtype can set object fields
                       or the has-object flag on float64 (memory unsafe)
                       here: numeric codes only, numpy's builtin instance
                       (whose __setstate__ ignores the state)
    _reconstruct,      here: numeric arrays / scalars only, never object
    scalar, ndarray    (dtype 'O') or structured ones

Every refusal raises :class:`RefusedByAllowList` (an
``UnpicklingError``), so ``torch.load`` fails before anything runs.
Never set ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``: it re-enables arbitrary
pickles.
"""
import functools
import pickle
from typing import Dict, List, Tuple

import numpy as np
import torch

__all__ = [
    'RefusedByAllowList', 'check_dtype_state', 'mmengine_safe_globals',
    'safe_global_names', 'install_safe_globals'
]

# HistoryBuffer's statistics methods mmengine pickles by reference.
STATISTICS = ('min', 'max', 'current', 'mean')
# Keys of a genuine HistoryBuffer state (mmengine 0.x).
BUFFER_KEYS = {'max_length', '_log_history', '_count_history',
               'statistics_methods'}
# Array / scalar kinds a checkpoint may hold: bool, ints, floats, complex.
NUMERIC_KINDS = 'biufc'
# Names containing a newline cannot be produced by a pickle's GLOBAL
# opcode (module and name are read with readline), so a type registered
# under such a name is allowed as the *target* of BUILD only: the real
# ndarray / dtype classes must be there for numpy's BUILD step, but must
# not be callable from a pickle (ndarray(shape, 'O'), Float64DType()).
BUILD_ONLY = 'mmcsn-build-only\n'


class RefusedByAllowList(pickle.UnpicklingError):
    """A pickle asked for something outside mmcsn's allow-list."""


def _refuse(what: str) -> RefusedByAllowList:
    return RefusedByAllowList(
        f'refused by mmcsn allow-list: {what}; a genuine mmengine '
        'checkpoint never needs this (the file may have been crafted to '
        'run code). Only allowlisted objects are loaded')


def _history_buffer():
    from mmengine.logging import HistoryBuffer
    return HistoryBuffer


@functools.lru_cache(maxsize=None)
def _numeric_codes() -> frozenset:
    """The dtype codes numpy pickles for numeric dtypes ('f8', 'b1', ...)."""
    chars = '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']
    return frozenset(np.dtype(c).str[1:] for c in chars)


def _check_numeric_dtype(dtype: object, where: str) -> None:
    if (type(dtype) not in _numeric_dtype_types() or dtype.hasobject
            or dtype.fields is not None or dtype.subdtype is not None
            or dtype.kind not in NUMERIC_KINDS):
        raise _refuse(f'{where} with dtype {dtype!r} (only numeric '
                      'dtypes, no object or structured ones)')


@functools.lru_cache(maxsize=None)
def _numeric_dtype_types() -> frozenset:
    return frozenset(type(np.dtype(code)) for code in _numeric_codes())


def _checked_dtype(obj=None, align=False, copy=False, *args):
    """``numpy.dtype`` for the numeric codes numpy pickles, nothing else.

    Returns numpy's builtin instance: its ``__setstate__`` (the BUILD that
    follows in the pickle) leaves it unchanged, unlike a fresh copy's.
    That also drops the byte order, which lives only in the BUILD state;
    torch's unpickler gives that state to numpy, not to mmcsn, so only
    unpicklers that route BUILD to mmcsn can refuse it
    (:func:`check_dtype_state`).
    """
    # type checks first: ``in`` on an array argument would compare
    # elementwise
    if (args or type(obj) is not str or obj not in _numeric_codes()
            or type(align) not in (bool, int) or align
            or type(copy) not in (bool, int) or copy not in (0, 1)):
        raise _refuse(f'numpy.dtype{(obj, align, copy) + args!r}')
    return np.dtype(obj)


def check_dtype_state(dtype: np.dtype, state: object) -> None:
    """Check the BUILD state that follows ``numpy.dtype(code, False, True)``.

    numpy pickles a numeric dtype as that call plus the state
    ``(3, byte order, None, None, None, -1, -1, 0)``. Anything else (object
    flags, fields, sizes) is refused, and so is a non-native byte order:
    the builtin dtype :func:`_checked_dtype` returns ignores the state, so
    ``np.arange(3, dtype='>f8')`` would load as ``[0, 3e-319, 3e-322]``.
    mmengine never writes non-native arrays. Used where the unpickler lets
    mmcsn see BUILD (:mod:`mmcsn.checkpoint.caffe2_pickle`).

    Args:
        dtype (np.dtype): A dtype from :func:`_checked_dtype`.
        state (object): The BUILD state from the pickle.

    Raises:
        RefusedByAllowList: The state is not the one numpy writes for a
            native ``dtype``.
    """
    genuine = dtype.__reduce__()[2]
    # compare types first: ``==`` on an array from the pickle is elementwise
    if (type(state) is tuple and len(state) == len(genuine) and all(
            type(got) is type(want) and got == want
            for got, want in zip(state[2:] + state[:1],
                                 genuine[2:] + genuine[:1]))):
        order = state[1] if type(state[1]) is str else None
        if order in (genuine[1], '='):
            return
        if order in ('<', '>'):
            raise _refuse(
                f'numpy dtype {dtype.str[1:]!r} with non-native byte order '
                f'{order!r} (only native {genuine[1]!r} arrays are loaded: '
                'their values would be misread)')
    raise _refuse(f'numpy dtype {dtype.str[1:]!r} with state {state!r} '
                  f'(numpy writes {genuine!r})')


class _NDArrayName:
    """What a pickle's ``numpy.ndarray`` resolves to: a name, not a type.

    Only :func:`_checked_reconstruct` accepts it; calling or instantiating
    it (``ndarray((2,), 'O')`` in a pickle) is refused.
    """

    def __new__(cls, *args, **kwargs):
        raise _refuse('calling numpy.ndarray directly')


def _checked_reconstruct(subtype=None, shape=None, code=None, *args):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``, the only call numpy
    pickles; the BUILD that follows takes a dtype from
    :func:`_checked_dtype`."""
    if (args or subtype is not _NDArrayName or type(shape) is not tuple
            or shape != (0, ) or type(code) not in (bytes, str)
            or code not in (b'b', 'b')):
        raise _refuse(f'numpy _reconstruct{(subtype, shape, code) + args!r}')
    return np.ndarray((0, ), np.int8)


def _checked_scalar(dtype=None, data=None, *args):
    """numpy's ``scalar(dtype, bytes)`` for numeric dtypes only."""
    _check_numeric_dtype(dtype, 'numpy scalar')
    if args or type(data) is not bytes or len(data) != dtype.itemsize:
        raise _refuse('numpy scalar whose data is not '
                      f'{dtype.itemsize} bytes')
    return np.frombuffer(data, dtype=dtype)[0]


class StatisticName:
    """What ``getattr(HistoryBuffer, 'min')`` yields when unpickling: an
    inert name, not the method. Only a buffer's ``statistics_methods``
    accepts it (and drops it: the real methods are the class's own), so
    no callable from the file lands anywhere, e.g. as the ``__deepcopy__``
    of an ``OrderedDict`` that resume deep-copies.
    """

    __slots__ = ('name', )

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f'StatisticName({self.name!r})'


_STATISTIC_NAMES = {name: StatisticName(name) for name in STATISTICS}


def _checked_getattr(obj=None, name=None, *args):
    """``getattr`` for ``HistoryBuffer.<statistic>`` and nothing else."""
    if (not args and (obj is _history_buffer() or obj is CheckedHistoryBuffer)
            and type(name) is str and name in STATISTICS):
        return _STATISTIC_NAMES[name]
    raise _refuse(f'getattr({_display(obj)}, {name!r}): only HistoryBuffer.'
                  f'{{{",".join(STATISTICS)}}} can be looked up')


def _display(obj: object) -> str:
    """How a refused object is named: as the pickle named it."""
    for stand_in, name in mmengine_safe_globals():
        if obj is stand_in:
            return name.rsplit('.', 1)[-1]
    return getattr(obj, '__qualname__', None) or type(obj).__name__


def _check_history(value: object, key: str) -> None:
    if type(value) is not np.ndarray or value.ndim != 1:
        raise _refuse(f'HistoryBuffer.{key} of type {type(value).__name__} '
                      '(expected a 1-D numeric numpy array)')
    _check_numeric_dtype(value.dtype, f'HistoryBuffer.{key}')


def _make_checked_history_buffer():
    buffer_cls = _history_buffer()

    class CheckedHistoryBuffer(buffer_cls):
        """What a pickle's ``HistoryBuffer`` resolves to.

        ``__setstate__`` (the pickle's BUILD) accepts only the fields of a
        genuine buffer with plain values, then turns the instance into a
        real :class:`mmengine.logging.HistoryBuffer`. Nothing from the
        file reaches the class-wide statistics table.
        """

        def __new__(cls, *args, **kwargs):
            if args or kwargs:
                raise _refuse('HistoryBuffer created with arguments')
            return super().__new__(cls)

        def __init__(self, *args, **kwargs) -> None:
            pass  # state comes only through __setstate__

        def __setstate__(self, state: object) -> None:
            if type(state) is not dict or not set(state) <= BUFFER_KEYS:
                keys = sorted(state) if type(state) is dict else state
                raise _refuse(f'HistoryBuffer state {keys!r} (allowed '
                              f'keys: {sorted(BUFFER_KEYS)})')
            length = state.get('max_length', 1000000)
            if type(length) is not int or length < 1:
                raise _refuse(f'HistoryBuffer.max_length={length!r}')
            empty = np.array([])
            logs = state.get('_log_history', empty)
            counts = state.get('_count_history', empty)
            _check_history(logs, '_log_history')
            _check_history(counts, '_count_history')
            if len(logs) != len(counts):
                raise _refuse('HistoryBuffer histories of unequal length')
            methods = state.get('statistics_methods', {})
            if type(methods) is not dict or any(
                    type(name) is not str or name not in STATISTICS
                    or methods[name] is not _STATISTIC_NAMES[name]
                    for name in methods):
                raise _refuse('HistoryBuffer.statistics_methods other than '
                              f'the built-in {STATISTICS}')
            self.__class__ = buffer_cls
            self._set_default_statistics()
            self.__dict__.update(
                max_length=length, _log_history=logs, _count_history=counts)

    CheckedHistoryBuffer.__qualname__ = 'CheckedHistoryBuffer'
    return CheckedHistoryBuffer


CheckedHistoryBuffer = _make_checked_history_buffer()


def mmengine_safe_globals() -> List[Tuple[object, str]]:
    """The ``(stand-in, name)`` pairs registered with torch.

    Returns:
        list[tuple]: For ``torch.serialization.add_safe_globals``; each
        name is the one a genuine checkpoint's pickle uses (numpy 1 and 2
        module paths), or a BUILD-only name (see ``BUILD_ONLY``).
    """
    pairs = [
        (_checked_getattr, 'builtins.getattr'),
        (CheckedHistoryBuffer,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (_NDArrayName, 'numpy.ndarray'),
        (_checked_dtype, 'numpy.dtype'),
    ]
    for core in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(_checked_reconstruct, f'{core}._reconstruct'),
                  (_checked_scalar, f'{core}.scalar')]
    pairs.append((np.ndarray, BUILD_ONLY + 'numpy.ndarray'))
    for cls in sorted(_numeric_dtype_types(), key=lambda c: c.__name__):
        pairs.append((cls, f'{BUILD_ONLY}numpy.dtypes.{cls.__name__}'))
    return pairs


def safe_global_names() -> Dict[str, object]:
    """Name -> object of :func:`mmengine_safe_globals` (for tests/docs)."""
    return {name: obj for obj, name in mmengine_safe_globals()}


def install_safe_globals() -> None:
    """Register :func:`mmengine_safe_globals` with torch (idempotent)."""
    torch.serialization.add_safe_globals(mmengine_safe_globals())
