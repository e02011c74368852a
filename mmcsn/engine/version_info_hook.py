"""Log the versions of mmcsn and its stack into the run's log file."""
import sys
from typing import Dict

from mmaction.registry import HOOKS
from mmengine.hooks import Hook

__all__ = ['VersionInfoHook', 'stack_versions']


def stack_versions() -> Dict[str, str]:
    """Versions of mmcsn and the stack it runs on.

    Returns:
        dict: ``mmcsn``, ``mmaction2``, ``mmengine``, ``mmcv``, ``torch``
        (with its CUDA build, or ``cpu``) and ``python``.
    """
    import mmaction
    import mmengine
    import torch

    import mmcsn
    try:
        import mmcv
        mmcv_version = mmcv.__version__
    except ImportError:
        mmcv_version = 'not installed'
    cuda = torch.version.cuda
    return {
        'mmcsn': mmcsn.__version__,
        'mmaction2': mmaction.__version__,
        'mmengine': mmengine.__version__,
        'mmcv': mmcv_version,
        'torch': f'{torch.__version__} ({"CUDA " + cuda if cuda else "cpu"})',
        'python': sys.version.split()[0],
    }


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
        versions = ', '.join(f'{k} {v}' for k, v in stack_versions().items())
        runner.logger.info(f'Versions: {versions}')
