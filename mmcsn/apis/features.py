"""Clip-feature extraction over video collections (the extractor engine).

Per rank::

    video list --(shard: rank::world)--> entries
      --(skip: .npy done with the same settings)--> to do
      --(DataLoader workers: config's test pipeline on sliding windows)-->
         batches of windows (one video per batch)
      --(data_preprocessor -> backbone [bf16/fp16/fp32 deploy] ->
         global mean over time, space and views)--> (num_windows, C)
      --(json then npy, temp + fsync + rename)--> OUT/<rel>.npy/.json
    failures --> OUT/failed.txt (``video<TAB>reason``), exit status 1

With several ranks (``torchrun`` / slurm) the only communication is one
reduction of the counts and failures after the last video.
"""
import hashlib
import os
import os.path as osp
import time
from datetime import timedelta
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from torch.utils.data import DataLoader

from mmcsn.checkpoint.errors import CheckpointError
from mmcsn.utils.builders import test_pipeline_of
from mmcsn.version import __version__

from .clip_source import SAMPLERS, WindowBatches, WindowPipeline
from .feature_io import (
    file_sha256,
    output_state,
    remove_stale_temps,
    save_video_features,
    write_failed_list,
)
from .fuse import fold_batchnorm
from .precision import (
    DTYPES,
    cast_io,
    check_dtype_supported,
    parse_dtype,
    prepare_for_inference,
)
from .progress import Progress, Summary
from .video_list import VideoEntry, read_video_list, shard_entries
from .windows import TAIL_RULE, WindowSpec, num_full_windows, window_span

__all__ = [
    'FeatureExtractor', 'config_sha256', 'default_window_spec',
    'extract_features', 'init_launcher', 'gather_summary',
    'finish_failed_list', 'FAILED_FILE'
]

FAILED_FILE = 'failed.txt'
LAUNCHERS = ('none', 'pytorch', 'slurm')


def _identity(item):
    return item


def _test_pipeline(cfg: Config) -> list:
    pipeline = test_pipeline_of(cfg)
    if not pipeline:
        raise ValueError('the config has no test pipeline (test_dataloader.'
                         'dataset.pipeline or test_pipeline)')
    return pipeline


def config_sha256(config: str) -> str:
    """Hex SHA-256 of a config as resolved (``_base_`` files merged).

    Hashing the top file alone would reuse stale features after an edit
    of one of its ``_base_`` files; the resolved text changes with any of
    them (and not with comments or formatting).
    """
    text = Config.fromfile(config).pretty_text
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def default_window_spec(cfg: Config,
                        clip_len: Optional[int] = None,
                        frame_interval: Optional[int] = None,
                        stride: Optional[int] = None) -> WindowSpec:
    """Window parameters, defaulting to the config's test sampler.

    ``clip_len``: the sampler's ``clip_len`` (3D models) or its
    ``num_clips`` when it samples single frames (2D models such as
    bLVNet-TAM, whose backbone needs ``num_segments`` frames);
    ``frame_interval``: the sampler's (1 for 2D models); ``stride``:
    ``clip_len * frame_interval`` (windows that tile the video).
    """
    sampler = next((t for t in _test_pipeline(cfg) if t['type'] in SAMPLERS),
                   {})
    if sampler.get('clip_len', 1) == 1 and sampler.get('num_clips', 1) > 1:
        sampler_len, sampler_interval = sampler['num_clips'], 1
    else:
        sampler_len = sampler.get('clip_len', 1)
        sampler_interval = sampler.get('frame_interval', 1)
    clip_len = clip_len or sampler_len
    frame_interval = frame_interval or sampler_interval
    return WindowSpec(clip_len, frame_interval, stride or
                      clip_len * frame_interval).validate()


class FeatureExtractor:
    """Extract pooled backbone features of sliding windows of videos.

    Args:
        config (str): Config file (its model and test pipeline).
        checkpoint (str): Checkpoint, loaded strictly with mmcsn's loader.
        spec (WindowSpec, optional): Windows. Defaults to
            :func:`default_window_spec`.
        layer (int, optional): Backbone stage (0-based, as
            ``out_indices``) to pool. Defaults to None (the config's last
            output stage).
        dtype (str): ``'fp32'``, ``'bf16'`` or ``'fp16'``. Defaults to
            ``'fp32'``.
        device (str, optional): Defaults to ``cuda:LOCAL_RANK`` when CUDA
            is available, else ``cpu``.
        batch_size (int): Windows per forward. Defaults to 8.
        num_workers (int): Decoding processes (0: decode in this one).
            Defaults to 1.
        min_frames (int, optional): Fewer frames fail as "too short".
            Defaults to ``clip_len``.
        fold_bn (bool): Fold BN into convs (all dtypes). Defaults to True.
    """

    def __init__(self,
                 config: str,
                 checkpoint: str,
                 spec: Optional[WindowSpec] = None,
                 layer: Optional[int] = None,
                 dtype: str = 'fp32',
                 device: Optional[str] = None,
                 batch_size: int = 8,
                 num_workers: int = 1,
                 min_frames: Optional[int] = None,
                 fold_bn: bool = True) -> None:
        from .inference import init_recognizer_strict
        for name, value, low in (('batch_size', batch_size, 1),
                                 ('num_workers', num_workers, 0)):
            if (isinstance(value, bool) or not isinstance(value, int)
                    or value < low):
                raise ValueError(
                    f'{name} must be an int >= {low}, got {value!r}')
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config!r}')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint!r}')
        self.dtype = parse_dtype(dtype)
        cfg = Config.fromfile(config)
        self.spec = (spec or default_window_spec(cfg)).validate()
        if layer is not None:
            if isinstance(layer, bool) or not isinstance(layer, int) or \
                    layer < 0:
                raise ValueError(
                    f'layer must be a stage index >= 0, got {layer!r}')
            cfg.model.backbone.out_indices = (layer, )
        if device is None:
            device = (f'cuda:{os.environ.get("LOCAL_RANK", 0)}'
                      if torch.cuda.is_available() else 'cpu')
        self.device = torch.device(device)
        # before any work: an unsupported dtype is one clear error, not a
        # failure of every video
        check_dtype_supported(self.dtype, self.device)
        self.model = init_recognizer_strict(cfg, checkpoint, str(device))
        self.pipeline = WindowPipeline(
            _test_pipeline(cfg), self.spec,
            min_frames=self.spec.clip_len if min_frames is None else
            min_frames)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.fold_bn = fold_bn
        self._prepared = False
        out_indices = getattr(self.model.backbone, 'out_indices', None)
        stage = (f'stage {tuple(out_indices)[-1]} (0-based out_indices '
                 f'{tuple(out_indices)})' if out_indices is not None else
                 'output')
        self.settings = dict(
            window=dict(self.spec._asdict(), span=window_span(self.spec),
                        tail_rule=TAIL_RULE),
            feature_layer=(f'{type(self.model.backbone).__name__} {stage}, '
                           'mean over time, space and views'),
            compute_dtype={v: k for k, v in DTYPES.items()}[self.dtype],
            config_sha256=config_sha256(config),
            checkpoint_sha256=file_sha256(checkpoint))
        self.sources = dict(config=osp.abspath(config),
                            checkpoint=osp.abspath(checkpoint))

    # ------------------------------------------------------------ model
    def _prepare(self, batch: torch.Tensor) -> None:
        """Deploy the backbone in the run's dtype (once, lazily).

        BN pairs visible in the module tree are folded without running
        anything; if BNs remain (``bn(conv(x))`` in ``forward`` code, as
        in bLResNet), the backbone's input for one window is captured so
        that the folding can trace and check them.
        """
        backbone = self.model.backbone
        example = None
        if self.fold_bn:
            fold_batchnorm(backbone)
            if any(isinstance(m, _BatchNorm) for m in backbone.modules()):
                captured = []
                hook = backbone.register_forward_pre_hook(
                    lambda m, args: captured.append(args[0]))
                try:
                    self.model.extract_feat(batch[:1], stage='backbone')
                finally:
                    hook.remove()
                example = captured[0]
        prepare_for_inference(
            backbone,
            self.dtype,
            device=self.device,
            example_inputs=example,
            fold_bn=self.fold_bn)
        cast_io(backbone, self.dtype)
        self._prepared = True

    @torch.inference_mode()
    def forward(self, inputs: List[torch.Tensor]) -> np.ndarray:
        """Pooled features of packed windows (``PackActionInputs``).

        Args:
            inputs (list[Tensor]): One uint8 tensor per window.

        Returns:
            np.ndarray: ``(len(inputs), C)`` float32.
        """
        data = self.model.data_preprocessor(
            dict(inputs=inputs, data_samples=None), False)
        batch = data['inputs']
        if not self._prepared:
            self._prepare(batch)
        feats = self.model.extract_feat(batch, stage='backbone')
        if isinstance(feats, tuple) and len(feats) == 2 and isinstance(
                feats[1], dict):
            feats = feats[0]  # (features, kwargs of loss/predict)
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]  # the last out_indices stage
        pooled = feats.flatten(2).mean(2)  # fp32 (cast_io)
        pooled = pooled.view(batch.shape[0], -1, pooled.shape[-1]).mean(1)
        return pooled.cpu().numpy()

    # -------------------------------------------------------------- run
    def run(self,
            entries: Sequence[VideoEntry],
            out_dir: str,
            rank: int = 0,
            world_size: int = 1,
            show_progress: bool = True) -> Tuple[Summary, List]:
        """Extract this rank's share of ``entries`` into ``out_dir``.

        Args:
            entries (list[VideoEntry]): The whole list (every rank gets
                the same one and takes its shard).
            out_dir (str): Output folder.
            rank (int): This process's rank. Defaults to 0.
            world_size (int): Number of ranks. Defaults to 1.
            show_progress (bool): Draw the bar (rank 0). Defaults to True.

        Returns:
            tuple: This rank's :class:`Summary` and its failures, a list
            of ``(video, reason)``.
        """
        mine = shard_entries(list(entries), rank, world_size)
        summary, failures = Summary(), []
        failed_path = osp.join(
            out_dir, FAILED_FILE if world_size == 1 else
            f'failed.rank{rank}.txt')
        bar = Progress(len(mine), enabled=show_progress and rank == 0)
        start = time.perf_counter()

        def fail(entry: VideoEntry, reason: str) -> None:
            bar.write(f'WARNING: {entry.src}: {reason}')
            failures.append((entry.rel, reason))
            write_failed_list(failed_path, failures)
            summary.failed += 1
            bar.update(videos=1)

        todo = []
        for entry in mine:
            state, reason = output_state(entry.out, self.settings)
            if state == 'done':
                summary.skipped += 1
                bar.update(skipped=1)
            elif state == 'conflict':
                fail(entry, reason)
            else:
                remove_stale_temps(entry.out)
                todo.append(entry)
        if world_size == 1 or failures:
            write_failed_list(failed_path, failures)
        by_index = {e.index: e for e in todo}
        workers = min(self.num_workers, len(todo))
        loader = DataLoader(
            WindowBatches(todo, self.pipeline, self.batch_size),
            batch_size=None,
            num_workers=workers,
            collate_fn=_identity,
            prefetch_factor=2 if workers else None)
        pending: Dict[int, dict] = {}
        # a worker keeps decoding a video whose forward failed: its later
        # messages (an 'error' too) must not count it a second time
        failed = set()
        for kind, index, payload in loader:
            entry = by_index[index]
            if index in failed:
                continue
            if kind == 'start':
                pending[index] = dict(info=payload, feats=[])
            elif kind == 'error':
                pending.pop(index, None)
                failed.add(index)
                fail(entry, payload)
            elif index not in pending:
                continue  # never started; nothing to add to
            elif kind == 'batch':
                try:
                    feats = self.forward(payload[1])
                except Exception as err:
                    pending.pop(index)
                    failed.add(index)
                    fail(entry, f'model forward failed: '
                         f'{type(err).__name__}: {err}')
                    continue
                pending[index]['feats'].append(feats)
                summary.windows += len(feats)
                bar.update(windows=len(feats))
            else:  # 'end'
                state = pending.pop(index)
                feats = np.concatenate(state['feats'])
                try:
                    save_video_features(
                        entry.out, feats,
                        self._meta(entry, state['info'], feats))
                except (OSError, CheckpointError) as err:
                    # one unwritable output (full disk, a file where its
                    # folder should be) fails that video; the others go on
                    failed.add(index)
                    fail(entry, f'cannot write features: {err}')
                    continue
                summary.done += 1
                bar.update(videos=1)
        bar.close()
        summary.seconds = time.perf_counter() - start
        return summary, failures

    def _meta(self, entry: VideoEntry, info: dict,
              feats: np.ndarray) -> dict:
        total, fps = info['total_frames'], info['fps']
        return dict(
            self.settings,
            **self.sources,
            video=entry.rel,
            num_frames=total,
            fps=fps,
            duration_sec=total / fps if fps else None,
            num_windows=int(feats.shape[0]),
            feature_dim=int(feats.shape[1]),
            last_window_padded=bool(
                feats.shape[0] > num_full_windows(total, self.spec)),
            window_frames=('window k reads frames k*stride + j*'
                           'frame_interval, j < clip_len, clamped to '
                           'num_frames - 1'),
            mmcsn_version=__version__)


# ------------------------------------------------------------- launchers
def init_launcher(launcher: str) -> Tuple[int, int]:
    """Start the process group of ``torchrun`` / slurm (gloo).

    gloo is enough (and works with or without CUDA): the only collective
    is the final reduction of counts. Its timeout is a day, as ranks may
    finish hours apart.

    Args:
        launcher (str): ``'none'``, ``'pytorch'`` or ``'slurm'``.

    Returns:
        tuple[int, int]: rank and world size.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r} is not valid; valid '
                         f'choices: {LAUNCHERS}')
    if launcher == 'none':
        return 0, 1
    import torch.distributed as dist

    from mmcsn.compat.cpu_dist import (
        cpu_init_dist_pytorch,
        cpu_init_dist_slurm,
    )
    if not dist.is_initialized():
        init = (cpu_init_dist_pytorch if launcher == 'pytorch' else
                cpu_init_dist_slurm)
        try:
            init('gloo', timeout=timedelta(days=1))
        except KeyError as err:
            raise RuntimeError(
                f'--launcher {launcher} needs the variable {err} set by '
                f'{"torchrun" if launcher == "pytorch" else "srun"}') from err
    return dist.get_rank(), dist.get_world_size()


def gather_summary(summary: Summary, failures: List,
                   world_size: int) -> Tuple[Summary, List]:
    """Sum the ranks' counts and collect their failures (one collective).
    """
    if world_size == 1:
        return summary, failures
    import torch.distributed as dist
    counts = torch.tensor(
        [summary.done, summary.skipped, summary.failed, summary.windows],
        dtype=torch.float64)
    dist.all_reduce(counts)
    seconds = torch.tensor([summary.seconds], dtype=torch.float64)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, failures)
    total = Summary(*(int(c) for c in counts.tolist()),
                    seconds=float(seconds))
    return total, sorted(f for part in gathered for f in part)


def finish_failed_list(out_dir: str, failures: List, rank: int,
                       world_size: int) -> None:
    """Rank 0 merges the per-rank failure files into ``failed.txt``."""
    if rank != 0:
        return
    write_failed_list(osp.join(out_dir, FAILED_FILE), failures)
    if world_size > 1:
        for name in os.listdir(out_dir):
            if name.startswith('failed.rank') and name.endswith('.txt'):
                os.unlink(osp.join(out_dir, name))


def extract_features(config: str,
                     checkpoint: str,
                     video_list: str,
                     out_dir: str,
                     video_root: Optional[str] = None,
                     launcher: str = 'none',
                     show_progress: bool = True,
                     **kwargs) -> Tuple[Summary, List]:
    """Run a whole extraction (every rank calls this; see the CLI).

    Args:
        config, checkpoint: See :class:`FeatureExtractor`.
        video_list (str): MMAction2 video list.
        out_dir (str): Output folder.
        video_root (str, optional): Root of the list's paths.
        launcher (str): ``'none'``, ``'pytorch'`` or ``'slurm'``.
        show_progress (bool): Progress bar on rank 0. Defaults to True.
        **kwargs: More :class:`FeatureExtractor` arguments.

    Returns:
        tuple: The summary over all ranks and all failures.
    """
    rank, world_size = init_launcher(launcher)
    entries = read_video_list(video_list, out_dir, video_root)
    os.makedirs(out_dir, exist_ok=True)
    extractor = FeatureExtractor(config, checkpoint, **kwargs)
    summary, failures = extractor.run(entries, out_dir, rank, world_size,
                                      show_progress)
    summary, failures = gather_summary(summary, failures, world_size)
    finish_failed_list(out_dir, failures, rank, world_size)
    return summary, failures

