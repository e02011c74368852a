"""bLResNet: layout, MMAction2 options, complexity, Recognizer2D use."""
import ast
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import BLVNET_FIXTURE as FIXTURE
from conftest import load_tool
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.flop_counter import FlopCounterMode

import mmcsn  # noqa: F401  (registers bLResNet)
from mmcsn.checkpoint import CheckpointError
from mmcsn.models.backbones import bLResNet
from mmcsn.models.backbones.blresnet import STEM_MODULES
from mmcsn.models.backbones.blresnet_blocks import make_res_layer
from mmcsn.models.common import TemporalAggregation

REPO = Path(__file__).resolve().parents[1]
T = 4  # tiny clips: 4 frames = 2 big/little pairs


def _backbone(**kwargs) -> bLResNet:
    torch.manual_seed(0)
    cfg = dict(type='bLResNet', depth=50, num_segments=T)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # bn3 starts at 0: make every block matter
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.weight.uniform_(0.5, 1.5)
    return model


def test_state_dict_matches_official_layout():
    """Names, shapes and order equal the official ``baseline_model.*``."""
    want = []
    for line in (FIXTURE / 'keys.txt').read_text().splitlines():
        name, shape, _ = line.split('\t')
        if name.startswith('baseline_model.'):
            want.append((name[len('baseline_model.'):],
                         ast.literal_eval(shape)))
    with torch.device('meta'):
        model = bLResNet(50, num_segments=16)
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == want


@pytest.mark.parametrize(
    'depth, entries, big, little',
    [(50, 447, (2, 3, 5), (1, 1, 1)), (101, 789, (3, 7, 17), (1, 1, 3)),
     (152, None, (4, 11, 29), (1, 2, 6))])
def test_depth_table(depth, entries, big, little):
    """bLResNet's own table: big = n - 1, little = max(1, n // beta - 1).

    Official state_dict entries (spec: 449 / 791 with ``new_fc``; no
    official count for 152) minus the two ``new_fc`` tensors.
    """
    with torch.device('meta'):
        model = bLResNet(depth, num_segments=16)
    if entries is not None:
        assert len(model.state_dict()) == entries
    for i in range(3):
        stage = getattr(model, f'layer{i + 1}')
        assert (len(stage.big), len(stage.little)) == (big[i], little[i])
        assert len(stage.fusion) == 1
    assert len(model.layer4) == 3
    # the ResNet table would give another network (101: layer3 = 23)
    assert model.arch_settings[depth][3] == 3


@pytest.mark.parametrize('alpha, beta', [(4, 2), (1, 8)])
def test_alpha_is_width_and_beta_is_depth(alpha, beta):
    """alpha divides the little branch's width, beta its depth."""
    model = _backbone(alpha=alpha, beta=beta).eval()
    assert model.l_conv0.out_channels == 64 // alpha
    for i, (out_ch, n) in enumerate(zip((256, 512, 1024), (3, 4, 6))):
        stage = getattr(model, f'layer{i + 1}')
        assert stage.little[0].conv3.out_channels == out_ch // alpha
        assert stage.little_e[0].out_channels == out_ch
        assert len(stage.little) == max(1, n // beta - 1)
    with torch.no_grad():
        out = model(torch.randn(T, 3, 32, 32))
    assert out.shape == (T, 2048, 1, 1) and torch.isfinite(out).all()


def test_big_map_resized_with_legacy_nearest():
    """Official F.interpolate default ('nearest'): 2x2 -> 3x3 repeats the
    first row / column (index floor(i * 2 / 3) = 0, 0, 1), unlike
    'nearest-exact' (0, 1, 1). 48 px gives layer3 big 2x2, little 3x3
    (112 px gives the fixture's 4x4 -> 7x7)."""
    model = _backbone().eval()
    seen = {}

    def keep(name):
        def hook(module, args, output=None):
            seen[name] = (output if output is not None else args[0]).clone()
        return hook

    stage = model.layer3
    hooks = [
        stage.big.register_forward_hook(keep('big')),
        stage.little_e.register_forward_hook(keep('little')),
        stage.fusion.register_forward_pre_hook(keep('fused'))
    ]
    with torch.no_grad():
        model(torch.randn(T, 3, 48, 48))
    for h in hooks:
        h.remove()
    big, little = seen['big'], seen['little']
    assert big.shape[-2:] == (2, 2) and little.shape[-2:] == (3, 3)
    legacy = torch.tensor([0, 0, 1])
    want = F.relu(big[:, :, legacy][:, :, :, legacy] + little)
    torch.testing.assert_close(seen['fused'], want)
    exact = torch.tensor([0, 1, 1])
    other = F.relu(big[:, :, exact][:, :, :, exact] + little)
    assert not torch.allclose(seen['fused'], other)


def test_layer4_shortcut_takes_tam_output():
    """Downsample shortcut on the TAM output; identity on the block input.
    """
    torch.manual_seed(0)
    layer = make_res_layer(
        8, 16, 2, stride=2, with_tam=True, num_segments=2).eval()
    with torch.no_grad():
        for m in layer.modules():
            if isinstance(m, _BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.normal_(0, 0.1)
        x = torch.randn(4, 8, 6, 6)

        def residual(block, inp):
            out = F.relu(block.bn1(block.conv1(inp)))
            out = F.relu(block.bn2(block.conv2(out)))
            return block.bn3(block.conv3(out))

        b0, b1 = layer[0], layer[1]
        tam_x = b0.tam(x)
        y0 = F.relu(residual(b0, tam_x) + b0.downsample(tam_x))
        torch.testing.assert_close(b0(x), y0)
        wrong = F.relu(residual(b0, tam_x) + b0.downsample(x))
        assert not torch.allclose(y0, wrong, atol=1e-3)
        # identity shortcut: the block input before TAM
        y1 = F.relu(residual(b1, b1.tam(y0)) + y0)
        torch.testing.assert_close(b1(y0), y1)
        torch.testing.assert_close(layer(x), y1)


@pytest.mark.parametrize('depth, params', [(50, 25_020_142),
                                           (101, 40_177_134)])
def test_params_and_macs_match_official(depth, params):
    """Spec: bLVNet-TAM f8x2, 174 classes; MACs at 224 px, 16 frames."""
    with torch.device('meta'):
        model = bLResNet(depth, num_segments=16)
        x = torch.empty(16, 3, 224, 224)
    fc = 2048 * 174 + 174  # the official new_fc
    assert sum(p.numel() for p in model.parameters()) + fc == params

    # The official count treats each TAM as B depthwise 1x1 convs over
    # its frames; ours is not a conv, so add those MACs from the shapes.
    tam_macs = []

    def stage_hook(frames):
        def hook(module, args):
            pairs = args[0]  # (N*T/2, C, H, W) pair maps
            if getattr(module, 'tam', None) is not None:
                tam_macs.append(3 * pairs[0].numel() * frames)
        return hook

    hooks = [model.tam.register_forward_pre_hook(
        lambda m, a: tam_macs.append(3 * a[0].numel()))]
    for i in (1, 2, 3):
        hooks.append(getattr(model, f'layer{i}').register_forward_pre_hook(
            stage_hook(16)))
    for block in model.layer4:
        hooks.append(block.register_forward_pre_hook(stage_hook(8)))
    with FlopCounterMode(display=False) as counter:
        model(x)
    for h in hooks:
        h.remove()
    assert len(tam_macs) == 7
    macs = counter.get_total_flops() / 2 + sum(tam_macs) + 8 * 2048 * 174
    official = {50: 23.85e9, 101: 32.15e9}[depth]
    assert abs(macs - official) <= 0.01 * official


def test_output_layout_and_pair_duplication():
    model = _backbone(out_indices=(0, 1, 2, 3)).eval()
    x = torch.randn(2 * T, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
    # 64 px: stem 32 -> layer0 16 -> layer1 8 -> layer2 4 -> layer3 4 -> 2
    shapes = [(2 * T, 256, 8, 8), (2 * T, 512, 4, 4), (2 * T, 1024, 4, 4),
              (2 * T, 2048, 2, 2)]
    assert [tuple(o.shape) for o in outs] == shapes
    for out in outs:  # slots 2k and 2k+1 hold the same pair map
        assert torch.equal(out[0::2], out[1::2])
        assert not torch.equal(out[0::4], out[2::4])  # pairs differ
    with torch.no_grad():
        assert torch.equal(_backbone().eval()(x), outs[3])


def test_big_takes_odd_frames_and_clips_do_not_mix():
    model = _backbone().eval()
    x = torch.randn(3 * T, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        per_clip = torch.cat([model(c) for c in x.split(T)])
        torch.testing.assert_close(out, per_clip, rtol=1e-4, atol=1e-5)
        # changing frame 1 (big) and frame 0 (little) both matter, and
        # swapping them is not a symmetry of the network
        swapped = x.view(3, T // 2, 2, 3, 32, 32).flip(2).reshape(x.shape)
        assert (model(swapped) - out).abs().max() > 1e-3 * out.abs().max()


@pytest.mark.parametrize('frozen_stages', [-1, 0, 2, 4])
def test_frozen_stages(frozen_stages):
    model = _backbone(frozen_stages=frozen_stages)
    model.train()
    stage_of = {name: 0 for name in STEM_MODULES}
    stage_of.update({f'layer{i}': i for i in range(1, 5)})
    for name, param in model.named_parameters():
        frozen = stage_of[name.split('.')[0]] <= frozen_stages
        assert param.requires_grad != frozen, name
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            frozen = stage_of[name.split('.')[0]] <= frozen_stages
            assert module.training != frozen, name


def test_norm_eval():
    model = _backbone(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert model.layer1.big[0].conv1.weight.requires_grad
    x = torch.randn(T, 3, 32, 32)
    before = model.bn1.running_mean.clone()
    model(x)
    assert torch.equal(model.bn1.running_mean, before)


# A module of each checkpointed unit: the stem, per bL stage its TAM, big
# and little branches and fusion (after the upsample + add + ReLU glue),
# and a layer4 block (a block's recompute runs its inner function, so
# its conv1 is the probe).
CP_PROBES = ('conv1', 'tam') + tuple(
    f'layer{i}.{m}' for i in (1, 2, 3)
    for m in ('tam', 'big.0', 'little.0', 'little_e', 'fusion.0.conv1')) + (
        'layer4.0.conv1', )


def _counted(fn, calls: dict, name: str):

    def wrapper(*args, **kwargs):
        calls[name] += 1
        return fn(*args, **kwargs)

    return wrapper


def _probe_stage(name: str) -> int:
    return int(name[5]) if name.startswith('layer') else 0


@pytest.mark.parametrize('frozen_stages, input_grad', [(-1, True),
                                                       (-1, False),
                                                       (1, False)])
def test_with_cp_same_outputs_and_grads(frozen_stages, input_grad):
    """Same outputs and grads; every trainable unit is recomputed.

    Forward calls are counted: a checkpointed module runs twice (forward
    and recompute in the backward), others once. With raw frames as
    input (no input grad, as in training) the stem and, after frozen
    stages, the first trainable stage are still checkpointed because
    their parameters need grads; frozen units are not.
    """
    x = torch.randn(2 * T, 3, 32, 32)
    results = []
    for with_cp in (False, True):
        model = _backbone(
            with_cp=with_cp, frozen_stages=frozen_stages).train()
        modules = dict(model.named_modules())
        calls = dict.fromkeys(CP_PROBES, 0)
        for name in CP_PROBES:
            module = modules[name]
            if name.endswith('.tam'):  # stage TAMs run forward_pairs
                module.forward_pairs = _counted(module.forward_pairs,
                                                calls, name)
            else:  # pre-hook: a recompute stops once all is recovered
                module.register_forward_pre_hook(
                    lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
        inp = x.clone().requires_grad_(input_grad)
        out = model(inp)
        out.pow(2).sum().backward()
        results.append((out.detach(), inp.grad,
                        {k: p.grad
                         for k, p in model.named_parameters()}, calls))
    (o1, g1, p1, c1), (o2, g2, p2, c2) = results
    torch.testing.assert_close(o1, o2)
    if input_grad:
        torch.testing.assert_close(g1, g2)
    assert g1 is None and g2 is None or input_grad
    assert c1 == dict.fromkeys(CP_PROBES, 1)
    assert c2 == {
        n: 2 if _probe_stage(n) > frozen_stages else 1
        for n in CP_PROBES
    }
    assert p1.keys() == p2.keys()
    for k in p1:
        trainable = _probe_stage(k) > frozen_stages
        if k.startswith(('conv1', 'bn1', 'b_conv0', 'bn_b0', 'l_conv',
                         'bn_l', 'bl_init', 'bn_bl_init', 'tam')):
            trainable = frozen_stages < 0
        if not trainable:
            assert p1[k] is None and p2[k] is None, k
            continue
        assert p2[k] is not None, k
        torch.testing.assert_close(p1[k], p2[k], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, k=k: f'{k}: {m}')


@pytest.mark.parametrize('blending_frames, with_tam', [(5, True),
                                                       (3, False)])
def test_variants_build_and_run(blending_frames, with_tam):
    model = _backbone(blending_frames=blending_frames, with_tam=with_tam)
    tams = [m for m in model.modules() if isinstance(m, TemporalAggregation)]
    assert len(tams) == (7 if with_tam else 0)
    assert all(t.blending_frames == blending_frames for t in tams)
    out = model(torch.randn(T, 3, 32, 32))
    assert out.shape == (T, 2048, 1, 1)


@pytest.mark.parametrize(
    'kwargs, match',
    [(dict(depth=34), r'depth must be one of \[50, 101, 152\], got 34'),
     (dict(num_segments=5), r'num_segments must be even .* got 5'),
     (dict(num_segments=0), 'num_segments must be a positive int'),
     (dict(alpha=0), r'alpha must be an int in 1\.\.64, got 0'),
     (dict(alpha=128), r'alpha must be an int in 1\.\.64, got 128'),
     (dict(beta=-1), 'beta must be a positive int'),
     (dict(blending_frames=2), r'blending_frames must be an odd int'),
     (dict(out_indices=(4, )), r'out_indices\[0\] must be an int in 0\.\.3'),
     (dict(frozen_stages=5), r'frozen_stages must be an int in -1..4'),
     (dict(init_cfg=dict(type='Pretrained', checkpoint='a.pth',
                         strict=False)), 'init_cfg Pretrained takes'),
     (dict(pretrained='a.pth', init_cfg=dict(
         type='Pretrained', checkpoint='b.pth')), 'not both')])
def test_bad_arguments(kwargs, match):
    cfg = dict(depth=50, num_segments=T)
    cfg.update(kwargs)
    with torch.device('meta'), pytest.raises(ValueError, match=match):
        bLResNet(**cfg)


def test_bad_inputs():
    with torch.device('meta'):
        model = bLResNet(50, num_segments=T)
        with pytest.raises(ValueError, match=r'not divisible by '
                           r'num_segments=4'):
            model(torch.empty(6, 3, 32, 32))
        with pytest.raises(ValueError, match=r'x must be \(N \* '
                           r'num_segments, 3, H, W\)'):
            model(torch.empty(4, 1, 32, 32))


# ----------------------------------------------------------------------
# pretrained weights


def _official_file(model: bLResNet, path: Path, flavour: str) -> None:
    sd = model.state_dict()
    if flavour == 'imagenet':  # IBM/BigLittleNet: no TAMs, a 1000-way fc
        keys = OrderedDict(('module.' + k, v) for k, v in sd.items()
                           if '.tam.' not in k and not k.startswith('tam.'))
        keys['module.fc.weight'] = torch.zeros(1000, 2048)
        keys['module.fc.bias'] = torch.zeros(1000)
        obj = dict(epoch=100, state_dict=keys)
    else:  # a released bLVNet-TAM state_dict
        obj = OrderedDict(('baseline_model.' + k, v) for k, v in sd.items())
        obj['new_fc.weight'] = torch.zeros(7, 2048)
        obj['new_fc.bias'] = torch.zeros(7)
    torch.save(obj, path)


def test_pretrained_official_and_imagenet(tmp_path):
    source = _backbone()
    released, imagenet = tmp_path / 'rel.pth.tar', tmp_path / 'in.pth.tar'
    _official_file(source, released, 'released')
    _official_file(source, imagenet, 'imagenet')
    want = source.state_dict()

    model = MODELS.build(
        dict(
            type='bLResNet',
            depth=50,
            num_segments=T,
            init_cfg=dict(type='Pretrained', checkpoint=str(released))))
    model.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k]), k

    model = bLResNet(50, num_segments=T, pretrained=str(imagenet))
    model.init_weights()
    info = model.load_pretrained(str(imagenet))
    assert info['format'] == 'blresnet_imagenet'
    assert info['ignored'] == ['fc.weight', 'fc.bias']
    assert len(info['missing']) == 21  # 7 TAMs x (prev, next, curr)
    for k, v in model.state_dict().items():
        if k in info['missing']:  # TAMs keep the official kaiming init
            assert not torch.equal(v, want[k]), k
        else:
            assert torch.equal(v, want[k]), k


def test_pretrained_imagenet_converted_by_cli(tmp_path):
    """An ImageNet file converted by the CLI still loads (TAMs kept)."""
    source = _backbone()
    imagenet, converted = tmp_path / 'in.pth.tar', tmp_path / 'in_mmcsn.pth'
    _official_file(source, imagenet, 'imagenet')
    cli = load_tool('tools/convert/blvnet_to_mmcsn.py')
    assert cli.main([str(imagenet), str(converted)]) == 0
    model = bLResNet(50, num_segments=T, pretrained=str(converted))
    model.init_weights()
    want = source.state_dict()
    for k, v in model.state_dict().items():
        if '.tam.' in k or k.startswith('tam.'):
            assert not torch.equal(v, want[k]), k
        else:
            assert torch.equal(v, want[k]), k
    # TAM init = the official kaiming fan_out (std sqrt(2 / C))
    w = model.layer4[1].tam.prev.weight
    assert abs(w.std().item() / (2 / 2048)**0.5 - 1) < 0.1


def test_pretrained_imagenet_missing_non_tam_key_raises(tmp_path):
    path = tmp_path / 'in.pth.tar'
    with torch.device('meta'):
        model = bLResNet(50, num_segments=T, with_tam=False)
    sd = OrderedDict((k, torch.zeros(v.shape, dtype=v.dtype))
                     for k, v in model.state_dict().items())
    sd.pop('layer2.little.0.conv1.weight')
    torch.save(dict(state_dict=sd), path)
    target = bLResNet(50, num_segments=T)
    with pytest.raises(CheckpointError,
                       match=r'1 missing key.*layer2.little.0.conv1.weight'):
        target.load_pretrained(str(path))


# ----------------------------------------------------------------------
# Recognizer2D


def _recognizer(num_classes: int = 3):
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(
            dict(
                type='Recognizer2D',
                backbone=dict(type='bLResNet', depth=50, num_segments=T),
                cls_head=dict(
                    type='TSNHead',
                    num_classes=num_classes,
                    in_channels=2048,
                    consensus=dict(type='AvgConsensus', dim=1),
                    dropout_ratio=0.5,
                    average_clips='score'),
                data_preprocessor=dict(
                    type='ActionDataPreprocessor',
                    mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375],
                    format_shape='NCHW')))
    torch.manual_seed(0)
    model.init_weights()
    return model


def _batch(n: int, views: int = 1) -> dict:
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(n):
        inputs.append(
            torch.randint(0, 256, (views * T, 3, 32, 32), generator=gen,
                          dtype=torch.uint8))
        sample = ActionDataSample()
        sample.set_gt_label(i % 3)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_recognizer_train_step_and_test_step():
    model = _recognizer()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    # bn3 starts at 0, so residual convs get no gradient in step 1; the
    # stem conv (through the shortcuts) and every bn3 weight do
    backbone = model.backbone
    watched = [
        backbone.conv1.weight, backbone.layer4[2].bn3.weight,
        backbone.layer1.tam.prev.weight
    ]
    before = [p.detach().clone() for p in watched]
    model.train()
    losses = model.train_step(_batch(2), optim)
    assert torch.isfinite(losses['loss_cls'])
    for param, old in zip(watched, before):
        assert not torch.equal(param, old)
    model.eval()
    preds = model.test_step(_batch(2))
    assert len(preds) == 2
    assert all(p.pred_score.shape == (3, ) for p in preds)


def test_recognizer_multi_view_clips_do_not_mix():
    """N=2 videos x 3 views (clips x ThreeCrop): each view on its own."""
    model = _recognizer().eval()
    batch = _batch(2, views=3)
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        inputs = data['inputs']  # (N, V*T, 3, H, W)
        assert inputs.shape[:2] == (2, 3 * T)
        feats, kwargs = model.extract_feat(inputs, stage='backbone')
        views = inputs.reshape(-1, T, 3, 32, 32)
        per_view = torch.cat([model.backbone(v) for v in views])
        torch.testing.assert_close(feats, per_view, rtol=1e-4, atol=1e-5)
        scores = torch.stack([p.pred_score for p in model.test_step(batch)])
        # TSNHead: mean over each video's V*T slots = mean over its views
        logits = model.cls_head(per_view, num_segs=T).view(2, 3, -1)
        torch.testing.assert_close(scores, logits.mean(1), rtol=1e-4,
                                   atol=1e-5)


def test_max_testing_views_splits_views_without_changing_scores():
    """MMAction2's ``test_cfg.max_testing_views`` works with bLResNet."""
    model = _recognizer().eval()
    batch = _batch(1, views=3)
    with torch.no_grad():
        whole = torch.stack([p.pred_score for p in model.test_step(batch)])
        model.test_cfg = dict(max_testing_views=T)  # one view at a time
        split = torch.stack([p.pred_score for p in model.test_step(batch)])
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-5)
