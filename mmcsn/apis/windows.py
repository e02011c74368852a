"""Sliding-window arithmetic of the feature extractor (pure functions).

Window ``k`` reads frames ``k * stride + j * frame_interval`` for
``j < clip_len``; its *span* is ``(clip_len - 1) * frame_interval + 1``
frames. The tail rule ("pad-last"), the one rule for every video:

* every window that fits entirely inside the video is kept
  (``num_full = (num_frames - span) // stride + 1`` of them);
* if the frames after the last full window are not yet covered
  (``max(end_of_last_full_window, num_full * stride) < num_frames``), one
  more window starts at ``num_full * stride`` and the indices that run
  past the end repeat the last frame (MMAction2's ``UntrimmedSampleFrames``
  clamps the same way);
* a video shorter than one span therefore gets exactly one (padded)
  window starting at frame 0.

So every frame a window start can reach is seen, no window starts past
the end, and at most one window per video is padded::

    frames   0 1 2 3 4 5 6 7 8 9        clip_len 4, interval 1, stride 3
    k=0      [0 1 2 3]
    k=1            [3 4 5 6]
    k=2                  [6 7 8 9]      num_full = (10 - 4) // 3 + 1 = 3
    (10 frames: covered, no tail; 11 frames: k=3 = [9 10 10 10], padded)
"""
from typing import List, NamedTuple

import numpy as np

__all__ = [
    'WindowSpec', 'window_span', 'num_full_windows', 'num_windows',
    'window_starts', 'window_frame_indices', 'window_times', 'TAIL_RULE'
]

TAIL_RULE = 'pad-last'


class WindowSpec(NamedTuple):
    """Sampling parameters of the sliding windows.

    Attributes:
        clip_len (int): Frames per window (``L``).
        frame_interval (int): Step between the frames of a window (``I``).
        stride (int): Step between window starts, in frames (``S``).
    """
    clip_len: int
    frame_interval: int = 1
    stride: int = 16

    def validate(self) -> 'WindowSpec':
        """Return ``self`` after checking every field is an int >= 1."""
        for name, value in zip(self._fields, self):
            if (isinstance(value, bool) or not isinstance(value, int)
                    or value < 1):
                raise ValueError(
                    f'{name} must be an int >= 1, got {value!r}')
        return self


def window_span(spec: WindowSpec) -> int:
    """Frames from the first to the last frame of a window, inclusive."""
    spec.validate()
    return (spec.clip_len - 1) * spec.frame_interval + 1


def _check_frames(num_frames: int) -> None:
    if (isinstance(num_frames, bool) or not isinstance(num_frames, int)
            or num_frames < 1):
        raise ValueError(
            f'num_frames must be an int >= 1, got {num_frames!r}')


def num_full_windows(num_frames: int, spec: WindowSpec) -> int:
    """Windows that fit entirely inside ``num_frames`` frames."""
    _check_frames(num_frames)
    span = window_span(spec)
    return 0 if num_frames < span else (num_frames - span) // spec.stride + 1


def num_windows(num_frames: int, spec: WindowSpec) -> int:
    """Windows of a video under the pad-last tail rule (always >= 1).

    Args:
        num_frames (int): Frames in the video (>= 1).
        spec (WindowSpec): Window parameters.

    Returns:
        int: ``num_full_windows`` plus one padded tail window when frames
        after the last full window are not covered yet.
    """
    full = num_full_windows(num_frames, spec)
    end_of_last = (full - 1) * spec.stride + window_span(spec) if full else 0
    return full + int(max(end_of_last, full * spec.stride) < num_frames)


def window_starts(num_frames: int, spec: WindowSpec) -> np.ndarray:
    """First frame of every window, ``k * stride``; int64 array."""
    return np.arange(num_windows(num_frames, spec),
                     dtype=np.int64) * spec.stride


def window_frame_indices(num_frames: int, spec: WindowSpec,
                         windows: List[int] = None) -> np.ndarray:
    """Frame indices read by each window, clamped to the last frame.

    Args:
        num_frames (int): Frames in the video.
        spec (WindowSpec): Window parameters.
        windows (list[int], optional): Window numbers to return. Defaults
            to all of them.

    Returns:
        np.ndarray: ``(len(windows), clip_len)`` int64 frame indices.
    """
    count = num_windows(num_frames, spec)
    ks = np.arange(count) if windows is None else np.asarray(windows)
    if ks.size and (ks.min() < 0 or ks.max() >= count):
        raise ValueError(f'window numbers must lie in [0, {count}), got '
                         f'{ks.min()}..{ks.max()}')
    offsets = np.arange(spec.clip_len, dtype=np.int64) * spec.frame_interval
    inds = ks.astype(np.int64)[:, None] * spec.stride + offsets[None, :]
    return np.minimum(inds, num_frames - 1)


def window_times(num_frames: int, fps: float,
                 spec: WindowSpec) -> np.ndarray:
    """Start, centre and end (exclusive) of each window in seconds.

    The end of the padded tail window is clipped to the video's duration.

    Returns:
        np.ndarray: ``(num_windows, 3)`` float64 seconds.
    """
    if not fps > 0:
        raise ValueError(f'fps must be > 0, got {fps!r}')
    starts = window_starts(num_frames, spec).astype(np.float64)
    ends = np.minimum(starts + window_span(spec), num_frames)
    return np.stack([starts, (starts + ends) / 2, ends], axis=1) / fps
