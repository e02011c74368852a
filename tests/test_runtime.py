"""Process set-up of mmcsn's entry points (mmcsn.utils.runtime).

Known-harmless upstream warnings are silenced by exact message in mmcsn's
tools only (a plain ``import mmcsn`` still shows them), and every run's
log records the versions of the stack (``VersionInfoHook``), with mmcsn's
tools and with MMAction2's own scripts on mmcsn's configs.
"""
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import mmaction
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner

import mmcsn
from mmcsn.engine import VersionInfoHook
from mmcsn.utils import entry, runtime

REPO = Path(__file__).resolve().parents[1]
TINY_CSN = REPO / 'configs/csn/ircsn_tiny-r50_1xb2-8x2x1-2e_demo-rgb.py'
MSDA = ('Fail to import ``MultiScaleDeformableAttention`` from '
        '``mmcv.ops.multi_scale_deform_attn``')
PKG = 'pkg_resources is deprecated as an API. See https://setuptools...'


@pytest.fixture
def restore_logger_class(monkeypatch):
    monkeypatch.setattr(MMLogger, 'filter', MMLogger.filter)
    monkeypatch.setattr(MMLogger, '_mmcsn_quiet', False, raising=False)


def test_known_warnings_only_are_silenced(restore_logger_class):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runtime.quiet_known_warnings()
        warnings.warn(MSDA, UserWarning)
        warnings.warn(PKG, UserWarning)
        warnings.warn('an unknown warning', UserWarning)
        warnings.warn(PKG, RuntimeWarning)  # same words, other category
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, 'an unknown warning'), (RuntimeWarning, PKG)]


def test_known_log_warnings_only_are_dropped(restore_logger_class):
    runtime.quiet_known_warnings()
    runtime.quiet_known_warnings()  # idempotent: one wrapper
    logger = MMLogger.get_instance('mmcsn_test_runtime')
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.addHandler(handler)
    logger.warning('"FileClient" will be deprecated in future. Please use')
    logger.warning('"HardDiskBackend" is the alias of "LocalBackend" and')
    logger.warning('"FileClient" is fine')
    logger.info('"FileClient" will be deprecated in future (info)')
    assert [r.getMessage() for r in seen] == [
        '"FileClient" is fine',
        '"FileClient" will be deprecated in future (info)'
    ]


def test_prepare_replays_unknown_warnings(monkeypatch,
                                          restore_logger_class):
    tuned = []
    monkeypatch.setattr(runtime, 'tune_malloc', lambda: tuned.append(1))
    with warnings.catch_warnings(record=True) as at_import:
        warnings.simplefilter('always')
        warnings.warn(MSDA, UserWarning)
        warnings.warn('keep me', UserWarning)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('default')
        runtime.prepare_entry_process(at_import)
    assert [str(w.message) for w in shown] == ['keep me'] and tuned == [1]


@pytest.mark.slow
def test_entry_points_are_quiet_but_import_mmcsn_is_not():
    def stderr(*args):
        return subprocess.run([sys.executable, *args], cwd=str(REPO),
                              capture_output=True, text=True,
                              timeout=120).stderr

    # negative control: the library import keeps every warning
    assert 'MultiScaleDeformableAttention' in stderr('-c', 'import mmcsn')
    assert stderr('tools/infer.py', '--help') == ''
    assert stderr('tools/convert/vmz_to_mmcsn.py', '--help') == ''


def _tool_scripts():
    for path in sorted((REPO / 'tools').rglob('*.py')):
        text = path.read_text()
        if "__name__ == '__main__'" in text and ('from mmcsn' in text
                                                 or 'import mmcsn' in text):
            yield path


@pytest.mark.parametrize('path', list(_tool_scripts()),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_entry_point_sets_up_the_process(path):
    # every tool that imports mmcsn silences the known warnings and tunes
    # malloc the same way (the subprocess test above shows it works)
    text = path.read_text()
    assert ('prepare_entry_process(' in text
            or 'run_mmaction_tool(' in text), path


def test_version_hook_logs_the_stack():
    class FakeRunner:
        logger = MMLogger.get_instance('mmcsn_test_versions')

    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    FakeRunner.logger.addHandler(handler)
    VersionInfoHook().before_run(FakeRunner())
    (line, ) = [r.getMessage() for r in seen]
    for part in (f'mmcsn {mmcsn.__version__}',
                 f'mmaction2 {mmaction.__version__}', 'mmengine ',
                 f'torch {torch.__version__}'):
        assert part in line


def test_entry_adds_the_hook_once_and_only_while_running(monkeypatch):
    built = []
    monkeypatch.setattr(Runner, 'from_cfg',
                        classmethod(lambda cls, cfg: built.append(cfg)))
    recorder = Runner.__dict__['from_cfg']
    with entry._runners_log_versions():
        Runner.from_cfg(Config(dict(custom_hooks=[dict(type='X')])))
        Runner.from_cfg(
            Config(dict(custom_hooks=[dict(type='VersionInfoHook')])))
        Runner.from_cfg(Config(dict()))
    assert [[h['type'] for h in c.custom_hooks] for c in built] == [
        ['X', 'VersionInfoHook'], ['VersionInfoHook'], ['VersionInfoHook']]
    assert Runner.__dict__['from_cfg'] is recorder


@pytest.mark.slow
def test_mmaction_own_test_script_logs_versions(tmp_path, demo_data_root):
    """MMAction2's tools/test.py on an mmcsn config: versions in the log."""
    from mmcsn.apis import init_recognizer_strict
    ckpt = tmp_path / 'tiny.pth'
    torch.save({'state_dict': init_recognizer_strict(
        str(TINY_CSN), None).state_dict()}, ckpt)
    script = Path(mmaction.__file__).parent / '.mim/tools/test.py'
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, str(script), str(TINY_CSN), str(ckpt),
         '--work-dir', str(work), '--cfg-options',
         f'test_dataloader.dataset.ann_file={demo_data_root / "test.txt"}',
         f'test_dataloader.dataset.data_prefix.video={demo_data_root}'],
        cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (log, ) = work.glob('*/*.log')
    assert f'Versions: mmcsn {mmcsn.__version__}, mmaction2' in (
        log.read_text())
