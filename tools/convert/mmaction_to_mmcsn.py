"""Check and slim an MMAction2 CSN checkpoint for mmcsn.

mmcsn's CSN has MMAction2's ``ResNet3dCSN`` state_dict layout, so current
MMAction2 CSN checkpoints load as they are. This tool checks one (it
refuses old ip-CSN checkpoints saved before MMAction2's mid-2021 change
that added a BN after the extra 1x1x1 conv, which cannot be converted
exactly), adds ``backbone.`` to backbone-only files, and writes a
weights-only ``{'state_dict', 'meta'}`` file without optimizer state.

Example::

    python tools/convert/mmaction_to_mmcsn.py \\
        ircsn_from_scratch_r152_ig65m_20200807-771c4135.pth \\
        checkpoints/csn/ircsn_ig65m-r152_backbone.pth
"""
import argparse
import sys
import warnings
from typing import List, Optional

# importing mmcsn is when upstream warnings fire: record them, then
# prepare_entry_process silences the known-harmless ones, shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmcsn.checkpoint.cli import csn_converter_parser, run_csn_converter
    from mmcsn.utils.runtime import prepare_entry_process


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    return csn_converter_parser(
        __doc__.split('\n')[0], 'MMAction2 CSN checkpoint (.pth)',
        depths=(26, 50, 101, 152)).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    prepare_entry_process(_caught)
    return run_csn_converter(parse_args(argv), 'mmaction')


if __name__ == '__main__':
    sys.exit(main())
