"""Checks mmcsn's ``tools/train.py`` / ``tools/test.py`` make first.

- ``--resume`` with no file resumes from the work dir's
  ``last_checkpoint``; when that is missing, mmengine silently starts
  again at epoch 1 and overwrites the ``epoch_*.pth`` already there. The
  guard refuses instead, naming the newest checkpoint and the command to
  resume from it.
- A checkpoint given on the command line (``--resume PATH``, test's
  ``CHECKPOINT``) is checked to be a readable non-empty file before the
  runner is built.
- Any :class:`~mmcsn.checkpoint.errors.CheckpointError` (these, the
  checked reader's, :class:`~mmcsn.engine.StrictLoadHook`'s) ends the
  tool with one line, ``error: ...``, and exit status 1.
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import Callable, List, Optional, Sequence

from mmcsn.checkpoint.errors import CheckpointError

__all__ = ['ResumeError', 'check_tool_args', 'newest_checkpoint',
           'run_guarded']


class ResumeError(CheckpointError):
    """``--resume`` would restart from scratch over existing checkpoints."""
    reason = 'nothing to resume'


# MMAction2 1.2's own option table (mmaction/.mim/tools/{train,test}.py),
# so an option's value is never taken for the config or checkpoint
_POSITIONALS = {'train.py': ('config', ), 'test.py': ('config', 'checkpoint')}
_VALUE_OPTIONS = {
    'train.py': (('--work-dir', ), ('--seed', ), ('--launcher', ),
                 ('--local_rank', '--local-rank')),
    'test.py': (('--work-dir', ), ('--dump', ), ('--show-dir', ),
                ('--interval', ), ('--wait-time', ), ('--launcher', ),
                ('--local_rank', '--local-rank')),
}
_FLAGS = {
    'train.py': ('--amp', '--no-validate', '--auto-scale-lr',
                 '--diff-rank-seed', '--deterministic'),
    'test.py': ('--show', ),
}


class _Unparsable(Exception):
    """The arguments do not parse as MMAction2's tool would take them."""


class _Parser(argparse.ArgumentParser):

    def error(self, message: str):
        raise _Unparsable(message)


def _parse(tool: str, argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed as MMAction2's ``tool`` parses it.

    Raises:
        _Unparsable: The tool itself would reject ``argv``.
    """
    parser = _Parser(add_help=False)
    for name in _POSITIONALS.get(tool, ()):
        parser.add_argument(name)
    for names in _VALUE_OPTIONS.get(tool, ()):
        parser.add_argument(*names)
    for flag in _FLAGS.get(tool, ()):
        parser.add_argument(flag, action='store_true')
    if tool == 'train.py':
        parser.add_argument('--resume', nargs='?', const='auto')
    parser.add_argument('--cfg-options', nargs='+', default=[])
    args, _ = parser.parse_known_args(list(argv))
    return args


def _work_dir(args: argparse.Namespace) -> str:
    """The work dir MMAction2's train.py will use (same precedence)."""
    for option in reversed(args.cfg_options):
        if option.startswith('work_dir='):
            return option.split('=', 1)[1]
    if args.work_dir:
        return args.work_dir
    config = args.config
    from mmengine.config import Config
    work_dir = Config.fromfile(config).get('work_dir')
    return work_dir or osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


def newest_checkpoint(work_dir: str) -> Optional[str]:
    """The most recently written ``epoch_*.pth`` / ``iter_*.pth``."""
    found: List[str] = []
    for pattern in ('epoch_*.pth', 'iter_*.pth'):
        found += glob.glob(osp.join(glob.escape(work_dir), pattern))
    if not found:
        return None

    def key(path: str):
        stem = osp.splitext(osp.basename(path))[0].split('_')[-1]
        return os.stat(path).st_mtime, int(stem) if stem.isdigit() else -1

    return max(found, key=key)


def _check_file(path: str, role: str) -> None:
    if '://' in path:
        return  # a URL: mmengine's own schemes
    from mmcsn.checkpoint.io import check_readable
    check_readable(path, role)


def check_tool_args(tool: str, argv: Sequence[str]) -> None:
    """Refuse what would lose work or fail late, before the runner exists.

    Args:
        tool (str): ``'train.py'`` or ``'test.py'``.
        argv (Sequence[str]): The tool's arguments (without the program).

    Raises:
        ResumeError: ``--resume`` without a file, and the work dir holds
            checkpoints but no ``last_checkpoint``.
        CheckpointError: A checkpoint named on the command line is not a
            readable, non-empty file.
    """
    try:
        args = _parse(tool, argv)
    except _Unparsable:
        return  # MMAction2's script reports its own usage error
    if tool == 'test.py':
        _check_file(args.checkpoint, 'checkpoint')
    if tool != 'train.py' or args.resume is None:
        return
    if args.resume != 'auto':
        _check_file(args.resume, '--resume checkpoint')
        return
    try:
        work_dir = _work_dir(args)
    except Exception:  # an unreadable config: the tool itself says so
        return
    if osp.exists(osp.join(work_dir, 'last_checkpoint')):
        return
    newest = newest_checkpoint(work_dir)
    if newest is not None:
        raise ResumeError(
            f'--resume found no {osp.join(work_dir, "last_checkpoint")!r} '
            f'but {work_dir!r} holds checkpoints: training would start '
            'again at epoch 1 and overwrite them. The newest is '
            f'{newest!r}; resume from it with: --resume {newest}', newest)


def run_guarded(tool: str, run: Callable[[], object]) -> None:
    """:func:`check_tool_args` on ``sys.argv``, then ``run()``; any
    :class:`CheckpointError` becomes ``error: ...`` and exit status 1.

    Args:
        tool (str): ``'train.py'`` or ``'test.py'``.
        run (Callable): Runs the tool.
    """
    try:
        check_tool_args(tool, sys.argv[1:])
        run()
    except CheckpointError as err:
        raise SystemExit(f'error: {err}') from None
