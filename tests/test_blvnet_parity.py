"""Acceptance: official bLVNet-TAM weights -> CLI converter -> Recognizer2D.

The reference logits in ``tests/fixtures/blvnet`` (vendored: a clone alone
runs this) come from the official model code (IBM/bLVNet-TAM at commit
feadcd3) with deterministic weights rebuilt here from ``keys.txt`` by the
fixture README's recipe.
"""
import ast
import json
import math
from collections import OrderedDict

import pytest
import torch
from conftest import BLVNET_FIXTURE as FIXTURE
from conftest import load_tool
from mmaction.registry import MODELS
from mmengine.registry import DefaultScope

import mmcsn  # noqa: F401  (registers bLResNet)
from mmcsn.checkpoint import (
    CheckpointError,
    load_checkpoint_file,
    load_state_dict_checked,
)
from mmcsn.checkpoint.blvnet import (
    blresnet_imagenet_to_mmcsn,
    blvnet_tam_to_mmcsn,
    convert_blvnet_checkpoint,
    detect_blvnet_format,
    infer_blvnet_arch,
)

SEED = 20191208


def _load_cli():
    return load_tool('tools/convert/blvnet_to_mmcsn.py')


def _fill(name: str, shape: tuple, g: torch.Generator) -> torch.Tensor:
    """The fixture README's deterministic recipe for one key."""
    if name.endswith('num_batches_tracked'):
        return torch.zeros(shape, dtype=torch.int64)
    if name.endswith('running_mean'):
        return 0.01 * torch.randn(shape, generator=g)
    if name.endswith('running_var'):
        return 1.0 + 0.1 * torch.rand(shape, generator=g)
    if len(shape) == 1 and name.endswith('.weight'):
        return 1.0 + 0.1 * torch.randn(shape, generator=g)
    if len(shape) == 1 and name.endswith('.bias'):
        return 0.01 * torch.randn(shape, generator=g)
    return torch.randn(shape, generator=g) * math.sqrt(1 / math.prod(
        shape[1:]))


@pytest.fixture(scope='module')
def official():
    """(official-layout state_dict, input, reference logits)."""
    g = torch.Generator().manual_seed(SEED)
    state_dict = OrderedDict()
    for line in (FIXTURE / 'keys.txt').read_text().splitlines():
        name, shape, _ = line.split('\t')
        state_dict[name] = _fill(name, ast.literal_eval(shape), g)
    inputs = torch.randn(2, 16, 3, 112, 112, generator=g)
    expected = torch.load(FIXTURE / 'expected.pt', weights_only=True)
    assert torch.equal(inputs, expected['input'])  # recipe reproduced
    return state_dict, expected['input'], expected['logits']


@pytest.fixture(scope='module')
def recognizer():
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(
            dict(
                type='Recognizer2D',
                backbone=dict(
                    type='bLResNet',
                    depth=50,
                    alpha=2,
                    beta=4,
                    num_segments=16),
                cls_head=dict(
                    type='TSNHead',
                    num_classes=10,
                    in_channels=2048,
                    consensus=dict(type='AvgConsensus', dim=1),
                    dropout_ratio=0.5)))
    return model.eval()


def _logits(model, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(inputs, mode='tensor', stage='head')
    return out[0] if isinstance(out, tuple) else out


def _rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def test_vendored_fixture_is_intact():
    """The files under tests/fixtures/blvnet agree with each other."""
    meta = json.loads((FIXTURE / 'meta.json').read_text())
    expected = torch.load(FIXTURE / 'expected.pt', weights_only=True)
    keys = (FIXTURE / 'keys.txt').read_text().splitlines()
    assert len(keys) == meta['n_keys'] == 449
    assert list(expected['input'].shape) == meta['input_shape']
    assert expected['logits'].tolist() == meta['logits']
    assert expected['logits'].abs().max().item() == meta['logits_absmax']


@pytest.mark.parametrize('layout', ['released', 'train_py'])
def test_converted_official_weights_match_reference_logits(
        official, recognizer, tmp_path, layout):
    state_dict, inputs, ref = official
    if layout == 'train_py':  # DataParallel keys inside ['state_dict']
        source = dict(
            epoch=50,
            arch='blvnet-tam',
            state_dict=OrderedDict(
                ('module.' + k, v) for k, v in state_dict.items()))
    else:  # released files: a plain state_dict
        source = state_dict
    src, dst = tmp_path / 'official.pth.tar', tmp_path / 'mmcsn.pth'
    torch.save(source, src)
    assert _load_cli().main([str(src), str(dst)]) == 0

    converted = load_checkpoint_file(dst)
    assert converted['meta']['depth'] == 50
    assert converted['meta']['num_classes'] == 10
    assert len(converted['state_dict']) == 449
    load_state_dict_checked(recognizer, converted['state_dict'], strict=True)
    ours = _logits(recognizer, inputs)
    assert ours.shape == ref.shape == (2, 10)
    assert _rel_err(ours, ref) <= 1e-5


def test_parity_catches_swapped_big_little_frames(official, recognizer):
    """Feeding even frames to big (and odd to little) breaks parity."""
    state_dict, inputs, ref = official
    load_state_dict_checked(recognizer, blvnet_tam_to_mmcsn(state_dict))
    swapped = inputs.view(2, 8, 2, 3, 112, 112).flip(2).reshape(inputs.shape)
    assert _rel_err(_logits(recognizer, swapped), ref) > 1e-3


# ----------------------------------------------------------------------
# the pure conversion functions and the CLI's guards


def _recognizer_cfg(depth: int, blending_frames: int, classes: int) -> dict:
    return dict(
        type='Recognizer2D',
        backbone=dict(
            type='bLResNet',
            depth=depth,
            num_segments=16,
            blending_frames=blending_frames),
        cls_head=dict(
            type='TSNHead', num_classes=classes, in_channels=2048))


@pytest.mark.parametrize('depth', [50, 101, 152])
@pytest.mark.parametrize('blending_frames', [1, 3, 5])
def test_converter_any_depth_and_blending_frames(depth, blending_frames):
    """Official keys of any depth / B convert to exactly the recognizer's.

    The official layout is the recognizer's own backbone layout under
    ``baseline_model.`` (checked against the official keys.txt for R50
    in test_blresnet.py) plus ``new_fc``, behind ``module.`` in a
    train.py wrapper; equal names and shapes is what a strict load needs.
    """
    with torch.device('meta'), \
            DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(_recognizer_cfg(depth, blending_frames, 7))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = OrderedDict(
        ('module.baseline_model.' + k[len('backbone.'):], v)
        for k, v in model.state_dict().items() if k.startswith('backbone.'))
    official['module.new_fc.weight'] = torch.empty(7, 2048, device='meta')
    official['module.new_fc.bias'] = torch.empty(7, device='meta')
    converted, fmt, dropped = convert_blvnet_checkpoint(
        dict(epoch=1, state_dict=official))
    assert (fmt, dropped) == ('blvnet_tam', [])
    assert {k: tuple(v.shape) for k, v in converted.items()} == want
    assert infer_blvnet_arch(converted) == dict(
        depth=depth,
        alpha=2,
        with_tam=True,
        blending_frames=blending_frames,
        num_classes=7)


def test_rename_tables():
    sd = OrderedDict([
        ('baseline_model.conv1.weight', torch.zeros(1)),
        ('baseline_model.layer4.0.tam.blending_layers.4.weight',
         torch.zeros(1)),
        ('baseline_model.fc.weight', torch.zeros(1)),  # dropout == 0 model
        ('baseline_model.fc.bias', torch.zeros(1)),
    ])
    assert list(blvnet_tam_to_mmcsn(sd)) == [
        'backbone.conv1.weight',
        'backbone.layer4.0.tam.blending_layers.4.weight',
        'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'
    ]
    imagenet = OrderedDict([('conv1.weight', torch.zeros(64, 3, 7, 7)),
                            ('b_conv0.weight', torch.zeros(1)),
                            ('bl_init.weight', torch.zeros(1)),
                            ('fc.weight', torch.zeros(1))])
    assert detect_blvnet_format(imagenet) == 'blresnet_imagenet'
    out = blresnet_imagenet_to_mmcsn(imagenet, in_channels=10)
    assert list(out) == [
        'backbone.conv1.weight', 'backbone.b_conv0.weight',
        'backbone.bl_init.weight'
    ]
    assert out['backbone.conv1.weight'].shape == (64, 10, 7, 7)  # flow


def test_conversion_errors():
    with pytest.raises(CheckpointError, match=r"unexpected key 'extra.w'"):
        blvnet_tam_to_mmcsn({'new_fc.weight': torch.zeros(1),
                             'extra.w': torch.zeros(1)})
    with pytest.raises(CheckpointError, match='both map to'):
        blvnet_tam_to_mmcsn({'baseline_model.fc.weight': torch.zeros(1),
                             'new_fc.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError, match='not a bLVNet-TAM / bLResNet'):
        detect_blvnet_format({'encoder.weight': torch.zeros(1)})


def test_cli_guards(tmp_path, capsys):
    cli = _load_cli()
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save({'new_fc.weight': torch.zeros(2, 3)}, src)
    assert cli.main([str(src), str(src)]) == 1  # never writes the input
    assert 'input file' in capsys.readouterr().err
    assert cli.main([str(src), str(dst)]) == 0
    assert cli.main([str(src), str(dst)]) == 1  # exists, no --force
    assert '--force' in capsys.readouterr().err
    assert cli.main([str(src), str(dst), '--force']) == 0
    assert cli.main([str(dst), str(tmp_path / 'again.pth')]) == 1
    assert 'already has mmcsn keys' in capsys.readouterr().err
    torch.save({'encoder.weight': torch.zeros(1)}, src)
    assert cli.main([str(src), str(dst), '--force']) == 1
