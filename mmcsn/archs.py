"""Architecture tables of every mmcsn family, as plain data.

One home for each table, below every layer that reads it: the backbones
build from these numbers and the checkpoint converters read depths off
them. This module imports nothing, so ``mmcsn.checkpoint`` (below
``mmcsn.models``) and the models share it without an upward import.
"""
from typing import Dict, Tuple

__all__ = [
    'CSN_STAGE_BLOCKS', 'BLRESNET_STAGE_BLOCKS', 'BLRESNET_STEM_CHANNELS',
    'BLRESNET_STAGE_CHANNELS'
]

# CSN: depth -> blocks per stage (res2..res5). The same counts serve every
# block family: with 'simple' blocks depth 26 / 50 rows give the standard
# ResNet3D-18 / -34 layouts (2-2-2-2 / 3-4-6-3) of the paper's block study.
CSN_STAGE_BLOCKS: Dict[int, Tuple[int, int, int, int]] = {
    26: (2, 2, 2, 2),  # VMZ caffe2 only (BLOCK_CONFIG[26])
    50: (3, 4, 6, 3),  # VMZ caffe2, MMAction2, PyTorchVideo
    101: (3, 4, 23, 3),  # VMZ caffe2, MMAction2, PyTorchVideo
    152: (3, 8, 36, 3),  # every implementation (VMZ PyTorch: only this)
}

# bLResNet: depth -> blocks per stage (layer1..layer4), as the official
# ``blvnet_tam_backbone`` (the ResNet table; in layer1..3 big = n - 1 and
# little = max(1, n // beta - 1) blocks, plus one fusion block).
BLRESNET_STAGE_BLOCKS: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),  # bLResNet-50: big 2/3/5, little 1/1/1 (beta 4)
    101: (4, 8, 18, 3),  # bLResNet-101: big 3/7/17, little 1/1/3 (beta 4)
    152: (5, 12, 30, 3),  # bLResNet-152: big 4/11/29, little 1/2/6 (beta 4)
}

# Width of the bLResNet stem; the little branch is this / alpha wide.
BLRESNET_STEM_CHANNELS = 64
# Output channels of layer1..layer4 (bottleneck expansion 4 included).
BLRESNET_STAGE_CHANNELS: Tuple[int, int, int, int] = (256, 512, 1024, 2048)
