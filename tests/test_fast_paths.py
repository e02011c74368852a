"""The no-grad inference fast paths of CSN (docs/benchmarks.md section 10).

* BN folded into the output of a late-stage 1x1x1 GEMM (fewer positions
  than input channels): ``conv(x) * scale + shift`` applied to the
  ``(positions, C_out)`` product instead of scaling the weight
  (:func:`mmcsn.ops.pointwise.pointwise_conv3d_scaled`).
* The residual add of a :class:`CSNBlock` written into the branch's output
  in place, fused with the ReLU (``aten::_add_relu_``), when no hook can
  hold that output.

Each: equal outputs to the plain path (strict tolerances), forward hooks
still fire, and a negative control.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmcsn.ops.fast_conv as fast_conv
from mmcsn.models.backbones import CSN
from mmcsn.models.backbones.csn_blocks import ConvNormAct, CSNBlock
from mmcsn.ops.pointwise import pointwise_conv3d_scaled

CL = torch.channels_last_3d
TOL = dict(rtol=1e-5, atol=1e-6)


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g)
                                     - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g)
                                    * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def _tiny_csn() -> CSN:
    torch.manual_seed(0)
    model = CSN(depth=50, base_channels=8, stage_blocks=(1, 2, 1, 1))
    model.init_weights()
    return _randomize(model)


def _plain(monkeypatch) -> None:
    """Switch both fast paths off (the reference path)."""
    monkeypatch.setattr(fast_conv, '_scale_output', lambda *a: False)
    monkeypatch.setattr(CSNBlock, '_inplace_residual', lambda self, x: False)


# ------------------------------------------------ BN on the GEMM's output
@pytest.mark.parametrize('stride', [(1, 1, 1), (2, 2, 2)])
@pytest.mark.parametrize('with_shift', [True, False])
def test_scaled_gemm_equals_conv_then_affine(stride, with_shift):
    torch.manual_seed(0)
    x = torch.randn(2, 64, 3, 5, 5).contiguous(memory_format=CL)
    w = torch.randn(32, 64, 1, 1, 1)
    scale = torch.rand(32) + 0.5
    shift = torch.randn(32) if with_shift else None
    ref = F.conv3d(x, w, stride=stride) * scale.view(1, -1, 1, 1, 1)
    if shift is not None:
        ref = ref + shift.view(1, -1, 1, 1, 1)
    with torch.no_grad():
        out = pointwise_conv3d_scaled(x, w, scale, shift, stride)
    assert out.is_contiguous(memory_format=CL)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, **TOL)
    # negative control: a different scale is caught by the same tolerance
    assert not torch.allclose(
        pointwise_conv3d_scaled(x, w, scale * 1.001, shift, stride), ref,
        **TOL)


def test_scaled_gemm_refuses_gradients():
    x = torch.randn(1, 4, 1, 2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match='inference only'):
        pointwise_conv3d_scaled(x, torch.randn(3, 4, 1, 1, 1), torch.ones(3))


def _count_scaled(monkeypatch):
    calls = []
    real = fast_conv.pointwise_conv3d_scaled

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fast_conv, 'pointwise_conv3d_scaled', spy)
    return calls


@pytest.mark.parametrize('size,taken', [(2, True), (16, False)])
def test_folded_conv_module_uses_it_only_for_few_positions(
        monkeypatch, size, taken):
    torch.manual_seed(0)
    layer = _randomize(ConvNormAct(64, 32, (1, 1, 1), act_cfg=None))
    x = torch.randn(1, 64, 2, size, size).contiguous(memory_format=CL)
    calls = _count_scaled(monkeypatch)
    seen = []
    layer.conv.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        out = layer(x)
        ref = layer.norm(F.conv3d(x, layer.conv.weight))
    assert bool(calls) is taken  # 8 positions < 64 channels; 512 are not
    assert len(seen) == 1 and seen[0] is out
    assert torch.allclose(out, ref, **TOL)


def test_folded_conv_module_not_in_training_or_with_grad(monkeypatch):
    layer = _randomize(ConvNormAct(64, 32, (1, 1, 1), act_cfg=None))
    x = torch.randn(1, 64, 1, 2, 2).contiguous(memory_format=CL)
    calls = _count_scaled(monkeypatch)
    layer(x).sum().backward()  # eval, grad enabled: not folded at all
    layer.train()
    with torch.no_grad():
        layer(x)
    assert calls == []


# ----------------------------------------------- in-place residual + ReLU
def _block(downsample: bool) -> CSNBlock:
    torch.manual_seed(0)
    ds = ConvNormAct(16, 32, (1, 1, 1), act_cfg=None) if downsample \
        else None
    block = CSNBlock(
        16 if downsample else 32, 8, 4, 'ir', downsample=ds)
    return _randomize(block)


@pytest.mark.parametrize('downsample', [True, False])
def test_inplace_residual_equals_plain(monkeypatch, downsample):
    block = _block(downsample)
    x = torch.randn(1, block.conv1.conv.in_channels, 2, 4,
                    4).contiguous(memory_format=CL)
    x_before = x.clone()
    with torch.no_grad():
        assert block._inplace_residual(x)
        fast = block(x)
        monkeypatch.setattr(CSNBlock, '_inplace_residual',
                            lambda self, x: False)
        plain = block(x)
    assert torch.equal(fast, plain)
    assert torch.equal(x, x_before)  # the block's input is never written
    assert (fast >= 0).all()


def test_inplace_residual_only_without_grad_and_hooks():
    block = _block(False)
    x = torch.randn(1, 32, 2, 4, 4)
    assert not block._inplace_residual(x)  # grad enabled: training path
    with torch.no_grad():
        assert block._inplace_residual(x)
        handle = block.conv3.conv.register_forward_hook(
            lambda m, i, o: None)
        assert not block._inplace_residual(x)
        handle.remove()
        handle = block.conv3.bn.register_forward_hook(lambda m, i, o: None)
        assert not block._inplace_residual(x)
        handle.remove()
        handle = nn.modules.module.register_module_forward_hook(
            lambda m, i, o: None)
        try:
            assert not block._inplace_residual(x)
        finally:
            handle.remove()
        assert block._inplace_residual(x)


def _held_conv3_output(block) -> tuple:
    """conv3's output as a forward hook holds it after the block ran, and
    a copy taken when the hook saw it."""
    x = torch.randn(1, 32, 2, 4, 4).contiguous(memory_format=CL)
    held = []
    block.conv3.conv.register_forward_hook(
        lambda m, i, o: held.append((o, o.clone())))
    with torch.no_grad():
        block(x)
    (out, copy), = held
    return out, copy


def test_hooked_branch_output_is_not_overwritten():
    """A hook holding conv3's output sees the value it was given."""
    out, copy = _held_conv3_output(_block(False))
    assert torch.equal(out, copy)


def test_inplace_add_would_be_caught():
    """Negative control: without the hook check, the held output changes."""
    block = _block(False)
    block._inplace_residual = lambda x: True  # ignore hooks (wrong)
    out, copy = _held_conv3_output(block)
    assert not torch.equal(out, copy)


# ------------------------------------------------------------ whole model
def test_csn_no_grad_eval_equals_plain_and_hooks_fire(monkeypatch):
    model = _tiny_csn()
    x = torch.randn(1, 3, 8, 32, 32)
    calls = _count_scaled(monkeypatch)
    with torch.no_grad():
        fast = model(x)
    assert calls  # the late stages take the scaled path
    convs = {
        n: m
        for n, m in model.named_modules() if isinstance(m, nn.Conv3d)
    }
    seen = set()
    for n, m in convs.items():
        m.register_forward_hook(lambda mod, i, o, n=n: seen.add(n))
    _plain(monkeypatch)
    with torch.no_grad():
        plain = model(x)
    assert seen == set(convs)
    assert torch.allclose(fast, plain, **TOL)
    # and against the unfolded model (BN modules called, no GEMM path)
    model.fuse_bn_eval = False
    model.pointwise_gemm = False
    with torch.no_grad():
        unfused = model(x)
    assert torch.allclose(fast, unfused, rtol=1e-4, atol=1e-5)


def test_csn_training_step_unchanged(monkeypatch):
    """With gradients on, neither path runs (same values and grads)."""
    model = _tiny_csn()
    x = torch.randn(1, 3, 8, 32, 32)
    calls = _count_scaled(monkeypatch)
    out = model(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert calls == []
    model.zero_grad()
    _plain(monkeypatch)
    out2 = model(x)
    out2.sum().backward()
    assert torch.equal(out, out2)
    assert all(
        torch.equal(a, p.grad) for a, p in zip(grads, model.parameters()))
