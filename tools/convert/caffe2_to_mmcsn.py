"""Convert a VMZ caffe2 CSN ``.pkl`` to an mmcsn/MMAction2 checkpoint.

The VMZ caffe2 model zoo (``facebookresearch/VMZ``, ``c2/``) publishes
pickles of ``{'blobs': {name: numpy array}}`` (often written by Python 2).
They are read with a restricted unpickler that only rebuilds numpy arrays,
dtypes and scalars (``mmcsn.checkpoint.caffe2_pickle``): any other global
in the pickle (a crafted file that would run code) is refused before it is
called. ``CSN(pretrained=...)`` reads the same pickles the same way.

Example (ip-CSN-152, IG-65M pretrained, fine-tuned on Kinetics-400)::

    python tools/convert/caffe2_to_mmcsn.py \\
        ipCSN_152_ft_kinetics_from_ig65m_f133090949.pkl \\
        checkpoints/csn/vmz_ipcsn_ig65m-ft-r152_kinetics400.pth \\
        --mode ip --depth 152

The VMZ zoo models were trained and tested with the stem max-pool
(``--use_pool1=1``), mmcsn's default ``with_pool1=True``.
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
        __doc__.split('\n')[0], 'VMZ caffe2 blob pickle (.pkl)',
        depths=(26, 50, 101, 152)).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    prepare_entry_process(_caught)
    return run_csn_converter(parse_args(argv), 'caffe2')


if __name__ == '__main__':
    sys.exit(main())
