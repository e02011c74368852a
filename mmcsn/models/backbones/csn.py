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
import os
from typing import (
    Any,
    Dict,
    Iterable,
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
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, initialize, kaiming_init
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from torch.nn.modules.utils import _triple

from mmcsn.checkpoint.io import (
    load_checkpoint_file,
    load_state_dict_checked,
    unwrap_state_dict,
)

from .csn_blocks import (
    BLOCK_MODES,
    BlockSpec,
    ConvNormAct,
    CSNBlock,
    make_csn_layer,
)

__all__ = ['CSN', 'STAGE_BLOCKS']

# depth -> blocks per stage (res2..res5). The same counts serve every block
# family: with 'simple' blocks depth 26 / 50 rows give the standard
# ResNet3D-18 / -34 layouts (2-2-2-2 / 3-4-6-3) of the paper's block study.
STAGE_BLOCKS: Dict[int, Tuple[int, ...]] = {
    26: (2, 2, 2, 2),  # VMZ caffe2 only (BLOCK_CONFIG[26])
    50: (3, 4, 6, 3),  # VMZ, MMAction2, PyTorchVideo
    101: (3, 4, 23, 3),  # MMAction2, PyTorchVideo
    152: (3, 8, 36, 3),  # the paper's main ir/ip-CSN-152
}

# VMZ caffe2 (r3d_model.py): depths <= 34 use the shallow filter config,
# i.e. a depth-26 bottleneck does not expand its output (x1, not x4).
_VMZ_SHALLOW_MAX_DEPTH = 34
MEMORY_FORMATS = ('channels_last_3d', 'contiguous')


def _choice_error(arg: str, value: Any, choices: Iterable) -> ValueError:
    return ValueError(f'{arg} must be one of {list(choices)}, got {value!r}')


@MODELS.register_module()
class CSN(BaseModule):
    """ResNet3D-style CSN backbone (MMAction2 ``ResNet3dCSN`` compatible).

    Args:
        depth (int): One of 26, 50, 101, 152 (sets blocks per stage, see
            ``STAGE_BLOCKS``).
        pretrained (str, optional): Checkpoint path or URL of a 3D model in
            any layout ``mmcsn.checkpoint.csn.convert_to_mmcsn`` knows
            (MMAction2, VMZ-PyTorch, PyTorchVideo, caffe2 blobs); loaded
            strictly. Defaults to None.
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
            Defaults to True.
        init_cfg (dict | list[dict], optional): mmengine init config; a
            ``dict(type='Pretrained', checkpoint=..., prefix=...)`` entry is
            loaded like ``pretrained``. Defaults to None.

    Differences from ``ResNet3dCSN``, all deliberate: ``with_pool2``
    defaults to False; ``pretrained2d`` must be False; ``bn_frozen`` works
    without ``norm_eval``; a stage whose only change is a temporal stride
    gets a projection shortcut (ResNet3dCSN would fail to add the
    shapes); loading is strict; unsupported ``non_local``/``dilations``
    raise instead of being built.
    """

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
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth not in STAGE_BLOCKS:
            raise _choice_error('depth', depth, STAGE_BLOCKS)
        if bottleneck_mode not in BLOCK_MODES:
            raise _choice_error('bottleneck_mode', bottleneck_mode,
                                BLOCK_MODES)
        for arg, value, choices in (
            ('inflate_style', inflate_style, ('3x3x3', '3x1x1')),
            ('style', style, ('pytorch', 'caffe')),
            ('memory_format', memory_format, MEMORY_FORMATS),
            ('num_stages', num_stages, (1, 2, 3, 4)),
            ('pretrained2d', pretrained2d, (False, )),
        ):
            if value not in choices:
                raise _choice_error(arg, value, choices)
        if pretrained is not None and not isinstance(pretrained, str):
            raise TypeError(
                f'pretrained must be a str or None, got {type(pretrained)}')
        self.spec = BLOCK_MODES[bottleneck_mode]
        self.depth = depth
        self.bottleneck_mode = bottleneck_mode
        self.num_stages = num_stages
        self.stage_blocks = tuple(
            stage_blocks if stage_blocks is not None else
            STAGE_BLOCKS[depth][:num_stages])
        for arg, value in (('stage_blocks', self.stage_blocks),
                           ('spatial_strides', spatial_strides),
                           ('temporal_strides', temporal_strides),
                           ('dilations', dilations), ('inflate', inflate),
                           ('non_local', non_local)):
            if len(value) < num_stages:
                raise ValueError(
                    f'{arg} needs one entry per stage (num_stages='
                    f'{num_stages}), got {tuple(value)}')
        if len(self.stage_blocks) != num_stages:
            raise ValueError(f'stage_blocks must have num_stages='
                             f'{num_stages} entries, got {self.stage_blocks}')
        bad = [i for i in out_indices if not 0 <= i < num_stages]
        if not out_indices or bad:
            raise ValueError(f'out_indices must be a non-empty subset of '
                             f'{list(range(num_stages))}, got {out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise _choice_error('frozen_stages', frozen_stages,
                                range(-1, num_stages + 1))
        if any(n != 0 for n in _flat(non_local[:num_stages])):
            raise ValueError(f'non_local must be all 0 (CSN builds no '
                             f'non-local blocks), got {non_local}')
        if (self.spec.unit in ('depthwise', 'ip')
                and any(d != 1 for d in dilations[:num_stages])):
            raise ValueError(f'dilations must be all 1 for bottleneck_mode='
                             f'{bottleneck_mode!r}, got {dilations}')
        if (init_cfg is not None and pretrained is not None
                and self._pretrained_cfgs(init_cfg)):
            raise ValueError('give the checkpoint either as pretrained or as '
                             "init_cfg=dict(type='Pretrained'), not both")
        self.expansion = self._resolve_expansion(expansion)
        self.groups = self._resolve_groups(groups, base_channels)

        self.pretrained = pretrained
        self.pretrained2d = False
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.out_indices = tuple(out_indices)
        self.spatial_strides = tuple(spatial_strides)
        self.temporal_strides = tuple(temporal_strides)
        self.dilations = tuple(dilations)
        self.conv1_kernel = _triple(conv1_kernel)
        self.conv1_stride_s = conv1_stride_s
        self.conv1_stride_t = conv1_stride_t
        self.pool1_stride_s = pool1_stride_s
        self.pool1_stride_t = pool1_stride_t
        self.with_pool1 = with_pool1
        self.with_pool2 = with_pool2
        self.style = style
        self.frozen_stages = frozen_stages
        self.inflate_style = inflate_style
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.norm_eval = norm_eval
        self.bn_frozen = bn_frozen
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.memory_format = memory_format
        self.fuse_bn_eval = fuse_bn_eval

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
                spatial_stride=self.spatial_strides[i],
                temporal_stride=self.temporal_strides[i],
                inflate=inflate[i],
                norm_cfg=norm_cfg,
                conv_cfg=conv_cfg,
                mode=bottleneck_mode,
                groups=self.groups,
                dilation=self.dilations[i],
                style=style,
                inflate_style=inflate_style,
                act_cfg=act_cfg,
                with_cp=with_cp,
                fuse_bn_eval=fuse_bn_eval)
            inplanes = planes * self.expansion
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
        self.feat_dim = inplanes
        self._freeze_bn_params()
        self._freeze_stages()

    # ------------------------------------------------------------ build
    def _resolve_expansion(self, expansion: Optional[int]) -> int:
        if self.spec.family == 'simple':
            if expansion not in (None, 1):
                raise ValueError(f'expansion must be None or 1 for simple '
                                 f'blocks, got {expansion!r}')
            return 1
        if expansion is None:
            return 1 if self.depth <= _VMZ_SHALLOW_MAX_DEPTH else 4
        if not isinstance(expansion, int) or expansion < 1:
            raise ValueError(f'expansion must be None or a positive int, '
                             f'got {expansion!r}')
        return expansion

    def _resolve_groups(self, groups: Optional[int],
                        base_channels: int) -> int:
        """Check ``groups`` against every width it has to divide."""
        grouped = self.spec.unit == 'group' or self.spec.group_pointwise
        if not grouped:
            if groups not in (None, 1):
                raise ValueError(
                    f'groups applies only to bottleneck_mode in '
                    f'{[k for k, s in BLOCK_MODES.items() if _is_g(s)]}, '
                    f'got groups={groups!r} with {self.bottleneck_mode!r}')
            return 1
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f'groups must be a positive int for '
                             f'bottleneck_mode={self.bottleneck_mode!r}, '
                             f'got {groups!r}')
        widths = {base_channels}
        for i in range(self.num_stages):
            planes = base_channels * 2**i
            widths.add(planes)
            if self.spec.group_pointwise:
                widths.add(planes * self.expansion)
        bad = sorted(w for w in widths if w % groups)
        if bad:
            raise ValueError(f'groups={groups} must divide every grouped '
                             f'width {sorted(widths)}; it does not divide '
                             f'{bad}')
        return groups

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
            act_cfg=self.act_cfg,
            fuse_bn_eval=self.fuse_bn_eval)
        self.maxpool = nn.MaxPool3d(
            kernel_size=(1, 3, 3),
            stride=(self.pool1_stride_t, self.pool1_stride_s,
                    self.pool1_stride_s),
            padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1))

    # ------------------------------------------------------------ weights
    @staticmethod
    def _pretrained_cfgs(
            init_cfg: Optional[Union[Dict, List[Dict]]]) -> List[Dict]:
        cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        return [c for c in cfgs if c and c.get('type') == 'Pretrained']

    def init_weights(self, pretrained: Optional[str] = None) -> None:
        """Init from scratch as ResNet3dCSN, or load a checkpoint strictly.

        Args:
            pretrained (str, optional): Overrides ``self.pretrained``.
                Defaults to None.
        """
        if pretrained:
            self.pretrained = pretrained
        cfgs = [] if self.init_cfg is None else (
            self.init_cfg if isinstance(self.init_cfg, list)
            else [self.init_cfg])
        pre_cfgs = self._pretrained_cfgs(self.init_cfg)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                kaiming_init(m)
            elif isinstance(m, _BatchNorm):
                constant_init(m, 1)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, CSNBlock):
                    constant_init(m.last_norm, 0)
        others = [c for c in cfgs if c not in pre_cfgs]
        if others:
            initialize(self, others)
        if self.pretrained is not None:
            self.load_pretrained(self.pretrained)
        elif pre_cfgs:
            cfg = pre_cfgs[-1]
            self.load_pretrained(
                cfg['checkpoint'], prefix=cfg.get('prefix') or 'backbone.')
        self._is_init = True

    def load_pretrained(self, checkpoint: str,
                        prefix: str = 'backbone.') -> None:
        """Load a 3D checkpoint of any known layout, strictly.

        Keys under ``prefix`` are selected and stripped when present (a
        full recognizer checkpoint); the rest goes through
        ``mmcsn.checkpoint.csn.convert_to_mmcsn``.

        Args:
            checkpoint (str): Local path or http(s) URL.
            prefix (str): Prefix of the backbone keys.
                Defaults to 'backbone.'.
        """
        # imported here: the converter module imports model code itself
        from mmcsn.checkpoint.csn import convert_to_mmcsn
        MMLogger.get_current_instance().info(f'load CSN from {checkpoint}')
        state_dict = unwrap_state_dict(
            load_checkpoint_file(_local_checkpoint(checkpoint)))
        if any(k.startswith(prefix) for k in state_dict):
            state_dict = type(state_dict)(
                (k[len(prefix):], v) for k, v in state_dict.items()
                if k.startswith(prefix))
        load_state_dict_checked(
            self, convert_to_mmcsn(state_dict), strict=True)

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


def _is_g(spec: BlockSpec) -> bool:
    return spec.unit == 'group' or spec.group_pointwise


def _flat(values: Iterable) -> List[int]:
    out = []
    for v in values:
        out.extend(v if isinstance(v, (list, tuple)) else [v])
    return out


def _local_checkpoint(checkpoint: str) -> str:
    """Return a local path, downloading an http(s) URL once to torch hub."""
    if not checkpoint.startswith(('http://', 'https://')):
        return checkpoint
    folder = os.path.join(torch.hub.get_dir(), 'checkpoints')
    path = os.path.join(folder, os.path.basename(checkpoint.split('?')[0]))
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        torch.hub.download_url_to_file(checkpoint, path)
    return path
