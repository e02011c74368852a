"""What a converter writes and prints besides the weights.

The converters' presentation layer: the ``meta`` record stored next to a
converted state_dict (only str / int / tuple values, so
``torch.load(weights_only=True)`` reads it back) and the summary printed
on success, which names the config to use. Conversion itself lives in
:mod:`mmcsn.checkpoint.csn` / :mod:`mmcsn.checkpoint.blvnet`.
"""
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional

import torch

from ..version import __version__
from .blvnet import infer_blvnet_arch
from .csn import infer_csn_arch
from .zoo_configs import config_for

__all__ = [
    'config_hints', 'make_converted_checkpoint', 'describe_conversion',
    'make_blvnet_checkpoint', 'describe_blvnet_conversion'
]


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
    config = _zoo_config(meta['source_layout'], meta['bottleneck_mode'],
                         depth)
    if config:
        lines.append(f'  zoo config: {config}')
    lines.append(f"  test: python tools/test.py {config or 'CONFIG'} {dst}")
    return '\n'.join(lines)


def make_blvnet_checkpoint(state_dict: Mapping[str, torch.Tensor], fmt: str,
                           src_name: str,
                           dropped: List[str]) -> Dict[str, object]:
    """Wrap a converted bLVNet-TAM state_dict as an mmengine checkpoint.

    Args:
        state_dict (Mapping[str, Tensor]): ``backbone.*`` (+ ``cls_head.*``).
        fmt (str): The source flavour it was converted from.
        src_name (str): The source file's name, for the record.
        dropped (list[str]): Source keys dropped on purpose.

    Returns:
        dict: ``{'state_dict': ..., 'meta': ...}`` (weights-only loadable).
    """
    meta = dict(
        converted_from=os.path.basename(src_name),
        source_layout=fmt,
        mmcsn_version=__version__,
        dropped_keys=tuple(dropped),
        **infer_blvnet_arch(state_dict))
    return dict(state_dict=OrderedDict(state_dict), meta=meta)


def describe_blvnet_conversion(checkpoint: Mapping[str, object],
                               dst: str) -> str:
    """A human summary of :func:`make_blvnet_checkpoint`'s output."""
    sd, meta = checkpoint['state_dict'], checkpoint['meta']
    arch = {k: meta[k] for k in ('depth', 'alpha', 'with_tam',
                                 'blending_frames', 'num_classes')}
    lines = [
        f"converted {meta['converted_from']} ({meta['source_layout']}) "
        f'-> {dst}: {len(sd)} tensors; {arch}'
    ]
    if meta['dropped_keys']:
        lines.append('  dropped (not used by mmcsn): '
                     + ', '.join(meta['dropped_keys']))
    if meta['source_layout'] == 'blresnet_imagenet':
        lines.append('  ImageNet weights have no TAM weights: TAMs keep '
                     'their init')
    config = _zoo_config('blvnet', None, meta['depth'])
    if config:
        lines.append(f'  config: {config}')
    lines.append(f"  test: python tools/test.py {config or 'CONFIG'} {dst}")
    return '\n'.join(lines)


def _zoo_config(source: str, mode: Optional[str],
                depth: Optional[int]) -> Optional[str]:
    """The shipped config that fits a converted checkpoint, if any."""
    if depth is None:
        return None
    return config_for(source, mode, depth)
