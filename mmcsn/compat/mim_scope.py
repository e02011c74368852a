"""Let mmengine resolve ``_base_ = 'mmcsn::<dir>/<config>.py'``.

mmengine 0.10 resolves a ``pkg::`` config base only when ``pkg`` is a key
of its hard-coded ``MODULE2PACKAGE`` table, and then reads the file from
``<installed package>/.mim/configs`` (the wheel ships mmcsn's ``configs/``
there, as MMAction2's does). Two narrow fixes, applied at ``import mmcsn``:

* ``'mmcsn': 'mmcsn'`` is added to the table (other entries untouched);
* mmengine's lookup of the installed path answers for ``mmcsn`` with the
  directory of the imported package. Its own answer is built from the
  distribution's location, which for an editable install (setuptools'
  ``__editable__`` finder) is ``site-packages/mmcsn``, a directory that
  does not exist. Every other package gets mmengine's answer.

A config inheriting an ``mmcsn::`` base therefore needs a process that
imported mmcsn *before* loading it (mmcsn's ``tools/train.py`` /
``tools/test.py``, ``mim train mmcsn``, or ``import mmcsn`` in a script):
``custom_imports`` is read only after the bases are resolved.
Dicts inherited from such a base carry ``_scope_='mmcsn'``; the registry
nodes of that scope are :mod:`mmcsn.registry`.
"""
import functools
import os.path as osp
from typing import Callable

__all__ = ['PACKAGE', 'install_mim_scope']

PACKAGE = 'mmcsn'


def install_mim_scope() -> bool:
    """Teach mmengine the ``mmcsn::`` config prefix (idempotent).

    Returns:
        bool: True if anything was patched by this call.
    """
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils
    changed = False
    if config_utils.MODULE2PACKAGE.get(PACKAGE) != PACKAGE:
        # the dict object is shared by every module that imported it
        config_utils.MODULE2PACKAGE[PACKAGE] = PACKAGE
        changed = True
    from mmengine.hub import hub  # mmengine.hub.get_config('mmcsn::...')
    for module in (config_module, hub):  # each imported the function
        current = module.get_installed_path
        if not getattr(current, '_mmcsn_mim', False):
            module.get_installed_path = _own_path_first(current)
            changed = True
    return changed


def _own_path_first(original: Callable[[str], str]) -> Callable[[str], str]:
    """Answer ``original(package)``, but with mmcsn's own directory."""

    @functools.wraps(original)
    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            import mmcsn
            return osp.dirname(osp.abspath(mmcsn.__file__))
        return original(package)

    get_installed_path._mmcsn_mim = True
    return get_installed_path
