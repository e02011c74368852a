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
import os
import sys
from typing import List, Optional

from mmcsn.checkpoint import (
    CheckpointError,
    load_checkpoint_file,
    save_checkpoint_atomic,
)
from mmcsn.checkpoint.blvnet import (
    convert_blvnet_checkpoint,
    infer_blvnet_arch,
)
from mmcsn.checkpoint.cli import CONVERTER_ERRORS
from mmcsn.version import __version__


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src', help='official bLVNet-TAM / bLResNet checkpoint (.pth.tar)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    args = parse_args(argv)
    try:
        state_dict, fmt, dropped = convert_blvnet_checkpoint(
            load_checkpoint_file(args.src))
        if fmt == 'mmcsn':
            raise CheckpointError(
                f'{args.src!r} already has mmcsn keys (backbone.*); nothing '
                'to convert')
        arch = infer_blvnet_arch(state_dict)
        meta = dict(
            converted_from=os.path.basename(args.src),
            source_layout=fmt,
            mmcsn_version=__version__,
            dropped_keys=tuple(dropped),
            **arch)
        dst = save_checkpoint_atomic(
            dict(state_dict=state_dict, meta=meta),
            args.dst,
            force=args.force,
            protect=[args.src])
    except CONVERTER_ERRORS as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'converted {args.src} ({fmt}) -> {dst}: {len(state_dict)} '
          f'tensors; {arch}')
    if dropped:
        print(f'  dropped (not used by mmcsn): {", ".join(dropped)}')
    if fmt == 'blresnet_imagenet':
        print('  ImageNet weights have no TAM weights: TAMs keep their init')
    return 0


if __name__ == '__main__':
    sys.exit(main())
