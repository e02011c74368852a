"""TAMNeck: one TAM after any 2D backbone in MMAction2's Recognizer2D.

Checks the neck against a loop-level reference of the TAM formula, that
its identity start is exactly TSN, that it makes a TSN model depend on
frame order (TSN alone is order-invariant), that MMAction2's own TSN
config gains it with the neck entry (plus a tuple-returning backbone),
and that bad arguments / inputs raise clear errors.
"""
import copy
from pathlib import Path
from typing import List, Optional

import mmaction
import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

import mmcsn  # noqa: F401  (registers)

NUM_SEGS = 8
NUM_CLASSES = 5


@pytest.fixture(autouse=True)
def mmaction_scope():
    # data preprocessors resolve in the scope the runner would set
    with DefaultScope.overwrite_default_scope('mmaction'):
        yield


def reference_neck(x: torch.Tensor, weights: torch.Tensor,
                   offsets: List[int], num_segments: int,
                   collapse: str) -> torch.Tensor:
    """Loop-level TAM on (N, C, V*T, H, W): per view, per frame."""
    n, c, s, h, w = x.shape
    views = s // num_segments
    per_view = []
    for v in range(views):
        clip = x[:, :, v * num_segments:(v + 1) * num_segments]
        frames = []
        for t in range(num_segments):
            acc = torch.zeros(n, c, h, w, dtype=x.dtype)
            for k, offset in enumerate(offsets):
                if 0 <= t + offset < num_segments:  # zero padding outside
                    acc += weights[k].view(1, c, 1, 1) * clip[:, :,
                                                               t + offset]
            frames.append(F.relu(acc))
        stacked = torch.stack(frames, dim=2)
        if collapse == 'mean':
            per_view.append(stacked.mean(dim=2))
        else:
            per_view.append(stacked.amax(dim=2))
    return torch.stack(per_view, dim=0).mean(dim=0).unsqueeze(2)


def randomise_tam(neck: torch.nn.Module, seed: int = 0) -> None:
    """Random, asymmetric TAM weights (the official kaiming init)."""
    torch.manual_seed(seed)
    neck.tam.reset_parameters()


def build_tsn(neck: bool,
              out_indices: Optional[tuple] = None,
              num_segments: int = NUM_SEGS,
              neck_cfg: Optional[dict] = None) -> torch.nn.Module:
    """A tiny TSN (ResNet-18, 512 channels) with or without the neck.

    Plain TSN reads the bare layer4 tensor; with the neck the backbone
    returns (layer3, layer4), the tuple Recognizer2D's neck path needs.
    The parameters are the same either way.
    """
    if out_indices is None:
        out_indices = (2, 3) if neck else (3, )
    cfg = dict(
        type='Recognizer2D',
        backbone=dict(
            type='ResNet',
            depth=18,
            pretrained=None,
            out_indices=out_indices,
            norm_eval=False),
        cls_head=dict(
            type='TSNHead',
            num_classes=NUM_CLASSES,
            in_channels=512,
            spatial_type='avg',
            consensus=dict(type='AvgConsensus', dim=1),
            dropout_ratio=0.5,
            init_std=0.01,
            average_clips='prob'),
        data_preprocessor=dict(
            type='ActionDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            format_shape='NCHW'))
    if neck:
        cfg['neck'] = dict(
            type='TAMNeck', in_channels=512, num_segments=num_segments)
        cfg['neck'].update(neck_cfg or {})
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(views: int = 1, n: int = 2, size: int = 32) -> dict:
    """A data batch as the dataloader gives it (uint8 frames, labels)."""
    g = torch.Generator().manual_seed(1)
    inputs = [
        torch.randint(0, 256, (views * NUM_SEGS, 3, size, size),
                      generator=g, dtype=torch.uint8) for _ in range(n)
    ]
    samples = [
        ActionDataSample().set_gt_label(i % NUM_CLASSES) for i in range(n)
    ]
    return dict(inputs=inputs, data_samples=samples)


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x, mode='tensor', stage='head')


@pytest.mark.parametrize('blending_frames', [1, 3, 5])
@pytest.mark.parametrize('collapse', ['mean', 'max'])
@pytest.mark.parametrize('views', [1, 3])
def test_neck_matches_reference(blending_frames, collapse, views):
    neck = MODELS.build(
        dict(
            type='TAMNeck',
            in_channels=6,
            num_segments=4,
            blending_frames=blending_frames,
            collapse=collapse))
    randomise_tam(neck)
    x = torch.randn(2, 6, views * 4, 3, 3)
    out, loss_aux = neck((torch.randn(2, 3, 1, 1, 1), x))  # reads x[-1]
    weights = torch.stack(
        [m.weight.view(6) for m in neck.tam.weight_holders()])
    expected = reference_neck(x, weights.detach(), list(neck.tam.offsets),
                              4, collapse)
    assert loss_aux == {}
    assert out.shape == (2, 6, 1, 3, 3)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('collapse', ['mean', 'max'])
def test_neck_gradients_match_reference(collapse):
    """Input and TAM-weight gradients equal the loop reference's."""
    neck = MODELS.build(
        dict(type='TAMNeck', in_channels=6, num_segments=4,
             collapse=collapse))
    randomise_tam(neck, seed=1)
    torch.manual_seed(2)
    x = torch.randn(2, 6, 2 * 4, 3, 3, requires_grad=True)
    out, _ = neck([x])
    holders = [m.weight for m in neck.tam.weight_holders()]
    x_ref = x.detach().clone().requires_grad_()
    weights = torch.stack([w.view(6) for w in holders])
    ref = reference_neck(x_ref, weights, list(neck.tam.offsets), 4,
                         collapse)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x] + holders, grad)
    want = torch.autograd.grad(ref, [x_ref] + holders, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_views_are_aggregated_separately():
    """3 views of T frames == the mean of the neck on each view alone."""
    neck = MODELS.build(dict(type='TAMNeck', in_channels=4, num_segments=5))
    randomise_tam(neck)
    x = torch.randn(2, 4, 15, 2, 2)
    out, _ = neck(x)
    per_view = [neck(x[:, :, 5 * v:5 * (v + 1)])[0] for v in range(3)]
    torch.testing.assert_close(out, torch.stack(per_view).mean(dim=0))
    # Treating the 15 frames as one clip would mix views at the seams.
    one_clip = MODELS.build(
        dict(type='TAMNeck', in_channels=4, num_segments=15))
    one_clip.load_state_dict(neck.state_dict())
    assert not torch.allclose(one_clip(x)[0], out, atol=1e-4)


@pytest.fixture(scope='module')
def tsn_and_tam():
    """TSN and TSN + TAMNeck sharing every backbone and head weight."""
    with DefaultScope.overwrite_default_scope('mmaction'):
        tsn = build_tsn(neck=False)
        tam = build_tsn(neck=True)
    missing, unexpected = tam.load_state_dict(tsn.state_dict(), strict=False)
    assert unexpected == []
    assert sorted(missing) == [
        'neck.tam.curr.weight', 'neck.tam.next.weight', 'neck.tam.prev.weight'
    ]
    return tsn, tam


def test_identity_start_equals_tsn(tsn_and_tam):
    """Default init: the neck model computes exactly what TSN computes."""
    tsn, tam = tsn_and_tam
    assert tam.neck.tam.curr.weight.eq(1).all()
    assert tam.neck.tam.prev.weight.eq(0).all()
    x = torch.randn(2, NUM_SEGS, 3, 32, 32)
    torch.testing.assert_close(
        logits(tam, x), logits(tsn, x), rtol=1e-4, atol=1e-6)


def test_neck_makes_tsn_order_aware(tsn_and_tam):
    tsn, tam = tsn_and_tam
    tam = copy.deepcopy(tam)
    randomise_tam(tam.neck)
    # Frames of distinct brightness, so that they differ in feature space.
    x = torch.randn(2, NUM_SEGS, 3, 32, 32) * torch.linspace(
        0.2, 3.0, NUM_SEGS).view(1, NUM_SEGS, 1, 1, 1)
    perm = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])
    shuffled = x[:, perm]

    def rel_change(model):
        ref = logits(model, x)
        return ((logits(model, shuffled) - ref).abs().max() /
                ref.abs().max()).item()

    # TSN averages per-frame features: order cannot matter.
    assert rel_change(tsn) < 1e-4
    # The neck mixes neighbours: another order gives other logits.
    assert rel_change(tam) > 1e-2


def test_train_step_updates_neck_and_backbone_then_test_step():
    model = build_tsn(neck=True)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    before = copy.deepcopy(model.state_dict())
    log_vars = model.train_step(batch(), optim)
    assert torch.isfinite(log_vars['loss']).all()
    after = model.state_dict()
    # From the identity start the neighbour weights get gradients too.
    for key in ('neck.tam.prev.weight', 'neck.tam.next.weight',
                'neck.tam.curr.weight', 'backbone.conv1.conv.weight',
                'cls_head.fc_cls.weight'):
        assert not torch.equal(before[key], after[key]), key

    # 3 views per video, e.g. ThreeCrop at test time
    results = model.test_step(batch(views=3))
    assert len(results) == 2
    for sample in results:
        assert sample.pred_score.shape == (NUM_CLASSES, )
        torch.testing.assert_close(sample.pred_score.sum(), torch.tensor(1.0))


# docs/tam.md's config: MMAction2's TSN-R50 sthv2 config plus the neck.
TSN_TAM_CONFIG = """
_base_ = ['mmaction::recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-50e_sthv2-rgb.py']
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)
model = dict(
    backbone=dict(out_indices=(2, 3)),
    neck=dict(type='TAMNeck', in_channels=2048, num_segments=8))
test_dataloader = dict(dataset=dict(pipeline={{_base_.val_pipeline}}))
"""  # noqa: E501


def test_mmaction_tsn_r50_config_gains_tam_with_the_neck_entry(tmp_path):
    """MMAction2's own TSN-R50 sthv2 config, plus the neck entry."""
    path = tmp_path / 'tsn_r50_tam_sthv2.py'
    path.write_text(TSN_TAM_CONFIG)
    cfg = Config.fromfile(path)
    docs = (Path(__file__).parents[1] / 'docs' / 'tam.md').read_text()
    assert TSN_TAM_CONFIG.strip() in docs  # the documented config is this
    # every pipeline samples views of num_segments frames
    for split in ('train', 'val', 'test'):
        (sampler, ) = [
            t for t in cfg[f'{split}_dataloader'].dataset.pipeline
            if t['type'] == 'SampleFrames'
        ]
        assert sampler['num_clips'] == 8
    # TSN's own test protocol (25 clips x TenCrop = 250 frames per
    # video) does not split into views of 8 frames: a clear error.
    stock = Config.fromfile(
        Path(mmaction.__file__).parent / '.mim' / 'configs' / 'recognition' /
        'tsn' / 'tsn_imagenet-pretrained-r50_8xb32-1x1x8-50e_sthv2-rgb.py')
    assert [t.get('num_clips') for t in stock.test_pipeline
            if t['type'] == 'SampleFrames'] == [25]
    neck = MODELS.build(cfg.model.neck)
    with pytest.raises(ValueError, match='num_clips=8 in the SampleFrames'):
        neck([torch.zeros(1, 2048, 250, 1, 1)])

    cfg.model.backbone.pretrained = None  # no download in tests
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.neck).__name__ == 'TAMNeck'
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    prev = model.neck.tam.prev.weight.detach().clone()
    log_vars = model.train_step(batch(n=2, size=32), optim)
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(model.neck.tam.prev.weight, prev)
    # multi-view test: num_segments segments per view, 3 views (ThreeCrop)
    results = model.test_step(batch(views=3, n=2, size=32))
    assert [r.pred_score.shape for r in results] == [(174, )] * 2


def test_bare_tensor_backbone_is_explained():
    """Recognizer2D iterates over a bare tensor: the neck says what to do."""
    model = build_tsn(neck=True, out_indices=(3, ))
    with pytest.raises(ValueError, match=r'out_indices=\(2, 3\)'):
        logits(model, torch.randn(1, NUM_SEGS, 3, 32, 32))


def test_init_cfg_replaces_the_identity_start():
    neck = MODELS.build(
        dict(
            type='TAMNeck',
            in_channels=4,
            num_segments=2,
            init_cfg=dict(type='Constant', layer='Conv2d', val=0.5)))
    neck.init_weights()
    for holder in neck.tam.weight_holders():
        assert holder.weight.eq(0.5).all()


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(collapse='sum'), ValueError, r"collapse.*'mean', 'max'.*'sum'"),
    (dict(in_channels=0), ValueError, 'in_channels must be a positive .*0'),
    (dict(in_channels=2.0), TypeError, 'in_channels must be a positive int'),
    (dict(num_segments=-1), ValueError, 'num_segments must be a positive'),
    (dict(blending_frames=2), ValueError, 'blending_frames must be an odd'),
    (dict(in_index='last'), TypeError, "in_index must be an int, got 'last'"),
])
def test_bad_arguments(kwargs, error, match):
    cfg = dict(type='TAMNeck', in_channels=4, num_segments=2)
    cfg.update(kwargs)
    with pytest.raises(error, match=match):
        MODELS.build(cfg)


@pytest.mark.parametrize('x, match', [
    (torch.zeros(4, 4, 2, 2), r'5-D map \(N, C, T, H, W\), got shape'),
    ([torch.zeros(4, 2, 2)] * 3, r'5-D map .* got shape \(4, 2, 2\)'),
    ([torch.zeros(2, 2, 4, 2)] * 8, 'Recognizer2D iterates over'),
    (torch.zeros(1, 3, 4, 2, 2), r'expected 4 channels \(in_channels\)'),
    (torch.zeros(1, 4, 5, 2, 2), '5 frames on dim 2, not a multiple of'),
    ([], 'empty sequence'),
])
def test_bad_inputs(x, match):
    neck = MODELS.build(dict(type='TAMNeck', in_channels=4, num_segments=2))
    with pytest.raises(ValueError, match=match):
        neck(x)
