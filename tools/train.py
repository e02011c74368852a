"""Train a recognizer: MMAction2's ``tools/train.py`` with mmcsn loaded.

Same arguments and behaviour as MMAction2's script, which ships in the
mmaction2 wheel (``mmaction/.mim/tools/train.py``) but is not importable as
a module, so it is run with :func:`runpy.run_path` after ``import mmcsn``
(which applies the stack fixes and registers mmcsn's modules)::

    python tools/train.py CONFIG [--work-dir DIR] [--launcher pytorch] ...
"""

import sys
import warnings

# importing mmcsn is when upstream warnings fire: record them, then
# run_mmaction_tool silences the known-harmless ones and shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmcsn.utils.entry import run_mmaction_tool

if __name__ == '__main__':
    sys.exit(run_mmaction_tool('train.py', _caught))
