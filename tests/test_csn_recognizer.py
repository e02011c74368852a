"""A Recognizer3D with the CSN backbone trains and tests end to end."""
import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

import mmcsn  # noqa: F401  (registers CSN)

NUM_CLASSES = 3


def _recognizer(mode: str) -> torch.nn.Module:
    # the recognizer builds its data preprocessor from the default scope
    init_default_scope('mmaction')
    model = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(
                type='CSN',
                depth=26,
                base_channels=8,
                bottleneck_mode=mode,
                pretrained=None,
                norm_eval=False,
                zero_init_residual=False),
            cls_head=dict(
                type='I3DHead',
                num_classes=NUM_CLASSES,
                in_channels=64,  # 8 * 2**3, no expansion at depth 26
                spatial_type='avg',
                dropout_ratio=0.5,
                init_std=0.01,
                average_clips='prob'),
            data_preprocessor=dict(
                type='ActionDataPreprocessor',
                mean=[110.2, 100.6, 96.0],
                std=[58.1, 56.5, 55.3],
                format_shape='NCTHW')))
    model.init_weights()
    return model


def _batch(n: int, with_labels: bool) -> dict:
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(n):
        # (num_clips, C, T, H, W) uint8 frames, as the pipeline packs them
        inputs.append(
            torch.randint(0, 256, (1, 3, 4, 32, 32), generator=gen,
                          dtype=torch.uint8))
        sample = ActionDataSample()
        if with_labels:
            sample.set_gt_label(i % NUM_CLASSES)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_train_step_and_test_step(mode):
    torch.manual_seed(0)
    model = _recognizer(mode)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}

    model.train()
    losses = model.train_step(_batch(2, True), optim)
    assert set(losses) >= {'loss_cls'}
    assert torch.isfinite(losses['loss_cls'])
    changed = [
        k for k, v in model.named_parameters()
        if not torch.equal(v.detach(), before[k])
    ]
    assert any(k.startswith('backbone.layer4') for k in changed)
    assert any(k.startswith('backbone.conv1') for k in changed)
    assert any(k.startswith('cls_head.fc_cls') for k in changed)

    model.eval()
    results = model.test_step(_batch(2, False))
    assert len(results) == 2
    for res in results:
        assert res.pred_score.shape == (NUM_CLASSES, )
        assert torch.isfinite(res.pred_score).all()
        assert torch.allclose(res.pred_score.sum(), torch.tensor(1.0),
                              atol=1e-5)
