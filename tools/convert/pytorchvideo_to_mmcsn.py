"""Convert a PyTorchVideo CSN checkpoint to an mmcsn/MMAction2 checkpoint.

PyTorchVideo (``pytorchvideo/models/csn.py``, ``create_csn``; hub model
``csn_r101``) names the layers ``blocks.0.conv``,
``blocks.<s>.res_blocks.<b>.branch2.conv_a`` ... ``blocks.5.proj``.

The weights map exactly, but two things a checkpoint cannot carry differ
from mmcsn's defaults; set them in the config to get the same outputs:

* BN eps: PyTorchVideo uses 1e-5 ->
  ``model.backbone.norm_cfg=dict(type='BN3d', requires_grad=True, eps=1e-5)``
* stem pool: ``create_csn`` has none -> ``model.backbone.with_pool1=False``
  (the hub ``csn_r101`` has one: keep ``with_pool1=True``).

Example::

    python tools/convert/pytorchvideo_to_mmcsn.py CSN_32x2_R101.pyth \\
        checkpoints/csn/ptv_ircsn_r101_32x2_kinetics400.pth
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
        __doc__.split('\n')[0], 'PyTorchVideo checkpoint (.pyth/.pth)',
        depths=(50, 101, 152), with_mode=False).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    prepare_entry_process(_caught)
    return run_csn_converter(parse_args(argv), 'pytorchvideo')


if __name__ == '__main__':
    sys.exit(main())
