"""Pure key conversion of CSN checkpoints into mmcsn's layout.

mmcsn's CSN state_dict is MMAction2's ``ResNet3dCSN`` layout, so a
recognizer checkpoint is ``backbone.*`` plus ``cls_head.fc_cls.*``. This
module converts, without any file I/O, from:

* VMZ PyTorch (``pt/vmz/models/csn.py``, torchvision ``VideoResNet`` names),
* VMZ caffe2 blobs (``c2/lib/models/builder/video_model.py`` names),
* PyTorchVideo (``pytorchvideo/models/csn.py``, ``create_csn``),
* MMAction2 itself (identity; refuses pre-mid-2021 ip checkpoints).

Each source has an ordered rename table: a list of ``(regex, template)``
rows, the first matching row wins, the template is ``str.format``-ed with
the regex's named groups. A key no row matches is an error, never a silent
drop, so a partial conversion cannot happen.

:func:`convert_to_mmcsn` detects the layout from the key names and returns
a backbone-relative state_dict (what ``CSN(pretrained=...)`` loads);
:func:`convert_to_mmcsn_recognizer` returns the full recognizer state_dict
the CLIs in ``tools/convert/`` write.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..version import __version__
from .io import CheckpointError

__all__ = [
    'CSN_STAGE_BLOCKS', 'CSN_LAYOUTS', 'detect_csn_layout',
    'infer_csn_arch', 'vmz_pt_to_mmcsn', 'caffe2_to_mmcsn',
    'pytorchvideo_to_mmcsn', 'mmaction_to_mmcsn', 'convert_to_mmcsn',
    'convert_to_mmcsn_recognizer', 'recognizer_to_backbone',
    'config_hints', 'make_converted_checkpoint', 'describe_conversion'
]

StateDict = Dict[str, torch.Tensor]
Rules = List[Tuple[str, str]]

# Blocks per stage for each depth the converters accept.
CSN_STAGE_BLOCKS: Dict[int, Tuple[int, int, int, int]] = {
    26: (2, 2, 2, 2),  # VMZ caffe2 only (BLOCK_CONFIG[26])
    50: (3, 4, 6, 3),  # VMZ caffe2, MMAction2, PyTorchVideo
    101: (3, 4, 23, 3),  # VMZ caffe2, MMAction2, PyTorchVideo
    152: (3, 8, 36, 3),  # every implementation (VMZ PyTorch: only this)
}

_MODES = ('ir', 'ip')

# BN tensor names of torch (shared by VMZ PT, PyTorchVideo and MMAction2).
_BN = r'(?P<bn>weight|bias|running_mean|running_var|num_batches_tracked)'
# A block of torchvision/MMAction2 style: ``layer<stage>.<index>``.
_BLK = r'(?P<blk>layer[1-4]\.\d+)'

# ---------------------------------------------------------------- VMZ PT
# Rows shared by ir and ip (torchvision VideoResNet as in VMZ pt/).
VMZ_PT_COMMON_RULES: Rules = [
    # stem: Sequential(conv, BN, ReLU, MaxPool) -> ConvModule conv1
    (r'^stem\.0\.weight$', 'backbone.conv1.conv.weight'),
    # stem BN
    (r'^stem\.1\.' + _BN + '$', 'backbone.conv1.bn.{bn}'),
    # 1x1x1 reduce conv: conv1 = Sequential(conv, BN, ReLU)
    (r'^' + _BLK + r'\.conv1\.0\.weight$', 'backbone.{blk}.conv1.conv.weight'),
    # BN of the reduce conv
    (r'^' + _BLK + r'\.conv1\.1\.' + _BN + '$',
     'backbone.{blk}.conv1.bn.{bn}'),
    # 1x1x1 expand conv: conv3 = Sequential(conv, BN)
    (r'^' + _BLK + r'\.conv3\.0\.weight$', 'backbone.{blk}.conv3.conv.weight'),
    # BN of the expand conv
    (r'^' + _BLK + r'\.conv3\.1\.' + _BN + '$',
     'backbone.{blk}.conv3.bn.{bn}'),
    # shortcut projection conv
    (r'^' + _BLK + r'\.downsample\.0\.weight$',
     'backbone.{blk}.downsample.conv.weight'),
    # shortcut projection BN
    (r'^' + _BLK + r'\.downsample\.1\.' + _BN + '$',
     'backbone.{blk}.downsample.bn.{bn}'),
    # classifier
    (r'^fc\.(?P<p>weight|bias)$', 'cls_head.fc_cls.{p}'),
]

# Rows of the middle unit, per block mode.
VMZ_PT_MODE_RULES: Dict[str, Rules] = {
    'ir': [
        # conv2 = Sequential(depthwise conv, BN, ReLU): the depthwise conv
        (r'^' + _BLK + r'\.conv2\.0\.weight$',
         'backbone.{blk}.conv2.0.conv.weight'),
        # its BN
        (r'^' + _BLK + r'\.conv2\.1\.' + _BN + '$',
         'backbone.{blk}.conv2.0.bn.{bn}'),
    ],
    'ip': [
        # conv2.0 = IPConv3DDepthwise(1x1x1, BN, depthwise): the 1x1x1
        (r'^' + _BLK + r'\.conv2\.0\.0\.weight$',
         'backbone.{blk}.conv2.0.conv.weight'),
        # the BN between 1x1x1 and depthwise (no ReLU)
        (r'^' + _BLK + r'\.conv2\.0\.1\.' + _BN + '$',
         'backbone.{blk}.conv2.0.bn.{bn}'),
        # the depthwise 3x3x3
        (r'^' + _BLK + r'\.conv2\.0\.2\.weight$',
         'backbone.{blk}.conv2.1.conv.weight'),
        # conv2.1: BN after the depthwise conv
        (r'^' + _BLK + r'\.conv2\.1\.' + _BN + '$',
         'backbone.{blk}.conv2.1.bn.{bn}'),
    ],
}

# ---------------------------------------------------------- PyTorchVideo
_PTV_BLK = r'^blocks\.(?P<s>[1-4])\.res_blocks\.(?P<b>\d+)\.'
PYTORCHVIDEO_RULES: Rules = [
    # stem conv (ResNetBasicStem.conv)
    (r'^blocks\.0\.conv\.weight$', 'backbone.conv1.conv.weight'),
    # stem BN (ResNetBasicStem.norm)
    (r'^blocks\.0\.norm\.' + _BN + '$', 'backbone.conv1.bn.{bn}'),
    # shortcut projection conv (ResBlock.branch1_conv)
    (_PTV_BLK + r'branch1_conv\.weight$',
     'backbone.layer{s}.{b}.downsample.conv.weight'),
    # shortcut projection BN (ResBlock.branch1_norm)
    (_PTV_BLK + r'branch1_norm\.' + _BN + '$',
     'backbone.layer{s}.{b}.downsample.bn.{bn}'),
    # 1x1x1 reduce conv (BottleneckBlock.conv_a)
    (_PTV_BLK + r'branch2\.conv_a\.weight$',
     'backbone.layer{s}.{b}.conv1.conv.weight'),
    # its BN (norm_a)
    (_PTV_BLK + r'branch2\.norm_a\.' + _BN + '$',
     'backbone.layer{s}.{b}.conv1.bn.{bn}'),
    # depthwise 3x3x3 (conv_b, groups = width)
    (_PTV_BLK + r'branch2\.conv_b\.weight$',
     'backbone.layer{s}.{b}.conv2.0.conv.weight'),
    # its BN (norm_b)
    (_PTV_BLK + r'branch2\.norm_b\.' + _BN + '$',
     'backbone.layer{s}.{b}.conv2.0.bn.{bn}'),
    # 1x1x1 expand conv (conv_c)
    (_PTV_BLK + r'branch2\.conv_c\.weight$',
     'backbone.layer{s}.{b}.conv3.conv.weight'),
    # its BN (norm_c)
    (_PTV_BLK + r'branch2\.norm_c\.' + _BN + '$',
     'backbone.layer{s}.{b}.conv3.bn.{bn}'),
    # classifier (ResNetBasicHead.proj)
    (r'^blocks\.5\.proj\.(?P<p>weight|bias)$', 'cls_head.fc_cls.{p}'),
]

# ---------------------------------------------------------------- caffe2
# caffe2 SpatialBN blob suffixes. ``riv`` holds the running VARIANCE
# despite its name (it is the op's running ``var`` input).
CAFFE2_BN_SUFFIX: Dict[str, str] = {
    's': 'weight',
    'b': 'bias',
    'rm': 'running_mean',
    'riv': 'running_var',
}
_C2BN = r'(?P<bn>s|b|rm|riv)'
_C2K = r'(?P<k>\d+)'

# Rows for blobs outside the residual blocks; ``{bn}`` is a torch BN name.
CAFFE2_STEM_HEAD_RULES: Rules = [
    # stem conv
    (r'^conv1_w$', 'backbone.conv1.conv.weight'),
    # stem BN (named after the fused spatbn+relu)
    (r'^conv1_spatbn_relu_' + _C2BN + '$', 'backbone.conv1.bn.{bn}'),
    # classifier; L<N> is the class count (400 Kinetics, 487 Sports1M, ...)
    (r'^last_out_L\d+_w$', 'cls_head.fc_cls.weight'),
    # classifier bias
    (r'^last_out_L\d+_b$', 'cls_head.fc_cls.bias'),
    # shortcut projection conv of global block k
    (r'^shortcut_projection_' + _C2K + '_w$',
     'backbone.{blk}.downsample.conv.weight'),
    # shortcut projection BN of global block k
    (r'^shortcut_projection_' + _C2K + '_spatbn_' + _C2BN + '$',
     'backbone.{blk}.downsample.bn.{bn}'),
]

# Rows per block mode; ``k`` is the global block index, ``{blk}`` its
# ``layerL.B`` name. VMZ's builder bumps ``comp_idx`` once per add_conv
# and once more inside add_channelwise_conv, so an ir block ('3d-sep')
# is numbered 1, 3, 4 while an ip block ('0.3d') is numbered 1, 2, 3.
CAFFE2_BLOCK_RULES: Dict[str, Rules] = {
    'ir': [
        # 1x1x1 reduce conv
        (r'^comp_' + _C2K + '_conv_1_w$', 'backbone.{blk}.conv1.conv.weight'),
        # its BN
        (r'^comp_' + _C2K + '_spatbn_1_' + _C2BN + '$',
         'backbone.{blk}.conv1.bn.{bn}'),
        # depthwise 3x3x3 (index 3: counted twice by the builder)
        (r'^comp_' + _C2K + '_conv_3_w$',
         'backbone.{blk}.conv2.0.conv.weight'),
        # its BN
        (r'^comp_' + _C2K + '_spatbn_3_' + _C2BN + '$',
         'backbone.{blk}.conv2.0.bn.{bn}'),
        # 1x1x1 expand conv
        (r'^comp_' + _C2K + '_conv_4_w$', 'backbone.{blk}.conv3.conv.weight'),
        # its BN
        (r'^comp_' + _C2K + '_spatbn_4_' + _C2BN + '$',
         'backbone.{blk}.conv3.bn.{bn}'),
    ],
    'ip': [
        # 1x1x1 reduce conv
        (r'^comp_' + _C2K + '_conv_1_w$', 'backbone.{blk}.conv1.conv.weight'),
        # its BN
        (r'^comp_' + _C2K + '_spatbn_1_' + _C2BN + '$',
         'backbone.{blk}.conv1.bn.{bn}'),
        # extra 1x1x1 before the depthwise conv ('_middle')
        (r'^comp_' + _C2K + '_conv_2_middle_w$',
         'backbone.{blk}.conv2.0.conv.weight'),
        # its BN (no ReLU after it in block type '0.3d')
        (r'^comp_' + _C2K + '_spatbn_2_middle_' + _C2BN + '$',
         'backbone.{blk}.conv2.0.bn.{bn}'),
        # depthwise 3x3x3
        (r'^comp_' + _C2K + '_conv_2_w$',
         'backbone.{blk}.conv2.1.conv.weight'),
        # its BN
        (r'^comp_' + _C2K + '_spatbn_2_' + _C2BN + '$',
         'backbone.{blk}.conv2.1.bn.{bn}'),
        # 1x1x1 expand conv
        (r'^comp_' + _C2K + '_conv_3_w$', 'backbone.{blk}.conv3.conv.weight'),
        # its BN
        (r'^comp_' + _C2K + '_spatbn_3_' + _C2BN + '$',
         'backbone.{blk}.conv3.bn.{bn}'),
    ],
}

# Training state a caffe2 pickle may hold next to the weights; dropped.
CAFFE2_IGNORED_BLOBS: Tuple[str, ...] = (
    r'_momentum$',  # SGD momentum buffers
    r'_(sm|siv)$',  # SpatialBN saved batch mean / inverse std
    r'^(lr|LR|ITER|model_iter|optimizer_iteration)$',  # solver counters
    r'^__.*__$',  # file headers (scipy .mat style, __version__)
)

# ---------------------------------------------------------- MMAction2
# A key of a backbone-relative MMAction2 checkpoint (no ``backbone.``).
_MMACTION_BACKBONE_KEY = r'^(conv1|layer[1-4])\.'
# Old ip layout: a bare nn.Conv3d (no ConvModule) as conv2.0.
_OLD_IP_BARE = r'^backbone\.layer[1-4]\.\d+\.conv2\.0\.weight$'

# Key patterns that identify each source layout, in detection order.
CSN_LAYOUTS: List[Tuple[str, str]] = [
    ('mmaction', r'^(backbone\.)?conv1\.conv\.weight$'),  # ConvModule stem
    ('vmz_pt', r'^stem\.0\.weight$'),  # torchvision VideoResNet stem
    ('pytorchvideo', r'^blocks\.0\.conv\.weight$'),  # ResNetBasicStem
    ('caffe2', r'^conv1_w$'),  # caffe2 blob name
]


# ------------------------------------------------------------ helpers
def _check_mode(mode: Optional[str]) -> None:
    if mode is not None and mode not in _MODES:
        raise ValueError(
            f'mode must be one of {_MODES} or None (detect), got {mode!r}')


def _apply_rules(
    sd: Mapping[str, object],
    rules: Rules,
    source: str,
    resolve: Optional[Callable[[Dict[str, str]], Dict[str, str]]] = None,
) -> StateDict:
    """Rename every key with the first matching row of ``rules``.

    Raises:
        CheckpointError: Keys no row matches, or two keys mapped to one.
    """
    compiled = [(re.compile(pattern), template)
                for pattern, template in rules]
    out: StateDict = OrderedDict()
    unmatched = []
    for key, value in sd.items():
        for pattern, template in compiled:
            match = pattern.match(key)
            if match:
                fields = match.groupdict()
                if resolve is not None:
                    fields = resolve(fields)
                new_key = template.format(**fields)
                if new_key in out:
                    raise CheckpointError(
                        f'{source}: two keys map to {new_key!r} '
                        f'(second: {key!r})')
                out[new_key] = _to_tensor(value, key)
                break
        else:
            unmatched.append(key)
    if unmatched:
        shown = ', '.join(unmatched[:8])
        more = f' (+{len(unmatched) - 8} more)' if len(unmatched) > 8 else ''
        raise CheckpointError(
            f'{source}: {len(unmatched)} key(s) match no rename rule: '
            f'{shown}{more}. Is this the right converter and mode?')
    return out


def _to_tensor(value: object, key: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in 'fiub':
            raise CheckpointError(
                f'{key!r} is a {array.dtype} array, not numeric weights')
        return torch.from_numpy(np.ascontiguousarray(array).copy())
    raise CheckpointError(
        f'{key!r} holds a {type(value).__name__}, not a tensor or array')


def _add_num_batches_tracked(sd: StateDict) -> StateDict:
    """Give every BN the ``num_batches_tracked`` buffer torch expects."""
    out: StateDict = OrderedDict()
    for key, value in sd.items():
        out[key] = value
        if key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            if counter not in sd:
                out[counter] = torch.tensor(0, dtype=torch.long)
    return out


def _flatten_vectors(sd: StateDict) -> StateDict:
    """Make BN vectors and the fc bias 1-D (caffe2/.mat may store 2-D)."""
    for key, value in sd.items():
        vector = ('.bn.' in key or key.endswith('fc_cls.bias')) \
            and not key.endswith('num_batches_tracked')
        if vector and value.dim() != 1:
            sd[key] = value.reshape(-1)
    return sd


def _block_names(depth: int) -> List[str]:
    """``layerL.B`` of every block, indexed by the global block index."""
    return [
        f'layer{stage + 1}.{index}'
        for stage, count in enumerate(CSN_STAGE_BLOCKS[depth])
        for index in range(count)
    ]


# ------------------------------------------------------------- public
def detect_csn_layout(sd: Mapping[str, object]) -> str:
    """Name the layout of a CSN state_dict from its key names.

    Args:
        sd (Mapping[str, Tensor | ndarray]): An unwrapped state_dict (no
            ``state_dict``/``module.`` wrapping) or caffe2 blob dict.

    Returns:
        str: One of 'mmaction', 'vmz_pt', 'pytorchvideo', 'caffe2'.

    Raises:
        CheckpointError: No known stem key is present.
    """
    for layout, pattern in CSN_LAYOUTS:
        regex = re.compile(pattern)
        if any(regex.match(key) for key in sd):
            return layout
    shown = ', '.join(list(sd)[:5])
    raise CheckpointError(
        'unknown CSN checkpoint layout: expected a stem key of one of '
        f'{[p for _, p in CSN_LAYOUTS]} (MMAction2, VMZ PyTorch, '
        f'PyTorchVideo, VMZ caffe2); first keys: {shown}')


def vmz_pt_to_mmcsn(sd: Mapping[str, torch.Tensor],
                    mode: Optional[str] = None) -> StateDict:
    """Convert a VMZ PyTorch (``ir_csn_152``/``ip_csn_152``) state_dict.

    Args:
        sd (Mapping[str, Tensor]): VMZ keys (``stem.0.weight``, ...).
        mode (str, optional): 'ir' or 'ip'; None detects it from the
            ``conv2.0.0`` keys only ip has. Defaults to None.

    Returns:
        OrderedDict[str, Tensor]: Recognizer layout (``backbone.*`` and,
        when ``fc`` is present, ``cls_head.fc_cls.*``).
    """
    _check_mode(mode)
    found = 'ip' if any(
        re.search(r'\.conv2\.0\.0\.weight$', k) for k in sd) else 'ir'
    if mode is not None and mode != found:
        raise ValueError(f'mode={mode!r} but the checkpoint has {found} '
                         'blocks (only ip has conv2.0.0 keys)')
    rules = VMZ_PT_MODE_RULES[found] + VMZ_PT_COMMON_RULES
    return _add_num_batches_tracked(_apply_rules(sd, rules, 'VMZ PyTorch'))


def pytorchvideo_to_mmcsn(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Convert a PyTorchVideo ``create_csn`` state_dict (ir blocks only).

    The weights map exactly, but PyTorchVideo builds BN with eps 1e-5 and
    (``create_csn``'s default) no stem max-pool: the model must be built
    with ``norm_cfg=dict(type='BN3d', requires_grad=True, eps=1e-5)`` and
    ``with_pool1=False`` (the hub ``csn_r101`` has the pool: keep
    ``with_pool1=True``) to give the same outputs; see
    :func:`config_hints`.

    Args:
        sd (Mapping[str, Tensor]): PyTorchVideo keys (``blocks.0.conv``...).

    Returns:
        OrderedDict[str, Tensor]: Recognizer layout.
    """
    return _add_num_batches_tracked(
        _apply_rules(sd, PYTORCHVIDEO_RULES, 'PyTorchVideo'))


def caffe2_to_mmcsn(blobs: Mapping[str, object],
                    depth: Optional[int] = None,
                    mode: Optional[str] = None,
                    ignore: Tuple[str, ...] = CAFFE2_IGNORED_BLOBS
                    ) -> StateDict:
    """Convert VMZ caffe2 CSN blobs (ir '3d-sep' or ip '0.3d' blocks).

    Args:
        blobs (Mapping[str, ndarray | Tensor]): Blob name -> array, or a
            dict with a ``'blobs'`` entry (the VMZ ``.pkl`` layout).
        depth (int, optional): 26, 50, 101 or 152; None infers it from the
            number of blocks. Defaults to None.
        mode (str, optional): 'ir' or 'ip'; None detects it (ip has
            ``_middle`` blobs). Defaults to None.
        ignore (tuple[str]): Regexes of blobs to drop (training state).
            Defaults to ``CAFFE2_IGNORED_BLOBS``.

    Returns:
        OrderedDict[str, Tensor]: Recognizer layout, with
        ``num_batches_tracked`` added for every BN.
    """
    _check_mode(mode)
    if isinstance(blobs.get('blobs'), Mapping):
        blobs = blobs['blobs']
    dropped = [re.compile(p) for p in ignore]
    blobs = OrderedDict((k, v) for k, v in blobs.items()
                        if not any(p.search(k) for p in dropped))
    if 'comp_0_conv_2_middle_w' in blobs:
        found = 'ip'
    elif 'comp_0_conv_4_w' in blobs:
        found = 'ir'
    else:
        raise CheckpointError(
            'caffe2 blobs hold no CSN block: neither comp_0_conv_4_w (ir, '
            "block type '3d-sep') nor comp_0_conv_2_middle_w (ip, '0.3d') "
            'is present (R3D / R(2+1)D models are not CSN)')
    if mode is not None and mode != found:
        raise ValueError(
            f'mode={mode!r} but the blobs are {found}-CSN blocks')
    indices = {
        int(m.group(1))
        for m in map(re.compile(r'^comp_(\d+)_').match, blobs) if m
    }
    num_blocks = max(indices) + 1
    by_count = {sum(v): d for d, v in CSN_STAGE_BLOCKS.items()}
    if depth is None:
        if num_blocks not in by_count:
            raise CheckpointError(
                f'caffe2 blobs have {num_blocks} blocks, which matches no '
                f'depth of {list(CSN_STAGE_BLOCKS)}')
        depth = by_count[num_blocks]
    elif depth not in CSN_STAGE_BLOCKS:
        raise ValueError(f'depth must be one of {list(CSN_STAGE_BLOCKS)}, '
                         f'got {depth!r}')
    elif sum(CSN_STAGE_BLOCKS[depth]) != num_blocks:
        raise CheckpointError(
            f'depth={depth} has {sum(CSN_STAGE_BLOCKS[depth])} blocks but '
            f'the blobs have {num_blocks} (comp_0..comp_{num_blocks - 1})')
    names = _block_names(depth)

    def resolve(fields: Dict[str, str]) -> Dict[str, str]:
        fields = dict(fields)
        if fields.get('bn') is not None:
            fields['bn'] = CAFFE2_BN_SUFFIX[fields['bn']]
        if fields.get('k') is not None:
            if int(fields['k']) >= len(names):
                raise CheckpointError(
                    f"caffe2 block index {fields['k']} is beyond the "
                    f'{len(names)} blocks of depth {depth}')
            fields['blk'] = names[int(fields['k'])]
        return fields

    rules = CAFFE2_BLOCK_RULES[found] + CAFFE2_STEM_HEAD_RULES
    sd = _apply_rules(blobs, rules, 'VMZ caffe2', resolve)
    return _add_num_batches_tracked(_flatten_vectors(sd))


def mmaction_to_mmcsn(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Normalise an MMAction2 CSN state_dict to the recognizer layout.

    Backbone keys are kept as they are (adding ``backbone.`` when the
    state_dict is backbone-relative); ``cls_head.*`` is kept.

    Args:
        sd (Mapping[str, Tensor]): ``ResNet3dCSN`` keys, with or without
            the ``backbone.`` prefix.

    Returns:
        OrderedDict[str, Tensor]: Recognizer layout.

    Raises:
        CheckpointError: The checkpoint is an old MMAction2 ip-CSN one
            (before mid-2021: no BN after the extra 1x1x1 conv), or holds
            keys that are neither backbone nor head.
    """
    out: StateDict = OrderedDict()
    stray = []
    for key, value in sd.items():
        if re.match(_MMACTION_BACKBONE_KEY, key):
            key = 'backbone.' + key
        if key.startswith(('backbone.', 'cls_head.')):
            out[key] = value
        elif not key.startswith('data_preprocessor.'):
            stray.append(key)
    if stray:
        raise CheckpointError(
            f'MMAction2 CSN checkpoint has {len(stray)} key(s) outside '
            f'backbone/cls_head: {", ".join(stray[:5])}')
    old_bare = [k for k in out if re.match(_OLD_IP_BARE, k)]
    old_nobn = [
        k for k in out if k.endswith('.conv2.0.conv.weight')
        and k.replace('.conv2.0.conv.weight', '.conv2.1.conv.weight') in out
        and k.replace('.conv.weight', '.bn.weight') not in out
    ]
    if old_bare or old_nobn:
        example = (old_bare or old_nobn)[0]
        raise CheckpointError(
            'this is an old MMAction2 ip-CSN checkpoint (saved before '
            "MMAction2's mid-2021 change that added a BN after the extra "
            f'1x1x1 conv of every ip block, e.g. {example!r} has no BN): '
            'its weights do not fit the current ip block and cannot be '
            'converted exactly. Use a current MMAction2 checkpoint or '
            'convert the original VMZ weights (tools/convert/).')
    return out


def recognizer_to_backbone(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Keep the ``backbone.*`` entries of a recognizer state_dict, unprefixed.
    """
    return OrderedDict((k[len('backbone.'):], v) for k, v in sd.items()
                       if k.startswith('backbone.'))


def _unwrap(obj: Mapping) -> Mapping:
    """Peel a ``state_dict``/``model``/``model_state``/``blobs`` wrapper
    and the ``module.`` prefix."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f'expected a state_dict mapping, got {type(obj).__name__}')
    for wrapper in ('state_dict', 'model', 'model_state', 'blobs'):
        if isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if any(k.startswith('module.') for k in obj):
        obj = OrderedDict(
            (k[len('module.'):] if k.startswith('module.') else k, v)
            for k, v in obj.items())
    return obj


def convert_to_mmcsn_recognizer(sd: Mapping[str, object],
                                source: str = 'auto',
                                mode: Optional[str] = None,
                                depth: Optional[int] = None) -> StateDict:
    """Convert any known CSN checkpoint to a recognizer state_dict.

    Args:
        sd (Mapping): A state_dict / blob dict, possibly wrapped in
            ``state_dict``, ``model`` or ``blobs`` and ``module.``-prefixed.
        source (str): 'auto' (detect) or one of 'mmaction', 'vmz_pt',
            'pytorchvideo', 'caffe2'. Defaults to 'auto'.
        mode (str, optional): Expected 'ir'/'ip' (checked; None accepts
            what is found). Defaults to None.
        depth (int, optional): Expected depth (checked; None accepts what
            is found). Defaults to None.

    Returns:
        OrderedDict[str, Tensor]: ``backbone.*`` (+ ``cls_head.fc_cls.*``
        when the source has a classifier).
    """
    _check_mode(mode)
    layouts = [name for name, _ in CSN_LAYOUTS]
    if source != 'auto' and source not in layouts:
        raise ValueError(
            f"source must be 'auto' or one of {layouts}, got {source!r}")
    sd = _unwrap(sd)
    found = detect_csn_layout(sd)
    if source != 'auto' and source != found:
        raise CheckpointError(
            f'source={source!r} but the keys are in the {found!r} layout')
    if found == 'caffe2':
        out = caffe2_to_mmcsn(sd, depth=depth, mode=mode)
    elif found == 'vmz_pt':
        out = vmz_pt_to_mmcsn(sd, mode=mode)
    elif found == 'pytorchvideo':
        out = pytorchvideo_to_mmcsn(sd)
    else:
        out = mmaction_to_mmcsn(sd)
    arch = infer_csn_arch(out)
    for name, want in (('mode', mode), ('depth', depth)):
        got = arch['bottleneck_mode' if name == 'mode' else 'depth']
        if want is not None and got != want:
            raise ValueError(
                f'{name}={want!r} but the checkpoint is {name} {got!r}')
    return out


def convert_to_mmcsn(sd: Mapping[str, object]) -> StateDict:
    """Convert any known CSN checkpoint to a backbone-relative state_dict.

    This is what ``CSN(pretrained=...)`` loads: the layout (MMAction2,
    VMZ PyTorch, PyTorchVideo, VMZ caffe2) is detected from the key names;
    classifier weights are dropped.

    Args:
        sd (Mapping): See :func:`convert_to_mmcsn_recognizer`.

    Returns:
        OrderedDict[str, Tensor]: Keys like ``conv1.conv.weight``.
    """
    return recognizer_to_backbone(convert_to_mmcsn_recognizer(sd))


def infer_csn_arch(sd: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Read depth, block mode and class count off a recognizer state_dict.

    Args:
        sd (Mapping[str, Tensor]): Recognizer layout (``backbone.*``).

    Returns:
        dict: ``depth`` (int or None when the block counts match no
        known depth), ``stage_blocks``, ``bottleneck_mode``,
        ``num_classes`` (None without a head), ``expansion``.
    """
    counts = [0, 0, 0, 0]
    for key in sd:
        m = re.match(r'^backbone\.layer([1-4])\.(\d+)\.', key)
        if m:
            stage, index = int(m.group(1)) - 1, int(m.group(2))
            counts[stage] = max(counts[stage], index + 1)
    stage_blocks = tuple(counts)
    depth = {v: d for d, v in CSN_STAGE_BLOCKS.items()}.get(stage_blocks)
    mode = 'ip' if any(
        k.endswith('.conv2.1.conv.weight') for k in sd) else 'ir'
    head = sd.get('cls_head.fc_cls.weight')
    width = sd.get('backbone.layer1.0.conv1.conv.weight')
    expand = sd.get('backbone.layer1.0.conv3.conv.weight')
    expansion = (int(expand.shape[0]) // int(width.shape[0])
                 if width is not None and expand is not None else None)
    return dict(
        depth=depth,
        stage_blocks=stage_blocks,
        bottleneck_mode=mode,
        num_classes=None if head is None else int(head.shape[0]),
        expansion=expansion)


def config_hints(source: str) -> Dict[str, str]:
    """Config arguments a converted checkpoint needs to match its source.

    Args:
        source (str): A layout name of :data:`CSN_LAYOUTS`.

    Returns:
        dict: ``model.backbone`` argument -> value to set, as text.
    """
    if source == 'pytorchvideo':
        return {
            'norm_cfg': "dict(type='BN3d', requires_grad=True, eps=1e-5)",
            'with_pool1': 'False  (create_csn default; the hub model '
            'csn_r101 has the stem pool: keep True)',
        }
    if source == 'caffe2':
        return {
            'with_pool1': 'True for the VMZ zoo models (trained and tested '
            'with --use_pool1=1); False for models built with the '
            'builder default use_pool1=0',
        }
    return {}


def make_converted_checkpoint(sd: Mapping[str, torch.Tensor], source: str,
                              src_name: str) -> Dict[str, object]:
    """Wrap a converted recognizer state_dict as an mmengine checkpoint.

    Args:
        sd (Mapping[str, Tensor]): Recognizer layout.
        source (str): The layout it was converted from.
        src_name (str): The source file's name, for the record.

    Returns:
        dict: ``{'state_dict': ..., 'meta': ...}``; ``meta`` holds only
        str/int/tuple values, so ``torch.load(weights_only=True)`` reads it.
    """
    arch = infer_csn_arch(sd)
    meta = dict(
        converted_from=src_name,
        source_layout=source,
        mmcsn_version=__version__,
        depth=arch['depth'],
        stage_blocks=arch['stage_blocks'],
        bottleneck_mode=arch['bottleneck_mode'],
        num_classes=arch['num_classes'],
        config_hints=config_hints(source))
    return dict(state_dict=OrderedDict(sd), meta=meta)


def describe_conversion(checkpoint: Mapping[str, object], dst: str) -> str:
    """A human summary of :func:`make_converted_checkpoint`'s output."""
    sd, meta = checkpoint['state_dict'], checkpoint['meta']
    params = sum(v.numel() for k, v in sd.items()
                 if not k.endswith(('running_mean', 'running_var',
                                    'num_batches_tracked')))
    head = meta['num_classes']
    depth = meta['depth']
    arch = f'depth={depth}' if depth else \
        f"stage_blocks={tuple(meta['stage_blocks'])}"
    lines = [
        f"converted {meta['converted_from']} ({meta['source_layout']}) "
        f'-> {dst}',
        f"  {meta['bottleneck_mode']}-CSN {arch.replace('=', ' ')}, "
        f'{len(sd)} tensors, {params / 1e6:.2f}M parameters, '
        + (f'classifier: {head} classes' if head else 'no classifier'),
        f"  config: model.backbone: type='CSN', {arch}, "
        f"bottleneck_mode='{meta['bottleneck_mode']}'"
        + (f'; model.cls_head.num_classes={head}' if head else ''),
    ]
    for arg, value in meta['config_hints'].items():
        lines.append(f'  also set model.backbone.{arg}={value}')
    lines.append(f'  test: python tools/test.py CONFIG {dst}')
    return '\n'.join(lines)
