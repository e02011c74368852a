"""The command line shared by the checkpoint converters.

Every ``tools/convert/*_to_mmcsn.py`` script reads one file through the
checkpoint intake (:func:`~mmcsn.checkpoint.intake.read_checkpoint`),
runs one pure conversion and writes the result with
:func:`~mmcsn.checkpoint.io.save_checkpoint_atomic`; only the source
layout and the checked choices differ, so the parser, the error handling
and the summary live here. A failure is one line on stderr,
``error: <path>: <reason>``, and exit status 1.
"""
import argparse
import sys
from typing import Callable, Optional, Sequence

from .blvnet import convert_blvnet_checkpoint
from .csn import convert_to_mmcsn_recognizer
from .errors import CheckpointError
from .intake import read_checkpoint
from .io import check_output, save_checkpoint_atomic
from .summary import (
    describe_blvnet_conversion,
    describe_conversion,
    make_blvnet_checkpoint,
    make_converted_checkpoint,
)

__all__ = [
    'CONVERTER_ERRORS', 'one_line', 'run_converter', 'converter_parser',
    'csn_converter_parser', 'run_csn_converter', 'run_blvnet_converter'
]

# What every converter reports as a clean failure (exit status 1, one
# line): a bad, refused or unfitting file (CheckpointError, ValueError),
# anything the OS refuses (OSError: permissions, full disk, ...).
CONVERTER_ERRORS = (ValueError, OSError)


def one_line(err: BaseException) -> str:
    """``error: <message>`` on one line."""
    text = ' '.join(str(err).split('\n')).strip()
    return f'error: {text or type(err).__name__}'


def run_converter(work: Callable[[], str]) -> int:
    """Run ``work`` (returns the success summary); map failures to exit 1.

    Returns:
        int: 0 when written (summary on stdout), 1 when refused (one line
        on stderr; nothing written).
    """
    try:
        summary = work()
    except CONVERTER_ERRORS as err:
        print(one_line(err), file=sys.stderr)
        return 1
    print(summary)
    return 0


def converter_parser(description: str,
                     src_help: str) -> argparse.ArgumentParser:
    """``SRC DST [--force]``, the arguments of every converter."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help + ' (path or http(s) URL)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--force',
        action='store_true',
        help='overwrite dst if it exists (atomically)')
    return parser


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
    parser = converter_parser(description, src_help)
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
    return parser


def _in_family(err: CheckpointError, src: str) -> CheckpointError:
    """Name the input file in a conversion error that lacks it."""
    if src in str(err):
        return err
    return type(err)(f'{src!r}: {err}', src)


def run_csn_converter(args: argparse.Namespace,
                      source: str,
                      read: Optional[Callable[[str], object]] = None
                      ) -> int:
    """Read ``args.src``, convert it from ``source``, write ``args.dst``.

    Args:
        args (argparse.Namespace): Parsed by :func:`csn_converter_parser`.
        source (str): Source layout for
            :func:`convert_to_mmcsn_recognizer`.
        read (Callable[[str], object], optional): Safe reader of the
            source file. Defaults to :func:`read_checkpoint` (the intake:
            ``weights_only`` or the caffe2 numpy-only unpickler).

    Returns:
        int: The process exit status.
    """
    def work() -> str:
        check_output(args.dst, args.force, protect=[args.src])
        obj = (read or read_checkpoint)(args.src)
        try:
            sd = convert_to_mmcsn_recognizer(
                obj, source=source, mode=getattr(args, 'mode', None),
                depth=args.depth)
        except CheckpointError as err:
            raise _in_family(err, args.src) from err
        ckpt = make_converted_checkpoint(sd, source, args.src)
        dst = save_checkpoint_atomic(
            ckpt, args.dst, force=args.force, protect=[args.src])
        return describe_conversion(ckpt, dst)

    return run_converter(work)


def run_blvnet_converter(args: argparse.Namespace) -> int:
    """Convert an official bLVNet-TAM / ImageNet bLResNet file.

    Args:
        args (argparse.Namespace): Parsed by :func:`converter_parser`.

    Returns:
        int: The process exit status.
    """
    def work() -> str:
        check_output(args.dst, args.force, protect=[args.src])
        try:
            state_dict, fmt, dropped = convert_blvnet_checkpoint(
                read_checkpoint(args.src))
        except CheckpointError as err:
            raise _in_family(err, args.src) from err
        if fmt == 'mmcsn':
            raise CheckpointError(
                f'{args.src!r} already has mmcsn keys (backbone.*); '
                'nothing to convert', args.src)
        ckpt = make_blvnet_checkpoint(state_dict, fmt, args.src, dropped)
        dst = save_checkpoint_atomic(
            ckpt, args.dst, force=args.force, protect=[args.src])
        return describe_blvnet_conversion(ckpt, dst)

    return run_converter(work)
