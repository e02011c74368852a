"""Test a recognizer: MMAction2's ``tools/test.py`` with mmcsn loaded.

Same arguments and behaviour as MMAction2's script (see ``tools/train.py``
for why it is run with :func:`runpy.run_path`)::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--dump F] ...
"""
import os.path as osp
import runpy
import sys

import mmaction

import mmcsn  # noqa: F401  (stack fixes, registers mmcsn modules)

__all__ = ['mmaction_tool']


def mmaction_tool(name: str) -> str:
    """Path of one of MMAction2's bundled tools, e.g. ``'test.py'``."""
    path = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: the installed mmaction2 does not ship its '
            'tools (install mmaction2 1.x from PyPI or source)')
    return path


if __name__ == '__main__':
    # sys.argv is kept: MMAction2's parser reads the same arguments.
    sys.argv[0] = mmaction_tool('test.py')
    runpy.run_path(sys.argv[0], run_name='__main__')
