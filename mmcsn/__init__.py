"""mmcsn: CSN and bLVNet-TAM for MMAction2.

Importing the package applies the stack fixes in :mod:`mmcsn.compat` and
registers every mmcsn module into MMAction2's registries.
"""
from .compat import apply_all as _apply_compat
from .version import __version__

_apply_compat()  # before mmaction.models is imported anywhere below

from . import datasets, engine, models  # noqa: E402,F401  (registers)

__all__ = ['__version__']
