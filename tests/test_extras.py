"""Optional dependencies: setup.cfg extras and the message naming them."""
import configparser
import importlib.util
import re
from pathlib import Path

import pytest

from mmcsn.utils import extras

REPO = Path(__file__).resolve().parents[1]


def _setup_cfg_extras() -> dict:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    out = {}
    for name, value in cfg['options.extras_require'].items():
        reqs = [line.split('#')[0].strip() for line in value.splitlines()]
        out[name] = {re.split(r'[<>=!~ ;\[]', r)[0] for r in reqs if r}
    return out


def test_extras_table_matches_setup_cfg():
    declared = _setup_cfg_extras()
    # pins of what the checked packages import are declared, not checked
    pins = {'viz': {'decorator'}}
    for extra, modules in extras.EXTRAS.items():
        packages = {m.split('.')[0] for m in modules}
        assert packages | pins.get(extra, set()) == declared[extra], extra
    # moviepy 2 removed moviepy.editor, which MMAction2 imports; moviepy
    # 1.0.3 with decorator 5 writes no video
    text = (REPO / 'setup.cfg').read_text()
    assert 'moviepy<2' in text and 'decorator<5' in text
    # CI's `tests` extra still installs what the deploy/plot tests need
    assert {'onnx', 'onnxruntime', 'matplotlib'} <= declared['tests']


def test_missing_extra_names_the_install_command(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name.startswith(('moviepy', 'onnxruntime')) else
        find_spec(name, *a))
    assert extras.missing_extra('viz', ['moviepy.editor'], '--out-video') == (
        '--out-video needs moviepy<2 (not installed or a version that '
        'does not work): pip install "mmcsn[viz]"')
    assert extras.missing_extra('deploy') == (
        'needs onnxruntime (not installed or a version that does not '
        'work): pip install "mmcsn[deploy]"')
    assert extras.missing_extra('viz', ['matplotlib']) is None


def test_moviepy_with_decorator_5_is_refused(monkeypatch):
    """moviepy 1.0.3 + decorator 5: fps=None, no video written."""
    import importlib.metadata
    monkeypatch.setattr(extras, '_importable', lambda name: True)
    version = importlib.metadata.version
    installed = {'decorator': '5.1.1'}
    monkeypatch.setattr(importlib.metadata, 'version',
                        lambda dist: installed.get(dist) or version(dist))
    assert extras.missing_extra('viz', ['moviepy.editor']) == (
        'needs decorator<5 (not installed or a version that does not '
        'work): pip install "mmcsn[viz]"')
    installed['decorator'] = '4.4.2'
    assert extras.missing_extra('viz', ['moviepy.editor']) is None


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"extra must be one of \['deploy'"):
        extras.missing_extra('video')
    with pytest.raises(ValueError, match="not in the 'viz' extra"):
        extras.missing_extra('viz', ['onnx'])
