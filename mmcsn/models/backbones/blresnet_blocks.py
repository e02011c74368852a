"""Building blocks of bLResNet: the bottleneck, residual layers, bL stage.

Module and attribute names (``conv1``, ``bn1``, ``downsample``, ``tam``,
``big``, ``little``, ``little_e``, ``fusion``) and the ``downsample``
Sequential indices are those of the official bLVNet-TAM / BigLittleNet
code and are frozen on purpose: released checkpoints then load after a
prefix change only (``mmcsn.checkpoint.blvnet``).
"""
from typing import Callable, Iterable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from torch import Tensor

from mmcsn.models.common.tam import TemporalAggregation

__all__ = [
    'bLBottleneck', 'make_res_layer', 'BigLittleStage', 'checkpoint_unit'
]

# PyTorch-default BN (eps 1e-5, momentum 0.1), as the official code.
DEFAULT_NORM_CFG = dict(type='BN2d', requires_grad=True)


def checkpoint_unit(fn: Callable[[Tensor], Tensor], x: Tensor,
                    params: Iterable[nn.Parameter]) -> Tensor:
    """``fn(x)``, gradient-checkpointed if autograd would record it.

    Like MMAction2's ``with_cp and x.requires_grad``, nothing is
    checkpointed when nothing needs a gradient (``no_grad``, eval, frozen
    stages). Unlike it, a unit's trainable parameters count as inputs
    too: with the non-reentrant checkpoint, parameter grads flow even
    when ``x`` needs none (e.g. the stem on raw frames, or the first
    trainable stage after ``frozen_stages``), and those activations are
    the ones worth dropping.

    Args:
        fn (Callable): The unit's forward, run again in the backward.
        x (Tensor): The input.
        params (Iterable[nn.Parameter]): The unit's parameters.

    Returns:
        Tensor: ``fn(x)``.
    """
    if torch.is_grad_enabled() and (x.requires_grad or any(
            p.requires_grad for p in params)):
        return cp.checkpoint(fn, x, use_reentrant=False)
    return fn(x)


class bLBottleneck(nn.Module):
    """The one bottleneck used everywhere in bLResNet.

    ``planes`` is the *output* width; the mid width is ``planes // 4``.
    The stride sits on the 3x3 conv (ResNet v1.5). With ``with_tam`` a TAM
    over ``num_segments`` frames runs on the residual branch's input;
    a ``downsample`` shortcut then takes the TAM output while the identity
    shortcut takes the input before TAM (official behaviour).

    Args:
        inplanes (int): Input channels.
        planes (int): Output channels.
        stride (int): Stride of the 3x3 conv. Defaults to 1.
        downsample (nn.Module, optional): Shortcut. Defaults to None
            (identity).
        last_relu (bool): Apply ReLU after the residual sum. Defaults to
            True.
        with_tam (bool): Put a TAM before ``conv1``. Defaults to False.
        num_segments (int): Frames per clip seen by the TAM. Defaults to 8.
        blending_frames (int): TAM blending frames. Defaults to 3.
        with_cp (bool): Gradient checkpointing of the block. Defaults to
            False.
        conv_cfg (dict, optional): Conv layer config. Defaults to None.
        norm_cfg (dict): Norm layer config. Defaults to
            ``dict(type='BN2d', requires_grad=True)``.
    """

    expansion = 4

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 last_relu: bool = True,
                 with_tam: bool = False,
                 num_segments: int = 8,
                 blending_frames: int = 3,
                 with_cp: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = DEFAULT_NORM_CFG) -> None:
        super().__init__()
        mid = planes // self.expansion
        self.conv1 = build_conv_layer(conv_cfg, inplanes, mid, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, mid)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, mid)[1]
        self.conv3 = build_conv_layer(conv_cfg, mid, planes, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, planes)[1]
        self.downsample = downsample
        self.last_relu = last_relu
        self.with_cp = with_cp
        self.tam = TemporalAggregation(inplanes, num_segments,
                                       blending_frames) if with_tam else None

    def forward(self, x: Tensor) -> Tensor:
        """Forward ``(N * T, C, H, W)``."""

        def _inner(x: Tensor) -> Tensor:
            identity = x
            if self.tam is not None:
                x = self.tam(x)
            out = F.relu(self.bn1(self.conv1(x)), inplace=True)
            out = F.relu(self.bn2(self.conv2(out)), inplace=True)
            out = self.bn3(self.conv3(out))
            if self.downsample is not None:
                identity = self.downsample(x)  # the TAM-ed x, as official
            out += identity
            return F.relu(out, inplace=True) if self.last_relu else out

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner, x, use_reentrant=False)
        return _inner(x)


def make_res_layer(inplanes: int,
                   planes: int,
                   blocks: int,
                   stride: int = 1,
                   last_relu: bool = True,
                   **block_kwargs) -> nn.Sequential:
    """The official ``_make_layer`` of bLVNet-TAM / BigLittleNet.

    Shortcut of the first block, in this order (its indices are in the
    checkpoint keys): ``AvgPool2d(3, 2, 1)`` if ``stride != 1`` (default
    ``count_include_pad=True``), then ``Conv 1x1 + BN`` if ``inplanes !=
    planes``; ``None`` if neither applies. Only the last block of a
    multi-block layer receives ``last_relu``.

    Args:
        inplanes (int): Input channels.
        planes (int): Output channels of every block.
        blocks (int): Number of blocks (>= 1).
        stride (int): Stride of the first block. Defaults to 1.
        last_relu (bool): ReLU after the last block's sum when ``blocks >
            1``. Defaults to True.
        **block_kwargs: ``with_tam``, ``num_segments``, ``blending_frames``,
            ``with_cp``, ``conv_cfg``, ``norm_cfg`` of every block.

    Returns:
        nn.Sequential: The blocks, named ``0 .. blocks - 1``.
    """
    shortcut = []
    if stride != 1:
        shortcut.append(nn.AvgPool2d(3, stride=2, padding=1))
    if inplanes != planes:
        shortcut.append(
            build_conv_layer(
                block_kwargs.get('conv_cfg'), inplanes, planes, 1,
                bias=False))
        shortcut.append(
            build_norm_layer(
                block_kwargs.get('norm_cfg', DEFAULT_NORM_CFG), planes)[1])
    downsample = nn.Sequential(*shortcut) if shortcut else None
    layers = [
        bLBottleneck(inplanes, planes, stride, downsample, **block_kwargs)
    ]
    for i in range(1, blocks):
        layers.append(
            bLBottleneck(
                planes,
                planes,
                last_relu=last_relu if i == blocks - 1 else True,
                **block_kwargs))
    return nn.Sequential(*layers)


class BigLittleStage(nn.Module):
    """One bL stage (official ``bLModule``; layer1 .. layer3).

    Works on the ``N * T / 2`` fused pair maps ``P`` (see ``bLResNet``):
    the TAM over the ``T`` duplicated slots is computed on the pairs by
    :meth:`TemporalAggregation.forward_pairs`, which returns the
    even-slot (little) and odd-slot (big) inputs directly.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        blocks (int): The depth table entry; big gets ``blocks - 1``
            blocks, little ``max(1, blocks // beta - 1)``.
        alpha (int): Width ratio big / little.
        beta (int): Depth ratio big / little.
        stride (int): Stride of the fusion block.
        num_segments (int): Frames per clip ``T``.
        with_tam (bool): TAM on the stage input. Defaults to True.
        blending_frames (int): TAM blending frames. Defaults to 3.
        with_cp (bool): Gradient checkpointing of the whole stage (TAM,
            big and little branches, upsample + add + ReLU, fusion) as
            one unit; its blocks are then not checkpointed on their own,
            which would run them a third time for little gain.
            Defaults to False.
        **block_kwargs: ``conv_cfg``, ``norm_cfg``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 blocks: int,
                 alpha: int,
                 beta: int,
                 stride: int,
                 num_segments: int,
                 with_tam: bool = True,
                 blending_frames: int = 3,
                 with_cp: bool = False,
                 **block_kwargs) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.big = make_res_layer(
            in_channels,
            out_channels,
            blocks - 1,
            stride=2,
            last_relu=False,
            **block_kwargs)
        self.little = make_res_layer(in_channels, out_channels // alpha,
                                     max(1, blocks // beta - 1),
                                     **block_kwargs)
        self.little_e = nn.Sequential(
            build_conv_layer(
                block_kwargs.get('conv_cfg'),
                out_channels // alpha,
                out_channels,
                1,
                bias=False),
            build_norm_layer(
                block_kwargs.get('norm_cfg', DEFAULT_NORM_CFG),
                out_channels)[1])
        self.fusion = make_res_layer(
            out_channels, out_channels, 1, stride=stride, **block_kwargs)
        self.tam = TemporalAggregation(
            in_channels, num_segments,
            blending_frames) if with_tam else None

    def forward(self, pairs: Tensor) -> Tensor:
        """Map ``(N * T / 2, C_in, H, W)`` pairs to the fused pairs."""
        if self.with_cp:
            return checkpoint_unit(self._forward, pairs, self.parameters())
        return self._forward(pairs)

    def _forward(self, pairs: Tensor) -> Tensor:
        little_in, big_in = self.split(pairs)
        big = self.big(big_in)
        little = self.little_e(self.little(little_in))
        # Legacy 'nearest' as the official F.interpolate default: it is
        # not a plain 2x repeat when sizes are odd (e.g. 4x4 -> 7x7).
        big = F.interpolate(big, size=little.shape[-2:], mode='nearest')
        big += little  # pair k: big frame 2k+1 + little frame 2k
        return self.fusion(F.relu(big, inplace=True))

    def split(self, pairs: Tensor) -> Tuple[Tensor, Tensor]:
        """The little (even slots) and big (odd slots) inputs."""
        if self.tam is None:
            return pairs, pairs
        return self.tam.forward_pairs(pairs)
