"""The command line shared by the CSN checkpoint converters.

Every ``tools/convert/*_to_mmcsn.py`` CSN script reads one file, runs one
pure conversion of :mod:`mmcsn.checkpoint.csn` and writes the result with
:func:`save_checkpoint_atomic`; only the source layout, the reader and the
checked choices differ, so the parser and the error handling live here.
"""
import argparse
import sys
from typing import Callable, Sequence

from .csn import (
    convert_to_mmcsn_recognizer,
    describe_conversion,
    make_converted_checkpoint,
)
from .io import CheckpointError, load_checkpoint_file, save_checkpoint_atomic

__all__ = ['CONVERTER_ERRORS', 'csn_converter_parser', 'run_csn_converter']

# What every converter (CSN and bLVNet) reports as a clean failure (exit
# status 1, one line): a bad or refused file, a layout it cannot convert,
# a protected output.
CONVERTER_ERRORS = (CheckpointError, ValueError, FileExistsError,
                    FileNotFoundError)


def csn_converter_parser(description: str,
                         src_help: str,
                         depths: Sequence[int] = (26, 50, 101, 152),
                         with_mode: bool = True) -> argparse.ArgumentParser:
    """``SRC DST [--mode] [--depth] [--force]`` for a CSN converter.

    Args:
        description (str): The tool's one-line description.
        src_help (str): What ``SRC`` is.
        depths (Sequence[int]): Depths the source layout can hold.
            Defaults to (26, 50, 101, 152).
        with_mode (bool): Offer ``--mode ir|ip``, checked against the
            mode detected from the keys (off for layouts with one mode
            only, e.g. PyTorchVideo's ir-CSN). Defaults to True.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='output checkpoint (.pth)')
    if with_mode:
        parser.add_argument(
            '--mode',
            choices=['ir', 'ip'],
            help='expected block mode (checked; detected when omitted)')
    parser.add_argument(
        '--depth',
        type=int,
        choices=list(depths),
        help='expected depth (checked; detected when omitted)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    return parser


def run_csn_converter(args: argparse.Namespace,
                      source: str,
                      read: Callable[[str], object] = load_checkpoint_file
                      ) -> int:
    """Read ``args.src``, convert it from ``source``, write ``args.dst``.

    Args:
        args (argparse.Namespace): Parsed by :func:`csn_converter_parser`.
        source (str): Source layout for
            :func:`convert_to_mmcsn_recognizer`.
        read (Callable[[str], object]): Safe reader of the source file.
            Defaults to :func:`load_checkpoint_file` (``weights_only``).

    Returns:
        int: The process exit status (0 written, 1 refused; the reason is
        printed to stderr and nothing is written).
    """
    try:
        obj = read(args.src)
        sd = convert_to_mmcsn_recognizer(
            obj, source=source, mode=getattr(args, 'mode', None),
            depth=args.depth)
        ckpt = make_converted_checkpoint(sd, source, args.src)
        dst = save_checkpoint_atomic(
            ckpt, args.dst, force=args.force, protect=[args.src])
    except CONVERTER_ERRORS as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(describe_conversion(ckpt, dst))
    return 0

