"""bLResNet with TAM: the backbone of bLVNet-TAM (Fan et al., NeurIPS 2019).

Data flow for one clip of ``T`` frames (``P_k`` = fused map of frame pair
``k`` = frames ``2k`` and ``2k + 1``; shapes at 224 px, R50)::

    frames 0..T-1 (N*T, 3, 224, 224)
      conv1 7x7/2 + BN + ReLU            all T frames          -> 112
      TAM (mixes T frames)
      |-- odd frames 1,3,..  big:    b_conv0 3x3/2 + BN        -> 56
      `-- even frames 0,2,.. little: l_conv0/1/2 (1/alpha wide) -> 56
      big[k] + little[k] -> ReLU -> bl_init 1x1 + BN + ReLU = P  (N*T/2)
    layer1..3 (BigLittleStage), on P:
      TAM over the T slots [P0, P0, P1, P1, ...] (mixes time), computed
      on the pairs: even slots -> little input, odd slots -> big input
      |-- big:    (blocks - 1) bottlenecks, stride 2 (half resolution)
      `-- little: max(1, blocks // beta - 1) bottlenecks, 1/alpha wide,
                  full resolution, then little_e 1x1 + BN to full width
      nearest-upsample(big) + little -> ReLU -> fusion bottleneck = P
    layer4: plain ResNet layer on P (the T/2 odd slots), a TAM over T/2
      frames inside every block (mixes time)         -> (N*T/2, 2048, 7, 7)
    output: each P_k copied to slots 2k and 2k+1     -> (N*T, 2048, 7, 7)

The official code materialises the duplicated ``T``-slot tensor after
every stage (zeros + two strided assignments) and gathers odd / even
slots back out of it; here only the ``T / 2`` pair maps exist and the
stage TAMs are evaluated on them (``TemporalAggregation.forward_pairs``),
which gives the same numbers with half the stage-input memory.
"""
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmcsn.archs import (
    BLRESNET_STAGE_BLOCKS,
    BLRESNET_STAGE_CHANNELS,
    BLRESNET_STEM_CHANNELS,
)
from mmcsn.checkpoint import intake
from mmcsn.checkpoint.blvnet import blresnet_family
from mmcsn.models.common.tam import TemporalAggregation
from mmcsn.validate import ArgSpec, Bool, Cfg, InitCfg, Int, Maybe, Seq, Str

from .blresnet_blocks import (
    DEFAULT_NORM_CFG,
    BigLittleStage,
    bLBottleneck,
    checkpoint_unit,
    make_res_layer,
)

__all__ = ['bLResNet']

# Blocks per stage, stem width and stage widths: one table each, in
# mmcsn.archs (the bLVNet converter reads them too).
ARCH_SETTINGS = BLRESNET_STAGE_BLOCKS
STEM_CHANNELS = BLRESNET_STEM_CHANNELS
STAGE_CHANNELS = BLRESNET_STAGE_CHANNELS
# Stride of each bL stage's fusion block; layer4's first block has 2.
FUSION_STRIDES = (2, 2, 1)

# Stem modules (frozen together as stage 0 by ``frozen_stages``).
STEM_MODULES = ('conv1', 'bn1', 'b_conv0', 'bn_b0', 'l_conv0', 'bn_l0',
                'l_conv1', 'bn_l1', 'l_conv2', 'bn_l2', 'bl_init',
                'bn_bl_init', 'tam')


# The rules of every bLResNet argument (mmcsn.validate).
BLRESNET_ARGS = ArgSpec(
    'bLResNet',
    depth=Int(choices=ARCH_SETTINGS),
    alpha=Int(min=1, max=STEM_CHANNELS),
    beta=Int(min=1),
    num_segments=Int(
        min=1, even='frames come in big/little pairs: 2, 4, ..., 16, ...'),
    with_tam=Bool(),
    blending_frames=Int(min=1, odd=True),
    in_channels=Int(min=1),
    out_indices=Seq(Int(min=0, max=3), unique=True, scalar=True),
    frozen_stages=Int(min=-1, max=4),
    norm_eval=Bool(),
    with_cp=Bool(),
    conv_cfg=Maybe(Cfg(layer='a conv layer (Conv2d, ...)')),
    norm_cfg=Cfg(layer='a norm layer (BN2d, SyncBN, GN, ...)'),
    pretrained=Maybe(Str()),
    init_cfg=InitCfg())


@MODELS.register_module()
class bLResNet(BaseModule):
    """Big-Little ResNet with TAM, the bLVNet-TAM backbone.

    Exactly the official ``bLVNet_TAM_BACKBONE`` (IBM/bLVNet-TAM) up to its
    ``gappool`` / ``fc``, which the ``Recognizer2D`` head replaces. Takes
    ``(N * T, C, H, W)`` frames from ``Recognizer2D`` (clips contiguous,
    ``T = num_segments``; multi-view test batches ``(N * V * T)`` work
    since every group of ``T`` frames is processed on its own).
    Odd frames (1, 3, ...) take the big branch, even ones the little
    branch.

    The official backbone yields ``T / 2`` features per clip. To make the
    stock ``Recognizer2D`` + ``TSNHead`` (which reshape by ``num_segs =
    T``) work unchanged, each output map is returned twice, in slots
    ``2k`` and ``2k + 1`` (the official layout of every stage output):
    an average consensus over ``T`` then equals the official mean over
    ``T / 2``. The copy is unavoidable for a ``(N * T, ...)`` tensor (no
    single batch stride can repeat rows) and costs one layer4-sized
    memory copy (6.4 MB per 16-frame clip at 224 px).

    Module names are the official ``baseline_model.<name>`` ones (conv1,
    bn1, b_conv0, bn_b0, l_conv0..2, bn_l0..2, bl_init, bn_bl_init, tam,
    layer1..3 with big / little / little_e / fusion / tam, layer4.{i} with
    tam inside the blocks). They are frozen on purpose: official and
    ImageNet checkpoints then convert by a prefix change only.

    Args:
        depth (int): 50, 101 or 152.
        alpha (int): Width ratio big / little (1 .. 64). Defaults to 2.
        beta (int): Depth ratio big / little. Defaults to 4.
        num_segments (int): Frames per clip ``T`` (even). Defaults to 16.
        with_tam (bool): Insert the TAMs (False gives plain bLResNet
            applied per frame pair). Defaults to True.
        blending_frames (int): Frames blended by each TAM (odd). Defaults
            to 3.
        in_channels (int): Input channels (3 RGB, 10 flow). Defaults to 3.
        out_indices (int | Sequence[int]): Stages to output, 0 .. 3 for
            layer1 .. layer4 (distinct); one index returns a tensor.
            Defaults to ``(3, )``.
        frozen_stages (int): Stages to freeze (params fixed, BN in eval):
            -1 none, 0 the stem (incl. its TAM and big-little layer0),
            ``i`` the stem and layer1 .. layer``i``. Defaults to -1.
        norm_eval (bool): Keep all BN layers in eval mode when training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing: the stem (conv1, TAM,
            big-little layer0) and each of layer1 .. layer3 (TAM, big and
            little branches, fusion) are recomputed in the backward as
            one unit each, layer4 per bottleneck. Only units that need a
            gradient (an input or a parameter that requires grad) are
            checkpointed, so frozen stages and ``no_grad`` are unaffected.
            Defaults to False.
        conv_cfg (dict, optional): Conv layer config. Defaults to None.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN2d',
            requires_grad=True)`` (eps 1e-5, as the official model).
        pretrained (str, optional): Checkpoint to load in ``init_weights``:
            a released bLVNet-TAM file, a ``train.py`` checkpoint, an
            ImageNet bLResNet file (TAMs keep their init, ``fc`` dropped)
            or an mmcsn-converted file. Defaults to None.
        init_cfg (dict | list[dict], optional): Init config; a
            ``dict(type='Pretrained', checkpoint=...)`` entry is handled
            like ``pretrained``. Defaults to None.
    """

    arch_settings = ARCH_SETTINGS

    @BLRESNET_ARGS
    def __init__(self,
                 depth: int,
                 alpha: int = 2,
                 beta: int = 4,
                 num_segments: int = 16,
                 with_tam: bool = True,
                 blending_frames: int = 3,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        pretrained, init_cfg = self._take_pretrained(pretrained, init_cfg)
        super().__init__(init_cfg=init_cfg)
        self.depth = depth
        self.alpha = alpha
        self.beta = beta
        self.num_segments = num_segments
        self.with_tam = with_tam
        self.blending_frames = blending_frames
        self.in_channels = in_channels
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.pretrained = pretrained

        cfgs = dict(with_cp=with_cp, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        c0, little0 = STEM_CHANNELS, STEM_CHANNELS // alpha

        def conv(cin, cout, k, stride=1):
            return build_conv_layer(
                conv_cfg, cin, cout, k, stride, padding=k // 2, bias=False)

        def norm(c):
            return build_norm_layer(norm_cfg, c)[1]

        # Registration order = official state_dict order.
        self.conv1 = conv(in_channels, c0, 7, 2)  # no max-pool after it
        self.bn1 = norm(c0)
        self.b_conv0 = conv(c0, c0, 3, 2)
        self.bn_b0 = norm(c0)
        self.l_conv0 = conv(c0, little0, 3)
        self.bn_l0 = norm(little0)
        self.l_conv1 = conv(little0, little0, 3, 2)
        self.bn_l1 = norm(little0)
        self.l_conv2 = conv(little0, c0, 1)
        self.bn_l2 = norm(c0)
        self.bl_init = conv(c0, c0, 1)
        self.bn_bl_init = norm(c0)
        self.tam = TemporalAggregation(
            c0, num_segments, blending_frames) if with_tam else None
        blocks = ARCH_SETTINGS[depth]
        in_ch = c0
        for i in range(3):
            self.add_module(
                f'layer{i + 1}',
                BigLittleStage(
                    in_ch,
                    STAGE_CHANNELS[i],
                    blocks[i],
                    alpha,
                    beta,
                    FUSION_STRIDES[i],
                    num_segments,
                    with_tam=with_tam,
                    blending_frames=blending_frames,
                    **cfgs))
            in_ch = STAGE_CHANNELS[i]
        # Plain layer on the T/2 pair maps; TAM inside each block.
        self.layer4 = make_res_layer(
            in_ch,
            STAGE_CHANNELS[3],
            blocks[3],
            stride=2,
            with_tam=with_tam,
            num_segments=num_segments // 2,
            blending_frames=blending_frames,
            **cfgs)
        self._freeze_stages()

    @staticmethod
    def _take_pretrained(
        pretrained: Optional[str], init_cfg: Optional[Union[dict, List[dict]]]
    ) -> Tuple[Optional[str], Optional[Union[dict, List[dict]]]]:
        """Check ``pretrained`` / a ``Pretrained`` init_cfg entry at build.

        Both are kept as given; :meth:`init_weights` resolves them with
        :func:`mmcsn.checkpoint.intake.resolve_pretrained`, as CSN does.
        """
        intake.resolve_pretrained('bLResNet', pretrained, init_cfg)
        return pretrained, init_cfg

    def get(self, name: str, default: Any = None) -> Any:
        """Attribute lookup in the style of a config dict.

        MMAction2's ``Recognizer2D`` reads ``self.backbone.get(
        'num_segments')`` when ``test_cfg=dict(max_testing_views=...)``
        splits a many-view test batch; ``nn.Module`` has no ``get``, so
        without this that option fails with an ``AttributeError``.

        Args:
            name (str): Attribute name, e.g. ``'num_segments'``.
            default (Any): Returned when the attribute is missing.
                Defaults to None.

        Returns:
            Any: The attribute or ``default``.
        """
        return getattr(self, name, default)

    # ------------------------------------------------------------------
    # forward
    def forward(self, x: Tensor) -> Union[Tensor, Tuple[Tensor, ...]]:
        """Forward ``(N * T, C, H, W)`` frames.

        Returns:
            Tensor | tuple[Tensor]: For each of ``out_indices``, the stage
            output with ``N * T`` maps (pair maps duplicated, see class
            docstring); a single index gives a tensor.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'x must be (N * num_segments, {self.in_channels}, H, W), '
                f'got shape {tuple(x.shape)}')
        if x.shape[0] % self.num_segments:
            raise ValueError(
                f'batch size {x.shape[0]} (x.shape[0]) is not divisible by '
                f'num_segments={self.num_segments}')
        if self.with_cp:
            stem_params = (p for m in self._stage_modules(0)
                           for p in m.parameters())
            pairs = checkpoint_unit(self.forward_stem, x, stem_params)
        else:
            pairs = self.forward_stem(x)
        outs = []
        for i, name in enumerate(('layer1', 'layer2', 'layer3', 'layer4')):
            pairs = getattr(self, name)(pairs)
            if i in self.out_indices:
                outs.append(self.pairs_to_frames(pairs))
        return outs[0] if len(outs) == 1 else tuple(outs)

    def forward_stem(self, x: Tensor) -> Tensor:
        """conv1 + TAM + big-little layer0; returns ``N * T / 2`` pairs."""
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        if self.tam is not None:
            x = self.tam(x)
        # (N*T, C, H, W) -> (N, T/2, 2, C, H, W): [..., 0] = even = little
        # frames, [..., 1] = odd = big frames (strided views, no copy).
        frames = x.view((-1, 2) + x.shape[1:])
        little = frames[:, 0]
        big = self.bn_b0(self.b_conv0(frames[:, 1]))
        little = F.relu(self.bn_l0(self.l_conv0(little)), inplace=True)
        little = F.relu(self.bn_l1(self.l_conv1(little)), inplace=True)
        little = self.bn_l2(self.l_conv2(little))
        big += little  # pair k: big frame 2k+1 + little frame 2k
        big = self.bl_init(F.relu(big, inplace=True))
        return F.relu(self.bn_bl_init(big), inplace=True)

    @staticmethod
    def pairs_to_frames(pairs: Tensor) -> Tensor:
        """``(N*T/2, ...)`` pair maps -> ``(N*T, ...)``, slots 2k = 2k+1."""
        return pairs.unsqueeze(1).expand((-1, 2) + pairs.shape[1:]).flatten(
            0, 1)

    # ------------------------------------------------------------------
    # training-mode behaviour
    def _stage_modules(self, stage: int) -> List[nn.Module]:
        if stage == 0:
            return [
                getattr(self, n) for n in STEM_MODULES
                if getattr(self, n) is not None
            ]
        return [getattr(self, f'layer{stage}')]

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            for module in self._stage_modules(stage):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'bLResNet':
        """Set train mode, keeping frozen stages and BN (norm_eval) in eval.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------
    # initialisation
    def init_weights(self, pretrained: Optional[str] = None) -> None:
        """Official init, then other init_cfg entries, then the pretrained
        source.

        ``pretrained='x'`` and ``init_cfg=dict(type='Pretrained',
        checkpoint='x', prefix=None, sha256=None)`` name the same source
        (both at once is an error); it goes through the checkpoint intake
        (:func:`mmcsn.checkpoint.intake.load_pretrained`), as for CSN.

        Args:
            pretrained (str, optional): Path or URL that replaces the
                configured source. Defaults to None.
        """
        intake.init_backbone(self, 'bLResNet', self._init_from_scratch,
                             pretrained)

    def _init_from_scratch(self) -> None:
        """The official init: kaiming convs, unit BN, zero last BN."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # includes the TAM weight holders
                nn.init.kaiming_normal_(
                    m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, _BatchNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        for m in self.modules():
            if isinstance(m, bLBottleneck):
                nn.init.constant_(m.bn3.weight, 0)  # zero-init last BN

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        sha256: Optional[str] = None) -> dict:
        """Load official, ImageNet or mmcsn bLResNet weights, strictly.

        Strict, except for the two documented cases, which are logged:
        classifier keys (``new_fc`` / ``fc``) are not part of the backbone,
        and an ImageNet bLResNet file (as downloaded, or converted to
        mmcsn keys by the CLI) has no TAM weights at all (TAMs keep their
        init; a file with only some TAM weights is refused).

        Args:
            checkpoint (str): Local path or http(s) URL (cached by URL).
            prefix (str, optional): Take only the file's keys under this
                prefix, stripped. Defaults to None (the whole file).
            sha256 (str, optional): Expected sha256 (or its first >= 8 hex
                digits). Defaults to None (a URL's ``name-<hash>.pth``).

        Returns:
            dict: The intake's report: ``format``, ``missing`` (TAM keys
            left at their init), ``ignored`` (non-backbone keys), ...
        """
        return intake.load_pretrained(
            self, intake.PretrainedSpec(checkpoint, prefix, sha256),
            blresnet_family(self.in_channels))
