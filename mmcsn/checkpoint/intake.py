"""The one way a checkpoint enters a model.

Every backbone's ``pretrained=`` / ``init_cfg=dict(type='Pretrained')``
and every converter CLI run this pipeline; a model family only passes
data (its conversion function, which of its keys a source may lack, a
prefix)::

    source (path | URL) -- read_checkpoint --------------------------.
      URL: download.cached_download (cache keyed by URL, sha256)     |
      sniff: torch.save file -> torch.load(weights_only=True)        |
             bare pickle     -> caffe2_pickle (numpy-only unpickler) |
    object -- unwrap_state_dict ('state_dict' / 'model' / 'blobs',   |
              'module.') -> [prefix: keep keys under it, stripped]   |
    weights -- family.convert (detect layout, rename) ---------------'
      -> recognizer layout: backbone.* (+ cls_head.*, ignored here)
    backbone.* -- load_state_dict_checked (strict; names the first
                  missing / unexpected / shape-mismatched keys + counts;
                  allowed_missing keys may be absent as a whole group)

Errors are :mod:`~mmcsn.checkpoint.errors` classes with fixed words.
"""
import os
from typing import (
    Callable,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

import torch
import torch.nn as nn
from mmengine.model.weight_init import initialize

from .caffe2_pickle import load_caffe2_pickle
from .download import cached_download, expected_sha256, file_sha256, is_url
from .errors import CheckpointError, ChecksumError, WrongFamilyError
from .io import (
    check_readable,
    checkpoint_kind,
    load_checkpoint_file,
    unwrap_state_dict,
)
from .strict import load_state_dict_checked

__all__ = [
    'PretrainedSpec', 'CheckpointFamily', 'resolve_pretrained',
    'read_checkpoint', 'select_prefix', 'load_pretrained', 'init_backbone'
]

StateDict = Dict[str, torch.Tensor]
Conversion = Tuple[StateDict, str, List[str]]
InitCfg = Optional[Union[dict, List[dict]]]

# Keys an init_cfg 'Pretrained' entry may have (map_location is accepted
# for mmengine compatibility; weights are always read to the CPU first).
PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'sha256', 'map_location')


class PretrainedSpec(NamedTuple):
    """Where a backbone's initial weights come from.

    Attributes:
        checkpoint (str): Local path or http(s) URL.
        prefix (str, optional): Take only the file's keys under this
            prefix (stripped), as mmengine's ``PretrainedInit``. None:
            the whole file (the family's converter finds the backbone).
        sha256 (str, optional): Expected sha256 (or its first >= 8 hex
            digits) of the file. None: a URL's ``name-<hash>.pth``
            prefix, if any.
    """
    checkpoint: str
    prefix: Optional[str] = None
    sha256: Optional[str] = None


class CheckpointFamily(NamedTuple):
    """What differs between model families, as data.

    Attributes:
        name (str): Shown in messages ('CSN', 'bLResNet').
        convert (Callable): ``convert(weights) -> (state_dict, layout,
            dropped)``: any supported source to the recognizer layout
            (``backbone.*``, ``cls_head.*``), the detected layout, and
            source keys dropped on purpose.
        allowed_missing (Callable[[str], bool], optional): Module keys a
            source may lack as a whole group (they keep their init and
            are logged). Defaults to None (strict).
    """
    name: str
    convert: Callable[[Mapping], Conversion]
    allowed_missing: Optional[Callable[[str], bool]] = None


def resolve_pretrained(owner: str, pretrained: Optional[str],
                       init_cfg: InitCfg
                       ) -> Tuple[Optional[PretrainedSpec], List[dict]]:
    """Split ``pretrained`` / ``init_cfg`` into one source + other inits.

    ``pretrained='x'`` and ``init_cfg=dict(type='Pretrained',
    checkpoint='x', prefix=None, sha256=None)`` mean the same; giving both
    is an error, as is a ``Pretrained`` entry without ``checkpoint`` or
    with unknown keys.

    Args:
        owner (str): The backbone's name, for messages.
        pretrained (str, optional): Path or URL.
        init_cfg (dict | list[dict], optional): mmengine init config.

    Returns:
        tuple: The :class:`PretrainedSpec` (or None) and the other
        ``init_cfg`` entries (for ``mmengine.model.initialize``).
    """
    if pretrained is not None and (not isinstance(pretrained, str)
                                   or not pretrained):
        raise TypeError(f'{owner}: pretrained must be a non-empty str '
                        f'(path or URL) or None, got {pretrained!r}')
    cfgs = [] if init_cfg is None else (
        list(init_cfg) if isinstance(init_cfg, (list, tuple)) else
        [init_cfg])
    specs, others = [], []
    for cfg in cfgs:
        if not isinstance(cfg, Mapping) or cfg.get('type') != 'Pretrained':
            others.append(cfg)
            continue
        extra = sorted(set(cfg) - set(PRETRAINED_KEYS))
        checkpoint = cfg.get('checkpoint')
        if extra or not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError(
                f"{owner}: init_cfg Pretrained takes checkpoint=<path or "
                f"URL str> and optionally {list(PRETRAINED_KEYS[2:])}, got "
                f'{dict(cfg)}')
        prefix = cfg.get('prefix')
        if prefix is not None and (not isinstance(prefix, str)
                                   or not prefix):
            raise ValueError(f'{owner}: init_cfg Pretrained prefix must be '
                             f'a non-empty str or None, got {prefix!r}')
        sha256 = cfg.get('sha256')
        if sha256 is not None:
            expected_sha256(checkpoint, sha256)  # validates the digits
        specs.append(PretrainedSpec(checkpoint, prefix, sha256))
    if len(specs) > 1:
        raise ValueError(f'{owner}: init_cfg has {len(specs)} Pretrained '
                         'entries; give one')
    if specs and pretrained is not None:
        # worded as every argument error ("<owner>: <arg> must be ...")
        raise ValueError(
            f"{owner}: pretrained must be None when init_cfg has a "
            f"'Pretrained' entry (give the checkpoint either as pretrained "
            f"or as init_cfg=dict(type='Pretrained', checkpoint=...), not "
            f'both), got {pretrained!r} (init_cfg checkpoint='
            f'{specs[0].checkpoint!r})')
    if pretrained is not None:
        specs.append(PretrainedSpec(pretrained))
    return (specs[0] if specs else None), others


def read_checkpoint(source: Union[str, os.PathLike],
                    sha256: Optional[str] = None) -> object:
    """Read a checkpoint from a path or URL without running code.

    A ``torch.save`` file (zip or legacy) is read with
    ``torch.load(weights_only=True)``; any other pickle with the
    numpy-only caffe2 unpickler.

    Args:
        source (str | PathLike): Local path or http(s) URL.
        sha256 (str, optional): Expected sha256 (prefix) of the file.

    Returns:
        object: What the file holds.
    """
    source = os.fspath(source)
    if is_url(source):
        path = cached_download(source, sha256)
    else:
        path = check_readable(source)
        if sha256 is not None:
            expected = expected_sha256(source, sha256)
            actual = file_sha256(path)
            if not actual.startswith(expected):
                raise ChecksumError(
                    f'sha256 mismatch for {path!r}: expected {expected}, '
                    f'got {actual}', path)
    if checkpoint_kind(path) == 'torch':
        return load_checkpoint_file(path)
    return load_caffe2_pickle(path)


def select_prefix(weights: Mapping, prefix: str,
                  source: str = 'checkpoint') -> StateDict:
    """Keys of ``weights`` under ``prefix``, with the prefix removed."""
    out = type(weights)() if isinstance(weights, dict) else {}
    for key, value in weights.items():
        if isinstance(key, str) and key.startswith(prefix):
            out[key[len(prefix):]] = value
    if not out:
        raise WrongFamilyError(
            f'{source!r} has no key under prefix {prefix!r} (first keys: '
            f'{list(weights)[:5]})', source)
    return out


def load_pretrained(module: nn.Module,
                    spec: Union[PretrainedSpec, str],
                    family: CheckpointFamily,
                    strict: bool = True,
                    logger=None) -> dict:
    """Read, convert and strictly load a checkpoint into a backbone.

    Args:
        module (nn.Module): The backbone (its keys are the ``backbone.*``
            part of the family's recognizer layout).
        spec (PretrainedSpec | str): The source (a str is a path or URL).
        family (CheckpointFamily): The family's conversion rules.
        strict (bool): Any key that does not fit is an error. Defaults to
            True; False loads what fits and logs the rest.
        logger (logging.Logger, optional): Defaults to mmengine's current.

    Returns:
        dict: ``source``, ``format`` (detected layout), ``missing`` (module
        keys left at their init), ``kept_init`` (those allowed by the
        family), ``unexpected``, ``mismatched``, ``ignored`` (source keys
        that are not backbone weights).

    Raises:
        CheckpointError: See :mod:`mmcsn.checkpoint.errors`.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = PretrainedSpec(os.fspath(spec))
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    name = spec.checkpoint
    weights = unwrap_state_dict(read_checkpoint(name, spec.sha256))
    if spec.prefix:
        weights = select_prefix(weights, spec.prefix, name)
    converted, layout, dropped = family.convert(weights)
    backbone, outside = {}, []
    for key, value in converted.items():
        if key.startswith('backbone.'):
            backbone[key[len('backbone.'):]] = value
        else:
            outside.append(key)
    bad = [k for k, v in backbone.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f'checkpoint {name!r}: {len(bad)} entries are not tensors: '
            f'{bad[:5]}', name)
    own = module.state_dict()
    if backbone and not any(k in own for k in backbone):
        raise WrongFamilyError(
            f'checkpoint {name!r} ({layout}) is the wrong model family for '
            f'{family.name}: none of its {len(backbone)} backbone keys '
            f'exist in the model (first: {list(backbone)[:3]})', name)
    report = load_state_dict_checked(
        module, backbone, strict=strict, logger=logger,
        allowed_missing=family.allowed_missing, source=name)
    ignored = list(dropped) + outside
    if ignored:
        logger.info(f'{family.name}: {name!r} ({layout}): not backbone '
                    f'weights, ignored: {ignored}')
    logger.info(f'{family.name}: loaded {len(backbone)} tensors from '
                f'{name!r} ({layout})')
    return dict(
        source=name,
        format=layout,
        missing=report['kept_init'] + report['missing'],
        kept_init=report['kept_init'],
        unexpected=report['unexpected'],
        mismatched=report['mismatched'],
        ignored=ignored)


def init_backbone(module: nn.Module,
                  owner: str,
                  default_init: Callable[[], None],
                  pretrained: Optional[str] = None) -> None:
    """The init order of every mmcsn backbone, in one place.

    ``default_init`` (the family's from-scratch init), then the other
    ``init_cfg`` entries (mmengine's ``initialize``), then the pretrained
    source -- ``pretrained`` here, else ``module.pretrained`` or the
    ``init_cfg`` ``Pretrained`` entry (both at once is an error) -- loaded
    by ``module.load_pretrained`` through :func:`load_pretrained`.

    Args:
        module (nn.Module): The backbone; has ``pretrained``, ``init_cfg``
            and ``load_pretrained(checkpoint, prefix, sha256)``.
        owner (str): Its class name, for messages.
        default_init (Callable[[], None]): Initialises from scratch.
        pretrained (str, optional): Path or URL that replaces the
            configured source. Defaults to None.
    """
    spec, others = resolve_pretrained(owner, module.pretrained,
                                      module.init_cfg)
    default_init()
    if others:
        initialize(module, others)
    if pretrained:
        spec = PretrainedSpec(pretrained)
    if spec is not None:
        module.load_pretrained(*spec)
    module._is_init = True
