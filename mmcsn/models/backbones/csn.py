"""CSN: Channel-Separated Convolutional Network backbone (registered 'CSN').

Tran, Wang, Torresani, Feiszli, "Video Classification with
Channel-Separated Convolutional Networks", ICCV 2019.

Drop-in for MMAction2's ``ResNet3dCSN``: same arguments, same effective
defaults and the same state_dict keys for ``ir``/``ip``, so an MMAction2
CSN config ports by changing ``type='ResNet3dCSN'`` to ``type='CSN'`` and
its checkpoints load strictly. On top: depth 26 (VMZ), the paper's block
ablation family, ``with_pool1``, VMZ's width rule, channels-last and
eval-time BN folding (same outputs, same state_dict).
"""
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, kaiming_init
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from torch.nn.modules.utils import _triple

from mmcsn.archs import CSN_STAGE_BLOCKS
from mmcsn.checkpoint import intake
from mmcsn.checkpoint.csn import CSN_FAMILY
from mmcsn.validate import (
    ArgSpec,
    Bool,
    Cfg,
    Either,
    InitCfg,
    Int,
    Maybe,
    Ref,
    Rule,
    Seq,
    Str,
    check_arg,
    fail,
)

from .csn_blocks import (
    BLOCK_MODES,
    ConvNormAct,
    CSNBlock,
    make_csn_layer,
)

__all__ = ['CSN', 'STAGE_BLOCKS']

# depth -> blocks per stage (res2..res5); one table for the model and the
# converters, kept importable here under its old name.
STAGE_BLOCKS: Dict[int, Tuple[int, ...]] = CSN_STAGE_BLOCKS

# VMZ caffe2 (r3d_model.py): depths <= 34 use the shallow filter config,
# i.e. a depth-26 bottleneck does not expand its output (x1, not x4).
_VMZ_SHALLOW_MAX_DEPTH = 34
MEMORY_FORMATS = ('channels_last_3d', 'contiguous')


def _per_stage(item: Rule) -> Seq:
    """One entry per stage (num_stages), or the full 4-stage tuple."""
    return Seq(item, length=(Ref('num_stages'), 4))


def _zero_or_one(values: Tuple[int, ...]) -> Either:
    """An int of ``values`` for the stage, or one per block."""
    return Either(Int(choices=values), Seq(Int(choices=values)))


def _blocks(a: Dict[str, Any]) -> Tuple[int, ...]:
    return a['stage_blocks'] or STAGE_BLOCKS[a['depth']][:a['num_stages']]


def _expansion(a: Dict[str, Any]) -> int:
    """VMZ's rule where ``expansion`` is None (see the docstring)."""
    if BLOCK_MODES[a['bottleneck_mode']].family == 'simple':
        return 1
    if a['expansion'] is not None:
        return a['expansion']
    return 1 if a['depth'] <= _VMZ_SHALLOW_MAX_DEPTH else 4


def _grouped_modes() -> List[str]:
    return [k for k, s in BLOCK_MODES.items()
            if s.unit == 'group' or s.group_pointwise]


def _check_blocks(owner: str, a: Dict[str, Any]) -> None:
    """Per-block ``inflate`` entries, one per block of their stage."""
    for i, (entry, n) in enumerate(zip(a['inflate'], _blocks(a))):
        if isinstance(entry, tuple) and len(entry) != n:
            raise fail(owner, f'inflate[{i}]', entry,
                       f'0, 1 or a list/tuple of {n} entries of 0/1 '
                       f'(stage {i} has {n} block(s))')


def _check_units(owner: str, a: Dict[str, Any]) -> None:
    """Block mode against dilations, expansion and groups."""
    spec = BLOCK_MODES[a['bottleneck_mode']]
    mode = f"all 1 for bottleneck_mode={a['bottleneck_mode']!r}"
    if (spec.unit in ('depthwise', 'ip')
            and any(d != 1 for d in a['dilations'][:a['num_stages']])):
        raise fail(owner, 'dilations', a['dilations'], mode)
    if spec.family == 'simple' and a['expansion'] not in (None, 1):
        raise fail(owner, 'expansion', a['expansion'],
                   'None or 1 for simple blocks')
    groups = a['groups']
    if a['bottleneck_mode'] not in _grouped_modes():
        if groups not in (None, 1):
            raise fail(owner, 'groups', groups, f'None or 1 (it applies '
                       f'only to bottleneck_mode in {_grouped_modes()}, '
                       f"not {a['bottleneck_mode']!r})")
        return
    if groups is None:
        raise fail(owner, 'groups', groups, 'a positive int for '
                   f"bottleneck_mode={a['bottleneck_mode']!r}")
    widths = {a['base_channels']}
    for i in range(a['num_stages']):
        widths.add(a['base_channels'] * 2**i)
        if spec.group_pointwise:
            widths.add(a['base_channels'] * 2**i * _expansion(a))
    if any(w % groups for w in widths):
        raise fail(owner, 'groups', groups,
                   f'a divisor of every grouped width {sorted(widths)}')


def _check_pretrained(owner: str, a: Dict[str, Any]) -> None:
    # The intake owns the pretrained / init_cfg rules of every backbone,
    # so CSN and bLResNet refuse the same mistakes with the same words.
    intake.resolve_pretrained(owner, a['pretrained'], a['init_cfg'])


# The rules of every CSN argument (mmcsn.validate); see the docstring.
CSN_ARGS = ArgSpec(
    'CSN',
    checks=(_check_blocks, _check_units, _check_pretrained),
    depth=Int(choices=STAGE_BLOCKS),
    pretrained=Maybe(Str()),
    temporal_strides=_per_stage(Int(min=1)),
    conv1_kernel=Either(Int(min=1), Seq(Int(min=1), length=3)),
    conv1_stride_t=Int(min=1),
    pool1_stride_t=Int(min=1),
    norm_cfg=Cfg(layer='a norm layer (BN3d, SyncBN, GN, ...)'),
    inflate_style=Str(choices=('3x3x3', '3x1x1')),
    bottleneck_mode=Str(choices=BLOCK_MODES),
    bn_frozen=Bool(),
    stage_blocks=Maybe(Seq(Int(min=1), length=Ref('num_stages'))),
    pretrained2d=Bool(only=False, why='CSN never inflates 2D weights'),
    in_channels=Int(min=1),
    num_stages=Int(min=1, max=4),
    base_channels=Int(min=1),
    out_indices=Seq(
        Int(min=0, max=Ref('num_stages', -1)), unique=True, scalar=True),
    spatial_strides=_per_stage(Int(min=1)),
    dilations=_per_stage(Int(min=1)),
    conv1_stride_s=Int(min=1),
    pool1_stride_s=Int(min=1),
    with_pool1=Bool(),
    with_pool2=Bool(),
    style=Str(choices=('pytorch', 'caffe')),
    frozen_stages=Int(min=-1, max=Ref('num_stages')),
    inflate=_per_stage(_zero_or_one((0, 1))),
    conv_cfg=Cfg(layer='a conv layer (Conv3d, ...)'),
    act_cfg=Cfg(layer='an activation (ReLU, Swish, ...)'),
    norm_eval=Bool(),
    with_cp=Bool(),
    non_local=_per_stage(_zero_or_one((0, ))),
    non_local_cfg=Cfg(required=()),
    zero_init_residual=Bool(),
    groups=Maybe(Int(min=1)),
    expansion=Maybe(Int(min=1)),
    memory_format=Str(choices=MEMORY_FORMATS),
    fuse_bn_eval=Bool(),
    pointwise_gemm=Bool(),
    init_cfg=InitCfg())

# arguments kept as attributes of the same name (after CSN_ARGS.check)
_ATTRS = ('depth', 'bottleneck_mode', 'num_stages', 'pretrained',
          'in_channels', 'base_channels', 'out_indices', 'spatial_strides',
          'temporal_strides', 'dilations', 'conv1_stride_s',
          'conv1_stride_t', 'pool1_stride_s', 'pool1_stride_t', 'with_pool1',
          'with_pool2', 'style', 'frozen_stages', 'inflate_style',
          'conv_cfg', 'norm_cfg', 'act_cfg', 'norm_eval', 'bn_frozen',
          'with_cp', 'zero_init_residual', 'memory_format', 'pretrained2d')


@MODELS.register_module()
class CSN(BaseModule):
    """ResNet3D-style CSN backbone (MMAction2 ``ResNet3dCSN`` compatible).

    Args:
        depth (int): One of 26, 50, 101, 152 (sets blocks per stage, see
            ``STAGE_BLOCKS``).
        pretrained (str, optional): Checkpoint path or http(s) URL of a
            3D model in any layout ``mmcsn.checkpoint.csn`` converts
            (MMAction2, VMZ PyTorch, PyTorchVideo, VMZ caffe2 blob
            pickles), read and loaded strictly by the checkpoint intake
            (URLs cached by URL, sha256-checked). Defaults to None.
        temporal_strides (Sequence[int]): Temporal stride of each stage.
            Defaults to (1, 2, 2, 2).
        conv1_kernel (Sequence[int]): Stem conv kernel. Defaults to
            (3, 7, 7).
        conv1_stride_t (int): Stem conv temporal stride. Defaults to 1.
        pool1_stride_t (int): Stem pool temporal stride. Defaults to 1.
        norm_cfg (dict): Norm config. Defaults to
            ``dict(type='BN3d', requires_grad=True, eps=1e-3)`` (VMZ eps;
            momentum stays PyTorch's 0.1).
        inflate_style (str): '3x3x3' or '3x1x1' (then conv1 is 3x1x1 and
            the unit 1x3x3), as MMAction2. Defaults to '3x3x3'.
        bottleneck_mode (str): Block type, one of ``BLOCK_MODES``: 'ir'
            (= 'bottleneck-D'), 'ip', 'simple', 'simple-G', 'simple-D',
            'bottleneck', 'bottleneck-G', 'bottleneck-DG'. Defaults to 'ir'.
        bn_frozen (bool): Keep every BN in eval mode and its affine
            parameters at ``requires_grad=False``. Unlike ResNet3dCSN it
            also acts without ``norm_eval`` (there it is silently a no-op).
            Defaults to False.
        stage_blocks (Sequence[int], optional): Overrides the blocks per
            stage of ``depth``. Defaults to None.
        pretrained2d (bool): Accepted for config compatibility; must be
            False (CSN never inflates 2D weights). Defaults to False.
        in_channels (int): Input channels. Defaults to 3.
        num_stages (int): Stages, 1-4. Defaults to 4.
        base_channels (int): Stem width; stage i's inner width is
            ``base_channels * 2**i``. Defaults to 64.
        out_indices (Sequence[int]): Stages whose output is returned.
            Defaults to (3, ).
        spatial_strides (Sequence[int]): Spatial stride of each stage.
            Defaults to (1, 2, 2, 2).
        dilations (Sequence[int]): Spatial dilation of each stage; only 1
            for depthwise units. Defaults to (1, 1, 1, 1).
        conv1_stride_s (int): Stem conv spatial stride. Defaults to 2.
        pool1_stride_s (int): Stem pool spatial stride. Defaults to 2.
        with_pool1 (bool): Stem 1x3x3 max-pool (MMAction2, VMZ-PT: on;
            VMZ caffe2 ``use_pool1`` and PyTorchVideo: off).
            Defaults to True.
        with_pool2 (bool): Temporal max-pool after stage 1 (ResNet3d's
            default True is a trap for CSN; every CSN config sets False).
            Defaults to False.
        style (str): 'pytorch' (stride on the 3x3x3 unit) or 'caffe'
            (stride on a bottleneck's conv1). Defaults to 'pytorch'.
        frozen_stages (int): Freeze the stem (>= 0) and stages 1..n:
            eval mode and ``requires_grad=False``; -1 freezes nothing.
            Defaults to -1.
        inflate (Sequence[int | Sequence[int]]): Per stage (or per block)
            1 for a temporal kernel of 3. Defaults to (1, 1, 1, 1).
        conv_cfg (dict): Config of the dense/grouped convs; depthwise convs
            are always ``mmcsn.ops.DepthwiseConv3d``.
            Defaults to ``dict(type='Conv3d')``.
        act_cfg (dict): Activation. Defaults to
            ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep BN in eval mode when training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        non_local (Sequence[int]): Accepted for config compatibility; must
            be all 0. Defaults to (0, 0, 0, 0).
        non_local_cfg (dict): Ignored (see ``non_local``).
            Defaults to ``dict()``.
        zero_init_residual (bool): Zero the last BN of each residual branch
            at init (ResNet3dCSN's effective default; the CSN base config
            sets False). Defaults to True.
        groups (int, optional): Groups of the '-G'/'-DG' modes (required
            there, must divide the grouped widths); None for other modes.
            Defaults to None.
        expansion (int, optional): Output width / inner width of a block.
            None applies VMZ's rule: 4 for bottlenecks at depth > 34, 1 for
            depth 26 and for simple blocks. Pass 4 for an MMAction2-style
            depth-26. Simple blocks need 1. Defaults to None.
        memory_format (str): 'channels_last_3d' converts the input once at
            the start of ``forward`` (depthwise Conv3d runs several times
            faster); outputs come back in whatever layout the convs give
            (values identical; call ``.contiguous()`` if you ``.view``
            them). 'contiguous' leaves the input alone.
            Defaults to 'channels_last_3d'.
        fuse_bn_eval (bool): In eval mode under ``torch.no_grad()``, fold
            each BN into its conv on the fly (stored weights untouched).
            Settable after construction. Defaults to True.
        pointwise_gemm (bool): Run every dense 1x1x1 conv as GEMMs over
            channels-last positions on CPU (``mmcsn.ops.pointwise_conv3d``:
            same values up to summation order, faster). False gives
            PyTorch's own conv dispatch, e.g. to compare the two.
            Settable after construction (``model.backbone.pointwise_gemm =
            False``). Defaults to True.
        init_cfg (dict | list[dict], optional): mmengine init config; a
            ``dict(type='Pretrained', checkpoint=..., prefix=None,
            sha256=None)`` entry is loaded like ``pretrained`` (not both).
            Defaults to None.

    Every argument is checked when the module is built (``CSN_ARGS``,
    :mod:`mmcsn.validate`): ``TypeError`` for a wrong type, ``ValueError``
    for a wrong value, naming the argument. Lists are accepted where
    tuples are; per-stage sequences (``temporal_strides``,
    ``spatial_strides``, ``dilations``, ``inflate``, ``non_local``) have
    ``num_stages`` entries, or 4 of which the first ``num_stages`` are
    used; ``out_indices`` may be a single int.

    Differences from ``ResNet3dCSN``, all deliberate: ``with_pool2``
    defaults to False; ``pretrained2d`` must be False; ``bn_frozen`` works
    without ``norm_eval``; a stage whose only change is a temporal stride
    gets a projection shortcut (ResNet3dCSN would fail to add the
    shapes); loading is strict; unsupported ``non_local``/``dilations``
    raise instead of being built.
    """

    @CSN_ARGS
    def __init__(self,
                 depth: int,
                 pretrained: Optional[str] = None,
                 temporal_strides: Sequence[int] = (1, 2, 2, 2),
                 conv1_kernel: Sequence[int] = (3, 7, 7),
                 conv1_stride_t: int = 1,
                 pool1_stride_t: int = 1,
                 norm_cfg: Dict = dict(
                     type='BN3d', requires_grad=True, eps=1e-3),
                 inflate_style: str = '3x3x3',
                 bottleneck_mode: str = 'ir',
                 bn_frozen: bool = False,
                 stage_blocks: Optional[Sequence[int]] = None,
                 pretrained2d: bool = False,
                 in_channels: int = 3,
                 num_stages: int = 4,
                 base_channels: int = 64,
                 out_indices: Sequence[int] = (3, ),
                 spatial_strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 conv1_stride_s: int = 2,
                 pool1_stride_s: int = 2,
                 with_pool1: bool = True,
                 with_pool2: bool = False,
                 style: str = 'pytorch',
                 frozen_stages: int = -1,
                 inflate: Sequence = (1, 1, 1, 1),
                 conv_cfg: Dict = dict(type='Conv3d'),
                 act_cfg: Dict = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 non_local: Sequence = (0, 0, 0, 0),
                 non_local_cfg: Dict = dict(),
                 zero_init_residual: bool = True,
                 groups: Optional[int] = None,
                 expansion: Optional[int] = None,
                 memory_format: str = 'channels_last_3d',
                 fuse_bn_eval: bool = True,
                 pointwise_gemm: bool = True,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        args = locals()  # already checked and normalised by CSN_ARGS
        super().__init__(init_cfg=init_cfg)
        for name in _ATTRS:
            setattr(self, name, args[name])
        self.spec = BLOCK_MODES[bottleneck_mode]
        self.stage_blocks = _blocks(args)
        self.expansion = _expansion(args)
        self.groups = groups or 1
        self.conv1_kernel = _triple(conv1_kernel)
        self._make_stem_layer()
        self.res_layers = []
        inplanes = base_channels
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            layer = make_csn_layer(
                inplanes,
                planes,
                num_blocks,
                self.expansion,
                spatial_stride=spatial_strides[i],
                temporal_stride=temporal_strides[i],
                inflate=inflate[i],
                norm_cfg=norm_cfg,
                conv_cfg=conv_cfg,
                mode=bottleneck_mode,
                groups=self.groups,
                dilation=dilations[i],
                style=style,
                inflate_style=inflate_style,
                act_cfg=act_cfg,
                with_cp=with_cp)
            inplanes = planes * self.expansion
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
        self.feat_dim = inplanes
        self.fuse_bn_eval = fuse_bn_eval
        self.pointwise_gemm = pointwise_gemm
        self._freeze_bn_params()
        self._freeze_stages()

    # ------------------------------------------------------------ flags
    def _convs(self) -> Iterator[ConvNormAct]:
        return (m for m in self.modules() if isinstance(m, ConvNormAct))

    @property
    def fuse_bn_eval(self) -> bool:
        """bool: Fold BN into the convs in no-grad eval calls (settable)."""
        return self._fuse_bn_eval

    @fuse_bn_eval.setter
    def fuse_bn_eval(self, value: bool) -> None:
        self._fuse_bn_eval = check_arg('CSN', 'fuse_bn_eval', value, Bool())
        for m in self._convs():
            m.fuse_bn_eval = value

    @property
    def pointwise_gemm(self) -> bool:
        """bool: Run dense 1x1x1 convs as GEMMs (settable, see docstring).
        """
        return self._pointwise_gemm

    @pointwise_gemm.setter
    def pointwise_gemm(self, value: bool) -> None:
        self._pointwise_gemm = check_arg('CSN', 'pointwise_gemm', value,
                                         Bool())
        for m in self._convs():
            m.pointwise_gemm = value

    def _make_stem_layer(self) -> None:
        """Stem conv (keys ``conv1.conv``/``conv1.bn``) and pools."""
        self.conv1 = ConvNormAct(
            self.in_channels,
            self.base_channels,
            self.conv1_kernel,
            stride=(self.conv1_stride_t, self.conv1_stride_s,
                    self.conv1_stride_s),
            padding=tuple((k - 1) // 2 for k in self.conv1_kernel),
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        self.maxpool = nn.MaxPool3d(
            kernel_size=(1, 3, 3),
            stride=(self.pool1_stride_t, self.pool1_stride_s,
                    self.pool1_stride_s),
            padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1))

    # ------------------------------------------------------------ weights
    def init_weights(self, pretrained: Optional[str] = None) -> None:
        """Init from scratch as ResNet3dCSN, then load the pretrained source.

        ``pretrained='x'`` and ``init_cfg=dict(type='Pretrained',
        checkpoint='x', prefix=None, sha256=None)`` name the same source
        (both at once is an error); it goes through the checkpoint intake
        (:func:`mmcsn.checkpoint.intake.load_pretrained`) and loads
        strictly. Other ``init_cfg`` entries run after the default init.

        Args:
            pretrained (str, optional): Path or URL that replaces the
                configured source. Defaults to None.
        """
        intake.init_backbone(self, 'CSN', self._init_from_scratch,
                             pretrained)

    def _init_from_scratch(self) -> None:
        """ResNet3dCSN's init: kaiming convs, unit BN, zero last BN."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                kaiming_init(m)
            elif isinstance(m, _BatchNorm):
                constant_init(m, 1)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, CSNBlock):
                    constant_init(m.last_norm, 0)

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        sha256: Optional[str] = None) -> dict:
        """Load a CSN checkpoint of any known layout, strictly.

        Layouts: MMAction2 / mmcsn (backbone or recognizer), VMZ PyTorch,
        PyTorchVideo, VMZ caffe2 blob pickles (read with the numpy-only
        unpickler), detected from the keys
        (:func:`mmcsn.checkpoint.csn.convert_csn_checkpoint`).

        Args:
            checkpoint (str): Local path or http(s) URL (cached by URL).
            prefix (str, optional): Take only the file's keys under this
                prefix, stripped. Defaults to None (the whole file).
            sha256 (str, optional): Expected sha256 (or its first >= 8 hex
                digits). Defaults to None (a URL's ``name-<hash>.pth``).

        Returns:
            dict: The intake's report (``format``, ``ignored``, ...).
        """
        return intake.load_pretrained(
            self, intake.PretrainedSpec(checkpoint, prefix, sha256),
            CSN_FAMILY)

    # ------------------------------------------------------------ modes
    def _bns(self) -> Iterator[_BatchNorm]:
        return (m for m in self.modules() if isinstance(m, _BatchNorm))

    def _freeze_bn_params(self) -> None:
        if self.bn_frozen:
            for m in self._bns():
                for param in m.parameters():
                    param.requires_grad = False

    def _freeze_stages(self) -> None:
        """Stem and stages 1..frozen_stages: eval, no grad."""
        frozen = [self.conv1] if self.frozen_stages >= 0 else []
        frozen += [
            getattr(self, f'layer{i}')
            for i in range(1, self.frozen_stages + 1)
        ]
        for m in frozen:
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'CSN':
        """Set train/eval; keep frozen stages and frozen BN in eval."""
        super().train(mode)
        self._freeze_stages()
        self._freeze_bn_params()
        if mode and (self.norm_eval or self.bn_frozen):
            for m in self._bns():
                m.eval()
        return self

    # ------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """Extract features of an (N, C, T, H, W) clip batch.

        Args:
            x (torch.Tensor): Input clips.

        Returns:
            torch.Tensor | tuple[torch.Tensor]: The ``out_indices`` stage
            outputs (a single tensor when there is one).
        """
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'x must be 5-d (N, {self.in_channels}, T, H, W), got shape '
                f'{tuple(x.shape)}')
        if self.memory_format == 'channels_last_3d':
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.conv1(x)
        if self.with_pool1:
            x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)
