"""Log the versions of mmcsn and its stack into the run's log file."""
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

__all__ = ['VersionInfoHook']


@HOOKS.register_module()
class VersionInfoHook(Hook):
    """Write one line with mmcsn's, MMAction2's, mmengine's, mmcv's, torch's
    and Python's versions to the runner's logger (so the work dir's
    ``<timestamp>.log``) before training or testing starts.

    mmengine's own environment block names torch and mmengine but not
    MMAction2 or mmcsn; a result is only reproducible with all of them.
    mmcsn's ``tools/train.py`` / ``tools/test.py`` add this hook to every
    config; for MMAction2's own scripts list it in ``custom_hooks``::

        custom_hooks = [dict(type='VersionInfoHook')]
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        from mmcsn.utils.runtime import stack_versions
        versions = ', '.join(f'{k} {v}' for k, v in stack_versions().items())
        runner.logger.info(f'Versions: {versions}')
