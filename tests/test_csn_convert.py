"""CSN checkpoint converters: parity with independent source forwards.

For each source layout a checkpoint is built IN THAT LAYOUT with random
weights and random BN statistics, run through an independent forward of
that layout written here (VMZ PyTorch and PyTorchVideo re-implemented
with their module names; caffe2 as a functional forward over the blob
dict), converted, loaded strictly into mmcsn's CSN + I3DHead, and the
outputs compared.
"""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import Py2Pickler, load_tool
from mmaction.registry import MODELS

import mmcsn  # noqa: F401  (registers CSN)
from mmcsn.archs import CSN_STAGE_BLOCKS
from mmcsn.checkpoint import (
    CheckpointError,
    WrongFamilyError,
    load_checkpoint_file,
    load_state_dict_checked,
    unwrap_state_dict,
)
from mmcsn.checkpoint.csn import (
    caffe2_to_mmcsn,
    convert_to_mmcsn,
    convert_to_mmcsn_recognizer,
    detect_csn_layout,
    mmaction_to_mmcsn,
    pytorchvideo_to_mmcsn,
    vmz_pt_to_mmcsn,
)

REPO = Path(__file__).resolve().parents[1]
DEPTH = 50
NUM_CLASSES = 5
CLIP = (1, 3, 4, 32, 32)


# ------------------------------------------------------------- helpers
def _cli(name: str):
    """Import ``tools/convert/<name>.py`` as a module."""
    return load_tool(f'tools/convert/{name}.py')


def _clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(*CLIP, generator=torch.Generator().manual_seed(seed))


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights AND BN statistics, scaled to keep logits O(1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv3d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(
                    torch.randn(m.weight.shape, generator=gen) *
                    (1.0 / fan_in)**0.5)
            elif isinstance(m, nn.BatchNorm3d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(
                    torch.randn(m.weight.shape, generator=gen) * 0.05)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
    module.eval()  # MMAction2's ResNet3d.train() returns None, not self
    return module


class MmcsnNet(nn.Module):
    """mmcsn's CSN backbone + MMAction2's I3DHead (recognizer key names)."""

    def __init__(self, mode: str, eps: float = 1e-3, with_pool1=True):
        super().__init__()
        self.backbone = MODELS.build(
            dict(
                type='CSN',
                depth=DEPTH,
                pretrained=None,
                bottleneck_mode=mode,
                with_pool1=with_pool1,
                with_pool2=False,
                norm_cfg=dict(type='BN3d', requires_grad=True, eps=eps)))
        self.cls_head = MODELS.build(
            dict(type='I3DHead', num_classes=NUM_CLASSES, in_channels=2048))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))


def _mmcsn_out(sd, mode, x, **kwargs) -> torch.Tensor:
    net = MmcsnNet(mode, **kwargs)
    load_state_dict_checked(net, sd, strict=True)
    with torch.no_grad():
        return net.eval()(x)


def _assert_same(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape == (1, NUM_CLASSES)
    assert ref.std() > 1e-3  # a degenerate reference would prove nothing
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5), \
        (out - ref).abs().max()


def _bn(c: int, eps: float = 1e-3) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(c, eps=eps)


# ------------------------------------------- VMZ PyTorch re-implementation
class VmzBottleneck(nn.Module):
    """VMZ pt/ ``Bottleneck`` with ``Conv3DDepthwise``/``IPConv3DDepthwise``.
    """

    def __init__(self, inplanes: int, planes: int, stride: int, mode: str):
        super().__init__()
        depthwise = nn.Conv3d(
            planes, planes, 3, stride, 1, groups=planes, bias=False)
        if mode == 'ip':  # IPConv3DDepthwise: 1x1x1, BN (no ReLU), dw
            depthwise = nn.Sequential(
                nn.Conv3d(planes, planes, 1, bias=False), _bn(planes),
                depthwise)
        self.conv1 = nn.Sequential(
            nn.Conv3d(inplanes, planes, 1, bias=False), _bn(planes),
            nn.ReLU())
        self.conv2 = nn.Sequential(depthwise, _bn(planes), nn.ReLU())
        self.conv3 = nn.Sequential(
            nn.Conv3d(planes, planes * 4, 1, bias=False), _bn(planes * 4))
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv3d(inplanes, planes * 4, 1, stride, bias=False),
                _bn(planes * 4))

    def forward(self, x):
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + res)


class VmzCSN(nn.Module):
    """torchvision ``VideoResNet`` with VMZ's ``BasicStem_Pool``."""

    def __init__(self, mode: str):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            _bn(64), nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        inplanes = 64
        for i, n in enumerate(CSN_STAGE_BLOCKS[DEPTH]):
            planes = 64 * 2**i
            blocks = []
            for b in range(n):
                stride = 2 if i > 0 and b == 0 else 1
                blocks.append(VmzBottleneck(inplanes, planes, stride, mode))
                inplanes = planes * 4
            setattr(self, f'layer{i + 1}', nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(2048, NUM_CLASSES)

    def features(self, x):
        x = self.stem(x)
        for i in range(1, 5):
            x = getattr(self, f'layer{i}')(x)
        return x

    def forward(self, x):
        return self.fc(self.avgpool(self.features(x)).flatten(1))


# ---------------------------------------- PyTorchVideo re-implementation
class PtvStem(nn.Module):
    """``ResNetBasicStem`` of ``create_csn`` (no pool by default)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(
            3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)
        self.norm = nn.BatchNorm3d(64)  # eps 1e-5, torch's default
        self.activation = nn.ReLU()

    def forward(self, x):
        return self.activation(self.norm(self.conv(x)))


class PtvBottleneck(nn.Module):
    """``BottleneckBlock`` with ``conv_b`` grouped to its width (CSN)."""

    def __init__(self, dim_in: int, inner: int, stride: int):
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, inner, 1, bias=False)
        self.norm_a = nn.BatchNorm3d(inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(
            inner, inner, 3, stride, 1, groups=inner, bias=False)
        self.norm_b = nn.BatchNorm3d(inner)
        self.act_b = nn.ReLU()
        self.conv_c = nn.Conv3d(inner, inner * 4, 1, bias=False)
        self.norm_c = nn.BatchNorm3d(inner * 4)

    def forward(self, x):
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class PtvResBlock(nn.Module):
    """``ResBlock``: ``branch1_conv``/``branch1_norm`` + ``branch2``."""

    def __init__(self, dim_in: int, inner: int, stride: int):
        super().__init__()
        self.branch1_conv = self.branch1_norm = None
        if dim_in != inner * 4 or stride > 1:
            self.branch1_conv = nn.Conv3d(
                dim_in, inner * 4, 1, stride, bias=False)
            self.branch1_norm = nn.BatchNorm3d(inner * 4)
        self.branch2 = PtvBottleneck(dim_in, inner, stride)
        self.activation = nn.ReLU()

    def forward(self, x):
        short = x if self.branch1_conv is None else self.branch1_norm(
            self.branch1_conv(x))
        return self.activation(self.branch2(x) + short)


class PtvStage(nn.Module):

    def __init__(self, blocks):
        super().__init__()
        self.res_blocks = nn.ModuleList(blocks)

    def forward(self, x):
        for block in self.res_blocks:
            x = block(x)
        return x


class PtvHead(nn.Module):
    """``ResNetBasicHead``: pool, dropout, proj (channels-last), avg."""

    def __init__(self, pool_kernel):
        super().__init__()
        self.pool = nn.AvgPool3d(pool_kernel, stride=1)
        self.dropout = nn.Dropout(0.0)
        self.proj = nn.Linear(2048, NUM_CLASSES)
        self.output_pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x):
        x = self.dropout(self.pool(x))
        x = self.proj(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return self.output_pool(x).flatten(1)


class PtvCSN(nn.Module):
    """``create_csn(model_depth=50)`` module tree: ``blocks[0..5]``."""

    def __init__(self):
        super().__init__()
        blocks = [PtvStem()]
        dim_in = 64
        for i, n in enumerate(CSN_STAGE_BLOCKS[DEPTH]):
            inner = 64 * 2**i
            stage = []
            for b in range(n):
                stride = 2 if i > 0 and b == 0 else 1
                stage.append(PtvResBlock(dim_in, inner, stride))
                dim_in = inner * 4
            blocks.append(PtvStage(stage))
        # at 32x32 input the last map is 1x2x2: the analogue of (1, 7, 7)
        blocks.append(PtvHead((1, 2, 2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


# -------------------------------------------------- caffe2 blobs + forward
def _caffe2_blobs(mode: str, seed: int) -> dict:
    """VMZ c2 blob dict (ir: '3d-sep' blocks, ip: '0.3d') + solver junk."""
    rng = np.random.default_rng(seed)
    blobs = {}

    def conv(name, shape):
        fan_in = int(np.prod(shape[1:]))
        blobs[name + '_w'] = (rng.standard_normal(shape) /
                              fan_in**0.5).astype(np.float32)

    def bn(name, c):
        blobs[name + '_s'] = (rng.random(c) + 0.5).astype(np.float32)
        blobs[name + '_b'] = (rng.standard_normal(c) * 0.1).astype(
            np.float32)
        blobs[name + '_rm'] = (rng.standard_normal(c) * 0.1).astype(
            np.float32)
        blobs[name + '_riv'] = (rng.random(c) + 0.5).astype(np.float32)

    conv('conv1', (64, 3, 3, 7, 7))
    bn('conv1_spatbn_relu', 64)
    k, inplanes = 0, 64
    for i, n in enumerate(CSN_STAGE_BLOCKS[DEPTH]):
        p = 64 * 2**i
        for b in range(n):
            conv(f'comp_{k}_conv_1', (p, inplanes, 1, 1, 1))
            bn(f'comp_{k}_spatbn_1', p)
            if mode == 'ir':
                conv(f'comp_{k}_conv_3', (p, 1, 3, 3, 3))
                bn(f'comp_{k}_spatbn_3', p)
                conv(f'comp_{k}_conv_4', (4 * p, p, 1, 1, 1))
                bn(f'comp_{k}_spatbn_4', 4 * p)
            else:
                conv(f'comp_{k}_conv_2_middle', (p, p, 1, 1, 1))
                bn(f'comp_{k}_spatbn_2_middle', p)
                conv(f'comp_{k}_conv_2', (p, 1, 3, 3, 3))
                bn(f'comp_{k}_spatbn_2', p)
                conv(f'comp_{k}_conv_3', (4 * p, p, 1, 1, 1))
                bn(f'comp_{k}_spatbn_3', 4 * p)
            if b == 0:
                conv(f'shortcut_projection_{k}', (4 * p, inplanes, 1, 1, 1))
                bn(f'shortcut_projection_{k}_spatbn', 4 * p)
            inplanes, k = 4 * p, k + 1
    blobs[f'last_out_L{NUM_CLASSES}_w'] = (
        rng.standard_normal((NUM_CLASSES, 2048)) * 0.05).astype(np.float32)
    blobs[f'last_out_L{NUM_CLASSES}_b'] = rng.standard_normal(
        NUM_CLASSES).astype(np.float32)
    # training state real VMZ pickles carry; the converter must drop it
    blobs['comp_0_conv_1_w_momentum'] = np.zeros(3, np.float32)
    blobs['comp_0_spatbn_1_sm'] = np.zeros(3, np.float32)
    blobs['lr'] = np.float32(0.1)
    blobs['model_iter'] = np.int64(1000)
    return blobs


def _caffe2_forward(blobs: dict, mode: str, x: torch.Tensor,
                    use_pool1: bool = True) -> torch.Tensor:
    """Functional forward of a VMZ c2 CSN from its blobs (BN eps 1e-3)."""

    def t(name):
        return torch.from_numpy(blobs[name])

    def bn(y, name):  # caffe2 SpatialBN in test mode; riv is the variance
        return F.batch_norm(y, t(name + '_rm'), t(name + '_riv'),
                            t(name + '_s'), t(name + '_b'), False, 0.0,
                            1e-3)

    def dw(y, name, stride):
        return F.conv3d(y, t(name), stride=stride, padding=1,
                        groups=y.shape[1])

    y = F.conv3d(x, t('conv1_w'), stride=(1, 2, 2), padding=(1, 3, 3))
    y = F.relu(bn(y, 'conv1_spatbn_relu'))
    if use_pool1:
        y = F.max_pool3d(y, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    k = 0
    for i, n in enumerate(CSN_STAGE_BLOCKS[DEPTH]):
        for b in range(n):
            s = 2 if i > 0 and b == 0 else 1
            c = f'comp_{k}_'
            z = F.relu(bn(F.conv3d(y, t(c + 'conv_1_w')), c + 'spatbn_1'))
            if mode == 'ir':
                z = F.relu(bn(dw(z, c + 'conv_3_w', s), c + 'spatbn_3'))
                z = bn(F.conv3d(z, t(c + 'conv_4_w')), c + 'spatbn_4')
            else:
                z = bn(F.conv3d(z, t(c + 'conv_2_middle_w')),
                       c + 'spatbn_2_middle')
                z = F.relu(bn(dw(z, c + 'conv_2_w', s), c + 'spatbn_2'))
                z = bn(F.conv3d(z, t(c + 'conv_3_w')), c + 'spatbn_3')
            if b == 0:
                sc = f'shortcut_projection_{k}'
                y = bn(F.conv3d(y, t(sc + '_w'), stride=s), sc + '_spatbn')
            y = F.relu(z + y)
            k += 1
    y = y.mean((2, 3, 4))
    return F.linear(y, t(f'last_out_L{NUM_CLASSES}_w'),
                    t(f'last_out_L{NUM_CLASSES}_b'))


def _write_py2_pickle(obj, path: Path) -> None:
    import io
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1 / Python 2 module path, as in the VMZ zoo pickles
    path.write_bytes(buf.getvalue().replace(b'numpy._core.multiarray\n',
                                            b'numpy.core.multiarray\n'))


# ================================================================ parity
@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_vmz_pt_parity(mode):
    src = _randomize(VmzCSN(mode), seed=1)
    x = _clip()
    with torch.no_grad():
        ref, ref_feat = src(x), src.features(x)
    sd = src.state_dict()
    assert detect_csn_layout(sd) == 'vmz_pt'
    _assert_same(_mmcsn_out(vmz_pt_to_mmcsn(sd), mode, x), ref)
    # backbone-relative path used by CSN(pretrained=...)
    net = MmcsnNet(mode)
    load_state_dict_checked(net.backbone, convert_to_mmcsn(sd), strict=True)
    with torch.no_grad():
        feat = net.eval().backbone(x)
    assert torch.allclose(feat, ref_feat, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode,use_pool1', [('ir', True), ('ip', True),
                                            ('ir', False)])
def test_caffe2_parity(mode, use_pool1):
    blobs = _caffe2_blobs(mode, seed=2)
    x = _clip()
    ref = _caffe2_forward(blobs, mode, x, use_pool1)
    sd = caffe2_to_mmcsn({'blobs': blobs})
    assert detect_csn_layout(blobs) == 'caffe2'
    _assert_same(_mmcsn_out(sd, mode, x, with_pool1=use_pool1), ref)


def test_pytorchvideo_parity_needs_eps_and_no_pool():
    src = _randomize(PtvCSN(), seed=3)
    x = _clip()
    with torch.no_grad():
        ref = src(x)
    sd = pytorchvideo_to_mmcsn(src.state_dict())
    _assert_same(_mmcsn_out(sd, 'ir', x, eps=1e-5, with_pool1=False), ref)
    # the settings the CLI and README ask for are not optional
    out_default_eps = _mmcsn_out(sd, 'ir', x, with_pool1=False)
    assert not torch.allclose(out_default_eps, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_mmaction_resnet3dcsn_identity(mode):
    """MMAction2's own ResNet3dCSN weights load strictly, same features."""
    ref_net = _randomize(
        MODELS.build(
            dict(
                type='ResNet3dCSN',
                depth=DEPTH,
                pretrained=None,
                bottleneck_mode=mode,
                with_pool2=False)), seed=4)
    x = _clip()
    with torch.no_grad():
        ref = ref_net(x)
    sd = ref_net.state_dict()
    assert detect_csn_layout(sd) == 'mmaction'
    rec = mmaction_to_mmcsn(sd)
    assert all(k.startswith('backbone.') for k in rec)
    assert convert_to_mmcsn({'state_dict': rec}).keys() == sd.keys()
    net = MmcsnNet(mode)
    load_state_dict_checked(net.backbone, convert_to_mmcsn(sd), strict=True)
    with torch.no_grad():
        assert torch.allclose(net.eval().backbone(x), ref, 1e-5, 1e-5)


def test_csn_pretrained_accepts_vmz_file(tmp_path):
    """``CSN(pretrained=<VMZ .pth>)`` converts on load (init_weights)."""
    src = _randomize(VmzCSN('ip'), seed=5)
    path = tmp_path / 'vmz_ip.pth'
    torch.save(src.state_dict(), path)
    x = _clip()
    backbone = MODELS.build(
        dict(type='CSN', depth=DEPTH, bottleneck_mode='ip',
             pretrained=str(path)))
    backbone.init_weights()
    with torch.no_grad():
        assert torch.allclose(backbone.eval()(x), src.features(x), 1e-5,
                              1e-5)


@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_csn_pretrained_accepts_caffe2_pickle(tmp_path, mode):
    """``CSN(pretrained=<VMZ caffe2 .pkl>)``: the numpy-only unpickler,
    then the same conversion as the CLI, loaded strictly."""
    blobs = _caffe2_blobs(mode, seed=4)
    path = tmp_path / f'c2_{mode}.pkl'
    _write_py2_pickle({'blobs': blobs}, path)
    backbone = MODELS.build(dict(type='CSN', depth=DEPTH,
                                 bottleneck_mode=mode,
                                 pretrained=str(path)))
    backbone.init_weights()
    want = convert_to_mmcsn(caffe2_to_mmcsn({'blobs': blobs}))
    got = backbone.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), key


# ================================================================ errors
def _old_ip_state_dict(bare: bool) -> dict:
    """Current ip keys rewritten to MMAction2's pre-mid-2021 ip layout."""
    sd = MODELS.build(
        dict(type='ResNet3dCSN', depth=DEPTH, pretrained=None,
             bottleneck_mode='ip')).state_dict()
    old = {}
    for key, value in sd.items():
        if '.conv2.0.bn.' in key:
            continue  # the BN the old block did not have
        if bare and key.endswith('.conv2.0.conv.weight'):
            key = key.replace('.conv2.0.conv.weight', '.conv2.0.weight')
        old[key] = value
    return old


@pytest.mark.parametrize('bare', [True, False])
def test_old_mmaction_ip_checkpoint_refused(bare):
    with pytest.raises(CheckpointError, match='old MMAction2 ip-CSN'):
        convert_to_mmcsn(_old_ip_state_dict(bare))


def test_old_ip_refused_by_csn_pretrained(tmp_path):
    path = tmp_path / 'old_ip.pth'
    torch.save({'state_dict': _old_ip_state_dict(True)}, path)
    backbone = MODELS.build(
        dict(type='CSN', depth=DEPTH, bottleneck_mode='ip',
             pretrained=str(path)))
    with pytest.raises(CheckpointError, match='mid-2021'):
        backbone.init_weights()


def test_unknown_layout_and_stray_keys():
    with pytest.raises(WrongFamilyError, match='not a CSN checkpoint'):
        convert_to_mmcsn({'features.0.weight': torch.zeros(1)})
    sd = VmzCSN('ir').state_dict()
    sd['layer1.0.se.fc.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='match no rename rule'):
        vmz_pt_to_mmcsn(sd)


def test_mode_and_depth_checks():
    sd = VmzCSN('ip').state_dict()
    with pytest.raises(ValueError, match="mode='ir'"):
        vmz_pt_to_mmcsn(sd, mode='ir')
    with pytest.raises(ValueError, match="mode must be one of"):
        vmz_pt_to_mmcsn(sd, mode='dw')
    with pytest.raises(ValueError, match='depth=101'):
        convert_to_mmcsn_recognizer(sd, depth=101)
    blobs = _caffe2_blobs('ir', seed=0)
    with pytest.raises(CheckpointError, match='depth=152 has 50 blocks'):
        caffe2_to_mmcsn(blobs, depth=152)
    assert convert_to_mmcsn_recognizer(blobs, depth=50)  # inferred = given
    with pytest.raises(ValueError, match="mode='ip'"):
        caffe2_to_mmcsn(blobs, mode='ip')
    stray = dict(blobs, shortcut_projection_99_w=np.zeros(1, np.float32))
    with pytest.raises(CheckpointError, match='index 99 is beyond'):
        caffe2_to_mmcsn(stray)
    blobs['mystery_blob'] = np.zeros(1, np.float32)
    with pytest.raises(CheckpointError, match='mystery_blob'):
        caffe2_to_mmcsn(blobs)


# =================================================================== CLIs
def _ref_and_src_file(source: str, tmp_path: Path):
    """(reference logits, source file, mode, model kwargs) per layout."""
    x = _clip()
    if source == 'vmz':
        net = _randomize(VmzCSN('ip'), seed=6)
        path = tmp_path / 'vmz.pth'
        torch.save(net.state_dict(), path)
        with torch.no_grad():
            return net(x), path, 'ip', {}
    if source == 'pytorchvideo':
        net = _randomize(PtvCSN(), seed=7)
        path = tmp_path / 'ptv.pyth'
        # PyTorchVideo's hub files wrap the weights in 'model_state'
        torch.save({'model_state': net.state_dict()}, path)
        with torch.no_grad():
            return net(x), path, 'ir', dict(eps=1e-5, with_pool1=False)
    blobs = _caffe2_blobs('ir', seed=8)
    path = tmp_path / 'c2.pkl'
    _write_py2_pickle({'blobs': blobs}, path)
    return _caffe2_forward(blobs, 'ir', x), path, 'ir', {}


_CLI_OF = dict(
    vmz='vmz_to_mmcsn',
    pytorchvideo='pytorchvideo_to_mmcsn',
    caffe2='caffe2_to_mmcsn')


@pytest.mark.parametrize('source', ['vmz', 'pytorchvideo', 'caffe2'])
def test_cli_round_trip(source, tmp_path, capsys):
    ref, src, mode, kwargs = _ref_and_src_file(source, tmp_path)
    src_bytes = src.read_bytes()
    dst = tmp_path / 'out' / 'converted.pth'
    cli = _cli(_CLI_OF[source])
    assert cli.main([str(src), str(dst), '--mode', mode]
                    if source != 'pytorchvideo' else [str(src), str(dst)]
                    ) == 0
    printed = capsys.readouterr().out
    assert f'{mode}-CSN depth {DEPTH}' in printed
    if source == 'pytorchvideo':
        assert 'eps=1e-5' in printed and 'with_pool1=False' in printed
    ckpt = load_checkpoint_file(dst)
    assert ckpt['meta']['num_classes'] == NUM_CLASSES
    _assert_same(_mmcsn_out(unwrap_state_dict(ckpt), mode, _clip(),
                            **kwargs), ref)

    # an existing output is kept unless --force
    before = dst.read_bytes()
    assert cli.main([str(src), str(dst)]) == 1
    assert 'exists' in capsys.readouterr().err
    assert dst.read_bytes() == before
    assert cli.main([str(src), str(dst), '--force']) == 0
    # the input is never the output, even with --force
    assert cli.main([str(src), str(src), '--force']) == 1
    assert 'input file' in capsys.readouterr().err
    assert src.read_bytes() == src_bytes


def test_cli_mmaction_refuses_old_ip(tmp_path, capsys):
    src = tmp_path / 'old_ip.pth'
    torch.save({'state_dict': _old_ip_state_dict(bare=True)}, src)
    dst = tmp_path / 'new.pth'
    assert _cli('mmaction_to_mmcsn').main([str(src), str(dst)]) == 1
    assert 'old MMAction2 ip-CSN' in capsys.readouterr().err
    assert not dst.exists()


class _WritesFile:
    """Unpickling this calls ``builtins.open(marker, 'w')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


class _RunsShell:
    """Unpickling this calls ``os.system('touch marker')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.mark.parametrize('payload', [_WritesFile, _RunsShell])
def test_cli_caffe2_refuses_malicious_pickle(payload, tmp_path, capsys):
    marker = tmp_path / 'pwned'
    blobs = {'conv1_w': np.zeros((1, ), np.float32), 'x': payload(marker)}
    src = tmp_path / 'evil.pkl'
    src.write_bytes(pickle.dumps({'blobs': blobs}, protocol=2))
    dst = tmp_path / 'out.pth'
    assert _cli('caffe2_to_mmcsn').main([str(src), str(dst)]) == 1
    assert 'not allowed' in capsys.readouterr().err
    assert not marker.exists()
    assert not dst.exists()


def test_cli_caffe2_script_runs(tmp_path):
    """The CLI as users run it: a subprocess, a protocol-4 numpy-2 pickle."""
    blobs = _caffe2_blobs('ip', seed=9)
    src = tmp_path / 'c2_ip.pkl'
    src.write_bytes(pickle.dumps({'blobs': blobs}, protocol=4))
    dst = tmp_path / 'c2_ip.pth'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools/convert/caffe2_to_mmcsn.py'),
         str(src), str(dst), '--depth', '50'],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'ip-CSN depth 50' in proc.stdout
    x = _clip()
    _assert_same(_mmcsn_out(unwrap_state_dict(load_checkpoint_file(dst)),
                            'ip', x), _caffe2_forward(blobs, 'ip', x))


@pytest.mark.parametrize('source,mode,config', [
    ('vmz_pt', 'ir', 'configs/csn/ircsn_vmz-r152_32x2x1_kinetics400-rgb.py'),
    ('caffe2', 'ip', 'configs/csn/ipcsn_vmz-r152_32x2x1_kinetics400-rgb.py'),
    ('mmaction', 'ir', None)])
def test_summary_names_the_zoo_config(source, mode, config):
    """The success message names the shipped config for the source."""
    from mmcsn.checkpoint.summary import describe_conversion
    meta = dict(converted_from='x.pth', source_layout=source, depth=152,
                stage_blocks=(3, 8, 36, 3), bottleneck_mode=mode,
                num_classes=400, config_hints={})
    text = describe_conversion(
        dict(state_dict={'w': torch.zeros(2)}, meta=meta), 'out.pth')
    if config is None:
        assert 'zoo config' not in text
        assert 'tools/test.py CONFIG out.pth' in text
    else:
        assert (REPO / config).is_file()
        assert f'zoo config: {config}' in text
        assert f'tools/test.py {config} out.pth' in text
