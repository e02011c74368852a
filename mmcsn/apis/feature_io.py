"""Kill-safe output of the extractor: features, metadata, failures.

Each video gets ``NAME.npy`` (float32 ``(num_windows, C)``) and the
sidecar ``NAME.json`` (metadata). Both are written with
:func:`mmcsn.checkpoint.io.atomic_write` (a hidden temporary file in the
same folder, fsynced and renamed; the mode follows the umask), the
``.json`` first and the ``.npy`` last: the ``.npy`` is the commit mark.
After ``kill -9`` at any moment every ``.npy``/``.json`` present loads;
a video is done when its ``.npy`` loads and its ``.json`` agrees with it
and with the run's settings. Leftover temporaries of a killed run are
removed when their video is processed again.
"""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np

# one home each: atomic output (mode from the umask, dir fsync) and the
# file digest that checkpoint intake uses too
from mmcsn.checkpoint.download import file_sha256
from mmcsn.checkpoint.io import atomic_write

__all__ = [
    'atomic_write', 'save_video_features', 'meta_path', 'output_state',
    'remove_stale_temps', 'write_failed_list', 'file_sha256', 'SETTINGS_KEYS'
]

# metadata entries that must match for an existing output to be reused
SETTINGS_KEYS = ('window', 'feature_layer', 'compute_dtype', 'config_sha256',
                 'checkpoint_sha256')


def meta_path(npy_path: str) -> str:
    """The sidecar ``.json`` of a features file."""
    return osp.splitext(npy_path)[0] + '.json'


def remove_stale_temps(npy_path: str) -> List[str]:
    """Delete temporaries a killed run left for this video's outputs."""
    removed = []
    for final in (npy_path, meta_path(npy_path)):
        pattern = osp.join(
            glob.escape(osp.dirname(final)),
            '.' + glob.escape(osp.basename(final)) + '.*.tmp')
        for tmp in glob.glob(pattern):
            os.unlink(tmp)
            removed.append(tmp)
    return removed


def save_video_features(npy_path: str, feats: np.ndarray,
                        meta: Dict) -> None:
    """Write the metadata, then the features (the commit mark)."""
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    text = json.dumps(meta, indent=1, sort_keys=True).encode()
    atomic_write(meta_path(npy_path), lambda f: f.write(text), force=True)
    atomic_write(npy_path, lambda f: np.save(f, feats, allow_pickle=False),
                 force=True)


def _load_meta(npy_path: str) -> Optional[Dict]:
    try:
        with open(meta_path(npy_path), encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def output_state(npy_path: str, settings: Dict) -> Tuple[str, str]:
    """Whether a video's outputs are done, missing or in the way.

    Args:
        npy_path (str): The features file.
        settings (dict): This run's values of :data:`SETTINGS_KEYS`.

    Returns:
        tuple[str, str]: ``('done', '')``, ``('todo', '')`` (no ``.npy``
        yet: compute it) or ``('conflict', reason)``: a file exists that
        this run must not overwrite (another run's settings, or not a
        features file).
    """
    if not osp.exists(npy_path):
        return 'todo', ''
    try:
        feats = np.load(npy_path, mmap_mode='r', allow_pickle=False)
        shape, dtype = feats.shape, feats.dtype
        del feats
    except (OSError, ValueError, EOFError) as err:
        return 'conflict', (f'{npy_path} exists but is not a readable .npy '
                            f'({err}); delete it to recompute')
    meta = _load_meta(npy_path)
    if meta is None:
        return 'conflict', (f'{npy_path} exists without a readable '
                            f'{osp.basename(meta_path(npy_path))}; '
                            'delete it to recompute')
    if (len(shape) != 2 or dtype != np.float32
            or shape[0] != meta.get('num_windows')):
        return 'conflict', (f'{npy_path} has shape {shape} / {dtype}, not '
                            'the (num_windows, C) float32 its metadata '
                            'says; delete it to recompute')
    differ = [k for k in SETTINGS_KEYS if meta.get(k) != settings.get(k)]
    if differ:
        return 'conflict', (
            f'{npy_path} was extracted with other settings '
            f'({", ".join(differ)} differ); use another --out-dir or '
            'delete it')
    return 'done', ''


def write_failed_list(path: str, failures: List[Tuple[str, str]]) -> None:
    """Write ``path`` (``video<TAB>reason`` lines) or remove it if empty."""
    if not failures:
        if osp.exists(path):
            os.unlink(path)
        return
    text = ''.join(f'{video}\t{" ".join(reason.split())}\n'
                   for video, reason in failures).encode()
    atomic_write(path, lambda f: f.write(text), force=True)
