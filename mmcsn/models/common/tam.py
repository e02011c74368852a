"""bLVNet-TAM's Temporal Aggregation Module (depthwise temporal blending).

``out[t] = ReLU(sum_j w_j (.) x[t + j])`` with one weight per channel and
offset, and zero padding at both clip ends (Fan et al., NeurIPS 2019).

Registered as ``TemporalAggregation``: MMAction2 already owns the name
``TAM`` (TANet's unrelated Temporal *Adaptive* Module).

The arithmetic lives in :func:`temporal_aggregate`, a pure function over an
explicit time axis, so the 2D path (``(N*T, C, H, W)``, this module) and a
3D neck (``(N, C, T, H, W)``) share one implementation.  It runs a custom
``autograd.Function`` (:class:`_TemporalAggregateFn`) instead of the
official three depthwise ``Conv2d`` + pad + stack + sum: the forward is a
few in-place ``addcmul_`` on shifted views and the backward recomputes
everything from the saved input and output (the ReLU mask is
``output > 0``), so training keeps two tensors alive instead of the
reference's conv outputs, padded copies and stack.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmaction.registry import MODELS
from torch import Tensor

from mmcsn.validate import ArgSpec, Int, check_arg

__all__ = ['TemporalAggregation', 'temporal_aggregate', 'default_offsets']


def default_offsets(blending_frames: int) -> List[int]:
    """Frame offsets ``-(B//2) .. B//2`` of the ``B`` blending weights.

    Weight ``i`` of a TAM with ``B`` blending frames multiplies frame
    ``t + i - B // 2`` (the official ``blending_layers`` order; for B = 3
    that is prev, curr, next).

    Args:
        blending_frames (int): Number of blended frames ``B`` (odd, >= 1).

    Returns:
        list[int]: The offsets, in weight order.
    """
    _check_blending_frames(blending_frames)
    half = blending_frames // 2
    return list(range(-half, half + 1))


# Frames blended by a TAM: odd, so that the current frame is the centre.
BLENDING_FRAMES = Int(min=1, odd=True)


def _check_blending_frames(blending_frames: int) -> None:
    check_arg('default_offsets', 'blending_frames', blending_frames,
              BLENDING_FRAMES)


def _weight_view(w: Tensor, ndim: int, channel_dim: int) -> Tensor:
    """Reshape a ``(C,)`` weight to broadcast along ``channel_dim``."""
    shape = [1] * ndim
    shape[channel_dim] = w.numel()
    return w.view(shape)


def _overlap(offset: int, length: int) -> Tuple[int, int, int]:
    """Start of the output slice, start of the input slice, their length.

    ``out[t] += w * x[t + offset]`` for every ``t`` with both ends inside
    the clip; frames outside are the zero padding.
    """
    return max(0, -offset), max(0, offset), length - abs(offset)


class _TemporalAggregateFn(torch.autograd.Function):
    """Fused ``ReLU(sum_j w_j * shift_j(x))``; saves only ``x`` and output.

    Peak training memory is input + output (+ transient buffers in the
    backward), against the reference's per-offset conv outputs, padded
    copies and the stacked tensor that autograd keeps or allocates.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weights: Tensor, offsets: Tuple[int, ...],
                time_dim: int, channel_dim: int) -> Tensor:
        length = x.shape[time_dim]
        ws = weights.to(x.dtype)  # AMP: keep the output in x's dtype
        out = None
        if 0 in offsets:  # start from the centre term: saves a zero fill
            out = x * _weight_view(ws[offsets.index(0)], x.dim(),
                                   channel_dim)
        else:
            out = torch.zeros_like(x)
        for k, offset in enumerate(offsets):
            dst, src, size = _overlap(offset, length)
            if offset == 0 or size <= 0:
                continue
            out.narrow(time_dim, dst, size).addcmul_(
                x.narrow(time_dim, src, size),
                _weight_view(ws[k], x.dim(), channel_dim))
        out.relu_()
        ctx.save_for_backward(x, weights, out)
        ctx.offsets = offsets
        ctx.dims = (time_dim, channel_dim)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weights, out = ctx.saved_tensors
        time_dim, channel_dim = ctx.dims
        offsets = ctx.offsets
        length = x.shape[time_dim]
        # ReLU's own backward kernel: grad where out > 0, else 0.
        grad_pre = torch.ops.aten.threshold_backward(grad_out, out, 0)
        ws = weights.to(x.dtype)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            # x[s] fed out[s - offset]: the adjoint shifts the other way.
            if 0 in offsets:
                grad_x = grad_pre * _weight_view(ws[offsets.index(0)],
                                                 x.dim(), channel_dim)
            else:
                grad_x = torch.zeros_like(x)
            for k, offset in enumerate(offsets):
                dst, src, size = _overlap(offset, length)
                if offset == 0 or size <= 0:
                    continue
                grad_x.narrow(time_dim, src, size).addcmul_(
                    grad_pre.narrow(time_dim, dst, size),
                    _weight_view(ws[k], x.dim(), channel_dim))
        if ctx.needs_input_grad[1]:
            reduce_dims = [d for d in range(x.dim()) if d != channel_dim]
            rows = []
            for offset in offsets:
                dst, src, size = _overlap(offset, length)
                if size <= 0:
                    rows.append(weights.new_zeros(weights.shape[1]))
                    continue
                prod = grad_pre.narrow(time_dim, dst, size) * x.narrow(
                    time_dim, src, size)
                rows.append(prod.sum(dim=reduce_dims).to(weights.dtype))
                del prod  # one product buffer alive at a time
            grad_w = torch.stack(rows)
        return grad_x, grad_w, None, None, None


def temporal_aggregate(x: Tensor,
                       weights: Tensor,
                       offsets: Optional[Sequence[int]] = None,
                       time_dim: int = 1,
                       channel_dim: int = 2) -> Tensor:
    """``out[t] = ReLU(sum_k weights[k] (.) x[t + offsets[k]])``.

    Frames outside ``[0, T)`` count as zeros (the official zero padding).
    Works for any layout with an explicit time axis, e.g. ``(N, T, C, H,
    W)`` (``time_dim=1, channel_dim=2``, the default) or ``(N, C, T, H,
    W)`` (``time_dim=2, channel_dim=1``).

    Args:
        x (Tensor): Features with a time and a channel axis.
        weights (Tensor): Per-channel weights, shape ``(K, C)``.
        offsets (Sequence[int], optional): Frame offset of each weight row.
            Defaults to None (``-(K//2) .. K//2``, ``K`` must be odd).
        time_dim (int): The time axis of ``x``. Defaults to 1.
        channel_dim (int): The channel axis of ``x``. Defaults to 2.

    Returns:
        Tensor: Same shape, dtype and layout as ``x``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f'x must be a Tensor, got {type(x).__name__}')
    ndim = x.dim()
    if ndim < 2:
        raise ValueError(f'x must have a time and a channel axis, got a '
                         f'{ndim}-d tensor of shape {tuple(x.shape)}')
    dims = []
    for name, dim in (('time_dim', time_dim), ('channel_dim', channel_dim)):
        if not -ndim <= dim < ndim:
            raise ValueError(f'{name} must be in [{-ndim}, {ndim - 1}] for '
                             f'a {ndim}-d input, got {dim}')
        dims.append(dim % ndim)
    time_dim, channel_dim = dims
    if time_dim == channel_dim:
        raise ValueError(f'time_dim and channel_dim must differ, got both '
                         f'{time_dim}')
    if weights.dim() != 2 or weights.shape[1] != x.shape[channel_dim]:
        raise ValueError(
            f'weights must have shape (K, C) with C = x.shape[channel_dim] '
            f'= {x.shape[channel_dim]}, got {tuple(weights.shape)}')
    if offsets is None:
        offsets = default_offsets(weights.shape[0])
    offsets = tuple(int(o) for o in offsets)
    if len(offsets) != weights.shape[0]:
        raise ValueError(f'offsets must have one entry per weight row '
                         f'({weights.shape[0]}), got {len(offsets)}')
    if len(set(offsets)) != len(offsets):
        raise ValueError(f'offsets must be distinct, got {offsets}')
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        # Tracers record in-place writes into views unreliably (the ONNX
        # exporter drops them): export the out-of-place formulation.
        return _aggregate_out_of_place(x, weights, offsets, time_dim,
                                       channel_dim)
    return _TemporalAggregateFn.apply(x, weights, offsets, time_dim,
                                      channel_dim)


def _shift(x: Tensor, offset: int, time_dim: int) -> Tensor:
    """``y[t] = x[t + offset]``, zero where ``t + offset`` leaves the clip."""
    length = x.shape[time_dim]
    if offset == 0:
        return x
    if abs(offset) >= length:
        return torch.zeros_like(x)
    body = x.narrow(time_dim, max(0, offset), length - abs(offset))
    pad = torch.zeros_like(x.narrow(time_dim, 0, abs(offset)))
    parts = [body, pad] if offset > 0 else [pad, body]
    return torch.cat(parts, dim=time_dim)


def _aggregate_out_of_place(x: Tensor, weights: Tensor,
                            offsets: Tuple[int, ...], time_dim: int,
                            channel_dim: int) -> Tensor:
    """The same sum without in-place ops or a custom autograd function."""
    ws = weights.to(x.dtype)
    out = None
    for k, offset in enumerate(offsets):
        term = _shift(x, offset, time_dim) * _weight_view(
            ws[k], x.dim(), channel_dim)
        out = term if out is None else out + term
    return torch.relu(out)


@MODELS.register_module()
class TemporalAggregation(nn.Module):
    """Temporal Aggregation Module of bLVNet-TAM (official ``TAM``).

    Mixes each frame with its ``blending_frames - 1`` neighbours of the
    same clip through per-channel weights, then applies ReLU. There is no
    residual, BN or bias.

    The parameters sit in depthwise 1x1 ``nn.Conv2d`` modules (used only as
    weight holders, never called) named exactly like the official code:
    ``prev`` / ``next`` / ``curr`` (registered in that order) when
    ``blending_frames == 3``, else ``blending_layers.{i}`` (layer ``i``
    weights frame ``t + i - B // 2``). Those names are frozen on purpose:
    they make released bLVNet-TAM checkpoints load with a prefix change
    only, and ``nn.Conv2d`` keeps the official ``(C, 1, 1, 1)`` shapes and
    the kaiming fan_out init (std ``sqrt(2 / C)``) of the original.

    Args:
        channels (int): Number of channels ``C``.
        num_segments (int): Frames per clip ``T``; the batch axis of the
            2D input holds ``N * T`` frames, clip-major.
        blending_frames (int): Number of blended frames ``B`` (odd).
            Defaults to 3.
    """

    @ArgSpec(
        'TemporalAggregation',
        channels=Int(min=1),
        num_segments=Int(min=1),
        blending_frames=BLENDING_FRAMES)
    def __init__(self,
                 channels: int,
                 num_segments: int,
                 blending_frames: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.num_segments = num_segments
        self.blending_frames = blending_frames
        self.offsets = tuple(default_offsets(blending_frames))

        def holder() -> nn.Conv2d:
            return nn.Conv2d(
                channels, channels, 1, groups=channels, bias=False)

        if blending_frames == 3:
            # Registration order prev, next, curr = official state_dict
            # order; the weight order used below is prev, curr, next.
            self.prev = holder()
            self.next = holder()
            self.curr = holder()
        else:
            self.blending_layers = nn.ModuleList(
                holder() for _ in range(blending_frames))
        self.reset_parameters()

    def weight_holders(self) -> List[nn.Conv2d]:
        """The weight modules in offset order (``t - B//2 .. t + B//2``)."""
        if self.blending_frames == 3:
            return [self.prev, self.curr, self.next]
        return list(self.blending_layers)

    def blending_weights(self) -> Tensor:
        """The weights as one ``(B, C)`` tensor, rows in offset order."""
        return torch.cat(
            [m.weight.view(1, self.channels) for m in self.weight_holders()])

    def reset_parameters(self) -> None:
        """Official init: kaiming normal, fan_out (std ``sqrt(2 / C)``)."""
        for m in self.weight_holders():
            nn.init.kaiming_normal_(
                m.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x: Tensor) -> Tensor:
        """Aggregate over time for ``(N * T, C, H, W)`` frame features.

        Args:
            x (Tensor): ``(N * num_segments, C, H, W)``, frames of one clip
                contiguous along the batch axis (``Recognizer2D`` order).

        Returns:
            Tensor: Same shape as ``x``.
        """
        if x.dim() != 4:
            raise ValueError(
                f'x must be 4-d (N * num_segments, C, H, W), got shape '
                f'{tuple(x.shape)}')
        self._check_channels(x.shape[1])
        if x.shape[0] % self.num_segments != 0:
            raise ValueError(
                f'batch size {x.shape[0]} (x.shape[0]) is not divisible by '
                f'num_segments={self.num_segments}; expected a multiple of '
                f'{self.num_segments}')
        clips = x.reshape((-1, self.num_segments) + x.shape[1:])
        out = temporal_aggregate(
            clips,
            self.blending_weights(),
            self.offsets,
            time_dim=1,
            channel_dim=2)
        return out.view(x.shape)

    def forward_5d(self, x: Tensor) -> Tensor:
        """Aggregate over time for ``(N, C, T, H, W)`` features.

        Args:
            x (Tensor): Features with time on axis 2 (any ``T``).

        Returns:
            Tensor: Same shape as ``x``.
        """
        if x.dim() != 5:
            raise ValueError(f'x must be 5-d (N, C, T, H, W), got shape '
                             f'{tuple(x.shape)}')
        self._check_channels(x.shape[1])
        return temporal_aggregate(
            x,
            self.blending_weights(),
            self.offsets,
            time_dim=2,
            channel_dim=1)

    def forward_pairs(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """TAM over ``T`` frames made of duplicated pairs, on the pairs.

        bLVNet copies each fused map ``P_k`` into frame slots ``2k`` and
        ``2k + 1`` and runs TAM over those ``T`` slots. Since slot ``s``
        holds ``P_{s // 2}``, the even (little) slot sees ``P_{k + (j //
        2)}`` and the odd (big) slot ``P_{k + ((j + 1) // 2)}`` for offset
        ``j``; summing the weights that land on the same ``P`` gives both
        results exactly (up to float rounding) from the ``T / 2`` maps,
        with no duplicated tensor and no strided gather.

        Args:
            x (Tensor): ``(N * T / 2, C, H, W)``, the unique pair maps.

        Returns:
            tuple[Tensor, Tensor]: The even-slot (little) and odd-slot
            (big) outputs, each shaped like ``x``.
        """
        if x.dim() != 4:
            raise ValueError(
                f'x must be 4-d (N * num_segments / 2, C, H, W), got shape '
                f'{tuple(x.shape)}')
        self._check_channels(x.shape[1])
        if self.num_segments % 2 or x.shape[0] % (self.num_segments // 2):
            raise ValueError(
                f'forward_pairs needs an even num_segments and a batch '
                f'divisible by num_segments / 2; got num_segments='
                f'{self.num_segments}, batch {x.shape[0]}')
        clips = x.reshape((-1, self.num_segments // 2) + x.shape[1:])
        weights = self.blending_weights()
        outs = []
        for parity in (0, 1):
            merged = {}
            for w, offset in zip(weights, self.offsets):
                pair_offset = (offset + parity) // 2
                merged[pair_offset] = merged[pair_offset] + w \
                    if pair_offset in merged else w
            pair_offsets = sorted(merged)
            out = temporal_aggregate(
                clips,
                torch.stack([merged[o] for o in pair_offsets]),
                pair_offsets,
                time_dim=1,
                channel_dim=2)
            outs.append(out.view(x.shape))
        return outs[0], outs[1]

    def _check_channels(self, channels: int) -> None:
        if channels != self.channels:
            raise ValueError(
                f'input has {channels} channels, but this module was built '
                f'with channels={self.channels}')

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, num_segments={self.num_segments}'
                f', blending_frames={self.blending_frames}')
