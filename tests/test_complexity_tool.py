"""count_complexity and tools/analysis/complexity.py.

The CSN-152 figures are the published ones (VMZ zoo: conv+fc GMACs at
32x256x256 and params; MMAction2 metafile: + 2 x BN elements), see
``docs/benchmarks.md``, "Reference figures".
"""
import json
from pathlib import Path

import pytest
import torch.nn as nn
from conftest import load_tool
from mmaction.registry import MODELS
from mmengine.registry import init_default_scope

import mmcsn  # noqa: F401  (registers CSN)
from mmcsn.utils import count_complexity, mmaction_flops

REPO = Path(__file__).resolve().parents[1]
DEMO_CSN = REPO / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'

# (mode, GMACs conv+fc, params M incl. 400-class fc, MMAction2 GFLOPs)
PUBLISHED_152 = [('ir', 96.71, 29.70, 97.643), ('ip', 108.79, 33.02, 109.883)]


def _recognizer(backbone_type: str, mode: str, depth: int) -> nn.Module:
    init_default_scope('mmaction')
    return MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=dict(
                type=backbone_type,
                depth=depth,
                pretrained=None,
                pretrained2d=False,
                with_pool2=False,
                bottleneck_mode=mode),
            cls_head=dict(type='I3DHead', num_classes=400,
                          in_channels=2048)))


@pytest.mark.parametrize('mode,gmacs,mparams,mm_gflops', PUBLISHED_152)
def test_csn152_matches_published(mode, gmacs, mparams, mm_gflops):
    result = count_complexity(
        _recognizer('CSN', mode, 152), (1, 3, 32, 256, 256))
    assert result['macs'] / 1e9 == pytest.approx(gmacs, rel=1e-3)
    assert result['params'] / 1e6 == pytest.approx(mparams, rel=1e-3)
    assert mmaction_flops(result) / 1e9 == pytest.approx(mm_gflops, rel=1e-4)
    # the 400-class fc is the only linear layer
    assert result['macs_by_op']['addmm'] == 2048 * 400


@pytest.mark.parametrize('mode', ['ir', 'ip'])
def test_csn_counts_equal_mmaction_resnet3dcsn(mode):
    shape = (1, 3, 8, 64, 64)
    ours = count_complexity(_recognizer('CSN', mode, 50), shape)
    theirs = count_complexity(_recognizer('ResNet3dCSN', mode, 50), shape)
    assert ours == theirs


def test_counts_match_formula_and_real_run():
    t, h, w = 4, 6, 5
    model = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(),
        nn.Conv3d(8, 8, 3, stride=2, padding=1, groups=8),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 5))
    result = count_complexity(model, (2, 3, t, h, w))
    out_s = [(n + 2 - 3) // 2 + 1 for n in (t, h, w)]
    conv = 2 * (8 * 3 * 27 * t * h * w + 8 * 27 * out_s[0] * out_s[1] *
                out_s[2])
    assert result['macs_by_op'] == {'convolution': conv, 'addmm': 2 * 8 * 5}
    assert result['norm_elements'] == 2 * 8 * t * h * w
    assert result['params'] == sum(p.numel() for p in model.parameters())
    # the meta-device count equals a count on real tensors
    real = count_complexity(model, (2, 3, t, h, w), on_meta=False)
    assert real == result
    assert next(model.parameters()).device.type == 'cpu'


def test_recognizer_shape_is_checked():
    model = _recognizer('CSN', 'ir', 50)
    with pytest.raises(ValueError, match='must have 4 .* or 5'):
        count_complexity(model, (3, 8, 64))


def test_cli(tmp_path, capsys):
    out = tmp_path / 'counts.json'
    result = load_tool('tools/analysis/complexity.py').main([
        str(DEMO_CSN), '--shape', '1', '3', '8', '32', '32', '--by-op',
        '--json',
        str(out), '--cfg-options', 'model.cls_head.num_classes=7'
    ])
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved['macs'] == result['macs'] > 0
    assert saved['mmaction_flops'] == result['macs'] + 2 * result[
        'norm_elements']
    # the fc follows --cfg-options: 512 inputs x 7 classes
    assert result['macs_by_op']['addmm'] == 512 * 7
    assert f'{result["params"] / 1e6:.2f}' in printed
    assert 'convolution:' in printed
    assert result['shape'] == [1, 3, 8, 32, 32]


@pytest.mark.slow  # two memory subprocesses
def test_benchmark_tool_runs(tmp_path, capsys):
    tool = load_tool('tools/analysis/benchmark.py')
    out = tmp_path / 'bench.json'
    md = tmp_path / 'bench.md'
    result = tool.main([
        str(DEMO_CSN), '--compare-impl', 'plain-dw', '--shape', '2', '3',
        '8', '32', '32', '--iters', '1', '--warmup', '0', '--threads', '1',
        '--mode', 'train', '--memory', '--json',
        str(out), '--md',
        str(md)
    ])
    assert json.loads(out.read_text())['train']['B']['times_ms'] == result[
        'train']['B']['times_ms']
    entry = result['train']
    assert 'eval' not in result
    assert entry['A']['median_ms'] > 0 and entry['B']['median_ms'] > 0
    assert entry['ratio_b_over_a'] == pytest.approx(
        entry['B']['median_ms'] / entry['A']['median_ms'])
    # a train step of the model allocates activations: > 0 peak growth
    assert entry['A']['peak_mb'] > 0 and entry['B']['peak_mb'] > 0
    assert md.read_text().count('| plain-dw | 2x3x8x32x32 | train |') == 1
    # --memory says what it is doing while each subprocess runs
    err = capsys.readouterr().err
    for name in ('A', 'B'):
        assert f'memory {name} train: measuring in a fresh process' in err
        assert f'[benchmark] memory {name} train: ' in err
    with pytest.raises(ValueError, match='either --vs or --compare-impl'):
        tool.parse_args(['a.py', '--vs', 'b.py', '--compare-impl',
                         'mmaction'])


def _recognizer_2d(backbone: dict, num_classes: int = 174) -> nn.Module:
    init_default_scope('mmaction')
    return MODELS.build(
        dict(
            type='Recognizer2D',
            backbone=backbone,
            cls_head=dict(
                type='TSNHead', num_classes=num_classes, in_channels=2048)))


# (backbone, GMACs conv+fc of one 16-frame clip at 224^2 with a 174-class
# fc, params) counted on the official code (docs/benchmarks.md, "Reference
# figures"). The
# official TAM is three depthwise 1x1 convs (0.07 GMACs at this input);
# mmcsn's is elementwise and not counted as conv MACs: 0.3% below.
PUBLISHED_2D = [
    (dict(type='bLResNet', depth=50, num_segments=16), 23.85, 25_020_142),
    (dict(type='ResNet', depth=50, pretrained=None), 65.4, 23_864_174),
]


@pytest.mark.parametrize('backbone,gmacs,params', PUBLISHED_2D)
def test_blvnet_and_tsn_match_published(backbone, gmacs, params):
    result = count_complexity(_recognizer_2d(backbone), (16, 3, 224, 224))
    assert result['macs'] / 1e9 == pytest.approx(gmacs, rel=1e-2)
    assert result['params'] == pytest.approx(params, rel=1e-4)


def test_cli_accepts_backbone_json():
    tool = load_tool('tools/analysis/complexity.py')
    result = tool.main(
        ['{"type": "bLResNet", "depth": 50, "num_segments": 4}', '--shape',
         '4', '3', '64', '64'])
    assert result['macs'] > 0 and result['shape'] == [4, 3, 64, 64]
    with pytest.raises(ValueError, match='--shape is required'):
        tool.main(['{"type": "bLResNet", "depth": 50}'])


def _random_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def test_official_reference_equals_mmcsn():
    """The benchmark's official twin computes what mmcsn computes."""
    import torch

    from mmcsn.benchmark import blvnet_reference as ref
    from mmcsn.models.backbones import bLResNet
    from mmcsn.models.common import TemporalAggregation
    torch.manual_seed(0)
    ours = _random_bn(bLResNet(depth=50, num_segments=4)).eval()
    twin = ref.official_twin(ours).eval()
    x = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        out, expected = ours(x), twin(x)
    assert out.shape[0] == 2 * expected.shape[0]
    scale = expected.abs().max()
    assert scale > 0.1
    assert (out[1::2] - expected).abs().max() <= 1e-5 * scale
    assert torch.equal(out[0::2], out[1::2])

    tam = TemporalAggregation(6, num_segments=4)
    tam_ref = ref.official_twin(tam)
    x = torch.randn(8, 6, 3, 3, requires_grad=True)
    out, expected = tam(x), tam_ref(x)
    assert torch.allclose(out, expected, atol=1e-6)
    grad = torch.randn_like(out)
    inputs = [x] + list(tam.parameters())
    for got, want in zip(
            torch.autograd.grad(out, inputs, grad),
            torch.autograd.grad(expected, [x] + [
                dict(tam_ref.named_parameters())[n]
                for n, _ in tam.named_parameters()
            ], grad)):
        assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match='bLResNet or TemporalAggregation'):
        ref.official_twin(nn.Conv2d(1, 1, 1))


def test_benchmark_official_share_and_b_options(capsys):
    tool = load_tool('tools/analysis/benchmark.py')
    common = ['--iters', '1', '--warmup', '0', '--threads', '1',
              '--roof-size', '64']
    result = tool.main([
        '{"type": "TemporalAggregation", "channels": 4, "num_segments": 2}',
        '--shape', '4', '4', '3', '3', '--compare-impl', 'official',
        '--input-grad', *common
    ])
    assert result['max_abs_diff'] < 1e-5
    assert result['train']['B']['median_ms'] > 0
    result = tool.main([
        '{"type": "bLResNet", "depth": 50, "num_segments": 2}', '--shape',
        '4', '3', '64', '64', '--b-options', 'model.with_cp=True',
        '--mode', 'train', '--share', 'TemporalAggregation', *common
    ])
    assert result['max_abs_diff'] == 0
    share = result['train']['A']['share']
    assert 0 < share['share'] < 1 and share['backward_ms'] > 0
    assert 'TemporalAggregation share of A' in capsys.readouterr().out


def test_benchmark_onnxruntime_is_eval_only():
    tool = load_tool('tools/analysis/benchmark.py')
    result = tool.main([
        '{"type": "CSN", "depth": 50, "base_channels": 8, "stage_blocks": '
        '[1, 1, 1, 1]}', '--shape', '1', '3', '8', '64', '64',
        '--compare-impl', 'onnxruntime', '--iters', '1', '--warmup', '0',
        '--threads', '1', '--roof-size', '64'
    ])
    assert result['max_abs_diff'] < 1e-4
    assert 'B' in result['eval'] and 'B' not in result['train']
