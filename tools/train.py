"""Train a recognizer: MMAction2's ``tools/train.py`` with mmcsn loaded.

Same arguments and behaviour as MMAction2's script, which ships in the
mmaction2 wheel (``mmaction/.mim/tools/train.py``) but is not importable as
a module, so it is run with :func:`runpy.run_path` after ``import mmcsn``
(which applies the stack fixes and registers mmcsn's modules)::

    python tools/train.py CONFIG [--work-dir DIR] [--launcher pytorch] ...
"""
import os.path as osp
import runpy
import sys

import mmaction

import mmcsn  # noqa: F401  (stack fixes, registers mmcsn modules)

__all__ = ['mmaction_tool']


def mmaction_tool(name: str) -> str:
    """Path of one of MMAction2's bundled tools, e.g. ``'train.py'``."""
    path = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: the installed mmaction2 does not ship its '
            'tools (install mmaction2 1.x from PyPI or source)')
    return path


if __name__ == '__main__':
    # sys.argv is kept: MMAction2's parser reads the same arguments.
    sys.argv[0] = mmaction_tool('train.py')
    runpy.run_path(sys.argv[0], run_name='__main__')
