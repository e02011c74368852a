"""Convert an official bLVNet-TAM or bLResNet checkpoint for mmcsn.

Accepts a released bLVNet-TAM model (plain ``bLVNet_TAM.state_dict()``:
``baseline_model.*``, ``new_fc.*``), a ``train.py`` checkpoint (the same
keys behind ``module.`` in ``['state_dict']``) or an ImageNet bLResNet
file from IBM/BigLittleNet (``module.conv1.weight`` ... ``module.fc.*``;
its ImageNet ``fc`` is dropped and it has no TAM weights). Writes a
weights-only ``{'state_dict', 'meta'}`` file with ``backbone.*`` and
``cls_head.fc_cls.*`` keys for a ``Recognizer2D`` with ``bLResNet`` and
``TSNHead``.

Example::

    python tools/convert/blvnet_to_mmcsn.py \\
        st2stv2-bLVNet-TAM-50-a2-b4-f8x2.pth.tar \\
        checkpoints/blvnet/blvnet-tam-r50-a2-b4-f8x2_sthv2.pth
"""
import argparse
import sys
import warnings
from typing import List, Optional

# importing mmcsn is when upstream warnings fire: record them, then
# prepare_entry_process silences the known-harmless ones, shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmcsn.checkpoint.cli import converter_parser, run_blvnet_converter
    from mmcsn.utils.runtime import prepare_entry_process


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    return converter_parser(
        __doc__.split('\n')[0],
        'official bLVNet-TAM / bLResNet checkpoint (.pth.tar)'
    ).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    prepare_entry_process(_caught)
    return run_blvnet_converter(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
