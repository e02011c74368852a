"""Serve ``mmaction.models.localizers.drn`` when the installed wheel lacks it.

PyPI's mmaction2 1.2.0 ships without ``mmaction/models/localizers/drn/``
(open-mmlab/mmaction2#2714) although ``localizers/__init__.py`` imports it,
so ``import mmaction.models`` -- and with it every ``MODELS.build`` of a
recognizer -- fails. The finder below answers only for that one package and
only when no real one can be found on ``sys.path``; a complete installation
is left untouched.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Optional, Sequence

__all__ = ['DRN_PACKAGE', 'DrnShimFinder', 'install_drn_shim', 'shim_active']

DRN_PACKAGE = 'mmaction.models.localizers.drn'
_DRN_MODULE = DRN_PACKAGE + '.drn'
_MESSAGE = ('DRN is not available: the installed mmaction2 wheel lacks '
            '`mmaction/models/localizers/drn` (open-mmlab/mmaction2#2714). '
            'mmcsn serves an empty placeholder so that the rest of '
            'mmaction.models imports; install mmaction2 from source to '
            'use DRN.')


class _PlaceholderDRN:
    """Stands in for ``DRN``; it is not registered and cannot be built."""

    def __init__(self, *args, **kwargs) -> None:
        raise ImportError(_MESSAGE)


class _ShimLoader(importlib.abc.Loader):

    def create_module(self, spec: importlib.machinery.ModuleSpec
                      ) -> Optional[types.ModuleType]:
        return None  # default module creation

    def exec_module(self, module: types.ModuleType) -> None:
        module.__doc__ = _MESSAGE
        module.DRN = _PlaceholderDRN
        module.MMCSN_SHIM = True


class DrnShimFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that serves the placeholder DRN package.

    It sits at the end of ``sys.meta_path`` and is consulted only after the
    standard finders failed, so a real ``drn`` subpackage always wins.
    """

    def find_spec(self, fullname: str,
                  path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None
                  ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in (DRN_PACKAGE, _DRN_MODULE):
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _ShimLoader(), is_package=fullname == DRN_PACKAGE)


def _real_drn_exists() -> bool:
    """Whether the installed mmaction ships the ``drn`` package."""
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return True  # no mmaction at all: nothing to fix
    for finder in sys.meta_path:
        if isinstance(finder, DrnShimFinder):
            continue
        find = getattr(finder, 'find_spec', None)
        if find is None:
            continue
        loc = [os.path.join(p, 'models', 'localizers')
               for p in spec.submodule_search_locations]
        if find(DRN_PACKAGE, loc) is not None:
            return True
    return False


def shim_active() -> bool:
    """Whether the placeholder finder is installed."""
    return any(isinstance(f, DrnShimFinder) for f in sys.meta_path)


def install_drn_shim() -> bool:
    """Install the finder if (and only if) the real package is missing.

    Returns:
        bool: True if the placeholder is (now) in use.
    """
    if shim_active():
        return True
    if _real_drn_exists():
        return False
    sys.meta_path.append(DrnShimFinder())
    return True
