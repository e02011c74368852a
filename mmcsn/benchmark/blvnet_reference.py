"""The official bLVNet-TAM backbone and TAM, re-implemented for comparison.

Written from the official code (github.com/IBM/bLVNet-TAM at commit
feadcd3, ``core/models/blvnet_tam_backbone.py``): the same module names and
registration order (so ``load_state_dict`` of an mmcsn ``bLResNet``
state_dict is strict) and the same forward, op for op:

* TAM: three depthwise 1x1 ``Conv2d`` (``prev``, ``curr``, ``next``), the
  shifted copies by pad-and-slice, ``stack`` + ``sum`` + ``ReLU``;
* frame routing by index gathers (``x[big_list]``), duplication of every
  stage output into ``T`` slots (``zeros`` + two strided assignments);
* layer4 on the ``T / 2`` big slots.

The output is the official layer4 map ``(N * T / 2, 2048, h, w)`` (before
``gappool``); mmcsn's ``bLResNet`` returns it with each map twice, so
``ours[1::2]`` equals it. Used by ``tools/analysis/benchmark.py
--compare-impl official`` (:mod:`mmcsn.benchmark.twins`) and by the tests;
registered nowhere: a comparison twin, not a model to train.
"""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['OfficialTAM', 'OfficialBLResNet', 'official_twin']

# the official depth table, written here on purpose rather than imported
# from mmcsn: a reference must not share the code it is compared with
_LAYERS = {50: (3, 4, 6, 3), 101: (4, 8, 18, 3), 152: (5, 12, 30, 3)}


class OfficialTAM(nn.Module):
    """The official ``TAM``: 3 depthwise 1x1 convs, pad/slice, stack, sum.

    Args:
        duration (int): Frames per clip.
        channels (int): Channels.
        blending_frames (int): Must be 3 (the released models' value).
            Defaults to 3.
    """

    def __init__(self, duration: int, channels: int,
                 blending_frames: int = 3) -> None:
        super().__init__()
        if blending_frames != 3:
            raise ValueError('the reference implements blending_frames=3 '
                             f'only, got {blending_frames}')
        self.duration = duration
        self.prev = nn.Conv2d(channels, channels, 1, groups=channels,
                              bias=False)
        self.next = nn.Conv2d(channels, channels, 1, groups=channels,
                              bias=False)
        self.curr = nn.Conv2d(channels, channels, 1, groups=channels,
                              bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(N * duration, C, H, W)`` -> same shape."""
        shape = x.shape
        prev_x = self.prev(x)
        curr_x = self.curr(x)
        next_x = self.next(x)
        view = (-1, self.duration) + shape[1:]
        prev_x = prev_x.view(view)
        curr_x = curr_x.view(view)
        next_x = next_x.view(view)
        prev_x = F.pad(prev_x, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1, ...]
        next_x = F.pad(next_x, (0, 0, 0, 0, 0, 0, 0, 1))[:, 1:, ...]
        out = torch.stack([prev_x, curr_x, next_x], dim=0)
        out = F.relu(torch.sum(out, dim=0))
        return out.view(shape)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 last_relu: bool = True, with_tam: bool = False,
                 num_frames: int = 8) -> None:
        super().__init__()
        mid = planes // self.expansion
        self.conv1 = nn.Conv2d(inplanes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.last_relu = last_relu
        self.tam = OfficialTAM(num_frames, inplanes) if with_tam else None

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        if self.tam is not None:
            x = self.tam(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        if self.last_relu:
            out = self.relu(out)
        return out


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int = 1,
                last_relu: bool = True, with_tam: bool = False,
                num_frames: int = 8) -> nn.Sequential:
    downsample = []
    if stride != 1:
        downsample.append(nn.AvgPool2d(3, stride=2, padding=1))
    if inplanes != planes:
        downsample.append(nn.Conv2d(inplanes, planes, 1, bias=False))
        downsample.append(nn.BatchNorm2d(planes))
    downsample = nn.Sequential(*downsample) if downsample else None
    layers = [
        _Bottleneck(inplanes, planes, stride, downsample,
                    with_tam=with_tam, num_frames=num_frames)
    ]
    for i in range(1, blocks):
        layers.append(
            _Bottleneck(planes, planes,
                        last_relu=last_relu if i == blocks - 1 else True,
                        with_tam=with_tam, num_frames=num_frames))
    return nn.Sequential(*layers)


def _frame_list(frames: List[int], duration: int, batch: int) -> List[int]:
    """Batch indices of ``frames`` in every clip (official order)."""
    return [i * duration + k for i in range(batch) for k in frames]


class _BLModule(nn.Module):
    """The official ``bLModule`` (layer1 .. layer3)."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int,
                 alpha: int, beta: int, stride: int,
                 num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.big = _make_layer(in_channels, out_channels, blocks - 1, 2,
                               last_relu=False)
        self.little = _make_layer(in_channels, out_channels // alpha,
                                  max(1, blocks // beta - 1))
        self.little_e = nn.Sequential(
            nn.Conv2d(out_channels // alpha, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.fusion = _make_layer(out_channels, out_channels, 1, stride)
        self.tam = OfficialTAM(num_frames, in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.big_list = list(range(1, num_frames, 2))
        self.little_list = list(range(0, num_frames, 2))

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0] // self.num_frames
        x = self.tam(x)
        big = self.big(x[_frame_list(self.big_list, self.num_frames, n)])
        little = self.little(
            x[_frame_list(self.little_list, self.num_frames, n)])
        little = self.little_e(little)
        big = F.interpolate(big, little.shape[2:])
        half = self.num_frames // 2
        big = big.view((-1, half) + big.shape[1:]) + little.view(
            (-1, half) + little.shape[1:])
        big = self.relu(big.view((-1, ) + big.shape[2:]))
        big = self.fusion(big)
        return _duplicate(big, self.num_frames)


def _duplicate(pairs: Tensor, num_frames: int) -> Tensor:
    """Official copy of pair ``k`` into frame slots ``2k`` and ``2k+1``."""
    out = pairs.new_zeros((pairs.shape[0] * 2, ) + pairs.shape[1:])
    out[0::2] = pairs
    out[1::2] = pairs
    return out


class OfficialBLResNet(nn.Module):
    """The official ``bLVNet_TAM_BACKBONE`` up to layer4 (no gappool/fc).

    Args:
        depth (int): 50, 101 or 152.
        alpha (int): Width ratio. Defaults to 2.
        beta (int): Depth ratio. Defaults to 4.
        num_frames (int): Frames per clip ``T``. Defaults to 16.
        in_channels (int): Input channels. Defaults to 3.
    """

    def __init__(self, depth: int, alpha: int = 2, beta: int = 4,
                 num_frames: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        layers = _LAYERS[depth]
        c0, little0 = 64, 64 // alpha
        self.num_frames = num_frames
        self.conv1 = nn.Conv2d(in_channels, c0, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.b_conv0 = nn.Conv2d(c0, c0, 3, 2, 1, bias=False)
        self.bn_b0 = nn.BatchNorm2d(c0)
        self.l_conv0 = nn.Conv2d(c0, little0, 3, 1, 1, bias=False)
        self.bn_l0 = nn.BatchNorm2d(little0)
        self.l_conv1 = nn.Conv2d(little0, little0, 3, 2, 1, bias=False)
        self.bn_l1 = nn.BatchNorm2d(little0)
        self.l_conv2 = nn.Conv2d(little0, c0, 1, bias=False)
        self.bn_l2 = nn.BatchNorm2d(c0)
        self.bl_init = nn.Conv2d(c0, c0, 1, bias=False)
        self.bn_bl_init = nn.BatchNorm2d(c0)
        self.tam = OfficialTAM(num_frames, c0)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _BLModule(c0, 256, layers[0], alpha, beta, 2,
                                num_frames)
        self.layer2 = _BLModule(256, 512, layers[1], alpha, beta, 2,
                                num_frames)
        self.layer3 = _BLModule(512, 1024, layers[2], alpha, beta, 1,
                                num_frames)
        self.layer4 = _make_layer(1024, 2048, layers[3], 2, with_tam=True,
                                  num_frames=num_frames // 2)
        self.big_list = list(range(1, num_frames, 2))
        self.little_list = list(range(0, num_frames, 2))

    def forward(self, x: Tensor) -> Tensor:
        """``(N * T, C, H, W)`` -> layer4 ``(N * T / 2, 2048, h, w)``."""
        n = x.shape[0] // self.num_frames
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.tam(x)
        bx = self.bn_b0(
            self.b_conv0(x[_frame_list(self.big_list, self.num_frames, n)]))
        lx = x[_frame_list(self.little_list, self.num_frames, n)]
        lx = self.relu(self.bn_l0(self.l_conv0(lx)))
        lx = self.relu(self.bn_l1(self.l_conv1(lx)))
        lx = self.bn_l2(self.l_conv2(lx))
        x = self.relu(bx + lx)
        x = self.relu(self.bn_bl_init(self.bl_init(x)))
        x = _duplicate(x, self.num_frames)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x[_frame_list(self.big_list, self.num_frames, n)])
        return x


def official_twin(model: nn.Module) -> nn.Module:
    """The reference twin of an mmcsn ``bLResNet`` or ``TemporalAggregation``
    with the same weights (strict load).

    Args:
        model (nn.Module): ``bLResNet`` (alpha, beta, depth, T taken from
            it) or ``TemporalAggregation`` (blending_frames 3).

    Returns:
        nn.Module: :class:`OfficialBLResNet` or :class:`OfficialTAM`.
    """
    name = type(model).__name__
    if name == 'bLResNet':
        if not model.with_tam or model.blending_frames != 3:
            raise ValueError('the official twin needs with_tam=True and '
                             'blending_frames=3')
        twin = OfficialBLResNet(model.depth, model.alpha, model.beta,
                                model.num_segments,
                                model.conv1.in_channels)
    elif name == 'TemporalAggregation':
        twin = OfficialTAM(model.num_segments, model.channels,
                           model.blending_frames)
    else:
        raise ValueError('--compare-impl official needs a bLResNet or '
                         f'TemporalAggregation model, got {name}')
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin
