"""mmcsn.ops: same values and gradients as the plain torch ops.

DepthwiseConv3d vs ``F.conv3d(groups=C)``, pointwise_conv3d vs a dense
1x1x1 ``F.conv3d``, and CSN with all its fast paths vs its plain path.
"""
import ctypes

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmcsn.ops.pointwise as pointwise_module
from mmcsn.ops import (
    DepthwiseConv3d,
    depthwise_conv3d,
    pointwise_conv3d,
    pointwise_fast_path,
)
from mmcsn.ops.depthwise_conv3d import _DepthwiseConv3dFunction
from mmcsn.utils.runtime import tune_malloc


def _reference(x, conv):
    return F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding, 1,
                    conv.groups)


def _grads(out, inputs, grad):
    return torch.autograd.grad(out, inputs, grad)


def _assert_close(a, b):
    # 1e-5 relative to the tensor's scale: the custom backward sums the
    # same products in another order than oneDNN's.
    scale = b.abs().max().clamp_min(1e-12)
    assert ((a - b).abs().max() / scale).item() < 1e-5


@pytest.mark.parametrize('stride', [1, 2, (1, 2, 2), (2, 1, 1)])
@pytest.mark.parametrize('shape', [(2, 4, 5, 7, 6), (1, 3, 4, 9, 9),
                                   (1, 2, 1, 3, 2)])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('bias', [False, True])
def test_matches_conv3d(stride, shape, channels_last, bias):
    torch.manual_seed(0)
    conv = DepthwiseConv3d(shape[1], 3, stride=stride, padding=1, bias=bias)
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    out = conv(x)
    assert out.grad_fn.name() == '_DepthwiseConv3dFunctionBackward'
    expected = _reference(x, conv)
    assert torch.equal(out, expected)
    grad = torch.randn_like(out)
    inputs = [x] + list(conv.parameters())
    for got, ref in zip(_grads(out, inputs, grad),
                        _grads(expected, inputs, grad)):
        assert got.shape == ref.shape
        _assert_close(got, ref)


@pytest.mark.parametrize('kernel,stride,padding', [(3, 3, 1), (5, 2, 2),
                                                   ((3, 1, 3), 2, (1, 0, 1)),
                                                   (3, 2, 0)])
def test_other_kernels_strides_paddings(kernel, stride, padding):
    torch.manual_seed(1)
    conv = DepthwiseConv3d(3, kernel, stride=stride, padding=padding)
    x = torch.randn(1, 3, 7, 8, 9, requires_grad=True)
    out = conv(x)
    expected = _reference(x, conv)
    grad = torch.randn_like(out)
    for got, ref in zip(_grads(out, [x, conv.weight], grad),
                        _grads(expected, [x, conv.weight], grad)):
        _assert_close(got, ref)


@pytest.mark.parametrize('stride', [1, 2])
def test_gradcheck_float64(stride):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: _DepthwiseConv3dFunction.apply(
            x, w, b, (stride, ) * 3, (1, 1, 1)), (x, w, b))


def test_state_dict_is_conv3d():
    conv = DepthwiseConv3d(4, bias=True)
    plain = nn.Conv3d(4, 4, 3, padding=1, groups=4, bias=True)
    plain.load_state_dict(conv.state_dict(), strict=True)
    conv.load_state_dict(plain.state_dict(), strict=True)
    assert isinstance(conv, nn.Conv3d)
    assert conv.weight.shape == (4, 1, 3, 3, 3)


def test_plain_path_without_grad_and_under_autocast():
    conv = DepthwiseConv3d(4, stride=2)
    x = torch.randn(1, 4, 4, 6, 6, requires_grad=True)
    with torch.no_grad():
        assert torch.equal(conv(x), _reference(x, conv))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x)
        ref = _reference(x, conv)
    assert out.dtype == torch.bfloat16
    assert out.grad_fn.name() != '_DepthwiseConv3dFunctionBackward'
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(
        conv.weight.grad).all()
    assert torch.allclose(out.float(), ref.float())
    assert torch.allclose(out.float(), _reference(x, conv), atol=0.05)


def test_functional_and_bad_arguments():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 4, 4, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, 3, requires_grad=True)
    out = depthwise_conv3d(x, w, None, stride=(1, 2, 2), padding=1)
    assert torch.equal(out, F.conv3d(x, w, None, (1, 2, 2), 1, 1, 2))
    with pytest.raises(ValueError, match='stride must be an int or 3 ints'):
        depthwise_conv3d(x, w, stride=(1, 2))
    with pytest.raises(ValueError, match="padding must be an int or 3"):
        DepthwiseConv3d(2, padding='same')


def test_torch_compile_forward_backward():
    torch.manual_seed(0)
    conv = DepthwiseConv3d(3, stride=2, bias=True)
    x = torch.randn(1, 3, 4, 6, 6, requires_grad=True)
    compiled = torch.compile(conv, backend='aot_eager')
    out = compiled(x)
    expected = _reference(x, conv)
    assert torch.allclose(out, expected, atol=1e-6)
    grad = torch.randn_like(out)
    for got, ref in zip(_grads(out, [x, conv.weight], grad),
                        _grads(expected, [x, conv.weight], grad)):
        _assert_close(got, ref)


def test_tune_malloc(monkeypatch):
    with pytest.raises(ValueError, match='threshold must be an int'):
        tune_malloc(2**31)
    monkeypatch.setenv('MMCSN_NO_MALLOC_TUNING', '1')
    assert tune_malloc() is False
    monkeypatch.delenv('MMCSN_NO_MALLOC_TUNING')
    monkeypatch.setenv('MALLOC_MMAP_THRESHOLD_', '1')
    assert tune_malloc() is False  # the user's variable wins
    monkeypatch.delenv('MALLOC_MMAP_THRESHOLD_')
    try:
        ctypes.CDLL('libc.so.6').gnu_get_libc_version
        glibc = True
    except (OSError, AttributeError):
        glibc = False
    assert tune_malloc() is glibc


# ------------------------------------------------------------- pointwise
@pytest.mark.parametrize('mkldnn_min', [1, 10**9])  # oneDNN / matmul
@pytest.mark.parametrize('stride', [1, 2, (2, 1, 1)])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('bias', [False, True])
def test_pointwise_matches_conv3d(monkeypatch, mkldnn_min, stride,
                                  channels_last, bias):
    monkeypatch.setattr(pointwise_module, 'MKLDNN_MIN_POSITIONS', mkldnn_min)
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    w = torch.randn(5, 6, 1, 1, 1, requires_grad=True)
    b = torch.randn(5, requires_grad=True) if bias else None
    out = pointwise_conv3d(x, w, b, stride)
    expected = F.conv3d(x, w, b, stride)
    assert out.shape == expected.shape
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    _assert_close(out, expected)
    with torch.no_grad():
        _assert_close(pointwise_conv3d(x, w, b, stride), expected)
    grad = torch.randn_like(expected)
    inputs = [x, w] + ([b] if bias else [])
    for got, ref in zip(_grads(out, inputs, grad),
                        _grads(expected, inputs, grad)):
        _assert_close(got, ref)


def test_pointwise_gradcheck_and_errors():
    x = torch.randn(1, 3, 2, 3, 3, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last_3d).requires_grad_()
    w = torch.randn(4, 3, 1, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: pointwise_conv3d(x, w, b, (1, 2, 1)), (x, w, b))
    with pytest.raises(ValueError, match=r'weight must be \(C_out, C_in'):
        pointwise_conv3d(x, torch.randn(4, 3, 3, 3, 3, dtype=x.dtype))
    with pytest.raises(ValueError, match='stride must be an int or 3'):
        pointwise_conv3d(x, w, stride=(1, 2))


def test_pointwise_fast_path_only_where_it_applies():
    x = torch.randn(1, 4, 2, 3, 3)
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    assert pointwise_fast_path(cl)
    assert not pointwise_fast_path(x)  # NCDHW: plain conv
    assert not pointwise_fast_path(cl.double())
    assert not pointwise_fast_path(x[0])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not pointwise_fast_path(cl)
    seen = []
    torch.jit.trace(
        lambda t: seen.append(pointwise_fast_path(t)) or t,
        cl,
        check_trace=False)
    assert seen == [False]


def test_csn_fast_paths_match_plain_paths(monkeypatch):
    """CSN with every fast path (channels-last, BN folding, matmul 1x1x1,
    custom depthwise backward) equals the plain NCDHW model."""
    from mmcsn.models.backbones import CSN
    torch.manual_seed(0)
    fast = CSN(depth=50, base_channels=8, stage_blocks=(1, 2, 1, 1),
               bottleneck_mode='ip')
    for m in fast.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    plain = CSN(depth=50, base_channels=8, stage_blocks=(1, 2, 1, 1),
                bottleneck_mode='ip', memory_format='contiguous',
                fuse_bn_eval=False)
    plain.load_state_dict(fast.state_dict(), strict=True)
    fast.eval()
    plain.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    calls = []
    real_fast_path = pointwise_module.pointwise_fast_path

    def spy(t):
        # the plain model runs with the matmul path switched off
        if not calls or calls[-1] is None:
            return False
        calls.append(real_fast_path(t))
        return calls[-1]

    import mmcsn.ops.fast_conv as fast_conv
    monkeypatch.setattr(fast_conv, 'pointwise_fast_path', spy)

    def run(model, inp, fast_path):
        calls.append(True if fast_path else None)
        out = model(inp)
        calls.append(None)
        return out

    with torch.no_grad():
        _assert_close(run(fast, x, True), run(plain, x, False))
    hits = [c for c in calls if c is not None]
    # the marker + 3 1x1x1 convs in each of 5 ip blocks + 4 shortcuts
    assert len(hits) == 1 + 5 * 3 + 4 and all(hits)
    # eval mode with grads on: BN not folded, the custom backwards run
    xf = x.clone().requires_grad_()
    xp = x.clone().requires_grad_()
    out_f, out_p = run(fast, xf, True), run(plain, xp, False)
    _assert_close(out_f, out_p)
    grad = torch.randn_like(out_p)
    params_f = dict(fast.named_parameters())
    names = [n for n, _ in plain.named_parameters()]
    got = _grads(out_f, [xf] + [params_f[n] for n in names], grad)
    ref = _grads(out_p, [xp] + [p for _, p in plain.named_parameters()],
                 grad)
    for g, r in zip(got, ref):
        _assert_close(g, r)


def test_flop_counter_sees_every_pointwise_conv():
    """Dispatch modes (FlopCounterMode) get the plain conv, not the GEMM."""
    from torch.utils.flop_counter import FlopCounterMode

    from mmcsn.models.backbones import CSN

    counts = []
    for memory_format in ('channels_last_3d', 'contiguous'):
        model = CSN(depth=50, base_channels=8, stage_blocks=(1, 1, 1, 1),
                    memory_format=memory_format).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 4, 64, 64))
        counts.append(counter.get_flop_counts()['Global'])
    assert counts[0] == counts[1]
    assert torch.ops.aten.convolution in counts[0]
