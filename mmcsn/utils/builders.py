"""Config or JSON dict -> built model -> input tensor, for the tools.

``tools/analysis/benchmark.py``, ``tools/analysis/complexity.py`` and
``tools/deploy/export_onnx.py`` take the same first argument: a config file
or a JSON dict of one registered module (``'{"type": "CSN", "depth": 50}'``
builds a bare backbone). This module is their one home for::

    spec --load_config--> Config --build_model--> nn.Module
      \\                      \\--input_shape_from_config--> shape, views
       \\--(or --shape)--> recognizer_forward(model, shape) -> fn(device)

Input shapes are the backbone's input, as MMAction2's tools print them:
``(N, C, T, H, W)`` for a 3D recognizer (one clip per sample) and
``(T, C, H, W)`` for a 2D recognizer (T segments of one sample).
"""
import argparse
import json
import os
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction

__all__ = [
    'load_config', 'build_model', 'input_shape_from_config',
    'recognizer_forward', 'recognizer_input_shape', 'test_pipeline_of',
    'TensorGraph'
]

CfgOptions = Union[None, dict, Sequence[str]]

# SampleFrames-like transforms: (clip_len, num_clips) of one test sample
_SAMPLERS = ('SampleFrames', 'DenseSampleFrames', 'UniformSample',
             'UniformSampleFrames', 'SampleAVAFrames')
# crops: views each makes
_CROPS = {'CenterCrop': 1, 'ThreeCrop': 3, 'TenCrop': 10}


def load_config(spec: str, cfg_options: CfgOptions = None) -> Config:
    """Config of a config file or of a JSON dict of a registered module.

    Args:
        spec (str): A config file path, or a JSON dict with a ``type``
            (``'{"type": "CSN", "depth": 50}'``): the config is then
            ``dict(model=<that dict>)``.
        cfg_options (dict | Sequence[str], optional): Overrides, as
            ``--cfg-options`` parses them (a dict) or as ``key=value``
            strings. Defaults to None.

    Returns:
        Config: The config (``model.backbone.pretrained`` untouched).
    """
    if not isinstance(spec, str):
        raise TypeError(f'config must be a str (a file or a JSON dict), got '
                        f'{type(spec).__name__}')
    if spec.lstrip().startswith('{'):
        try:
            model = json.loads(spec)
        except json.JSONDecodeError as err:
            raise ValueError(f'config {spec!r} is not valid JSON ({err}); '
                             'expected e.g. \'{"type": "CSN", "depth": '
                             '50}\'') from None
        if not isinstance(model, dict) or 'type' not in model:
            raise ValueError(f'config {spec!r}: a JSON config must be a '
                             'dict with a "type" key')
        cfg = Config(dict(model=model))
    elif os.path.isfile(spec):
        cfg = Config.fromfile(spec)
    else:
        raise ValueError(f'config {spec!r}: no such file (expected a config '
                         'file or a JSON dict like \'{"type": "CSN", '
                         '"depth": 50}\')')
    if cfg_options:
        if not isinstance(cfg_options, dict):
            parser = argparse.ArgumentParser()
            parser.add_argument('--o', nargs='+', action=DictAction)
            cfg_options = parser.parse_args(['--o', *cfg_options]).o
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg: Union[str, Config],
                cfg_options: CfgOptions = None,
                pretrained: bool = False) -> nn.Module:
    """Build ``cfg.model`` in MMAction2's registry (mmcsn registered).

    Args:
        cfg (str | Config): A config, or what :func:`load_config` takes.
        cfg_options (dict | Sequence[str], optional): Overrides (only when
            ``cfg`` is a str). Defaults to None.
        pretrained (bool): Keep ``model.backbone.pretrained``. False (the
            default) drops it: timing, counting and exporting need no
            weights and must not download them.

    Returns:
        nn.Module: The model, built on CPU, in train mode, not initialised
        from pretrained weights.
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmcsn  # noqa: F401  (stack fixes + registers mmcsn modules)

    if not isinstance(cfg, Config):
        cfg = load_config(cfg, cfg_options)
    model_cfg = cfg.model.copy()
    backbone = model_cfg.get('backbone')
    if not pretrained and isinstance(backbone, dict) and \
            'pretrained' in backbone:
        model_cfg.backbone = dict(backbone, pretrained=None)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return MODELS.build(model_cfg)


def test_pipeline_of(cfg: Config) -> Optional[list]:
    """The config's test pipeline: the one home of this lookup.

    Precedence: ``test_dataloader.dataset.pipeline`` (nested datasets
    such as ``RepeatDataset`` unwrapped), else ``test_pipeline``. The
    dataloader's comes first because it is what ``tools/test.py`` runs
    (``test_pipeline`` is only a variable the config may or may not have
    passed to it), so inference, feature extraction, export and
    complexity counting see exactly the frames that testing scored.

    Args:
        cfg (Config): The config.

    Returns:
        list | None: The pipeline's transform dicts, or None if the config
        has neither.
    """
    loader = cfg.get('test_dataloader')
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    while isinstance(dataset, dict) and 'pipeline' not in dataset and \
            isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # RepeatDataset and the like
    if isinstance(dataset, dict) and dataset.get('pipeline'):
        return list(dataset['pipeline'])
    pipeline = cfg.get('test_pipeline')
    return list(pipeline) if pipeline else None


def _hw(size, what: str) -> Tuple[int, int]:
    """(h, w) of an MMAction2 size: an int or ``(w, h)``."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[1]), int(size[0])
    raise ValueError(f'cannot read a size from {what}={size!r}')


def input_shape_from_config(cfg: Config) -> Tuple[List[int], int]:
    """The backbone input shape of one test view, from the test pipeline.

    The pipeline is :func:`test_pipeline_of`'s. Rules, in pipeline order:

    * ``SampleFrames`` (and the other samplers): ``clip_len`` frames x
      ``num_clips`` clips;
    * ``Resize``: with ``keep_ratio=False`` its ``scale`` is the size;
      otherwise the short side is known and the frame is taken as square
      (the aspect ratio is the video's);
    * ``CenterCrop`` / ``ThreeCrop`` / ``TenCrop``: ``crop_size`` is the
      size; 1, 3 or 10 views;
    * ``FormatShape``: ``NCTHW`` -> 3D, ``(1, C, clip_len, H, W)``, one
      clip per view (``num_clips`` more views); ``NCHW`` -> 2D,
      ``(clip_len * num_clips, C, H, W)``, the segments of one view.

    ``C`` is the backbone's ``in_channels`` (3 if unset).

    Args:
        cfg (Config): The config.

    Returns:
        tuple[list[int], int]: The shape and the number of views one test
        sample makes (clips x crops for 3D, crops for 2D).
    """
    pipeline = test_pipeline_of(cfg)
    if not pipeline:
        raise ValueError('the config has no test pipeline '
                         '(test_dataloader.dataset.pipeline or '
                         'test_pipeline): give the input shape (--shape)')
    clip_len = num_clips = fmt = None
    hw, crops = None, 1
    for step in pipeline:
        kind = str(step.get('type', '')).split('.')[-1]
        if kind in _SAMPLERS:
            clip_len = int(step.get('clip_len', 1))
            num_clips = int(step.get('num_clips', 1))
        elif kind == 'Resize':
            scale = step.get('scale')
            if not step.get('keep_ratio', True):
                hw = _hw(scale, 'Resize.scale')
            elif isinstance(scale, (tuple, list)):
                short = min(s for s in scale if s > 0)
                hw = (int(short), int(short))
        elif kind in _CROPS:
            hw = _hw(step.get('crop_size'), f'{kind}.crop_size')
            crops = _CROPS[kind]
        elif kind == 'FormatShape':
            fmt = step.get('input_format')
    found = (('frame sampler (SampleFrames)', clip_len),
             ('frame size (Resize / crop)', hw), ('FormatShape', fmt))
    missing = [name for name, value in found if value is None]
    if missing:
        raise ValueError('cannot infer the input shape: the test pipeline '
                         f'has no {", no ".join(missing)}; give the input '
                         'shape (--shape)')
    backbone = cfg.model.get('backbone', cfg.model)
    channels = int(backbone.get('in_channels', 3))
    if fmt == 'NCTHW':
        return [1, channels, clip_len, *hw], num_clips * crops
    if fmt == 'NCHW':
        return [clip_len * num_clips, channels, *hw], crops
    raise ValueError(f'cannot infer the input shape: FormatShape '
                     f'input_format={fmt!r} (NCTHW or NCHW are understood); '
                     'give the input shape (--shape)')


def recognizer_input_shape(model: nn.Module,
                           input_shape: Sequence[int]) -> Tuple[int, ...]:
    """The tensor shape ``model`` is fed for a backbone input shape.

    A recognizer (a module with ``extract_feat``) takes
    ``(N, num_clips, C, T, H, W)`` or ``(N, num_segments, C, H, W)``: a 3D
    shape ``(N, C, T, H, W)`` becomes one clip per sample, a 2D shape
    ``(T, C, H, W)`` one sample of T segments. Any other module gets
    ``input_shape`` as is.
    """
    if isinstance(input_shape, (str, bytes)) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0
            for s in input_shape):
        raise ValueError('input_shape must be positive ints, got '
                         f'{input_shape!r}')
    shape = tuple(int(s) for s in input_shape)
    if not hasattr(model, 'extract_feat'):
        return shape
    if len(shape) == 5:  # (N, C, T, H, W) -> (N, 1 clip, C, T, H, W)
        return (shape[0], 1) + shape[1:]
    if len(shape) == 4:  # (T, C, H, W) -> (1 sample, T segments, ...)
        return (1, ) + shape
    raise ValueError('input_shape of a recognizer must have 4 (T, C, H, '
                     f'W) or 5 (N, C, T, H, W) entries, got {shape}')


class TensorGraph(nn.Module):
    """A recognizer's backbone + neck + head as a tensor-in tensor-out net.

    ``forward(inputs)`` returns the class scores of
    ``extract_feat(inputs, stage='head')`` (what ONNX export and timing
    need); a module without ``extract_feat`` is called as is.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, 'extract_feat'):
            return self.model.extract_feat(inputs, stage='head')[0]
        return self.model(inputs)


def recognizer_forward(model: nn.Module,
                       input_shape: Sequence[int],
                       random: bool = False,
                       requires_grad: bool = False) -> Callable:
    """Return a function that runs ``model`` on an input of a shape.

    The shape is the backbone's input (see
    :func:`recognizer_input_shape`); a recognizer runs backbone, neck and
    head.

    Args:
        model (nn.Module): The model.
        input_shape (Sequence[int]): See above.
        random (bool): Feed ``torch.randn`` values drawn once from seed 0
            (the same input on every call) instead of zeros.
            Defaults to False.
        requires_grad (bool): Make the input require grad (a backward
            then computes its gradient too). Defaults to False.

    Returns:
        Callable: ``fn(device) -> output``; ``fn.inputs`` holds the inputs
        made so far (e.g. to reset their ``.grad``).
    """
    full = recognizer_input_shape(model, input_shape)
    graph = TensorGraph(model)
    cache = {}

    def run(device):
        key = str(device)
        if key not in cache:
            if random and torch.device(device).type != 'meta':
                gen = torch.Generator().manual_seed(0)
                cache[key] = torch.randn(full, generator=gen).to(device)
            else:
                cache[key] = torch.zeros(full, device=device)
            cache[key].requires_grad_(requires_grad)
        return graph(cache[key])

    run.inputs = cache
    return run
