"""Conv3d modules that carry mmcsn's fast paths in their own ``forward``.

Two inference/training fast paths used to live in ``ConvNormAct`` and call
the conv's functional form, so a forward hook on the conv module never saw
those calls. Here they are the conv module's own ``forward``::

    conv(x)                 -> conv(x)        1x1x1 dense: GEMM (if allowed)
    conv(x, scale, shift)   -> conv(x) * scale + shift, computed by folding
                               (scale, shift) into the weights (BN folding)

so ``register_forward_hook`` on the conv sees every call (in a folded call
the hook's output is the normalised output, and its inputs carry ``scale``
and ``shift``). Parameters and state_dict keys are those of ``nn.Conv3d``.

* :class:`FastConv3d`: ``nn.Conv3d``; a dense 1x1x1 conv (groups 1, no
  padding or dilation) runs as GEMMs (:func:`pointwise_conv3d`) when
  ``pointwise_gemm`` is True and :func:`pointwise_fast_path` allows.
* :class:`FastDepthwiseConv3d`: :class:`DepthwiseConv3d` (fast backward)
  that accepts the same ``scale``/``shift``.

In a no-grad GEMM call with fewer output positions than input channels
(the late stages of a CSN: 16 or 98 positions against 256-2048 channels)
``scale``/``shift`` are applied to the ``(positions, C_out)`` product
instead of the ``(C_out, C_in)`` weight
(:func:`mmcsn.ops.pointwise.pointwise_conv3d_scaled`): fewer elements to
scale, and the unfolded order of operations.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .depthwise_conv3d import DepthwiseConv3d
from .pointwise import (
    pointwise_conv3d,
    pointwise_conv3d_scaled,
    pointwise_fast_path,
)

__all__ = ['FastConv3d', 'FastDepthwiseConv3d', 'FastConvMixin']


class FastConvMixin:
    """``forward(x, scale=None, shift=None)`` with the fast paths inside.

    Attributes:
        pointwise_gemm (bool): Run a dense 1x1x1 conv as GEMMs on
            channels-last CPU float32 inputs (same values up to summation
            order). Public, settable at any time. Defaults to True.
    """
    pointwise_gemm: bool = True

    @property
    def is_pointwise(self) -> bool:
        """bool: A dense 1x1x1 conv (the GEMM formulation applies)."""
        return (self.kernel_size == (1, 1, 1) and self.groups == 1
                and self.dilation == (1, 1, 1)
                and self.padding in ((0, 0, 0), 'valid')
                and self.padding_mode == 'zeros')

    def forward(self,
                x: Tensor,
                scale: Optional[Tensor] = None,
                shift: Optional[Tensor] = None) -> Tensor:
        """``conv(x)``, or ``conv(x) * scale + shift`` per output channel.

        Args:
            x (Tensor): Input ``(N, C, T, H, W)``.
            scale (Tensor, optional): ``(C_out,)`` factor folded into the
                weight (e.g. a BN's ``gamma / sqrt(var + eps)``).
            shift (Tensor, optional): ``(C_out,)`` offset, the bias of the
                folded conv; needs ``scale``.

        Returns:
            Tensor: The output.
        """
        weight, bias = self.weight, self.bias
        gemm = (self.pointwise_gemm and self.is_pointwise
                and pointwise_fast_path(x))
        if scale is not None:
            folded = bias * scale if bias is not None else None
            if shift is not None:
                folded = shift if folded is None else folded + shift
            if (gemm and not torch.is_grad_enabled()
                    and _scale_output(x, self.stride)):
                # few positions (late stages): scaling the (P, C_out)
                # output costs less than scaling the (C_out, C_in) weight
                return pointwise_conv3d_scaled(x, weight, scale, folded,
                                               self.stride)
            weight = weight * scale.reshape(-1, 1, 1, 1, 1)
            bias = folded
        if gemm:
            return pointwise_conv3d(x, weight, bias, self.stride)
        if scale is None:
            return super().forward(x)
        return self._conv_forward(x, weight, bias)


def _scale_output(x: Tensor, stride: Tuple[int, int, int]) -> bool:
    """Fold ``scale`` into the output rather than the weight: true when the
    conv has fewer output positions than input channels (the output then
    has fewer elements than the weight)."""
    n, c_in, t, h, w = x.shape
    st, sh, sw = stride
    positions = n * (-(-t // st)) * (-(-h // sh)) * (-(-w // sw))
    return positions < c_in


class FastConv3d(FastConvMixin, nn.Conv3d):
    """``nn.Conv3d`` with the GEMM 1x1x1 path and BN folding (see module).
    """


class FastDepthwiseConv3d(FastConvMixin, DepthwiseConv3d):
    """:class:`DepthwiseConv3d` that also takes folded ``scale``/``shift``.
    """
