"""Run MMAction2's bundled entry scripts with mmcsn loaded.

MMAction2 ships ``tools/train.py`` / ``tools/test.py`` inside its wheel
(``mmaction/.mim/tools/``) but not as importable modules, so mmcsn's
``tools/train.py`` / ``tools/test.py`` run them with :func:`runpy.run_path`
after ``import mmcsn`` (stack fixes, registry; importing this module
imports the package): same arguments, same behaviour.
"""
import os.path as osp
import runpy
import sys

import mmaction

from mmcsn.ops import tune_malloc

__all__ = ['mmaction_tool', 'run_mmaction_tool']


def mmaction_tool(name: str) -> str:
    """Path of one of MMAction2's bundled tools.

    Args:
        name (str): File name under ``mmaction/.mim/tools``, e.g.
            ``'train.py'``.

    Returns:
        str: The path.

    Raises:
        FileNotFoundError: The installed mmaction2 does not ship it.
    """
    path = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: the installed mmaction2 does not ship its '
            'tools (install mmaction2 1.x from PyPI or source)')
    return path


def run_mmaction_tool(name: str) -> None:
    """Run MMAction2's ``name`` as ``__main__`` with the current argv.

    The process is a training/testing job, not a library user, so the
    glibc malloc thresholds are raised first (:func:`tune_malloc`:
    1.6-2x faster CPU inference, ``docs/benchmarks.md``); set
    ``MMCSN_NO_MALLOC_TUNING=1`` to keep glibc's defaults.

    Args:
        name (str): ``'train.py'`` or ``'test.py'``.
    """
    tune_malloc()
    # sys.argv is kept: MMAction2's parser reads the same arguments.
    sys.argv[0] = mmaction_tool(name)
    runpy.run_path(sys.argv[0], run_name='__main__')
