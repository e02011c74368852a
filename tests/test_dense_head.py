"""DenseI3DHead reproduces PyTorchVideo's CSN at the 256-px test views.

A random CSN in PyTorchVideo's layout (the hub ``csn_r101`` structure at a
tiny width and one block per stage: the spatial size is what matters) is
converted with mmcsn's converter and compared with a reference forward
written here from PyTorchVideo's layer formulas in plain torch ops
(``create_csn`` / ``create_res_basic_stem`` / ``create_bottleneck_block``
/ ``ResNetBasicHead``); no PyTorchVideo import.
"""
import re

import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.registry import init_default_scope

from mmcsn.checkpoint import load_state_dict_checked, pytorchvideo_to_mmcsn
from mmcsn.checkpoint.zoo_configs import config_for

EPS = 1e-5  # PyTorchVideo's nn.BatchNorm3d default
WIDTH = 8  # stem channels; the last stage gives WIDTH * 32
NUM_CLASSES = 5


def _recognizer(head: str) -> torch.nn.Module:
    init_default_scope('mmaction')
    head_cfg = dict(type=head, num_classes=NUM_CLASSES,
                    in_channels=WIDTH * 32, average_clips=None)
    if head == 'DenseI3DHead':
        head_cfg['pool_size'] = (4, 7, 7)  # the hub csn_r101's
    return MODELS.build(dict(
        type='Recognizer3D',
        backbone=dict(type='CSN', depth=101, bottleneck_mode='ir',
                      stage_blocks=(1, 1, 1, 1), base_channels=WIDTH,
                      with_pool1=True,  # the hub model's stem max-pool
                      norm_cfg=dict(type='BN3d', requires_grad=True,
                                    eps=EPS),
                      pretrained=None, norm_eval=False),
        cls_head=head_cfg)).eval()


# mmcsn/MMAction2 key -> PyTorchVideo key: the inverse of the PyTorchVideo
# rename table in mmcsn/checkpoint/csn_rules.py
_TO_PTV = [
    (r'^backbone\.conv1\.conv\.', 'blocks.0.conv.'),
    (r'^backbone\.conv1\.bn\.', 'blocks.0.norm.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv1\.conv\.',
     r'blocks.\1.res_blocks.\2.branch2.conv_a.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv1\.bn\.',
     r'blocks.\1.res_blocks.\2.branch2.norm_a.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv2\.0\.conv\.',
     r'blocks.\1.res_blocks.\2.branch2.conv_b.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv2\.0\.bn\.',
     r'blocks.\1.res_blocks.\2.branch2.norm_b.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv3\.conv\.',
     r'blocks.\1.res_blocks.\2.branch2.conv_c.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv3\.bn\.',
     r'blocks.\1.res_blocks.\2.branch2.norm_c.'),
    (r'^backbone\.layer(\d)\.(\d+)\.downsample\.conv\.',
     r'blocks.\1.res_blocks.\2.branch1_conv.'),
    (r'^backbone\.layer(\d)\.(\d+)\.downsample\.bn\.',
     r'blocks.\1.res_blocks.\2.branch1_norm.'),
    (r'^cls_head\.fc_cls\.', 'blocks.5.proj.'),
]


def _ptv_state_dict() -> dict:
    """A random PyTorchVideo-layout CSN with non-trivial BN statistics."""
    gen = torch.Generator().manual_seed(0)
    model = _recognizer('DenseI3DHead')
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith('num_batches_tracked'):
            continue
        if key.endswith('running_var'):
            value = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith(('running_mean', 'bias')):
            value = torch.randn(value.shape, generator=gen) * 0.1
        elif key.endswith('bn.weight'):
            value = torch.rand(value.shape, generator=gen) + 0.5
        else:
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=gen) / fan_in**0.5
        for pattern, repl in _TO_PTV:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            raise AssertionError(f'unmapped key {key}')
    return out


def _bn(x, sd, prefix):
    return F.batch_norm(x, sd[prefix + 'running_mean'],
                        sd[prefix + 'running_var'], sd[prefix + 'weight'],
                        sd[prefix + 'bias'], False, 0.0, EPS)


def _reference(sd: dict, x: torch.Tensor, pool=(4, 7, 7)) -> torch.Tensor:
    """PyTorchVideo's hub csn_r101 forward, from its layer formulas."""
    # stem: conv (3,7,7) stride (1,2,2) pad k//2, BN, ReLU, max-pool
    # (1,3,3) stride (1,2,2) pad k//2
    x = F.conv3d(x, sd['blocks.0.conv.weight'], stride=(1, 2, 2),
                 padding=(1, 3, 3))
    x = F.relu(_bn(x, sd, 'blocks.0.norm.'))
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    for stage in range(1, 5):
        # create_csn: stage_spatial/temporal_stride (1,2,2,2), on conv_b
        stride = 1 if stage == 1 else 2
        p = f'blocks.{stage}.res_blocks.0.'
        # ResBlock: activation(branch1(x) + branch2(x)); branch1 = conv
        # 1x1x1 with the block's stride, then norm
        shortcut = _bn(F.conv3d(x, sd[p + 'branch1_conv.weight'],
                                stride=stride), sd, p + 'branch1_norm.')
        b = F.relu(_bn(F.conv3d(x, sd[p + 'branch2.conv_a.weight']), sd,
                       p + 'branch2.norm_a.'))
        w = sd[p + 'branch2.conv_b.weight']
        b = F.relu(_bn(F.conv3d(b, w, stride=stride, padding=1,
                                groups=w.shape[0]), sd,
                       p + 'branch2.norm_b.'))
        b = _bn(F.conv3d(b, sd[p + 'branch2.conv_c.weight']), sd,
                p + 'branch2.norm_c.')
        x = F.relu(shortcut + b)
    # ResNetBasicHead: AvgPool3d(pool, stride 1, no pad) -> proj at every
    # position (permute, Linear, permute back) -> AdaptiveAvgPool3d(1)
    x = F.avg_pool3d(x, pool, stride=1)
    x = F.linear(x.permute(0, 2, 3, 4, 1), sd['blocks.5.proj.weight'],
                 sd['blocks.5.proj.bias']).permute(0, 4, 1, 2, 3)
    return x.mean(dim=(2, 3, 4))


def _logits(model, x):
    with torch.no_grad():
        return model.cls_head(model.backbone(x))


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope='module')
def converted():
    ptv = _ptv_state_dict()
    models = {}
    for head in ('DenseI3DHead', 'I3DHead'):
        model = _recognizer(head)
        load_state_dict_checked(model, pytorchvideo_to_mmcsn(ptv),
                                strict=True)
        models[head] = model
    return ptv, models


def test_pytorchvideo_logits_at_32x256x256(converted):
    torch.set_num_threads(2)
    ptv, models = converted
    x = torch.randn(1, 3, 32, 256, 256,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = _reference(ptv, x)
    dense = _logits(models['DenseI3DHead'], x)
    assert _rel(dense, reference) < 1e-5
    # negative control: MMAction2's I3DHead pools the 8x8 map globally
    # first and misses the reference at 256 px by far more
    assert _rel(_logits(models['I3DHead'], x), reference) > 1e-3


def test_heads_agree_where_the_window_covers_the_map(converted):
    """At 224 px (a 4x7x7 map) the window is the whole map."""
    _, models = converted
    x = torch.randn(1, 3, 32, 224, 224,
                    generator=torch.Generator().manual_seed(2))
    feats = models['I3DHead'].backbone(x).detach()
    assert feats.shape[2:] == (4, 7, 7)
    dense = models['DenseI3DHead'].cls_head(feats)
    i3d = models['I3DHead'].cls_head(feats)
    torch.testing.assert_close(dense, i3d, rtol=1e-5, atol=1e-6)
    # smaller than the window: clipped, i.e. a global pool
    small = feats[:, :, :2, :3, :3]
    torch.testing.assert_close(models['DenseI3DHead'].cls_head(small),
                               models['I3DHead'].cls_head(small))


def test_bad_pool_size():
    init_default_scope('mmaction')
    # mmcsn.validate: wrong type -> TypeError, wrong value -> ValueError
    for bad, error in (((4, 7), ValueError), ((0, 7, 7), ValueError),
                       ((4.0, 7, 7), TypeError), (7, TypeError)):
        with pytest.raises(error, match=r'pool_size(\[\d\])? must be'):
            MODELS.build(dict(type='DenseI3DHead', num_classes=2,
                              in_channels=8, pool_size=bad))
    head = MODELS.build(dict(type='DenseI3DHead', num_classes=2,
                             in_channels=8))
    with pytest.raises(ValueError, match=r'expects \(N, C, T, H, W\)'):
        head(torch.zeros(2, 8))


def test_zoo_configs_use_the_source_head(tmp_path):
    from pathlib import Path

    from mmengine.config import Config
    repo = Path(__file__).resolve().parents[1]
    for source, mode, depth in (('pytorchvideo', 'ir', 101),
                                ('vmz', 'ir', 152), ('vmz', 'ip', 152)):
        rel = config_for(source, mode, depth)
        cfg = Config.fromfile(str(repo / rel))
        assert cfg.model.cls_head.type == 'DenseI3DHead', rel
        assert cfg.model.backbone.depth == depth, rel
        assert cfg.model.backbone.bottleneck_mode == mode, rel
        assert cfg.test_pipeline[-3]['crop_size'] == 256, rel
    ptv = Config.fromfile(str(repo / config_for('pytorchvideo', 'ir', 101)))
    assert ptv.model.backbone.norm_cfg.eps == EPS
    assert ptv.model.data_preprocessor.mean == [114.75] * 3
    assert config_for('pytorchvideo', 'ip', 101) is None
    assert config_for('vmz_pt', 'ir', 152) == config_for('caffe2', 'ir', 152)
    assert config_for('caffe2', 'ir', 26) is None
    assert config_for('mmaction', 'ir', 152) is None
    assert config_for('blvnet', None, 50) is None
    with pytest.raises(ValueError, match="mode must be 'ir', 'ip'"):
        config_for('vmz', 'dw', 152)
    with pytest.raises(ValueError, match='source must be one of'):
        config_for('torchvision', 'ir', 152)
