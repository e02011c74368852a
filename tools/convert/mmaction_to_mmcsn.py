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
    parser.add_argument('src', help='MMAction2 CSN checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--mode',
        choices=['ir', 'ip'],
        help='expected block mode (checked; detected when omitted)')
    parser.add_argument(
        '--depth',
        type=int,
        choices=[26, 50, 101, 152],
        help='expected depth (checked; detected when omitted)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the check; return the process exit status."""
    args = parse_args(argv)
    try:
        obj = load_checkpoint_file(args.src)
        sd = convert_to_mmcsn_recognizer(
            obj, source='mmaction', mode=args.mode, depth=args.depth)
        ckpt = make_converted_checkpoint(sd, 'mmaction', args.src)
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
