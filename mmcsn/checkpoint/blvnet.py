"""Pure key conversion of official bLVNet-TAM / bLResNet checkpoints.

Three source flavours (``configs/blvnet/README.md``, "Reproduce a row"):

* released bLVNet-TAM models: a plain ``bLVNet_TAM.state_dict()`` with
  ``baseline_model.*`` and ``new_fc.*`` (or ``baseline_model.fc.*`` for
  models trained with dropout 0);
* ``train.py`` checkpoints: the same keys behind ``module.`` inside
  ``['state_dict']``;
* ImageNet bLResNet (IBM/BigLittleNet): ``['state_dict']`` with
  ``module.conv1.weight`` ... ``module.fc.*`` and no TAM weights.

mmcsn's ``bLResNet`` keeps the official module names, so conversion is a
prefix change. Shared by ``tools/convert/blvnet_to_mmcsn.py`` and
``bLResNet.init_weights``; nothing here reads or writes files.
"""
from collections import OrderedDict
from functools import partial
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..archs import BLRESNET_STAGE_BLOCKS, BLRESNET_STEM_CHANNELS
from .errors import CheckpointError, WrongFamilyError
from .intake import CheckpointFamily
from .io import unwrap_state_dict

__all__ = [
    'BLVNET_TAM_RENAMES', 'BLRESNET_IMAGENET_RENAMES', 'rename_keys',
    'detect_blvnet_format', 'blvnet_tam_to_mmcsn',
    'blresnet_imagenet_to_mmcsn', 'convert_blvnet_checkpoint',
    'split_prefix', 'is_tam_key', 'infer_blvnet_arch', 'blresnet_family'
]

StateDict = Dict[str, torch.Tensor]
RenameTable = Sequence[Tuple[str, Optional[str]]]

# Ordered (source prefix -> target prefix); the first match wins, so the
# more specific rule comes first. ``None`` drops the key (reported).
BLVNET_TAM_RENAMES: RenameTable = (
    # dropout == 0 models: the backbone's fc is the classifier
    ('baseline_model.fc.', 'cls_head.fc_cls.'),
    # the backbone: same module names inside mmcsn's bLResNet
    ('baseline_model.', 'backbone.'),
    # dropout > 0 models: the top-level classifier after the Dropout
    ('new_fc.', 'cls_head.fc_cls.'),
)

BLRESNET_IMAGENET_RENAMES: RenameTable = (
    # the 1000-class ImageNet classifier has no place in a video model
    ('fc.', None),
    # everything else: same names as bLResNet (which adds only TAMs)
    ('', 'backbone.'),
)

FORMATS = ('blvnet_tam', 'blresnet_imagenet', 'mmcsn')

# Stem keys every bLResNet has (and no other family mmcsn knows).
_BLRESNET_STEM = ('conv1.weight', 'b_conv0.weight', 'bl_init.weight')


def rename_keys(state_dict: Mapping[str, torch.Tensor],
                table: RenameTable) -> Tuple[StateDict, List[str]]:
    """Apply an ordered prefix table to every key.

    Args:
        state_dict (Mapping[str, Tensor]): Source weights.
        table (Sequence[tuple[str, str | None]]): ``(prefix, new_prefix)``
            rules, first match wins; ``new_prefix=None`` drops the key.

    Returns:
        tuple[OrderedDict, list[str]]: The renamed weights (order kept)
        and the dropped source keys.

    Raises:
        CheckpointError: A key matches no rule, or two keys map to one.
    """
    out, dropped, origin = OrderedDict(), [], {}
    for key, value in state_dict.items():
        for prefix, new_prefix in table:
            if key.startswith(prefix):
                break
        else:
            raise CheckpointError(
                f'unexpected key {key!r}: it matches none of the prefixes '
                f'{[p for p, _ in table]}')
        if new_prefix is None:
            dropped.append(key)
            continue
        new_key = new_prefix + key[len(prefix):]
        if new_key in out:
            raise CheckpointError(
                f'keys {origin[new_key]!r} and {key!r} both map to '
                f'{new_key!r}')
        origin[new_key] = key
        out[new_key] = value
    return out, dropped


def detect_blvnet_format(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which flavour an unwrapped (``module.``-free) state_dict is.

    Returns:
        str: ``'blvnet_tam'`` (released / train.py bLVNet-TAM),
        ``'blresnet_imagenet'`` (IBM/BigLittleNet) or ``'mmcsn'``
        (already converted: ``backbone.*`` / ``cls_head.*``).

    Raises:
        WrongFamilyError: None of them (e.g. a CSN checkpoint).
    """
    keys = list(state_dict)
    if any(k.startswith(('baseline_model.', 'new_fc.')) for k in keys):
        return 'blvnet_tam'
    backbone = {k[len('backbone.'):] for k in keys
                if k.startswith('backbone.')}
    # a backbone must be a bLResNet (a CSN recognizer is another family)
    if set(_BLRESNET_STEM) <= backbone or not backbone and any(
            k.startswith('cls_head.') for k in keys):
        return 'mmcsn'
    if set(_BLRESNET_STEM) <= set(keys):
        return 'blresnet_imagenet'
    raise WrongFamilyError(
        f'not a bLVNet-TAM / bLResNet checkpoint (wrong model family): '
        f'expected keys '
        f"'baseline_model.*', 'backbone.*' or bLResNet names "
        f"('conv1.weight', 'b_conv0.weight', ...); first keys: "
        f'{keys[:5]}')


def blvnet_tam_to_mmcsn(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Official bLVNet-TAM keys -> mmcsn ``Recognizer2D`` keys.

    Name-based, so any depth and ``blending_frames`` work.

    Args:
        state_dict (Mapping[str, Tensor]): ``baseline_model.*`` and
            ``new_fc.*`` (``module.`` already stripped).

    Returns:
        OrderedDict[str, Tensor]: ``backbone.*`` and ``cls_head.fc_cls.*``.
    """
    return rename_keys(state_dict, BLVNET_TAM_RENAMES)[0]


def blresnet_imagenet_to_mmcsn(state_dict: Mapping[str, torch.Tensor],
                               in_channels: int = 3) -> StateDict:
    """ImageNet bLResNet keys -> mmcsn ``backbone.*`` keys.

    ``fc.*`` (the ImageNet classifier) is dropped. The checkpoint has no
    TAM weights; a loader keeps the TAMs at their init. For
    ``in_channels != 3`` (flow) ``conv1`` is averaged over its RGB input
    channels and repeated, as the official ``blvnet_tam_backbone`` does.

    Args:
        state_dict (Mapping[str, Tensor]): ``module.``-free ImageNet keys.
        in_channels (int): Input channels of the target. Defaults to 3.

    Returns:
        OrderedDict[str, Tensor]: ``backbone.*`` keys.
    """
    out = rename_keys(state_dict, BLRESNET_IMAGENET_RENAMES)[0]
    conv1 = out.get('backbone.conv1.weight')
    if conv1 is not None and conv1.shape[1] != in_channels:
        out['backbone.conv1.weight'] = conv1.mean(
            dim=1, keepdim=True).expand(-1, in_channels, -1,
                                        -1).contiguous()
    return out


def convert_blvnet_checkpoint(
        checkpoint: object,
        in_channels: int = 3) -> Tuple[StateDict, str, List[str]]:
    """Any supported flavour, as loaded from disk -> mmcsn keys.

    Unwraps ``['state_dict']`` and strips ``module.`` first.

    Args:
        checkpoint (object): What ``load_checkpoint_file`` returned.
        in_channels (int): Input channels of the target model (used for
            ImageNet weights only). Defaults to 3.

    Returns:
        tuple: ``(state_dict, format, dropped_keys)``; ``format`` is one of
        ``'blvnet_tam'``, ``'blresnet_imagenet'``, ``'mmcsn'``.
    """
    state_dict = unwrap_state_dict(checkpoint)
    fmt = detect_blvnet_format(state_dict)
    if fmt == 'blvnet_tam':
        out, dropped = rename_keys(state_dict, BLVNET_TAM_RENAMES)
    elif fmt == 'blresnet_imagenet':
        dropped = rename_keys(state_dict, BLRESNET_IMAGENET_RENAMES)[1]
        out = blresnet_imagenet_to_mmcsn(state_dict, in_channels)
    else:
        out, dropped = OrderedDict(state_dict), []
    return out, fmt, dropped


def split_prefix(state_dict: Mapping[str, torch.Tensor],
                 prefix: str = 'backbone.') -> Tuple[StateDict, List[str]]:
    """Keys under ``prefix`` (prefix removed) and the other keys' names."""
    inside, outside = OrderedDict(), []
    for key, value in state_dict.items():
        if key.startswith(prefix):
            inside[key[len(prefix):]] = value
        else:
            outside.append(key)
    return inside, outside


def is_tam_key(key: str) -> bool:
    """Whether a backbone key belongs to a TAM (absent from ImageNet)."""
    return key.startswith('tam.') or '.tam.' in key


def infer_blvnet_arch(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Read ``depth``, ``alpha``, ``blending_frames``, ``num_classes`` off
    mmcsn-layout keys (``None`` where the keys do not say).

    Args:
        state_dict (Mapping[str, Tensor]): ``backbone.*`` (+ ``cls_head.*``)
            keys.

    Returns:
        dict: ``depth``, ``alpha``, ``with_tam``, ``blending_frames``,
        ``num_classes``.
    """
    backbone, _ = split_prefix(state_dict, 'backbone.')
    big3 = {k.split('.')[2] for k in backbone if k.startswith('layer3.big.')}
    # layer3 has (blocks - 1) big blocks (the fusion block is the last)
    depth = {blocks[2] - 1: d
             for d, blocks in BLRESNET_STAGE_BLOCKS.items()}.get(len(big3))
    little0 = backbone.get('l_conv0.weight')
    alpha = (BLRESNET_STEM_CHANNELS // little0.shape[0]
             if little0 is not None else None)
    tam_keys = [k for k in backbone if k.startswith('tam.')]
    if not tam_keys:
        blending = None
    elif 'tam.prev.weight' in backbone:
        blending = 3
    else:
        blending = len(tam_keys)
    fc = state_dict.get('cls_head.fc_cls.weight')
    return dict(
        depth=depth,
        alpha=alpha,
        with_tam=bool(tam_keys),
        blending_frames=blending,
        num_classes=int(fc.shape[0]) if fc is not None else None)


def blresnet_family(in_channels: int = 3):
    """bLResNet's rules for the checkpoint intake.

    Official, ``train.py``, ImageNet and mmcsn files convert by
    :func:`convert_blvnet_checkpoint`; TAM weights may be missing as a
    whole (an ImageNet bLResNet has none: the TAMs keep their init).

    Args:
        in_channels (int): Input channels of the model (ImageNet ``conv1``
            is averaged and repeated for other values). Defaults to 3.

    Returns:
        CheckpointFamily: For :func:`mmcsn.checkpoint.intake.load_pretrained`.
    """
    return CheckpointFamily(
        'bLResNet', partial(convert_blvnet_checkpoint,
                            in_channels=in_channels), is_tam_key)
