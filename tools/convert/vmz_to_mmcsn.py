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
    parser.add_argument('src', help='VMZ PyTorch checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--mode',
        choices=['ir', 'ip'],
        help='expected block mode (checked; detected when omitted)')
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
            obj, source='vmz_pt', mode=args.mode, depth=args.depth)
        ckpt = make_converted_checkpoint(sd, 'vmz_pt', args.src)
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
