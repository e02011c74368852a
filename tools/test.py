"""Test a recognizer: MMAction2's ``tools/test.py`` with mmcsn loaded.

Same arguments and behaviour as MMAction2's script (see ``tools/train.py``
for why it is run with :func:`runpy.run_path`)::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--dump F] ...
"""

import sys
import warnings

# importing mmcsn is when upstream warnings fire: record them, then
# run_mmaction_tool silences the known-harmless ones and shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmcsn.utils.entry import run_mmaction_tool

if __name__ == '__main__':
    sys.exit(run_mmaction_tool('test.py', _caught))
