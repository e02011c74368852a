"""Convert a VMZ PyTorch CSN checkpoint to an mmcsn/MMAction2 checkpoint.

VMZ PyTorch (``facebookresearch/VMZ``, ``pt/vmz/models/csn.py``) publishes
``ir_csn_152`` / ``ip_csn_152`` weights as torchvision ``VideoResNet``
state_dicts (``stem.0.weight``, ``layer1.0.conv1.0.weight``, ``fc.*``).

Example::

    python tools/convert/vmz_to_mmcsn.py \\
        irCSN_152_ft_kinetics_from_ig65m_f126851907.pth \\
        checkpoints/csn/vmz_ircsn_ig65m-ft-r152_kinetics400.pth --mode ir

The output is ``{'state_dict': <recognizer layout>, 'meta': {...}}`` and
works directly with ``python tools/test.py CONFIG OUTPUT``.
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
        __doc__.split('\n')[0], 'VMZ PyTorch checkpoint (.pth)',
        depths=(50, 101, 152)).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    prepare_entry_process(_caught)
    return run_csn_converter(parse_args(argv), 'vmz_pt')


if __name__ == '__main__':
    sys.exit(main())
