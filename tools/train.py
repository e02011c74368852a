"""Train a recognizer: MMAction2's ``tools/train.py`` with mmcsn loaded.

Same arguments and behaviour as MMAction2's script, which ships in the
mmaction2 wheel (``mmaction/.mim/tools/train.py``) but is not importable as
a module, so it is run with :func:`runpy.run_path` after ``import mmcsn``
(which applies the stack fixes and registers mmcsn's modules)::

    python tools/train.py CONFIG [--work-dir DIR] [--launcher pytorch] ...
"""

import sys

from mmcsn.utils.entry import run_mmaction_tool

if __name__ == '__main__':
    sys.exit(run_mmaction_tool('train.py'))
