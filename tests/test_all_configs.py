"""The contract of every shipped config (configs/csn, blvnet, demo).

Each config, in a FRESH process that did nothing but ``import mmcsn``:

* loads with a plain ``Config.fromfile`` and builds with a plain
  ``mmaction.registry.MODELS.build(cfg.model)`` (meta device, so
  ip-CSN-152 costs nothing) with no default scope set by anyone;
* has a ``test_pipeline`` whose every step builds with MMAction2's
  ``TRANSFORMS`` (what ``init_recognizer`` / ``inference_recognizer``
  read).

The small configs (tiny CSN, demo) are also run through MMAction2's
inferencer API on a real H.264 clip. Every config lets a child config move
its data with the dataset keys its comments document (``ann_file``,
``data_prefix``), with no stale path left in the dumped config.

Negative controls: the same fresh-process check fails on a model without
its ``_scope_`` (the bLVNet failure of issue 12) and on a config without a
``test_pipeline`` (the tiny CSN failure).
"""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmcsn  # noqa: F401  (registers)

CONFIGS = sorted(
    p for family in ('csn', 'blvnet', 'demo')
    for p in (REPO_ROOT / 'configs' / family).glob('*.py'))
SMALL = [p for p in CONFIGS if p.parent.name == 'demo' or 'tiny' in p.stem]
SPLITS = ('train', 'val', 'test')
# one config per data base (the others inherit their dataset dicts from
# the same file): tiny CSN, demo, CSN Kinetics, bLVNet's four datasets
DATA_LAYOUTS = [
    p for p in CONFIGS
    if 'tiny' in p.stem or p.stem.startswith('ircsn_tiny-r50_1xb8')
    or p.stem == 'ircsn_r152_32x2x1-180e_kinetics400-rgb'
    or re.match(r'blvnet-tam-r50-a2-b4_imagenet-pretrained_8xb8-f8x2', p.stem)
]

CHECK = textwrap.dedent('''
    import json, sys, traceback
    import torch
    import mmcsn  # noqa: F401
    from mmaction.registry import MODELS, TRANSFORMS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    out = {}
    for path in sys.argv[1:]:
        try:
            assert DefaultScope.get_current_instance() is None
            cfg = Config.fromfile(path)
            pipeline = cfg.get('test_pipeline')
            if not pipeline:
                raise KeyError(f'{path}: no test_pipeline')
            steps = [type(TRANSFORMS.build(dict(s))).__name__
                     for s in pipeline]
            with torch.device('meta'):
                model = MODELS.build(cfg.model)
            out[path] = dict(
                ok=True, steps=steps, model=type(model).__name__,
                preprocessor=type(model.data_preprocessor).__name__,
                classes=cfg.model.cls_head.num_classes,
                head=type(model.cls_head).__name__)
        except Exception as err:
            out[path] = dict(ok=False, error=f'{type(err).__name__}: {err}')
    print('RESULT' + json.dumps(out))
''')


def fresh_check(paths) -> dict:
    """Run ``CHECK`` over ``paths`` in one fresh interpreter."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-c', CHECK] + [str(p) for p in paths],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines()
                if x.startswith('RESULT'))
    return json.loads(line[len('RESULT'):])


@pytest.fixture(scope='module')
def contract(tmp_path_factory) -> dict:
    """Results for every config and for the two negative controls."""
    tmp = tmp_path_factory.mktemp('controls')
    blvnet = REPO_ROOT / 'configs/blvnet' / (
        'blvnet-tam-r50-a2-b4_imagenet-pretrained_8xb8-f8x2-50e_sthv1-rgb.py')
    tiny = REPO_ROOT / 'configs/csn/ircsn_tiny-r50_1xb2-8x2x1-2e_demo-rgb.py'
    (tmp / 'no_scope.py').write_text(
        f'_base_ = [{str(blvnet)!r}]\nmodel = dict(_scope_=None)\n')
    (tmp / 'no_test_pipeline.py').write_text(
        f'_base_ = [{str(tiny)!r}]\ntest_pipeline = None\n')
    controls = [tmp / 'no_scope.py', tmp / 'no_test_pipeline.py']
    results = fresh_check(CONFIGS + controls)
    results['controls'] = [results.pop(str(p)) for p in controls]
    return results


def test_every_family_is_covered():
    families = {p.parent.name for p in CONFIGS}
    assert families == {'csn', 'blvnet', 'demo'}
    assert len(CONFIGS) >= 29 and len(SMALL) == 4
    assert len(DATA_LAYOUTS) == 7


@pytest.mark.slow  # one fresh process loads every config (~20-30 s)
@pytest.mark.parametrize(
    'path', CONFIGS, ids=[f'{p.parent.name}/{p.stem}' for p in CONFIGS])
def test_loads_builds_and_has_a_test_pipeline(contract, path):
    result = contract[str(path)]
    assert result['ok'], result.get('error')
    assert result['preprocessor'] == 'ActionDataPreprocessor'
    assert result['model'] in ('Recognizer2D', 'Recognizer3D')
    steps = result['steps']
    assert {'CheckedDecordDecode', 'RawFrameDecode'} & set(steps), steps
    assert steps[-1] == 'PackActionInputs', steps


@pytest.mark.slow  # shares the fresh process above
def test_negative_controls_fail_the_same_check(contract):
    no_scope, no_pipeline = contract['controls']
    assert not no_scope['ok']
    assert re.search('ActionDataPreprocessor is not in the mmengine::model',
                     no_scope['error'])
    assert not no_pipeline['ok']
    assert 'no test_pipeline' in no_pipeline['error']


@pytest.mark.parametrize('path', SMALL, ids=[p.stem for p in SMALL])
def test_small_configs_infer_on_a_real_clip(path, bikes_clip):
    from mmaction.apis import inference_recognizer, init_recognizer
    model = init_recognizer(str(path), device='cpu')  # random weights
    scores = inference_recognizer(model, str(bikes_clip)).pred_score
    num_classes = Config.fromfile(path).model.cls_head.num_classes
    assert scores.shape == (num_classes, )
    assert abs(float(scores.sum()) - 1) < 1e-4  # average_clips='prob'


def _dataset(cfg: Config, split: str):
    dataset = cfg[f'{split}_dataloader'].dataset
    while 'dataset' in dataset:  # RepeatDataset & co.
        dataset = dataset.dataset
    return dataset


def _child_moving_data(path: Path, root: str) -> str:
    """A child config that moves every split with the documented keys."""
    lines = [f'_base_ = [{str(path)!r}]']
    for split in SPLITS:
        base = _dataset(Config.fromfile(path), split)
        key = next(iter(base.data_prefix))  # 'video', or 'img' for frames
        lines.append(
            f'{split}_dataloader = dict(dataset=dict('
            f'ann_file={root + "/" + split + ".txt"!r}, '
            f'data_prefix=dict({key}={root!r})))')
    return '\n'.join(lines) + '\n'


@pytest.mark.parametrize(
    'path', DATA_LAYOUTS, ids=[f'{p.parent.name}/{p.stem}'
                               for p in DATA_LAYOUTS])
def test_child_moves_the_data_with_dataset_keys(path, tmp_path):
    root = str(tmp_path / 'my_data')
    base = Config.fromfile(path)
    old = {str(v) for split in SPLITS
           for v in [_dataset(base, split).ann_file,
                     *_dataset(base, split).data_prefix.values()]}
    child = tmp_path / 'child.py'
    child.write_text(_child_moving_data(path, root))
    dumped = tmp_path / 'dumped.py'
    Config.fromfile(child).dump(str(dumped))
    cfg = Config.fromfile(dumped)  # what a work dir keeps
    for split in SPLITS:
        dataset = _dataset(cfg, split)
        assert dataset.ann_file == f'{root}/{split}.txt'
        assert list(dataset.data_prefix.values()) == [root]
        assert 'data_root' not in dataset  # no other key to move
    for split in SPLITS:  # no stale path anywhere in a dataloader
        loader = str(cfg[f'{split}_dataloader'])
        assert not [p for p in old if repr(p) in loader], split


def test_tiny_csn_documented_snippet_moves_the_data(demo_data_root,
                                                     tmp_path):
    """The snippet in the tiny CSN config's header, run as written (with
    ``my_data`` a link to a real dataset): every split reads from it."""
    from mmaction.registry import DATASETS
    path = REPO_ROOT / 'configs/csn/ircsn_tiny-r50_1xb2-8x2x1-2e_demo-rgb.py'
    header = path.read_text().split('\n_base_')[0]
    snippet = [line[len('#   '):] for line in header.splitlines()
               if line.startswith('#   ') and 'tools/train.py' not in line
               and 'configs/csn' not in line]
    assert any('train_dataloader' in s for s in snippet), header
    (tmp_path / 'my_data').symlink_to(demo_data_root)
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{str(path)!r}]\n' + '\n'.join(snippet))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the snippet's paths are relative, as documented
    try:
        cfg = Config.fromfile(child)
        init_default_scope(cfg.default_scope)  # as the Runner does
        for split, expected in (('train', 24), ('val', 8), ('test', 8)):
            dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
            assert len(dataset) == expected, split
            video = dataset.get_data_info(0)['filename']
            assert Path(video).resolve().is_relative_to(
                Path(demo_data_root).resolve())
    finally:
        os.chdir(cwd)
