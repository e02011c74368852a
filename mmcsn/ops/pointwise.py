"""Dense 1x1x1 Conv3d on CPU as GEMMs over channels-last positions.

A 1x1x1 conv with ``groups=1`` is a matrix product of the ``(positions,
C_in)`` activations with the ``(C_in, C_out)`` weight. In channels_last_3d
the activations already are that matrix (``x.permute(0, 2, 3, 4, 1)`` is a
contiguous view), so the product needs no copy, and the backward is two
more products. PyTorch's own dispatch does worse on CPU
(``docs/benchmarks.md``):

* its heuristic sends 1x1 convs to ``aten::slow_conv3d_forward`` (im2col +
  GEMM) when running one thread, or at
  batch 1 when ``N*C*T*H <= 20480``: 33 of the 53 convs of an ir-CSN-50 at
  1x3x16x112x112 with one thread, 15 with two. For channels-last inputs
  that path also copies to NCDHW and back;
* its backward of a 1x1x1 conv was slower than the two matrix products
  (fwd+bwd 1.1-1.9x at 6 of 7 CSN layer shapes).

:func:`pointwise_conv3d` runs the forward and the input gradient (itself a
1x1x1 conv with the transposed weight) with oneDNN when there are at least
:data:`MKLDNN_MIN_POSITIONS` positions (oneDNN was 1.3-1.9x faster than
``mm`` from 6k positions on), with ``mm`` below, and the weight gradient
with one ``mm``.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _triple
from torch.utils._python_dispatch import _get_current_dispatch_mode

__all__ = [
    'pointwise_conv3d', 'pointwise_conv3d_scaled', 'pointwise_fast_path',
    'ops_observed', 'MKLDNN_MIN_POSITIONS'
]

# oneDNN from this many positions (N*T*H*W) on; below it the fixed cost of
# oneDNN's weight reorder exceeds its gain (2x7x7 positions: 3-5x slower).
MKLDNN_MIN_POSITIONS = 2048


def ops_observed() -> bool:
    """Whether a tool that must see the standard ops is running.

    Tracing, scripting, ONNX export, ``torch.compile`` and dispatch modes
    (``FlopCounterMode`` and other counters key on ``aten.convolution`` and
    on the norm modules): mmcsn's fast paths (the GEMM 1x1x1 conv, BN
    folding) then step aside, so these tools see plain conv + norm.

    Returns:
        bool: A tool is watching.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return True
    return _get_current_dispatch_mode() is not None


def pointwise_fast_path(x: Tensor) -> bool:
    """Whether :func:`pointwise_conv3d` should replace ``F.conv3d``.

    True for float32 CPU tensors in channels_last_3d outside the tools that
    must see a standard conv op (export, tracing, scripting, compile) or
    change dtypes (autocast).

    Args:
        x (Tensor): The conv's input.

    Returns:
        bool: Use the matmul formulation.
    """
    if x.device.type != 'cpu' or x.dtype != torch.float32 or x.dim() != 5:
        return False
    if ops_observed() or torch.is_autocast_enabled('cpu'):
        # the oneDNN/mm calls would hide the conv from the watching tool
        return False
    return x.is_contiguous(memory_format=torch.channels_last_3d)


def _use_mkldnn(x: Tensor) -> bool:
    """oneDNN for large channels-last products, else a matmul."""
    return (x.numel() // max(x.shape[1], 1) >= MKLDNN_MIN_POSITIONS
            and torch.backends.mkldnn.is_available())


def _matmul_conv(x: Tensor, weight: Tensor,
                 bias: Optional[Tensor]) -> Tensor:
    """1x1x1 conv of a channels-last ``x`` as ``(P, C_in) @ (C_in, C_out)``.
    """
    if _use_mkldnn(x):
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, [0, 0, 0],
                                                 [1, 1, 1], [1, 1, 1], 1)
    out = F.linear(x.permute(0, 2, 3, 4, 1), weight.flatten(1), bias)
    return out.permute(0, 4, 1, 2, 3)


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d)


def _compact(x: Tensor, stride: Tuple[int, int, int]) -> Tensor:
    """The positions a strided 1x1x1 conv reads, as a channels-last tensor
    (a view when ``x`` is channels-last and the stride is 1)."""
    if stride != (1, 1, 1):
        x = x[:, :, ::stride[0], ::stride[1], ::stride[2]]
    return _channels_last(x)


class _PointwiseConv3dFunction(torch.autograd.Function):
    """1x1x1 conv on channels-last tensors; every product is a GEMM.

    Forward and input gradient are the same kind of product (the input
    gradient is a 1x1x1 conv of the output gradient with the transposed
    weight), each run by oneDNN when large, by ``mm`` otherwise; the weight
    gradient is one ``mm`` over all positions. Only the original input is
    saved: a strided conv's compact copy of the positions it reads is
    rebuilt in the backward instead of being kept alive until then.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                stride: Tuple[int, int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.stride = stride
        return _matmul_conv(_compact(x, stride), weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        stride = ctx.stride
        grad_out = _channels_last(grad_out)
        c_out, c_in = weight.shape[:2]
        grad_2d = grad_out.permute(0, 2, 3, 4, 1).reshape(-1, c_out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            x_2d = _compact(x, stride).permute(0, 2, 3, 4, 1).reshape(
                -1, c_in)
            grad_w = grad_2d.t().mm(x_2d).view(weight.shape)
            del x_2d
        if ctx.needs_input_grad[0]:
            if _use_mkldnn(grad_out):
                # large early layers: small weights, cheap to transpose
                grad_x = _matmul_conv(
                    grad_out,
                    weight.transpose(0, 1).contiguous(), None)
            else:
                # mm reads the transposed weight in place (no copy)
                n, _, t, h, w = grad_out.shape
                grad_x = grad_2d.mm(weight.view(c_out, c_in)).view(
                    n, t, h, w, c_in).permute(0, 4, 1, 2, 3)
            if stride != (1, 1, 1):
                full = torch.zeros_like(
                    x, memory_format=torch.channels_last_3d)
                full[:, :, ::stride[0], ::stride[1], ::stride[2]] = grad_x
                grad_x = full
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_2d.sum(0)
        return grad_x, grad_w, grad_b, None


def pointwise_conv3d(x: Tensor,
                     weight: Tensor,
                     bias: Optional[Tensor] = None,
                     stride: Sequence[int] = (1, 1, 1)) -> Tensor:
    """``F.conv3d(x, weight, bias, stride)`` for a ``(C_out, C_in, 1, 1, 1)``
    kernel, computed with GEMMs on the channels-last layout.

    Args:
        x (Tensor): Input ``(N, C_in, T, H, W)``, ideally channels_last_3d
            (other layouts are copied once).
        weight (Tensor): Kernel ``(C_out, C_in, 1, 1, 1)``.
        bias (Tensor, optional): Bias ``(C_out,)``. Defaults to None.
        stride (Sequence[int]): Stride (t, h, w). Defaults to (1, 1, 1).

    Returns:
        Tensor: ``(N, C_out, T', H', W')`` in channels_last_3d, equal to
        ``F.conv3d`` up to float summation order.
    """
    if weight.dim() != 5 or tuple(weight.shape[2:]) != (1, 1, 1):
        raise ValueError('weight must be (C_out, C_in, 1, 1, 1), got '
                         f'{tuple(weight.shape)}')
    stride = tuple(int(v) for v in _triple(stride))
    if len(stride) != 3:
        raise ValueError(f'stride must be an int or 3 ints, got {stride}')
    if not torch.is_grad_enabled() or not (
            x.requires_grad or weight.requires_grad or
        (bias is not None and bias.requires_grad)):
        return _matmul_conv(_compact(x, stride), weight, bias)
    return _PointwiseConv3dFunction.apply(x, weight, bias, stride)


def pointwise_conv3d_scaled(x: Tensor,
                            weight: Tensor,
                            scale: Tensor,
                            shift: Optional[Tensor] = None,
                            stride: Sequence[int] = (1, 1, 1)) -> Tensor:
    """``pointwise_conv3d(x, weight, None, stride) * scale + shift``, per
    output channel, without gradients (inference only).

    The product runs with the unscaled weight and ``scale`` / ``shift`` are
    applied to the ``(positions, C_out)`` result in one pass: cheaper than
    folding ``scale`` into the weight when there are fewer positions than
    input channels (the late stages of a CSN).

    Args:
        x (Tensor): Input ``(N, C_in, T, H, W)``, channels_last_3d.
        weight (Tensor): Kernel ``(C_out, C_in, 1, 1, 1)``.
        scale (Tensor): ``(C_out,)`` factor.
        shift (Tensor, optional): ``(C_out,)`` offset. Defaults to None.
        stride (Sequence[int]): Stride (t, h, w). Defaults to (1, 1, 1).

    Returns:
        Tensor: ``(N, C_out, T', H', W')`` in channels_last_3d.
    """
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or scale.requires_grad or
                                    (shift is not None
                                     and shift.requires_grad)):
        raise RuntimeError('pointwise_conv3d_scaled is inference only')
    if weight.dim() != 5 or tuple(weight.shape[2:]) != (1, 1, 1):
        raise ValueError('weight must be (C_out, C_in, 1, 1, 1), got '
                         f'{tuple(weight.shape)}')
    stride = tuple(int(v) for v in _triple(stride))
    x = _compact(x, stride)
    n, c_in, t, h, w = x.shape
    c_out = weight.shape[0]
    out = torch.mm(
        x.permute(0, 2, 3, 4, 1).reshape(-1, c_in),
        weight.view(c_out, c_in).t())
    if shift is None:
        out.mul_(scale)
    else:
        out = torch.addcmul(shift, out, scale)
    return out.view(n, t, h, w, c_out).permute(0, 4, 1, 2, 3)
