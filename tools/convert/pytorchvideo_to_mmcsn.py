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
from typing import List, Optional

from mmcsn.checkpoint import (
    CheckpointError,
    load_checkpoint_file,
    save_checkpoint_atomic,
)
from mmcsn.checkpoint.csn import (
    convert_to_mmcsn_recognizer,
    describe_conversion,
    make_converted_checkpoint,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='PyTorchVideo checkpoint (.pyth/.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--depth',
        type=int,
        choices=[50, 101, 152],
        help='expected depth (checked; detected when omitted)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; return the process exit status."""
    args = parse_args(argv)
    try:
        obj = load_checkpoint_file(args.src)
        sd = convert_to_mmcsn_recognizer(
            obj, source='pytorchvideo', depth=args.depth)
        ckpt = make_converted_checkpoint(sd, 'pytorchvideo', args.src)
        dst = save_checkpoint_atomic(
            ckpt, args.dst, force=args.force, protect=[args.src])
    except (CheckpointError, ValueError, FileExistsError,
            FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(describe_conversion(ckpt, dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
