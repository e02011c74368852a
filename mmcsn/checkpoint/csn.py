"""Pure key conversion of CSN checkpoints into mmcsn's layout.

mmcsn's CSN state_dict is MMAction2's ``ResNet3dCSN`` layout, so a
recognizer checkpoint is ``backbone.*`` plus ``cls_head.fc_cls.*``. This
module converts, without any file I/O, from:

* VMZ PyTorch (``pt/vmz/models/csn.py``, torchvision ``VideoResNet`` names),
* VMZ caffe2 blobs (``c2/lib/models/builder/video_model.py`` names),
* PyTorchVideo (``pytorchvideo/models/csn.py``, ``create_csn``),
* MMAction2 itself (identity; refuses pre-mid-2021 ip checkpoints).

The rename tables are data in :mod:`mmcsn.checkpoint.csn_rules`; the
depths in :data:`mmcsn.archs.CSN_STAGE_BLOCKS`.
:func:`convert_csn_checkpoint` is the CSN family's conversion for the
checkpoint intake (``CSN(pretrained=...)``, the converter CLIs):
layout detected from the key names, recognizer state_dict out.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..archs import CSN_STAGE_BLOCKS
from .csn_rules import (
    CAFFE2_BLOCK_RULES,
    CAFFE2_BN_SUFFIX,
    CAFFE2_IGNORED_BLOBS,
    CAFFE2_STEM_HEAD_RULES,
    CSN_LAYOUTS,
    MMACTION_BACKBONE_KEY,
    MODES,
    OLD_IP_BARE_KEY,
    PYTORCHVIDEO_RULES,
    VMZ_PT_COMMON_RULES,
    VMZ_PT_MODE_RULES,
    Rules,
)
from .errors import CheckpointError, WrongFamilyError
from .intake import CheckpointFamily
from .io import unwrap_state_dict

__all__ = [
    'CSN_STAGE_BLOCKS', 'CSN_LAYOUTS', 'detect_csn_layout',
    'infer_csn_arch', 'vmz_pt_to_mmcsn', 'caffe2_to_mmcsn',
    'pytorchvideo_to_mmcsn', 'mmaction_to_mmcsn', 'convert_to_mmcsn',
    'convert_to_mmcsn_recognizer', 'convert_csn_checkpoint',
    'recognizer_to_backbone', 'CSN_FAMILY'
]

StateDict = Dict[str, torch.Tensor]

# ------------------------------------------------------------ helpers
def _check_mode(mode: Optional[str]) -> None:
    if mode is not None and mode not in MODES:
        raise ValueError(
            f'mode must be one of {MODES} or None (detect), got {mode!r}')


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
        WrongFamilyError: No known stem key is present.
    """
    for layout, pattern in CSN_LAYOUTS:
        regex = re.compile(pattern)
        if any(regex.match(key) for key in sd):
            return layout
    shown = ', '.join(map(str, list(sd)[:5]))
    raise WrongFamilyError(
        'not a CSN checkpoint (wrong model family or unknown layout): '
        'expected a stem key of one of '
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
        if re.match(MMACTION_BACKBONE_KEY, key):
            key = 'backbone.' + key
        if key.startswith(('backbone.', 'cls_head.')):
            out[key] = value
        elif not key.startswith('data_preprocessor.'):
            stray.append(key)
    if stray:
        raise CheckpointError(
            f'MMAction2 CSN checkpoint has {len(stray)} key(s) outside '
            f'backbone/cls_head: {", ".join(stray[:5])}')
    old_bare = [k for k in out if re.match(OLD_IP_BARE_KEY, k)]
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
    sd = unwrap_state_dict(sd)
    found = detect_csn_layout(sd)
    if source != 'auto' and source != found:
        raise WrongFamilyError(
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


def convert_csn_checkpoint(
        checkpoint: object) -> Tuple[StateDict, str, List[str]]:
    """The CSN family's conversion, as the checkpoint intake calls it.

    Args:
        checkpoint (object): A loaded checkpoint or state_dict / blob dict.

    Returns:
        tuple: ``(state_dict, layout, dropped_keys)``: recognizer layout
        (``backbone.*`` + ``cls_head.fc_cls.*`` when the source has a
        classifier), the detected layout name, and source keys dropped on
        purpose (caffe2 training state).
    """
    sd = unwrap_state_dict(checkpoint)
    layout = detect_csn_layout(sd)
    dropped = []
    if layout == 'caffe2':
        ignored = [re.compile(p) for p in CAFFE2_IGNORED_BLOBS]
        dropped = [k for k in sd if any(p.search(k) for p in ignored)]
    return convert_to_mmcsn_recognizer(sd, source=layout), layout, dropped


# CSN's rules for the checkpoint intake: every layout above, strict.
CSN_FAMILY = CheckpointFamily('CSN', convert_csn_checkpoint)
