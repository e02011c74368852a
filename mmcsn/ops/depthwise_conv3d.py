"""Depthwise 3D convolution, a drop-in ``nn.Conv3d`` with ``groups=C``.

On CPU, PyTorch's depthwise Conv3d forward is fast (oneDNN), but its
backward is 28-49x the forward (``docs/benchmarks.md``). Most of that is
the input gradient, which autograd computes with oneDNN's slow grouped
backward-data kernel. :class:`DepthwiseConv3d` keeps the forward and
rewrites the backward with forward convolutions only:

* input gradient, stride 1: a depthwise forward conv of the output
  gradient with the spatially flipped kernel (a transposed conv written as
  a plain conv);
* input gradient, stride s > 1: the transposed conv split into its
  ``s**3`` polyphase components, each a small depthwise forward conv of
  the output gradient, interleaved into the input gradient;
* weight gradient: ``aten.convolution_backward`` restricted to the weight
  (the fastest of the formulations measured, see ``docs/benchmarks.md``);
* bias gradient: a sum over batch and positions.

The custom backward is used only when it can matter: in training mode on
real tensors. Under ``no_grad``, autocast, ``torch.compile``, tracing,
scripting and ONNX export the module runs the plain ``F.conv3d``, so those
tools see an ordinary convolution.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'DepthwiseConv3d', 'depthwise_conv3d', 'depthwise_conv3d_input_grad',
    'depthwise_conv3d_weight_grad'
]

_Triple = Tuple[int, int, int]


def _phase_taps(size: int, kernel: int, stride: int, padding: int,
                phase: int) -> Tuple[List[int], int, int, int]:
    """Taps of one polyphase component of a 1D transposed conv.

    The input gradient at position ``i = stride * u + phase`` collects
    ``grad_out[j] * w[a]`` for every tap ``a`` with
    ``stride * j - padding + a == i``, i.e. ``j = u + (phase + padding -
    a) / stride``. The taps are returned ordered by that offset so that
    the component is a plain correlation of ``grad_out``.

    Returns:
        tuple: taps (ordered by offset), the smallest offset, the number
        of output positions of the phase, and the spread of the offsets.
    """
    taps = [a for a in range(kernel) if (phase + padding - a) % stride == 0]
    taps.sort(key=lambda a: (phase + padding - a) // stride)
    length = (size - phase + stride - 1) // stride
    if not taps:
        return taps, 0, length, 0
    offsets = [(phase + padding - a) // stride for a in taps]
    return taps, offsets[0], length, offsets[-1] - offsets[0]


def depthwise_conv3d_input_grad(grad_out: Tensor, weight: Tensor,
                                input_shape: Sequence[int],
                                stride: _Triple,
                                padding: _Triple) -> Tensor:
    """Input gradient of a depthwise conv3d using forward convs only.

    Args:
        grad_out (Tensor): Gradient of the output, ``(N, C, T', H', W')``.
        weight (Tensor): Depthwise kernel, ``(C, 1, kT, kH, kW)``.
        input_shape (Sequence[int]): Shape of the convolution's input.
        stride (tuple[int]): Stride of the convolution.
        padding (tuple[int]): Zero padding of the convolution.

    Returns:
        Tensor: The input gradient, in ``grad_out``'s memory format.
    """
    channels = weight.shape[0]
    kernel = weight.shape[2:]
    if stride == (1, 1, 1):
        # correlation with the flipped kernel; the padding k - 1 - p turns
        # the output size back into the input size.
        pad = []
        for k, p, size, out in zip(kernel, padding, input_shape[2:],
                                   grad_out.shape[2:]):
            left = k - 1 - p
            right = size + p - out  # extra rows the forward never read
            pad += [left, right]
        grad_out = _pad(grad_out, pad)
        return F.conv3d(grad_out, weight.flip((2, 3, 4)), groups=channels)

    memory_format = (
        torch.channels_last_3d if grad_out.is_contiguous(
            memory_format=torch.channels_last_3d)
        and not grad_out.is_contiguous() else torch.contiguous_format)
    grad_in = grad_out.new_empty(tuple(input_shape)).contiguous(
        memory_format=memory_format)
    phases = [[
        _phase_taps(size, k, s, p, r) for r in range(s)
    ] for size, k, s, p in zip(input_shape[2:], kernel, stride, padding)]
    for rt, (taps_t, off_t, len_t, spr_t) in enumerate(phases[0]):
        for rh, (taps_h, off_h, len_h, spr_h) in enumerate(phases[1]):
            for rw, (taps_w, off_w, len_w, spr_w) in enumerate(phases[2]):
                view = grad_in[:, :, rt::stride[0], rh::stride[1],
                               rw::stride[2]]
                if view.numel() == 0:
                    continue
                if not (taps_t and taps_h and taps_w):
                    view.zero_()
                    continue
                # sub-kernel of the phase; taps ordered by offset
                sub = weight[:, :, taps_t][:, :, :, taps_h][..., taps_w]
                pad = []
                for off, spread, length, out in zip(
                    (off_t, off_h, off_w), (spr_t, spr_h, spr_w),
                    (len_t, len_h, len_w), grad_out.shape[2:]):
                    # positions u + off .. u + off + spread, u < length
                    pad += [-off, off + spread + length - out]
                view.copy_(
                    F.conv3d(_pad(grad_out, pad), sub, groups=channels))
    return grad_in


def _pad(x: Tensor, pad: List[int]) -> Tensor:
    """``F.pad`` in (T, H, W) order that accepts negative pads (crops)."""
    if not any(pad):
        return x
    # F.pad takes the last dimension first
    flat = [pad[4], pad[5], pad[2], pad[3], pad[0], pad[1]]
    return F.pad(x, flat)


def depthwise_conv3d_weight_grad(x: Tensor, grad_out: Tensor,
                                 weight: Tensor, stride: _Triple,
                                 padding: _Triple) -> Tensor:
    """Weight gradient of a depthwise conv3d.

    Args:
        x (Tensor): Input of the convolution.
        grad_out (Tensor): Gradient of its output.
        weight (Tensor): Its kernel (for the shape and dtype).
        stride (tuple[int]): Stride.
        padding (tuple[int]): Zero padding.

    Returns:
        Tensor: Gradient with the shape of ``weight``.
    """
    return torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, stride, padding, (1, 1, 1), False,
        (0, 0, 0), weight.shape[0], (False, True, False))[1]


class _DepthwiseConv3dFunction(torch.autograd.Function):
    """Depthwise conv3d with a backward made of forward convs."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                stride: _Triple, padding: _Triple) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return F.conv3d(x, weight, bias, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = depthwise_conv3d_input_grad(grad_out, weight, x.shape,
                                                 ctx.stride, ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_conv3d_weight_grad(x, grad_out, weight,
                                                  ctx.stride, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None, None


def _plain_conv_wanted(x: Tensor) -> bool:
    """Whether the plain ``F.conv3d`` should run instead of the Function.

    The Function only changes the CPU backward, so it is skipped when there
    is none, on other devices (CUDA has a dedicated depthwise backward; the
    meta device has no cost), and under tools that must see a standard op
    (export, tracing, scripting, compile) or that change dtypes (autocast).
    """
    if x.device.type != 'cpu' or not torch.is_grad_enabled():
        return True
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return True
    return torch.is_autocast_enabled('cpu')


def depthwise_conv3d(x: Tensor,
                     weight: Tensor,
                     bias: Optional[Tensor] = None,
                     stride: Union[int, Sequence[int]] = 1,
                     padding: Union[int, Sequence[int]] = 1) -> Tensor:
    """Functional depthwise conv3d (``groups = C``) with the fast backward.

    Args:
        x (Tensor): Input ``(N, C, T, H, W)``, any memory format.
        weight (Tensor): Kernel ``(C, 1, kT, kH, kW)``.
        bias (Tensor, optional): Bias ``(C,)``. Defaults to None.
        stride (int | Sequence[int]): Stride. Defaults to 1.
        padding (int | Sequence[int]): Zero padding. Defaults to 1.

    Returns:
        Tensor: The output, equal to ``F.conv3d(..., groups=C)``.
    """
    stride = _triple(stride, 'stride')
    padding = _triple(padding, 'padding')
    if _plain_conv_wanted(x):
        return F.conv3d(x, weight, bias, stride, padding, 1, weight.shape[0])
    return _DepthwiseConv3dFunction.apply(x, weight, bias, stride, padding)


def _triple(value: Union[int, Sequence[int]], name: str) -> _Triple:
    """Expand an int or 3-sequence to a tuple of three ints."""
    if isinstance(value, int):
        return (value, ) * 3
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f'{name} must be an int or 3 ints, got {value}')
    return value


class DepthwiseConv3d(nn.Conv3d):
    """``nn.Conv3d`` with ``groups == in_channels == out_channels``.

    Same parameters and state_dict as ``nn.Conv3d``; the forward equals
    ``F.conv3d(..., groups=C)`` and the backward is computed with forward
    convolutions (see the module docstring), 1.5-3x faster per layer on
    CPU. Use channels_last_3d inputs on CPU: the forward is 2.4-5.9x faster
    than NCDHW there.

    Args:
        channels (int): Input and output channels.
        kernel_size (int | tuple[int]): Kernel size. Defaults to 3.
        stride (int | tuple[int]): Stride. Defaults to 1.
        padding (int | tuple[int]): Zero padding. Defaults to 1.
        bias (bool): Whether to add a bias. Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: Union[int, Tuple[int, int, int]] = 3,
                 stride: Union[int, Tuple[int, int, int]] = 1,
                 padding: Union[int, Tuple[int, int, int]] = 1,
                 bias: bool = False) -> None:
        super().__init__(
            channels,
            channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=channels,
            bias=bias)
        if isinstance(self.padding, str):
            raise ValueError('padding must be an int or 3 ints, got '
                             f'{self.padding!r}')

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` (``(N, C, T, H, W)``)."""
        if _plain_conv_wanted(x):
            return F.conv3d(x, self.weight, self.bias, self.stride,
                            self.padding, 1, self.groups)
        return _DepthwiseConv3dFunction.apply(x, self.weight, self.bias,
                                              self.stride, self.padding)
