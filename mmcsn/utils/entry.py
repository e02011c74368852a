"""Run MMAction2's bundled entry scripts with mmcsn loaded.

MMAction2 ships ``tools/train.py`` / ``tools/test.py`` inside its wheel
(``mmaction/.mim/tools/``) but not as importable modules, so mmcsn's
``tools/train.py`` / ``tools/test.py`` run them with :func:`runpy.run_path`
after ``import mmcsn`` (stack fixes, registry; importing this module
imports the package): same arguments, same behaviour.
"""
import contextlib
import os.path as osp
import runpy
import sys
import warnings
from typing import Iterator, Sequence

import mmaction

from mmcsn.engine.resume_guard import run_guarded

from .runtime import prepare_entry_process

__all__ = ['mmaction_tool', 'run_mmaction_tool']


def mmaction_tool(name: str) -> str:
    """Path of one of MMAction2's bundled tools.

    Args:
        name (str): File name under ``mmaction/.mim/tools``, e.g.
            ``'train.py'``.

    Returns:
        str: The path.

    Raises:
        FileNotFoundError: The installed mmaction2 does not ship it.
    """
    path = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: the installed mmaction2 does not ship its '
            'tools (install mmaction2 1.x from PyPI or source)')
    return path


def run_mmaction_tool(
        name: str, caught: Sequence[warnings.WarningMessage] = ()) -> None:
    """Run MMAction2's ``name`` as ``__main__`` with the current argv.

    The process is a training/testing job, not a library user, so it is
    prepared first (:func:`mmcsn.utils.runtime.prepare_entry_process`:
    glibc malloc thresholds, 1.6-2x faster CPU inference,
    ``docs/benchmarks.md``, ``MMCSN_NO_MALLOC_TUNING=1`` keeps glibc's
    defaults; known-harmless upstream warnings silenced), and every runner
    it builds logs the stack's versions (``VersionInfoHook``).

    Args:
        name (str): ``'train.py'`` or ``'test.py'``.
        caught (Sequence[WarningMessage]): Warnings the tool recorded
            while importing mmcsn; unknown ones are shown. Defaults to
            none.
    """
    prepare_entry_process(caught)
    # sys.argv is kept: MMAction2's parser reads the same arguments.
    sys.argv[0] = mmaction_tool(name)
    with _runners_log_versions():
        # checkpoint checks and one-line errors (mmcsn.engine.resume_guard)
        run_guarded(name, lambda: runpy.run_path(sys.argv[0],
                                                 run_name='__main__'))


@contextlib.contextmanager
def _runners_log_versions() -> Iterator[None]:
    """Add ``VersionInfoHook`` to each config ``Runner.from_cfg`` builds.

    MMAction2's scripts build their runner with ``Runner.from_cfg``; the
    hook goes in only for the duration of the script, and only where the
    config does not list it already.
    """
    from mmengine.runner import Runner

    original = Runner.__dict__['from_cfg']

    def from_cfg(cls, cfg):
        hooks = list(cfg.get('custom_hooks') or [])
        if not any('VersionInfoHook' in str(h.get('type', ''))
                   for h in hooks):
            cfg.custom_hooks = hooks + [dict(type='VersionInfoHook')]
        return original.__func__(cls, cfg)

    Runner.from_cfg = classmethod(from_cfg)
    try:
        yield
    finally:
        Runner.from_cfg = original
