"""Rename tables of the CSN checkpoint layouts mmcsn converts (data only).

Each source has an ordered rename table: a list of ``(regex, template)``
rows; the first matching row wins and the template is ``str.format``-ed
with the regex's named groups (plus fields a converter resolves, such as
``{blk}`` for caffe2's global block index). A key no row matches is an
error in :mod:`mmcsn.checkpoint.csn`, never a silent drop.

Targets are mmcsn's recognizer layout, i.e. MMAction2's ``ResNet3dCSN``
names under ``backbone.`` plus ``cls_head.fc_cls.*``.
"""
from typing import Dict, List, Tuple

__all__ = [
    'MODES', 'VMZ_PT_COMMON_RULES', 'VMZ_PT_MODE_RULES',
    'PYTORCHVIDEO_RULES', 'CAFFE2_BN_SUFFIX', 'CAFFE2_STEM_HEAD_RULES',
    'CAFFE2_BLOCK_RULES', 'CAFFE2_IGNORED_BLOBS', 'MMACTION_BACKBONE_KEY',
    'OLD_IP_BARE_KEY', 'CSN_LAYOUTS'
]

Rules = List[Tuple[str, str]]

MODES = ('ir', 'ip')

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
MMACTION_BACKBONE_KEY = r'^(conv1|layer[1-4])\.'
# Old ip layout: a bare nn.Conv3d (no ConvModule) as conv2.0.
OLD_IP_BARE_KEY = r'^backbone\.layer[1-4]\.\d+\.conv2\.0\.weight$'

# Key patterns that identify each source layout, in detection order.
CSN_LAYOUTS: List[Tuple[str, str]] = [
    ('mmaction', r'^(backbone\.)?conv1\.conv\.weight$'),  # ConvModule stem
    ('vmz_pt', r'^stem\.0\.weight$'),  # torchvision VideoResNet stem
    ('pytorchvideo', r'^blocks\.0\.conv\.weight$'),  # ResNetBasicStem
    ('caffe2', r'^conv1_w$'),  # caffe2 blob name
]

