"""Video loading that names the broken file, or skips it when asked.

MMAction2's ``DecordInit`` / ``DecordDecode`` fail fast on an empty,
random, truncated, zero-frame or corrupt video, but with decord's bare
message (``Error reading 0 bytes...``, ``cannot find video stream with
wanted index: -1``, ``avcodec_send_packet ...``) that never names the
file, so one bad clip in a large dataset is hard to find, and a training
run dies on it. The two transforms here are drop-in replacements:

- ``on_error='raise'`` (default): raise :class:`VideoReadError` naming the
  file, its label and the reason. Use it in val/test pipelines: mmengine's
  ``BaseDataset`` never refetches in test mode, and a skipped test video
  would silently change the reported accuracy.
- ``on_error='skip'``: log a warning naming the file and return ``None``;
  in training mmengine's ``BaseDataset.__getitem__`` then draws another
  index (up to ``max_refetch`` times, 1000 by default), so the batch gets
  another video with *its own* label -- never the broken video's label
  attached to other frames.
"""
from typing import Dict, List, Optional

import numpy as np
from mmaction.datasets.transforms.loading import DecordDecode, DecordInit
from mmaction.registry import TRANSFORMS
from mmengine.fileio import FileClient
from mmengine.logging import print_log

from mmcsn.validate import ArgSpec, Int, Str

__all__ = ['VideoReadError', 'CheckedDecordInit', 'CheckedDecordDecode']

_ON_ERROR = ('raise', 'skip')


class VideoReadError(IOError):
    """A video file cannot be opened or decoded; the message names it."""



def _io_backends() -> List[str]:
    """Backends mmengine's ``FileClient`` (used by ``DecordInit``) knows."""
    return sorted(FileClient._backends)


class _IOBackend(Str):
    """A ``FileClient`` backend name, read when checked (plugins may add
    backends after import)."""

    def describe(self, args) -> str:
        return f'one of {_io_backends()}'

    def __call__(self, owner, name, value, args):
        self.choices = _io_backends()
        return super().__call__(owner, name, value, args)


def _fail(results: Dict, on_error: str, reason: str,
          err: Optional[BaseException] = None) -> None:
    """Raise :class:`VideoReadError` or log a warning, naming the file."""
    filename = results.get('filename', '<no filename in results>')
    label = results.get('label', '?')
    msg = f'broken video {filename!r} (label {label}): {reason}'
    if err is not None:
        # decord's messages span lines; the first one carries the cause
        detail = str(err).strip().splitlines()
        msg += f' [{type(err).__name__}: {detail[0] if detail else ""}]'
    if on_error == 'raise':
        raise VideoReadError(msg) from err
    print_log(
        msg + ' -- skipped; the dataset fetches another sample',
        logger='current',
        level=30)  # logging.WARNING


@TRANSFORMS.register_module()
class CheckedDecordInit(DecordInit):
    """``DecordInit`` that names the file it cannot open.

    Also refuses videos with fewer than ``min_frames`` frames, which
    ``SampleFrames`` would otherwise turn into modulo-by-zero indices.

    Args:
        io_backend (str): io backend where frames are stored.
            Defaults to ``'disk'``.
        num_threads (int): Number of decoding threads (0: decord picks).
            Defaults to 1.
        on_error (str): ``'raise'`` a :class:`VideoReadError`, or ``'skip'``
            (log and return None; training pipelines only). Defaults to
            ``'raise'``.
        min_frames (int): Fewest frames a usable video has. Defaults to 1.
        kwargs (dict): Args for the file client.
    """

    @ArgSpec(
        'CheckedDecordInit',
        io_backend=_IOBackend(),
        num_threads=Int(min=0),
        on_error=Str(choices=_ON_ERROR),
        min_frames=Int(min=1))
    def __init__(self,
                 io_backend: str = 'disk',
                 num_threads: int = 1,
                 on_error: str = 'raise',
                 min_frames: int = 1,
                 **kwargs) -> None:
        super().__init__(io_backend=io_backend, num_threads=num_threads,
                         **kwargs)
        self.on_error = on_error
        self.min_frames = min_frames

    def transform(self, results: Dict) -> Optional[Dict]:
        """Open the video; see the class docstring for failures.

        Args:
            results (dict): The result dict with ``filename``.

        Returns:
            dict | None: The result dict, or None for a skipped video.
        """
        try:
            results = super().transform(results)
        except Exception as err:  # decord raises DECORDError/RuntimeError
            return _fail(results, self.on_error, 'cannot open it', err)
        if results['total_frames'] < self.min_frames:
            return _fail(
                results, self.on_error,
                f'it has {results["total_frames"]} frame(s), fewer than '
                f'min_frames={self.min_frames}')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(io_backend={self.io_backend}, '
                f'num_threads={self.num_threads}, '
                f'on_error={self.on_error!r}, min_frames={self.min_frames})')


@TRANSFORMS.register_module()
class CheckedDecordDecode(DecordDecode):
    """``DecordDecode`` that names the file whose frames fail to decode.

    Catches data corrupted after a valid header (decord raises only when
    the frames are decoded) and a decoder returning fewer frames than
    asked for.

    Args:
        mode (str): ``'accurate'`` or ``'efficient'`` (see
            ``DecordDecode``). Defaults to ``'accurate'``.
        on_error (str): ``'raise'`` or ``'skip'``, as in
            :class:`CheckedDecordInit`. Defaults to ``'raise'``.
    """

    @ArgSpec(
        'CheckedDecordDecode',
        mode=Str(choices=('accurate', 'efficient')),
        on_error=Str(choices=_ON_ERROR))
    def __init__(self, mode: str = 'accurate',
                 on_error: str = 'raise') -> None:
        super().__init__(mode=mode)
        self.on_error = on_error

    def transform(self, results: Dict) -> Optional[Dict]:
        """Decode the sampled frames; see the class docstring.

        Args:
            results (dict): The result dict with ``video_reader`` and
                ``frame_inds``.

        Returns:
            dict | None: The result dict, or None for a skipped video.
        """
        wanted = int(np.asarray(results['frame_inds']).size)
        try:
            results = super().transform(results)
        except Exception as err:
            results['video_reader'] = None  # release the file handle
            return _fail(results, self.on_error, 'cannot decode frames of it',
                         err)
        got = len(results['imgs'])
        if got != wanted:
            return _fail(results, self.on_error,
                         f'decoded {got} frame(s) instead of {wanted}')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(mode={self.mode}, '
                f'on_error={self.on_error!r})')
