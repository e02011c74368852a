"""The one parametric residual block behind every CSN variant.

A single class, :class:`CSNBlock`, builds each block of the paper's block
study (Tran et al., ICCV 2019, section 3.4) directly from the row of
:data:`BLOCK_MODES` -- nothing is built dense and replaced afterwards.

Submodule names are FROZEN on purpose: for ``ir`` and ``ip`` they give the
exact state_dict keys of MMAction2's ``ResNet3dCSN`` (``conv1.{conv,bn}``,
``conv2.0.{conv,bn}`` [ip: ``conv2.1.{conv,bn}``], ``conv3.{conv,bn}``,
``downsample.{conv,bn}``), so every released MMAction2 CSN checkpoint and
every converter output (``mmcsn.checkpoint.csn``) loads strictly. Renaming
any attribute here breaks those checkpoints.
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from torch.nn.modules.module import _global_forward_hooks

from mmcsn.ops import FastConv3d, FastDepthwiseConv3d, ops_observed
from mmcsn.ops.fast_conv import FastConvMixin

__all__ = [
    'BlockSpec', 'BLOCK_MODES', 'build_depthwise_conv3d',
    'build_dense_conv3d', 'ConvNormAct', 'CSNBlock', 'make_csn_layer'
]

Triple = Tuple[int, int, int]


class BlockSpec(NamedTuple):
    """How one ``bottleneck_mode`` is built.

    family: 'simple' (two 3x3x3 units, output width = inner width) or
        'bottleneck' (1x1x1 -> 3x3x3 unit -> 1x1x1).
    unit: how each 3x3x3 unit is built: 'dense' (full conv), 'group'
        (``groups`` groups), 'depthwise' (channel-separated) or 'ip'
        (1x1x1 conv + BN, no ReLU, then depthwise -- the interaction-
        preserving factorisation).
    group_pointwise: whether the 1x1x1 convs of a bottleneck use
        ``groups`` groups too (bottleneck-DG).
    """
    family: str
    unit: str
    group_pointwise: bool


# bottleneck_mode -> construction; one row per block of the paper's study.
BLOCK_MODES: Dict[str, BlockSpec] = {
    # two full 3x3x3 convs (ResNet3D basic block)
    'simple': BlockSpec('simple', 'dense', False),
    # both 3x3x3 convs grouped
    'simple-G': BlockSpec('simple', 'group', False),
    # each 3x3x3 -> 1x1x1 + BN + depthwise 3x3x3 (same factorisation as ip)
    'simple-D': BlockSpec('simple', 'ip', False),
    # 1x1x1 -> full 3x3x3 -> 1x1x1 (ResNet3D bottleneck, the dense baseline)
    'bottleneck': BlockSpec('bottleneck', 'dense', False),
    # the 3x3x3 grouped (ResNeXt block)
    'bottleneck-G': BlockSpec('bottleneck', 'group', False),
    # the 3x3x3 depthwise: interaction-reduced CSN block
    'bottleneck-D': BlockSpec('bottleneck', 'depthwise', False),
    # MMAction2 / VMZ name of bottleneck-D
    'ir': BlockSpec('bottleneck', 'depthwise', False),
    # bottleneck-D with both 1x1x1 convs grouped (ShuffleNet-like)
    'bottleneck-DG': BlockSpec('bottleneck', 'depthwise', True),
    # 1x1x1 -> [1x1x1 + BN, depthwise 3x3x3] -> 1x1x1: interaction-preserved
    'ip': BlockSpec('bottleneck', 'ip', False),
}


def build_depthwise_conv3d(channels: int, kernel_size: Triple,
                           stride: Triple, padding: Triple) -> nn.Conv3d:
    """Build every depthwise 3D conv of mmcsn (the one switch point).

    All channel-separated convs go through this function so that a faster
    kernel can replace them all at once; the module is an ``nn.Conv3d``
    (same parameters and state_dict keys), so checkpoints do not change.

    Args:
        channels (int): Input = output channels (= groups).
        kernel_size (tuple[int]): Kernel size (t, h, w).
        stride (tuple[int]): Stride (t, h, w).
        padding (tuple[int]): Padding (t, h, w).

    Returns:
        nn.Conv3d: A :class:`mmcsn.ops.FastDepthwiseConv3d` (a
        :class:`mmcsn.ops.DepthwiseConv3d` that folds BN in its forward).
    """
    return FastDepthwiseConv3d(
        channels, kernel_size, stride=stride, padding=padding, bias=False)


def build_dense_conv3d(conv_cfg: Dict, *args, **kwargs) -> nn.Module:
    """``build_conv_layer``, with :class:`FastConv3d` for ``'Conv3d'``.

    Other conv types are built by mmcv's registry as usual; they run
    plainly (no GEMM path, no BN folding).
    """
    cfg = dict(conv_cfg)
    if cfg.pop('type') in ('Conv3d', nn.Conv3d):
        return FastConv3d(*args, **cfg, **kwargs)
    return build_conv_layer(conv_cfg, *args, **kwargs)


class ConvNormAct(nn.Module):
    """Conv3d -> norm -> optional activation, keys as mmcv's ConvModule.

    mmcv's ``ConvModule`` always builds its conv from ``conv_cfg``, which
    cannot produce :class:`DepthwiseConv3d`; this module keeps ConvModule's
    attribute names (``conv`` and the norm's abbreviation, ``bn`` for BN)
    and therefore its state_dict keys.

    The fast paths run inside the conv module's own ``forward``
    (:mod:`mmcsn.ops.fast_conv`), so a forward hook on ``conv`` sees every
    call:

    - ``fuse_bn_eval``: in eval mode with gradients disabled, a BatchNorm
      is folded into the conv on the fly for that call (one pass over the
      output instead of two): ``conv(x, scale, shift)`` and the norm
      module is not called. Stored weights, state_dict and train-mode
      behaviour do not change. Tools that watch the ops (tracing, export,
      ``torch.compile``, ``FlopCounterMode``) see conv + norm instead
      (:func:`mmcsn.ops.ops_observed`).
    - ``pointwise_gemm``: a dense 1x1x1 conv runs as GEMMs over
      channels-last positions on CPU (:func:`mmcsn.ops.pointwise_conv3d`):
      same values up to summation order, no layout copies, a faster
      backward.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (tuple[int]): Kernel size (t, h, w).
        stride (tuple[int]): Stride. Defaults to (1, 1, 1).
        padding (tuple[int]): Padding. Defaults to (0, 0, 0).
        dilation (tuple[int]): Dilation (dense convs only).
            Defaults to (1, 1, 1).
        groups (int): Conv groups. Defaults to 1.
        depthwise (bool): Build the conv with
            :func:`build_depthwise_conv3d` (needs in = out channels).
            Defaults to False.
        conv_cfg (dict): Config of the non-depthwise convs.
            Defaults to ``dict(type='Conv3d')``.
        norm_cfg (dict): Config of the norm layer.
            Defaults to ``dict(type='BN3d', requires_grad=True, eps=1e-3)``.
        act_cfg (dict, optional): Activation config; None for none.
            Defaults to ``dict(type='ReLU', inplace=True)``.
        fuse_bn_eval (bool): Fold BN into the conv in no-grad eval calls.
            Defaults to True.
        pointwise_gemm (bool): Dense 1x1x1 convs as GEMMs.
            Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Triple,
                 stride: Triple = (1, 1, 1),
                 padding: Triple = (0, 0, 0),
                 dilation: Triple = (1, 1, 1),
                 groups: int = 1,
                 depthwise: bool = False,
                 conv_cfg: Dict = dict(type='Conv3d'),
                 norm_cfg: Dict = dict(
                     type='BN3d', requires_grad=True, eps=1e-3),
                 act_cfg: Optional[Dict] = dict(type='ReLU', inplace=True),
                 fuse_bn_eval: bool = True,
                 pointwise_gemm: bool = True) -> None:
        super().__init__()
        if depthwise:
            self.conv = build_depthwise_conv3d(out_channels, kernel_size,
                                               stride, padding)
        else:
            self.conv = build_dense_conv3d(
                conv_cfg,
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False)
        self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
        self.add_module(self.norm_name, norm)
        self.activate = (
            build_activation_layer(act_cfg) if act_cfg is not None else None)
        self.fuse_bn_eval = fuse_bn_eval
        self.pointwise_gemm = pointwise_gemm

    @property
    def norm(self) -> nn.Module:
        """nn.Module: The norm layer (named ``bn`` for BatchNorm)."""
        return getattr(self, self.norm_name)

    @property
    def pointwise_gemm(self) -> bool:
        """bool: Whether the conv may run as GEMMs (its own flag)."""
        return getattr(self.conv, 'pointwise_gemm', False)

    @pointwise_gemm.setter
    def pointwise_gemm(self, value: bool) -> None:
        if isinstance(self.conv, FastConvMixin):
            self.conv.pointwise_gemm = bool(value)

    def _can_fold(self) -> bool:
        norm = self.norm
        return (self.fuse_bn_eval and not torch.is_grad_enabled()
                and isinstance(norm, _BatchNorm) and not norm.training
                and norm.running_mean is not None
                and isinstance(self.conv, FastConvMixin)
                and not ops_observed())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv, norm (folded into the conv when allowed), activation."""
        if self._can_fold():
            norm = self.norm
            scale = torch.rsqrt(norm.running_var + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight
            shift = -norm.running_mean * scale
            if norm.bias is not None:
                shift = shift + norm.bias
            x = self.conv(x, scale, shift)
        else:
            x = self.norm(self.conv(x))
        if self.activate is not None:
            x = self.activate(x)
        return x


def _unit_kernels(inflate: bool, inflate_style: str,
                  dilation: int) -> Tuple[Triple, Triple, Triple, Triple]:
    """Kernels/paddings of (first 1x1x1-ish conv, 3x3x3 unit).

    Same rule as MMAction2's ``Bottleneck3d`` so that ``inflate`` and
    ``inflate_style`` keep their meaning.
    """
    if inflate and inflate_style == '3x1x1':
        return (3, 1, 1), (1, 0, 0), (1, 3, 3), (0, dilation, dilation)
    if inflate:
        return (1, 1, 1), (0, 0, 0), (3, 3, 3), (1, dilation, dilation)
    return (1, 1, 1), (0, 0, 0), (1, 3, 3), (0, dilation, dilation)


class CSNBlock(nn.Module):
    """Residual block of any ``bottleneck_mode`` in :data:`BLOCK_MODES`.

    Layout (``conv2`` is always an ``nn.Sequential`` so that ir and ip keep
    MMAction2's ``conv2.0`` / ``conv2.1`` keys):

    - bottleneck family: ``conv1`` (1x1x1, ReLU) -> ``conv2`` (the 3x3x3
      unit, ReLU) -> ``conv3`` (1x1x1 to ``planes * expansion``, no act).
    - simple family: ``conv1`` (3x3x3 unit, ReLU) -> ``conv2`` (3x3x3
      unit, no act); both ``nn.Sequential``; output width = ``planes``.

    Then ``+ downsample(x)`` (or ``x``) and ReLU, as in all CSN code bases.
    The stride sits on the 3x3x3 unit (its depthwise conv for D/ip units);
    with ``style='caffe'`` a bottleneck puts it on ``conv1`` instead.

    Args:
        inplanes (int): Input channels.
        planes (int): Inner width.
        expansion (int): Output width / ``planes`` (bottleneck family; the
            simple family needs 1).
        mode (str): A key of :data:`BLOCK_MODES`.
        groups (int): Groups of the 'G' convs. Defaults to 1.
        spatial_stride (int): Spatial stride. Defaults to 1.
        temporal_stride (int): Temporal stride. Defaults to 1.
        dilation (int): Spatial dilation of dense/grouped 3x3x3 convs.
            Defaults to 1.
        downsample (nn.Module, optional): Shortcut projection.
            Defaults to None.
        style (str): 'pytorch' or 'caffe'. Defaults to 'pytorch'.
        inflate (bool): Temporal kernel of 3 (else 1x3x3 unit).
            Defaults to True.
        inflate_style (str): '3x3x3' or '3x1x1'. Defaults to '3x3x3'.
        conv_cfg (dict): Conv config. Defaults to ``dict(type='Conv3d')``.
        norm_cfg (dict): Norm config.
            Defaults to ``dict(type='BN3d', requires_grad=True, eps=1e-3)``.
        act_cfg (dict): Activation config.
            Defaults to ``dict(type='ReLU', inplace=True)``.
        with_cp (bool): Gradient checkpointing of the residual branch.
            Defaults to False.
        fuse_bn_eval (bool): See :class:`ConvNormAct`. Defaults to True.
    """

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 expansion: int,
                 mode: str,
                 groups: int = 1,
                 spatial_stride: int = 1,
                 temporal_stride: int = 1,
                 dilation: int = 1,
                 downsample: Optional[nn.Module] = None,
                 style: str = 'pytorch',
                 inflate: bool = True,
                 inflate_style: str = '3x3x3',
                 conv_cfg: Dict = dict(type='Conv3d'),
                 norm_cfg: Dict = dict(
                     type='BN3d', requires_grad=True, eps=1e-3),
                 act_cfg: Dict = dict(type='ReLU', inplace=True),
                 with_cp: bool = False,
                 fuse_bn_eval: bool = True) -> None:
        super().__init__()
        spec = BLOCK_MODES[mode]
        self.mode = mode
        self.spec = spec
        self.with_cp = with_cp
        self.groups = groups
        self._common = dict(
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, fuse_bn_eval=fuse_bn_eval)
        stride = (temporal_stride, spatial_stride, spatial_stride)
        k1, p1, k2, p2 = _unit_kernels(inflate, inflate_style, dilation)
        if spec.family == 'simple':
            self.conv1 = self._unit(inplanes, planes, k2, p2, stride,
                                    dilation, act_cfg)
            self.conv2 = self._unit(planes, planes, k2, p2, (1, 1, 1),
                                    dilation, None)
        else:
            pw_groups = groups if spec.group_pointwise else 1
            caffe = style == 'caffe'
            self.conv1 = ConvNormAct(
                inplanes,
                planes,
                k1,
                stride=stride if caffe else (1, 1, 1),
                padding=p1,
                groups=pw_groups,
                act_cfg=act_cfg,
                **self._common)
            self.conv2 = self._unit(planes, planes, k2, p2,
                                    (1, 1, 1) if caffe else stride,
                                    dilation, act_cfg)
            self.conv3 = ConvNormAct(
                planes,
                planes * expansion,
                (1, 1, 1),
                groups=pw_groups,
                act_cfg=None,
                **self._common)
        self.downsample = downsample
        self.relu = build_activation_layer(act_cfg)

    def _unit(self, cin: int, cout: int, kernel: Triple, padding: Triple,
              stride: Triple, dilation: int,
              act_cfg: Optional[Dict]) -> nn.Sequential:
        """Build one 3x3x3 unit as an ``nn.Sequential`` of ConvNormAct."""
        unit = self.spec.unit
        dil = (1, dilation, dilation)
        if unit in ('dense', 'group'):
            groups = self.groups if unit == 'group' else 1
            return nn.Sequential(
                ConvNormAct(cin, cout, kernel, stride, padding, dil, groups,
                            act_cfg=act_cfg, **self._common))
        # a depthwise unit keeps the width (the bottleneck's planes)
        layers = []
        if unit == 'ip':
            # 1x1x1 + BN with no ReLU, as ip in VMZ c2/PT and MMAction2
            layers.append(
                ConvNormAct(cin, cout, (1, 1, 1), act_cfg=None,
                            **self._common))
        layers.append(
            ConvNormAct(cout, cout, kernel, stride, padding, depthwise=True,
                        act_cfg=act_cfg, **self._common))
        return nn.Sequential(*layers)

    @property
    def last_norm(self) -> nn.Module:
        """nn.Module: The norm before the residual add (zero-init target)."""
        last = self.conv2[-1] if self.spec.family == 'simple' else self.conv3
        return last.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch + shortcut, then ReLU."""

        def _inner_forward(x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.conv2(self.conv1(x))
            if self.spec.family == 'bottleneck':
                out = self.conv3(out)
            return out + identity

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        elif self._inplace_residual(x):
            # no-grad inference: add the shortcut into the branch's output
            # in place, fused with the ReLU (one pass, no new tensor)
            identity = x if self.downsample is None else self.downsample(x)
            out = self.conv2(self.conv1(x))
            if self.spec.family == 'bottleneck':
                out = self.conv3(out)
            if (out.shape == identity.shape
                    and out.dtype == identity.dtype == torch.float32):
                return torch.ops.aten._add_relu_(out, identity)
            return self.relu(out + identity)
        else:
            out = _inner_forward(x)
        return self.relu(out)

    def _inplace_residual(self, x: torch.Tensor) -> bool:
        """Whether the residual add may write into the branch's output.

        Only in no-grad CPU calls with a plain ReLU, outside the tools that
        watch the ops, and when no forward hook can hold the branch's last
        output (a hook on the last conv or norm, or a global hook, would
        otherwise see it change after the fact).
        """
        if (torch.is_grad_enabled() or x.device.type != 'cpu'
                or type(self.relu) is not nn.ReLU):
            return False
        if _global_forward_hooks or ops_observed():
            return False
        last = self.conv2 if self.spec.family == 'simple' else self.conv3
        return not any(m._forward_hooks for m in last.modules())


def make_csn_layer(inplanes: int, planes: int, num_blocks: int,
                   expansion: int, spatial_stride: int,
                   temporal_stride: int, inflate: Union[int, Sequence[int]],
                   norm_cfg: Dict, conv_cfg: Dict,
                   **block_kwargs) -> nn.Sequential:
    """Build one stage: a projection-shortcut block then identity blocks.

    The shortcut is 1x1x1 conv + BN (key ``downsample.{conv,bn}``) whenever
    the width or the stride (temporal included) changes.

    Returns:
        nn.Sequential: The stage (keys ``0``, ``1``, ...).
    """
    inflate = (inflate, ) * num_blocks if isinstance(inflate, int) \
        else tuple(inflate)
    if len(inflate) != num_blocks:
        raise ValueError(f'inflate needs one entry per block ({num_blocks}) '
                         f'when given per block, got {inflate}')
    out_channels = planes * expansion
    downsample = None
    if (spatial_stride != 1 or temporal_stride != 1
            or inplanes != out_channels):
        downsample = ConvNormAct(
            inplanes,
            out_channels, (1, 1, 1),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            act_cfg=None,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            fuse_bn_eval=block_kwargs.get('fuse_bn_eval', True))
    blocks = []
    for i in range(num_blocks):
        first = i == 0
        blocks.append(
            CSNBlock(
                inplanes if first else out_channels,
                planes,
                expansion,
                spatial_stride=spatial_stride if first else 1,
                temporal_stride=temporal_stride if first else 1,
                downsample=downsample if first else None,
                inflate=inflate[i] == 1,
                norm_cfg=norm_cfg,
                conv_cfg=conv_cfg,
                **block_kwargs))
    return nn.Sequential(*blocks)
