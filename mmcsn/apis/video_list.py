"""The extractor's video list: parsing, output paths, rank shards.

``LIST`` is MMAction2's video list format: one ``path [label ...]`` per
line (whitespace separated; labels are ignored). Paths are relative to
``video_root`` (or absolute under it); each video's features go to
``out_dir/<path relative to video_root, extension replaced by .npy>``.
Problems a run could only discover halfway (a path escaping the output
folder, two videos writing the same file) are refused up front.
"""
import os
import os.path as osp
import warnings
from typing import List, NamedTuple, Optional

__all__ = ['VideoEntry', 'read_video_list', 'shard_entries']


class VideoEntry(NamedTuple):
    """One video of the list.

    Attributes:
        index (int): Position in the de-duplicated list.
        src (str): Path to read.
        rel (str): Path relative to the video root (names the outputs).
        out (str): The ``.npy`` features file.
    """
    index: int
    src: str
    rel: str
    out: str


def read_video_list(list_path: str, out_dir: str,
                    video_root: Optional[str] = None) -> List[VideoEntry]:
    """Parse ``list_path`` into entries with their output paths.

    Args:
        list_path (str): The video list.
        out_dir (str): The output folder.
        video_root (str, optional): Folder the list's paths are relative
            to. Defaults to None (the current directory).

    Returns:
        list[VideoEntry]: One per distinct video, in list order.

    Raises:
        FileNotFoundError: ``list_path`` does not exist.
        ValueError: A line names a path outside ``video_root``, or two
            videos would write the same output (both named).
    """
    if not osp.isfile(list_path):
        raise FileNotFoundError(f'video list not found: {list_path!r}')
    root = osp.abspath(video_root or '.')
    entries, by_out, seen = [], {}, set()
    with open(list_path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            path = fields[0]
            src = path if osp.isabs(path) else osp.join(root, path)
            rel = osp.relpath(osp.normpath(osp.abspath(src)), root)
            if rel == '.' or rel.split(os.sep)[0] == '..':
                raise ValueError(
                    f'{list_path}:{lineno}: {path!r} is not inside the '
                    f'video root {root!r}; outputs are named by the path '
                    'relative to --video-root, so give a root that contains '
                    'every video')
            if rel in seen:
                warnings.warn(f'{list_path}:{lineno}: {path!r} is listed '
                              'again; extracted once')
                continue
            seen.add(rel)
            out = osp.join(out_dir, osp.splitext(rel)[0] + '.npy')
            if out in by_out:
                raise ValueError(
                    f'{list_path}:{lineno}: {path!r} and '
                    f'{by_out[out]!r} would both write {out!r} (same path '
                    'without extension); rename one of them')
            by_out[out] = path
            entries.append(VideoEntry(len(entries), src, rel, out))
    return entries


def shard_entries(entries: List[VideoEntry], rank: int,
                  world_size: int) -> List[VideoEntry]:
    """The videos of one rank: list positions ``rank, rank + world, ...``.

    Deterministic from the list alone, so every video goes to exactly one
    rank without any communication.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f'rank must lie in [0, {world_size}), got {rank}')
    return entries[rank::world_size]
