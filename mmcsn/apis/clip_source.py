"""Decode videos into preprocessed window batches with the config's pipeline.

The config's test pipeline is cut at its frame sampler::

    [init: DecordInit ...] [sampler: SampleFrames ...] [decode] [post ...]
         once per video        replaced by the windows    per window

``init`` opens the video once; the sampler is replaced by the sliding
windows of :mod:`mmcsn.apis.windows`; ``decode`` + ``post`` (resize, crop,
``FormatShape``, ``PackActionInputs``) run per window exactly as in
testing. With decord's accurate decoding (``DecordDecode`` /
``CheckedDecordDecode``) the frames of a batch of windows are decoded
once, in one ``get_batch`` call over their distinct indices, and each
window gets its own copy; any other decoder runs per window.

:class:`WindowBatches` is an ``IterableDataset`` (one ``DataLoader``
worker per share of the videos) so decoding overlaps the model. It yields
messages, never raises for a bad video::

    ('start', index, info)   total frames, fps, number of windows
    ('batch', index, (first, inputs))   packed inputs of windows first..
    ('end', index, None)
    ('error', index, reason)
"""
import copy
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import Compose
from torch.utils.data import IterableDataset, get_worker_info

from .video_list import VideoEntry
from .windows import WindowSpec, num_windows, window_frame_indices

__all__ = ['WindowPipeline', 'WindowBatches', 'SAMPLERS']

# transforms that choose frame indices; the extractor replaces them
SAMPLERS = ('SampleFrames', 'UniformSample', 'UniformSampleFrames',
            'UntrimmedSampleFrames', 'DenseSampleFrames')


def _type_name(cfg) -> str:
    t = cfg['type']
    return t if isinstance(t, str) else t.__name__


class WindowPipeline:
    """The config's test pipeline, re-cut to run on sliding windows.

    Args:
        pipeline (list[dict]): The config's test pipeline.
        spec (WindowSpec): Window parameters.
        min_frames (int): Fewest frames a video may have. Defaults to 1.
    """

    def __init__(self, pipeline: Sequence[dict], spec: WindowSpec,
                 min_frames: int = 1) -> None:
        from mmaction.registry import TRANSFORMS
        from mmengine.registry import init_default_scope
        init_default_scope('mmaction')
        names = [_type_name(t) for t in pipeline]
        hits = [i for i, n in enumerate(names) if n in SAMPLERS]
        if len(hits) != 1:
            raise ValueError(
                f'the test pipeline needs exactly one frame sampler (one of '
                f'{SAMPLERS}) to replace with the windows, found {len(hits)} '
                f'in {names}')
        cut = hits[0]
        decode_at = cut + 1
        if decode_at >= len(names) or 'Decode' not in names[decode_at]:
            raise ValueError(
                f'the test pipeline must decode right after its sampler '
                f'(e.g. DecordDecode), got {names[cut:cut + 2]}')
        build = [self._raise_on_error(copy.deepcopy(dict(t)))
                 for t in pipeline]
        self.init = Compose([TRANSFORMS.build(t) for t in build[:cut]])
        self.decode = TRANSFORMS.build(build[decode_at])
        self.post = Compose([TRANSFORMS.build(t)
                             for t in build[decode_at + 1:]])
        from mmaction.datasets.transforms import DecordDecode
        self.shared_decode = (isinstance(self.decode, DecordDecode)
                              and self.decode.mode == 'accurate')
        # 2D recognizers read a window as num_clips=L frames of clip_len 1
        self.frames_as_clips = any(
            _type_name(t) == 'FormatShape'
            and t.get('input_format') == 'NCHW' for t in pipeline)
        self.spec = spec.validate()
        self.min_frames = min_frames

    @staticmethod
    def _raise_on_error(cfg: dict) -> dict:
        # a broken video must reach the extractor as an error, not a skip
        if 'on_error' in cfg:
            cfg['on_error'] = 'raise'
        return cfg

    def open(self, src: str) -> Dict:
        """Run the init transforms; checks the frame count."""
        results = self.init(
            dict(filename=src, start_index=0, modality='RGB', label=-1))
        if results is None:
            raise IOError('the pipeline skipped the video while opening it')
        total = int(results.get('total_frames', 0))
        if total < self.min_frames:
            raise ValueError(
                f'too short: {total} frame(s), fewer than min_frames='
                f'{self.min_frames}')
        return results

    def _window_keys(self) -> Dict:
        spec = self.spec
        if self.frames_as_clips:
            return dict(clip_len=1, num_clips=spec.clip_len,
                        frame_interval=spec.frame_interval)
        return dict(clip_len=spec.clip_len, num_clips=1,
                    frame_interval=spec.frame_interval)

    def windows(self, opened: Dict, inds: np.ndarray) -> List[Dict]:
        """Decode and preprocess windows (rows of ``inds``).

        Returns:
            list[dict]: The packed results (``inputs``) of each window.
        """
        base = {k: v for k, v in opened.items() if k != 'video_reader'}
        base.update(self._window_keys())
        reader = opened['video_reader']
        if self.shared_decode:
            distinct = np.unique(inds)
            try:
                frames = reader.get_batch(distinct).asnumpy()
            except Exception as err:  # decord: DECORDError / RuntimeError
                raise IOError(
                    f'cannot decode frames {distinct[0]}..{distinct[-1]}: '
                    f'{type(err).__name__}: '
                    f'{str(err).strip().splitlines()[0] if str(err) else ""}'
                ) from err
            if len(frames) != len(distinct):
                raise IOError(f'decoded {len(frames)} frame(s) instead of '
                              f'{len(distinct)}')
        out = []
        for row in inds:
            results = dict(base, frame_inds=row.astype(np.int64))
            if self.shared_decode:
                imgs = frames[np.searchsorted(distinct, row)]  # a copy
                results.update(
                    imgs=list(imgs), original_shape=imgs.shape[1:3],
                    img_shape=imgs.shape[1:3])
            else:
                results['video_reader'] = reader
                results = self.decode(results)
                if results is None:
                    raise IOError('the decoder skipped a window')
            results = self.post(results)
            if results is None:
                raise IOError('the pipeline dropped a window')
            out.append(results)
        return out


class WindowBatches(IterableDataset):
    """Batches of windows of a list of videos (see the module docstring).

    Args:
        entries (list[VideoEntry]): The videos; with ``DataLoader``
            workers each worker takes every ``num_workers``-th one.
        pipeline (WindowPipeline): Decoding and preprocessing.
        batch_size (int): Windows per batch (a batch never mixes videos).
    """

    def __init__(self, entries: List[VideoEntry], pipeline: WindowPipeline,
                 batch_size: int) -> None:
        self.entries = entries
        self.pipeline = pipeline
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Tuple]:
        info = get_worker_info()
        mine = self.entries if info is None else \
            self.entries[info.id::info.num_workers]
        for entry in mine:
            yield from self._video(entry)

    def _video(self, entry: VideoEntry) -> Iterator[Tuple]:
        spec = self.pipeline.spec
        try:
            opened = self.pipeline.open(entry.src)
            total = int(opened['total_frames'])
            count = num_windows(total, spec)
            fps = _fps(opened)
        except Exception as err:
            yield 'error', entry.index, _reason(err)
            return
        yield 'start', entry.index, dict(total_frames=total, fps=fps,
                                         num_windows=count)
        try:
            for first in range(0, count, self.batch_size):
                ks = list(range(first, min(first + self.batch_size, count)))
                packed = self.pipeline.windows(
                    opened, window_frame_indices(total, spec, ks))
                yield 'batch', entry.index, (first,
                                             [p['inputs'] for p in packed])
        except Exception as err:
            yield 'error', entry.index, _reason(err)
            return
        finally:
            opened['video_reader'] = None  # close the file
        yield 'end', entry.index, None


def _fps(opened: Dict) -> Optional[float]:
    fps = opened.get('avg_fps')
    if fps is None and opened.get('video_reader') is not None:
        try:
            fps = opened['video_reader'].get_avg_fps()
        except Exception:
            fps = None
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else None


def _reason(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f'{type(err).__name__}: {lines[0] if lines else ""}'
