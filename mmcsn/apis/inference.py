"""Recognize actions in video files with a strictly loaded recognizer.

The engine behind ``tools/infer.py``; usable from Python as well::

    model = init_recognizer_strict(config, checkpoint, device='cpu')
    for pred in recognize_videos(model, ['a.mp4', 'b.mp4'], topk=5):
        print(pred.video, pred.error or pred.topk)

Flow per video (one broken file never stops the others)::

    video path --(config's test pipeline: decode, views)--> inputs
        --(model.test_step)--> pred_score --(top-k)--> VideoPrediction
        `--(optional) MMAction2 ActionVisualizer --> OUT_DIR/<name>.mp4

Unlike ``mmaction.apis.init_recognizer`` (mmengine's non-strict load),
the checkpoint is read with ``weights_only=True`` and loaded strictly: a
checkpoint for another model is an error naming the mismatched keys, not
a model that silently predicts from random weights.
"""
import copy
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from mmcsn.checkpoint import (
    load_checkpoint_file,
    load_state_dict_checked,
    unwrap_state_dict,
)
from mmcsn.utils.builders import test_pipeline_of

__all__ = [
    'VideoPrediction', 'init_recognizer_strict', 'load_label_map',
    'model_num_classes', 'recognize_video', 'recognize_videos'
]


TopK = Tuple[int, str, float]  # (class index, label, score)


@dataclass
class VideoPrediction:
    """What :func:`recognize_videos` returns for one video.

    Attributes:
        video (str): The input path.
        topk (list[tuple[int, str, float]]): ``(class index, label,
            score)``, best first; empty when ``error`` is set.
        seconds (float): Wall time for this video (decode + forward, plus
            writing ``out_video``).
        error (str, optional): One line saying why the video failed.
        out_video (str, optional): The visualization written, if any.
    """
    video: str
    topk: List[TopK] = field(default_factory=list)
    seconds: float = 0.0
    error: Optional[str] = None
    out_video: Optional[str] = None


def _check_device(device: str) -> str:
    if not isinstance(device, str) or not (device == 'cpu'
                                           or device.startswith('cuda')):
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device={device!r} but CUDA is not available in '
                         "this torch build: use device='cpu'")
    return device


def init_recognizer_strict(config: Union[str, Config],
                           checkpoint: Optional[str],
                           device: str = 'cpu') -> nn.Module:
    """Build the recognizer of a config and load a checkpoint strictly.

    Args:
        config (str | Config): Config file or object (its ``model`` and
            test pipeline are used).
        checkpoint (str, optional): A ``.pth`` written by mmengine's
            runner or by mmcsn's converters; ``None`` keeps the
            initialisation (for tests only: the predictions are noise).
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``. Defaults to
            ``'cpu'``.

    Returns:
        nn.Module: The model in eval mode on ``device``, with ``cfg`` set
        (a copy whose ``test_pipeline`` is
        :func:`mmcsn.utils.builders.test_pipeline_of`'s, so MMAction2's
        ``inference_recognizer`` runs the same pipeline).

    Raises:
        FileNotFoundError: The config or checkpoint does not exist.
        CheckpointError: The checkpoint is unsafe, unreadable, or its keys
            or shapes do not match the model (names them).
        ValueError: Bad ``device``.
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    device = _check_device(device)
    if isinstance(config, (str, os.PathLike)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config!r}')
        config = Config.fromfile(config)
    elif not isinstance(config, Config):
        raise TypeError('config must be a path or an mmengine Config, got '
                        f'{type(config).__name__}')
    init_default_scope(config.get('default_scope', 'mmaction'))
    model_cfg = config.model.copy()
    backbone = model_cfg.get('backbone')
    if checkpoint is not None and backbone is not None and backbone.get(
            'pretrained'):
        # the checkpoint holds every weight: do not read pretrained files
        model_cfg.backbone = dict(backbone, pretrained=None)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        state = unwrap_state_dict(load_checkpoint_file(checkpoint))
        load_state_dict_checked(model, state, strict=True)
    pipeline = test_pipeline_of(config)
    if pipeline:
        # MMAction2's inference_recognizer(model, ...) reads
        # cfg.test_pipeline: make it the one mmcsn (and tools/test.py)
        # runs, on a copy so the caller's config is left as it was
        config = copy.deepcopy(config)
        config.test_pipeline = pipeline
    model.cfg = config
    return model.to(device).eval()


def load_label_map(path: str, num_classes: int) -> List[str]:
    """Read class names, one per line (MMAction2's ``label_map`` format).

    Args:
        path (str): The text file.
        num_classes (int): The model's number of classes.

    Returns:
        list[str]: The names, in class-index order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file does not have ``num_classes`` non-empty lines.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'label map not found: {path!r}')
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != num_classes:
        raise ValueError(
            f'label map {path!r} has {len(names)} names but the model has '
            f'{num_classes} classes: give one name per line, in class '
            'order')
    return names


def _test_pipeline(cfg: Config):
    from mmengine.dataset import Compose

    # the same pipeline as tools/test.py and the feature extractor
    pipeline = test_pipeline_of(cfg)
    if not pipeline:
        raise ValueError('the config has neither test_pipeline nor '
                         'test_dataloader.dataset.pipeline')
    return Compose(pipeline)


def model_num_classes(model: nn.Module) -> int:
    """``model.cls_head.num_classes`` (ValueError if there is none)."""
    head = getattr(model, 'cls_head', None)
    if head is None or not hasattr(head, 'num_classes'):
        raise ValueError('the model has no cls_head.num_classes')
    return int(head.num_classes)


def recognize_video(model: nn.Module,
                    video: str,
                    topk: int = 5,
                    labels: Optional[Sequence[str]] = None,
                    pipeline=None) -> Tuple[List[TopK], object]:
    """Top-k classes of one video (raises on a broken file).

    Args:
        model (nn.Module): From :func:`init_recognizer_strict`.
        video (str): Video path.
        topk (int): How many classes. Defaults to 5.
        labels (Sequence[str], optional): Class names; defaults to
            ``'class <i>'``.
        pipeline (Compose, optional): The test pipeline, built from
            ``model.cfg`` when None.

    Returns:
        tuple: ``(topk list, ActionDataSample)``.
    """
    from mmengine.dataset import pseudo_collate
    if not osp.isfile(video):
        raise FileNotFoundError(f'video not found: {video!r}')
    if pipeline is None:
        pipeline = _test_pipeline(model.cfg)
    data = pipeline(
        dict(filename=video, label=-1, start_index=0, modality='RGB'))
    with torch.no_grad():
        sample = model.test_step(pseudo_collate([data]))[0]
    scores = sample.pred_score.float().cpu()
    k = min(topk, scores.numel())
    top = scores.topk(k)
    names = labels if labels is not None else [
        f'class {i}' for i in range(scores.numel())]
    return [(int(i), names[int(i)], float(s))
            for s, i in zip(top.values, top.indices)], sample


def _visualizer(cfg: Config, labels: Sequence[str]):
    from mmaction.registry import VISUALIZERS
    vis_cfg = dict(cfg.get('visualizer') or dict(type='ActionVisualizer'))
    # one instance per call: ManagerMixin names must be unique
    # out_path writes through a backend of its own: none needed here
    vis_cfg.update(name=f'mmcsn_infer_{time.monotonic_ns()}',
                   vis_backends=None, save_dir=None)
    vis = VISUALIZERS.build(vis_cfg)
    vis.dataset_meta = dict(classes=list(labels))
    return vis


def recognize_videos(model: nn.Module,
                     videos: Sequence[str],
                     topk: int = 5,
                     labels: Optional[Sequence[str]] = None,
                     out_dir: Optional[str] = None,
                     fps: int = 30) -> Iterator[VideoPrediction]:
    """Top-k classes of each video; a broken one does not stop the rest.

    Args:
        model (nn.Module): From :func:`init_recognizer_strict`.
        videos (Sequence[str]): Video paths.
        topk (int): Classes per video. Defaults to 5.
        labels (Sequence[str], optional): Class names (see
            :func:`load_label_map`). Defaults to ``'class <i>'``.
        out_dir (str, optional): Write each video with its predictions
            drawn on (MMAction2's ``ActionVisualizer``; needs
            ``moviepy<2``) as ``out_dir/<name>.mp4``. An existing file is
            never overwritten (that video gets an error). Defaults to None.
        fps (int): Frame rate of the written videos. Defaults to 30.

    Yields:
        VideoPrediction: One per video, in order; ``error`` is a one-line
        reason naming the file when it could not be read.
    """
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
        raise ValueError(f'topk must be an int >= 1, got {topk!r}')
    num_classes = model_num_classes(model)
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f'labels has {len(labels)} names for '
                         f'{num_classes} classes')
    names = list(labels) if labels is not None else [
        f'class {i}' for i in range(num_classes)]
    pipeline = _test_pipeline(model.cfg)
    vis = None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        vis = _visualizer(model.cfg, names)
    for video in videos:
        start = time.perf_counter()
        pred = VideoPrediction(video=video)
        try:
            pred.topk, sample = recognize_video(model, video, topk, names,
                                                pipeline)
            if vis is not None:
                pred.out_video = _draw(vis, video, sample, out_dir, fps)
        except Exception as err:  # noqa: BLE001  (reported, others go on)
            reason = (str(err).strip().splitlines() or [''])[0]
            if video not in reason:
                reason = f'{video}: {reason}'
            pred.error = f'{type(err).__name__}: {reason}'
            pred.topk = []
        pred.seconds = time.perf_counter() - start
        yield pred


def _draw(vis, video: str, sample, out_dir: str, fps: int) -> str:
    stem = osp.splitext(osp.basename(video))[0]
    out = osp.join(out_dir, stem + '.mp4')
    if osp.exists(out):
        raise FileExistsError(
            f'{out!r} exists (not overwritten): choose another --out-video '
            'directory or remove it')
    # the visualizer reads the frames itself (decord) and writes
    # <out_dir>/<stem>.mp4 through moviepy
    vis.add_datasample(stem, video, sample, draw_gt=False, draw_pred=True,
                       out_type='video', out_path=osp.join(out_dir, stem),
                       fps=fps)
    return out
