"""CSN backbone: MMAction2 parity, options, argument validation."""
import pytest
import torch
from mmaction.registry import MODELS
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm

import mmcsn  # noqa: F401  (registers CSN)
from mmcsn.checkpoint.io import CheckpointError, load_state_dict_checked
from mmcsn.models.backbones import CSN
from mmcsn.ops import DepthwiseConv3d

TINY = dict(depth=26, base_channels=8)


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random BN affine params and running stats (convs keep their init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


def _mmaction_csn(depth: int, mode: str, **kwargs) -> torch.nn.Module:
    # ResNet3dCSN as every MMAction2 CSN config builds it
    ref = MODELS.build(
        dict(type='ResNet3dCSN', depth=depth, pretrained=None,
             pretrained2d=False, with_pool2=False, bottleneck_mode=mode,
             **kwargs))
    ref.init_weights()
    _randomize(ref)
    return ref


@pytest.mark.parametrize('depth,mode', [(50, 'ir'), (50, 'ip'),
                                        (152, 'ir')])
def test_parity_with_mmaction2(depth, mode):
    ref = _mmaction_csn(depth, mode)
    ours = MODELS.build(dict(type='CSN', depth=depth, bottleneck_mode=mode))
    # identical key order and shapes, then a strict load
    ref_sd = ref.state_dict()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in ref_sd.items()]
    load_state_dict_checked(ours, ref_sd, strict=True)
    ref.eval()
    ours.eval()
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator()
                    .manual_seed(1))
    with torch.no_grad():
        want = ref(x)
        got_fused = ours(x)  # default: channels-last + folded BN
    got = ours(x)  # grad enabled: plain conv -> BN path
    assert got.shape == want.shape == (1, 2048, 1, 1, 1)
    assert want.abs().max() > 0.1  # not a degenerate all-zero output
    assert torch.allclose(got_fused, want, atol=1e-5)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize('mode,kwargs', [
    ('ir', dict(inflate_style='3x1x1')),
    ('ip', dict(inflate_style='3x1x1')),
    ('ip', dict(inflate=(1, (1, 0, 1, 0), 0, 1))),
    ('ip', dict(style='caffe', with_pool2=True)),
    ('ir', dict(with_pool1=False, conv1_stride_t=2, pool1_stride_t=2)),
    ('ip', dict(out_indices=(1, 3), spatial_strides=(1, 2, 2, 1))),
])
def test_option_parity_with_mmaction2(mode, kwargs):
    # narrow (base 8) depth 50: every argument keeps ResNet3dCSN's meaning
    common = dict(depth=50, bottleneck_mode=mode, base_channels=8,
                  with_pool2=False)
    common.update(kwargs)
    ref = MODELS.build(dict(type='ResNet3dCSN', pretrained=None,
                            pretrained2d=False, **common))
    _randomize(ref)
    ours = MODELS.build(dict(type='CSN', **common))
    load_state_dict_checked(ours, ref.state_dict(), strict=True)
    ref.eval()
    ours.eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    want = want if isinstance(want, tuple) else (want, )
    got = got if isinstance(got, tuple) else (got, )
    assert [w.shape for w in want] == [g.shape for g in got]
    for w, g in zip(want, got):
        assert torch.allclose(g, w, atol=1e-5)


@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_depthwise_convs_are_mmcsn_ops(mode):
    model = CSN(bottleneck_mode=mode, **TINY)
    dw = [m for m in model.modules() if isinstance(m, DepthwiseConv3d)]
    assert len(dw) == 8  # one per block
    assert all(m.groups == m.in_channels == m.out_channels for m in dw)
    assert all(m.kernel_size == (3, 3, 3) for m in dw)
    # the stride of a stage sits on its first depthwise conv
    assert model.layer2[0].conv2[-1].conv.stride == (2, 2, 2)
    assert model.layer2[0].conv1.conv.stride == (1, 1, 1)


def test_defaults_match_resnet3dcsn():
    model = CSN(depth=50)
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert {(m.eps, m.momentum) for m in bns} == {(1e-3, 0.1)}
    assert not model.with_pool2 and model.with_pool1
    assert model.out_indices == (3, ) and model.feat_dim == 2048
    assert model.memory_format == 'channels_last_3d'
    assert model.zero_init_residual and model.frozen_stages == -1


@pytest.mark.parametrize('zero_init', [True, False])
def test_zero_init_residual(zero_init):
    model = CSN(zero_init_residual=zero_init, **TINY)
    model.init_weights()
    last = torch.cat([b.last_norm.weight for layer in
                      (model.layer1, model.layer4) for b in layer])
    assert torch.all(last == (0.0 if zero_init else 1.0))
    assert torch.all(model.layer1[0].conv1.bn.weight == 1.0)


@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_frozen_stages(frozen_stages):
    model = CSN(frozen_stages=frozen_stages, **TINY)
    model.train()
    frozen = ['conv1'] + [f'layer{i}' for i in range(1, frozen_stages + 1)]
    for name, param in model.named_parameters():
        is_frozen = name.split('.')[0] in frozen
        assert param.requires_grad is not is_frozen, name
    for name, m in model.named_modules():
        if name:
            assert m.training is not (name.split('.')[0] in frozen), name


@pytest.mark.parametrize('norm_eval,bn_frozen', [(True, False),
                                                  (False, True),
                                                  (True, True)])
def test_norm_eval_and_bn_frozen(norm_eval, bn_frozen):
    model = CSN(norm_eval=norm_eval, bn_frozen=bn_frozen, **TINY)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert model.layer1[0].conv1.conv.training
    for m in bns:
        for p in m.parameters():
            assert p.requires_grad is not bn_frozen
    before = bns[3].running_mean.clone()
    model(torch.randn(2, 3, 4, 32, 32))
    assert torch.equal(bns[3].running_mean, before)


def test_bn_trains_by_default():
    model = CSN(**TINY)
    model.train()
    bn = model.layer1[0].conv1.bn
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 4, 32, 32))
    assert bn.training and not torch.equal(bn.running_mean, before)


@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_with_cp_same_outputs_and_grads(mode):
    torch.manual_seed(0)
    plain = CSN(bottleneck_mode=mode, **TINY)
    ckpt = CSN(bottleneck_mode=mode, with_cp=True, **TINY)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    outs, grads = [], []
    for model in (plain, ckpt):
        model.train()
        xi = x.clone().requires_grad_()
        out = model(xi)
        out.square().sum().backward()
        outs.append(out)
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    assert len(grads[0]) == len(grads[1]) > 10
    for g0, g1 in zip(*grads):
        assert torch.allclose(g0, g1, atol=1e-5)


def test_out_indices_shapes():
    model = CSN(out_indices=(0, 1, 2, 3), depth=50, base_channels=8)
    model.eval()
    outs = model(torch.randn(1, 3, 8, 32, 32))
    # x4 expansion at depth 50; (1,2,2,2) strides in T and HW
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 8, 8),
                                              (1, 64, 4, 4, 4),
                                              (1, 128, 2, 2, 2),
                                              (1, 256, 1, 1, 1)]


def test_temporal_only_stride_gets_projection():
    # same width (depth 26, no expansion) + temporal stride 2 in stage 1
    model = CSN(temporal_strides=(2, 2, 2, 2), **TINY)
    model.eval()
    assert model.layer1[0].downsample.conv.stride == (2, 1, 1)
    assert model.layer1[1].downsample is None
    out = model(torch.randn(1, 3, 16, 32, 32))
    assert out.shape == (1, 64, 1, 1, 1)


@pytest.mark.parametrize('training', [True, False])
def test_memory_format_and_bn_folding_do_not_change_outputs(training):
    torch.manual_seed(0)
    variants = [
        CSN(memory_format=mf, fuse_bn_eval=fuse, bottleneck_mode='ip',
            **TINY) for mf in ('contiguous', 'channels_last_3d')
        for fuse in (False, True)
    ]
    _randomize(variants[0])
    keys = list(variants[0].state_dict())
    for v in variants[1:]:
        assert list(v.state_dict()) == keys
        v.load_state_dict(variants[0].state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    outs = []
    for v in variants:
        v.train(training)
        with torch.no_grad():
            outs.append(v(x))
    assert outs[0].is_contiguous()
    assert outs[2].is_contiguous(memory_format=torch.channels_last_3d)
    # train mode normalises with batch statistics over as few as 2 values
    # in stage 4, which amplifies float32 rounding of the other layout's
    # reduction order to ~1e-4 (float64 gives 0); a real bug is O(1)
    atol = 2e-4 if training else 1e-5
    for out in outs[1:]:
        assert torch.allclose(out, outs[0], atol=atol, rtol=1e-4)


@pytest.mark.parametrize('kwargs,match', [
    (dict(depth=34), r'depth must be one of \[26, 50, 101, 152\], got 34'),
    (dict(bottleneck_mode='xy'), r"bottleneck_mode must be one of .*'xy'"),
    (dict(bottleneck_mode='bottleneck-G'), r'groups must be a positive'),
    (dict(bottleneck_mode='simple-G', groups=3),
     r'groups must be a divisor of every grouped width \[.*\], got 3'),
    (dict(bottleneck_mode='ir', groups=4),
     r'groups must be None or 1 \(it applies only to'),
    (dict(bottleneck_mode='simple', expansion=4), r'expansion must be None'),
    (dict(out_indices=(4, )), r'out_indices\[0\] must be an int in 0\.\.3'),
    (dict(num_stages=2, out_indices=(2, )),
     r'out_indices\[0\] must be an int in 0\.\.1 \(num_stages=2\)'),
    (dict(frozen_stages=5), r'frozen_stages must be an int in -1\.\.4 .*5'),
    (dict(memory_format='nhwc'), r"memory_format must be one of .*'nhwc'"),
    (dict(pretrained2d=True), r'pretrained2d must be False'),
    (dict(non_local=(0, 1, 0, 0)), r'non_local\[1\] must be one of \[0\]'),
    (dict(dilations=(1, 2, 1, 1)), r'dilations must be all 1'),
    (dict(num_stages=5), r'num_stages must be an int in 1\.\.4'),
    (dict(style='tf'), r"style must be one of \['pytorch', 'caffe'\]"),
    (dict(inflate=(1, (1, 0, 1), 1, 1)),
     r'inflate\[1\] must be 0, 1 or a list/tuple of 2 entries'),
])
def test_bad_arguments_raise(kwargs, match):
    # the whole table (every argument) is tests/test_validation.py
    args = dict(TINY, **kwargs)
    with pytest.raises(ValueError, match=match):
        CSN(**args)


def _save_recognizer_ckpt(path, backbone):
    sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    sd['cls_head.fc_cls.weight'] = torch.zeros(4, backbone.feat_dim)
    sd['cls_head.fc_cls.bias'] = torch.zeros(4)
    torch.save({'state_dict': sd, 'meta': {'epoch': 1}}, path)


@pytest.mark.parametrize('how', ['pretrained', 'init_cfg'])
def test_pretrained_mmaction2_checkpoint(tmp_path, how):
    ref = _mmaction_csn(50, 'ip', base_channels=8)
    path = str(tmp_path / 'ipcsn_r50.pth')
    _save_recognizer_ckpt(path, ref)
    if how == 'pretrained':
        cfg = dict(pretrained=path)
    else:
        cfg = dict(init_cfg=dict(type='Pretrained', checkpoint=path))
    model = MODELS.build(dict(type='CSN', depth=50, bottleneck_mode='ip',
                              base_channels=8, **cfg))
    model.init_weights()
    got = model.state_dict()
    for k, v in ref.state_dict().items():
        assert torch.equal(got[k], v), k
    # an ip checkpoint does not fit an ir model: strict load names keys
    wrong = CSN(depth=50, bottleneck_mode='ir', base_channels=8,
                pretrained=path)
    with pytest.raises(CheckpointError, match='conv2.1'):
        wrong.init_weights()


def test_pretrained_and_init_cfg_together_raise(tmp_path):
    with pytest.raises(ValueError, match='CSN: pretrained must be None when '
                       "init_cfg has a 'Pretrained'.*not both"):
        CSN(pretrained='a.pth',
            init_cfg=dict(type='Pretrained', checkpoint='a.pth'), **TINY)
