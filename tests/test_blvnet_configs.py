"""Every configs/blvnet config builds, and its name says what it resolves to.

Name scheme (README.md): ``blvnet-tam-r{depth}-a{alpha}-b{beta}_{pretrain}
_8xb{batch}-f{k}x2-{epochs}e_{dataset}-rgb.py`` where ``f{k}x2`` (the
official model name) means ``2k`` frames per clip and ``{pretrain}`` is
``imagenet-pretrained`` (50e recipe) or ``{dataset}-f8-pretrained``
(fine-tuned from the f8x2 config). tests/test_configs.py checks the
generic tokens of every config; this file checks the bLVNet ones.
"""
import re
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
import yaml
from mmaction.registry import MODELS, TRANSFORMS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmcsn  # noqa: F401  (registers)
from mmcsn.utils import count_complexity

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs' / 'blvnet'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
NAME = re.compile(r'^blvnet-tam-r(?P<depth>\d+)-a(?P<alpha>\d+)'
                  r'-b(?P<beta>\d+)_(?P<pretrain>[a-z0-9-]+)-pretrained'
                  r'_8xb(?P<batch>\d+)-f(?P<k>\d+)x2-(?P<epochs>\d+)e'
                  r'_(?P<dataset>[a-z0-9]+)-rgb$')
NUM_CLASSES = {'sthv1': 174, 'sthv2': 174, 'kinetics400': 400, 'mit': 339}
# lr at the official global batch of 64: 8x2 from ImageNet, and the
# paper's fine-tuning lr (0.005 for Kinetics).
BASE_LR = {'imagenet': 0.01, 'sthv1-f8': 0.01, 'sthv2-f8': 0.01,
           'kinetics400-f8': 0.005}
SAMPLERS = ('SampleFrames', 'UniformSample')

# The rows of the official README / model names (spec section 3).
EXPECTED_ROWS = {
    ('sthv1', 50, 8), ('sthv1', 50, 16), ('sthv1', 101, 8),
    ('sthv1', 101, 16), ('sthv1', 101, 24), ('sthv1', 101, 32),
    ('sthv2', 50, 8), ('sthv2', 50, 16), ('sthv2', 101, 8),
    ('sthv2', 101, 16), ('sthv2', 101, 24), ('sthv2', 101, 32),
    ('kinetics400', 50, 8), ('kinetics400', 50, 16), ('mit', 50, 8)
}


@pytest.fixture(autouse=True)
def mmaction_scope():
    with DefaultScope.overwrite_default_scope('mmaction'):
        yield


def parse(path: Path) -> dict:
    match = NAME.match(path.stem)
    assert match, f'{path.name} does not follow the blvnet name scheme'
    return match.groupdict()


def samplers(pipeline: list) -> list:
    return [t for t in pipeline if t['type'] in SAMPLERS]


def test_one_config_per_published_row():
    rows = {(parse(p)['dataset'], int(parse(p)['depth']), int(parse(p)['k']))
            for p in CONFIGS}
    assert rows == EXPECTED_ROWS
    assert len(CONFIGS) == len(EXPECTED_ROWS)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_name_matches_settings(path):
    tokens = parse(path)
    cfg = Config.fromfile(path)
    k, batch = int(tokens['k']), int(tokens['batch'])
    backbone = cfg.model.backbone
    assert cfg.custom_imports.imports == ['mmcsn']
    assert backbone.type == 'bLResNet'
    assert backbone.depth == int(tokens['depth'])
    assert backbone.alpha == int(tokens['alpha'])
    assert backbone.beta == int(tokens['beta'])
    assert backbone.num_segments == 2 * k
    assert cfg.model.cls_head.num_classes == NUM_CLASSES[tokens['dataset']]
    assert cfg.train_cfg.max_epochs == int(tokens['epochs'])
    assert cfg.train_dataloader.batch_size == batch

    # every sampler yields views of exactly 2k frames, one per segment
    for split in ('train', 'val', 'test'):
        pipeline = cfg[f'{split}_dataloader'].dataset.pipeline
        (sampler, ) = samplers(pipeline)
        if sampler['type'] == 'SampleFrames':
            assert (sampler['clip_len'], sampler['num_clips']) == (1, 2 * k)
        else:  # UniformSample: num_clips views of clip_len frames
            assert split == 'test' and sampler['clip_len'] == 2 * k
        assert sampler.get('test_mode', False) == (split != 'train')

    # lr follows the linear rule from the official batch of 64
    lr = cfg.optim_wrapper.optimizer.lr
    assert lr == pytest.approx(BASE_LR[tokens['pretrain']] * 8 * batch / 64)
    assert cfg.auto_scale_lr.base_batch_size == 8 * batch

    if tokens['pretrain'] == 'imagenet':
        assert cfg.load_from is None
        assert backbone.pretrained == (
            f"pretrained/ImageNet-bLResNet-{tokens['depth']}-a2-b4.pth.tar")
        assert cfg.param_scheduler[0].type == 'CosineAnnealingLR'
        assert cfg.param_scheduler[0].T_max == cfg.train_cfg.max_epochs
    else:
        # fine-tuned from the 8x2 config of the same depth and dataset
        assert tokens['pretrain'] == tokens['dataset'] + '-f8'
        assert backbone.pretrained is None
        parent = CONFIG_DIR / (
            f"blvnet-tam-r{tokens['depth']}-a2-b4_imagenet-pretrained_"
            f"8xb8-f8x2-50e_{tokens['dataset']}-rgb.py")
        assert parent.exists()
        assert cfg.load_from == f'work_dirs/{parent.stem}/epoch_50.pth'
        assert cfg.param_scheduler[0].type == 'MultiStepLR'
        interval = Config.fromfile(parent).default_hooks.checkpoint.interval
        assert 50 % interval == 0  # so that epoch_50.pth is written


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_model_builds(path):
    cfg = Config.fromfile(path)
    with torch.device('meta'):  # attributes only: no memory, no compute
        model = MODELS.build(cfg.model)
    assert model.backbone.num_segments == cfg.model.backbone.num_segments
    assert model.cls_head.fc_cls.out_features == cfg.model.cls_head.num_classes


def fake_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Frames whose pixel value is their frame index (to trace order)."""
    return np.broadcast_to(
        np.arange(num_frames, dtype=np.uint8)[:, None, None, None],
        (num_frames, height, width, 3)).copy()


def run_test_pipeline(cfg: Config, total_frames: int,
                      video: Optional[np.ndarray] = None) -> dict:
    """The test pipeline with decoding replaced by indexing fake frames."""
    if video is None:
        video = fake_frames(total_frames, 120, 160)
    results = dict(total_frames=total_frames, start_index=0, label=0,
                   modality='RGB', filename='fake.mp4')
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] in ('CheckedDecordInit', 'RawFrameDecode',
                            'CheckedDecordDecode'):
            if 'frame_inds' in results:
                imgs = video[results['frame_inds']]
                results.update(
                    imgs=list(imgs), img_shape=imgs.shape[1:3],
                    original_shape=imgs.shape[1:3])
            continue
        results = TRANSFORMS.build(step)(results)
    return results


@pytest.mark.parametrize('dataset, views', [('sthv1', 1), ('kinetics400', 9)])
def test_test_pipeline_gives_view_contiguous_clips(dataset, views):
    """bLResNet needs each view as a contiguous, ordered group of T frames.
    """
    path = CONFIG_DIR / ('blvnet-tam-r50-a2-b4_imagenet-pretrained_8xb8-'
                         f'f8x2-50e_{dataset}-rgb.py')
    cfg = Config.fromfile(path)
    results = run_test_pipeline(cfg, total_frames=100)
    inputs = results['inputs']
    assert tuple(inputs.shape) == (views * 16, 3, 224, 224)
    frame_ids = inputs[:, 0, 112, 112].view(views, 16).long()
    # inside a view: 16 distinct frames in temporal order
    assert (frame_ids.diff(dim=1) > 0).all()
    if views > 1:  # 3 clips x 3 crops: 3 distinct temporal clips
        assert len({tuple(v.tolist()) for v in frame_ids}) == 3


def test_multi_view_scores_average_independent_views():
    """N = 2 videos through the K400 test pipeline (3 clips x ThreeCrop)
    and the stock Recognizer2D + TSNHead: each video's score is the
    softmax of the mean of its 9 views' logits, each view computed alone
    (bLResNet runs every group of T frames on its own; no clip mixing)."""
    path = CONFIG_DIR / ('blvnet-tam-r50-a2-b4_imagenet-pretrained_8xb8-'
                         'f8x2-50e_kinetics400-rgb.py')
    cfg = Config.fromfile(path)
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.num_classes = 7  # tiny fc, same code path
    for step in cfg.test_dataloader.dataset.pipeline:  # tiny frames
        if step['type'] == 'Resize':
            step['scale'] = (-1, 32)
        elif step['type'] == 'ThreeCrop':
            step['crop_size'] = 32
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # zero-init bn3 and fc std 1e-3: logits ~1e-8
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
        model.cls_head.fc_cls.weight.normal_(0, 0.1)
    model.eval()
    views, t = 9, 16
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for i, total in enumerate((60, 100)):  # two videos of other lengths
        video = rng.integers(0, 256, (total, 32, 48, 3), dtype=np.uint8)
        packed = run_test_pipeline(cfg, total, video)
        assert tuple(packed['inputs'].shape) == (views * t, 3, 32, 32)
        inputs.append(packed['inputs'])
        samples.append(ActionDataSample().set_gt_label(i))
    data = dict(inputs=inputs, data_samples=samples)
    with torch.no_grad():
        results = model.test_step(data)
        batch = model.data_preprocessor(data, False)['inputs']
        assert batch.shape[:2] == (2, views * t)
        want = []
        for video in batch:  # one view of one video at a time
            logits = torch.cat([
                model(video[None, v * t:(v + 1) * t], mode='tensor',
                      stage='head') for v in range(views)
            ])
            # the views differ, so an average over the wrong groups shows
            assert (logits[0] - logits[3]).abs().max() > 1e-2 * logits.abs(
            ).max()
            # average_clips='prob' of one row: softmax of averaged logits
            want.append(logits.mean(dim=0).softmax(dim=0))
    got = torch.stack([r.pred_score for r in results])
    assert got.shape == (2, 7)
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_decoders_and_hooks(path):
    """Video configs decode with mmcsn's checked decord transforms (train
    skips a broken video, val/test raise naming it); raw-frame configs
    keep RawFrameDecode; every config stores RNG states (RNGStateHook)."""
    cfg = Config.fromfile(path)
    video = cfg.train_dataloader.dataset.type == 'VideoDataset'
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert (dataset.type == 'VideoDataset') == video
        types = [t['type'] for t in dataset.pipeline]
        assert 'DecordInit' not in types and 'DecordDecode' not in types
        if not video:
            assert types.count('RawFrameDecode') == 1
            continue
        checked = [
            t for t in dataset.pipeline
            if t['type'] in ('CheckedDecordInit', 'CheckedDecordDecode')
        ]
        assert [t['type'] for t in checked] == [
            'CheckedDecordInit', 'CheckedDecordDecode'
        ]
        want = 'skip' if split == 'train' else 'raise'
        assert all(t.get('on_error', 'raise') == want for t in checked)
    assert video == (parse(path)['dataset'] != 'sthv1')
    assert [h['type'] for h in cfg.custom_hooks].count('RNGStateHook') == 1


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_params_and_flops_match_published(path):
    """Each config's model, counted at 224 px on T frames, is within 1% of
    its metafile entry (the official model's count; the paper's tables
    were not recovered, see README.md). mmcsn's counter sees conv and
    linear MACs: TAM (elementwise, ~0.3%) is not counted, and TSNHead
    runs fc once per clip where the official head runs it per frame."""
    meta = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text())
    (entry, ) = [e for e in meta['Models'] if e['Name'] == path.stem]
    cfg = Config.fromfile(path)
    cfg.model.backbone.pretrained = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    frames = cfg.model.backbone.num_segments
    result = count_complexity(model, (frames, 3, 224, 224))
    gmacs = float(entry['Metadata']['FLOPs'].rstrip('G'))
    params = float(entry['Metadata']['Parameters'].rstrip('M'))
    assert result['macs'] / 1e9 == pytest.approx(gmacs, rel=0.01)
    assert result['params'] / 1e6 == pytest.approx(params, rel=0.001)


def test_metafile_and_readme_agree_with_the_configs():
    """One metafile entry per config; its top-1 is the README's row."""
    meta = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text())
    entries = {Path(e['Config']).stem: e for e in meta['Models']}
    assert set(entries) == {p.stem for p in CONFIGS}
    readme = (CONFIG_DIR / 'README.md').read_text()
    rows = {
        re.search(r'\]\(([^)]+)\.py\)', line).group(1): line
        for line in readme.splitlines() if line.startswith('| bLVNet-TAM')
    }
    assert set(rows) == set(entries)
    for stem, entry in entries.items():
        # the README lists the test command of every row
        assert f'python tools/test.py configs/blvnet/{stem}.py' in readme
        cells = [c.strip() for c in rows[stem].split('|')]
        frames = 2 * int(parse(CONFIG_DIR / f'{stem}.py')['k'])
        assert cells[2].endswith(f'= {frames}'), (stem, cells[2])
        assert cells[4] + 'G' == entry['Metadata']['FLOPs']
        assert cells[5].replace(' ', '') == entry['Metadata']['Parameters']
        if 'Results' in entry:
            top1 = entry['Results'][0]['Metrics']['Top 1 Accuracy']
            assert cells[3] == f'{top1:.1f}'
        else:
            assert 'not recovered' in cells[3] or 'unverified' in cells[3]
