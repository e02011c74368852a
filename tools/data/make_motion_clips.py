"""Generate the embedded demo dataset: eight time-reversed motion classes.

Every class has a partner whose clips are, in distribution, its own clips
played backwards (left/right, up/down, clockwise/anticlockwise,
grow/shrink). A single frame -- or the unordered set of frames -- therefore
says nothing about the direction; only the order of the frames does. A
frame-order-blind model (TSN with average consensus) can at best tell the
pair apart and guess the direction (50% within each pair, so at most 50%
top-1; 12.5% is chance over the 8 classes) while a temporal model (CSN,
bLVNet-TAM) can reach close to 100%.

Clips are real ``.mp4`` files (OpenCV, ``mp4v``) in MMAction2's
``VideoDataset`` layout::

    <out>/classes.txt                  one class name per line, label order
    <out>/{train,val,test}.txt         ``videos/<split>/<name>.mp4 <label>``
    <out>/videos/<split>/*.mp4

Generation is deterministic: every clip draws from its own generator seeded
with ``(seed, split, label, index)``, so the same seed gives byte-identical
files, and changing ``--num-per-class`` does not change the clips that
exist in both runs.

Example::

    python tools/data/make_motion_clips.py --out data/demo --seed 0

:func:`write_broken_video` writes unreadable files for reliability tests.
"""
import argparse
import os
import os.path as osp
import time
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'CLASSES', 'SPLITS', 'BROKEN_KINDS', 'render_clip', 'write_video',
    'generate_dataset', 'write_broken_video', 'write_broken_set',
    'read_annotations'
]

# Label order. Classes 2k and 2k+1 form a time-reversed pair: the odd class
# is rendered as the even class's motion and then played backwards.
CLASSES: Tuple[str, ...] = (
    'move_left',  # x decreases
    'move_right',  # move_left reversed
    'move_up',  # y decreases
    'move_down',  # move_up reversed
    'rotate_clockwise',  # clockwise on screen (y axis points down)
    'rotate_anticlockwise',  # rotate_clockwise reversed
    'grow',  # scale increases
    'shrink',  # grow reversed
)

# Split name -> share of ``num_per_class``; counts are rounded down for
# val/test and train takes the rest.
SPLITS: Tuple[Tuple[str, float], ...] = (
    ('train', 0.6),
    ('val', 0.2),
    ('test', 0.2),
)

# Kinds of unreadable video that :func:`write_broken_video` can write.
BROKEN_KINDS: Dict[str, str] = {
    'empty': 'a 0-byte file',
    'truncated': 'a valid clip cut to its first third of bytes',
    'random': 'random bytes (no container at all)',
    'zero_frames': 'a valid mp4 container holding no video frame',
    'text': 'a text file with an .mp4 name',
}

_FPS = 8
_SPLIT_IDS = {name: i for i, (name, _) in enumerate(SPLITS)}


def _polygon(rng: np.random.Generator) -> np.ndarray:
    """A random asymmetric polygon in unit radius, centred at the origin.

    One vertex is a long "pointer" (radius 1) and the others are shorter,
    so that no rotation other than a full turn maps the shape onto itself
    and the direction of rotation is visible.
    """
    n = int(rng.integers(4, 7))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n - 1))
    # keep the pointer (angle 0) apart from its neighbours
    angles = 0.35 + angles * (2 * np.pi - 0.7) / (2 * np.pi)
    radii = rng.uniform(0.4, 0.65, n - 1)
    pts = [(1.0, 0.0)] + [(r * np.cos(a), r * np.sin(a))
                          for r, a in zip(radii, angles)]
    return np.asarray(pts, dtype=np.float64)


def _draw(img: np.ndarray, pts: np.ndarray, colour: Sequence[int]) -> None:
    """Fill a polygon with sub-pixel precision (4 fractional bits)."""
    fixed = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [fixed], tuple(int(c) for c in colour),
                 lineType=cv2.LINE_AA, shift=4)


def _place(shape: np.ndarray, centre: Sequence[float], radius: float,
           angle: float) -> np.ndarray:
    """Scale, rotate (clockwise on screen for angle > 0) and translate."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])  # y points down: clockwise on screen
    return shape @ rot.T * radius + np.asarray(centre)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dark random colour with 1-3 static distractor shapes.

    Distractors are smaller and duller than the moving object: they make
    single frames ambiguous without hiding the motion.
    """
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(0, 80, 3)
    for _ in range(int(rng.integers(1, 4))):
        r = size * rng.uniform(0.05, 0.12)
        _draw(img,
              _place(_polygon(rng), rng.uniform(0, size, 2), r,
                     rng.uniform(0, 2 * np.pi)),
              rng.integers(50, 180, 3))
    return img


def _trajectory(rng: np.random.Generator, pair: int, size: int,
                frames: int) -> List[Tuple[np.ndarray, float, float]]:
    """Per-frame (centre, radius, angle) of the moving object.

    The motion is the *first* class of ``pair`` (left, up, clockwise,
    grow); its partner is the same clip reversed in time.
    """
    steps = np.arange(frames, dtype=np.float64)
    angle0 = rng.uniform(0, 2 * np.pi)
    if pair in (0, 1):  # translation along x (pair 0) or y (pair 1)
        r = size * rng.uniform(0.11, 0.15)
        # pixels per frame; a 16-frame clip travels 37-52% of the frame
        speed = size * rng.uniform(0.025, 0.035) * 15 / (frames - 1)
        travel = speed * (frames - 1)
        start = rng.uniform(r + 1 + travel, size - r - 1)
        along = start - speed * steps  # decreasing: left / up
        across = rng.uniform(r + 1, size - r - 1)
        centres = [(a, across) if pair == 0 else (across, a) for a in along]
        return [(np.asarray(c), r, angle0) for c in centres]
    if pair == 2:  # clockwise rotation in place
        r = size * rng.uniform(0.24, 0.32)
        centre = rng.uniform(r + 1, size - r - 1, 2)
        # 14-22 degrees per frame of a 16-frame clip
        omega = np.deg2rad(rng.uniform(14, 22)) * 15 / (frames - 1)
        return [(centre, r, angle0 + omega * t) for t in steps]
    if pair == 3:  # growth in place, geometric in time
        r1 = size * rng.uniform(0.26, 0.33)
        r0 = r1 * rng.uniform(0.25, 0.35)
        centre = rng.uniform(r1 + 1, size - r1 - 1, 2)
        radii = r0 * (r1 / r0)**(steps / (frames - 1))
        return [(centre, float(r), angle0) for r in radii]
    raise ValueError(f'pair={pair!r} is not valid; valid choices: 0-3')


def render_clip(rng: np.random.Generator,
                label: int,
                size: int = 32,
                frames: int = 16) -> np.ndarray:
    """Render one clip of class ``label``.

    Args:
        rng (np.random.Generator): Source of every random choice.
        label (int): Index into :data:`CLASSES`.
        size (int): Frame height and width in pixels. Defaults to 32.
        frames (int): Number of frames. Defaults to 16.

    Returns:
        np.ndarray: ``(frames, size, size, 3)`` uint8 RGB frames.
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f'label={label!r} is not valid; valid choices: '
                         f'0-{len(CLASSES) - 1}')
    if size < 16 or frames < 2:
        raise ValueError(f'size={size!r} and frames={frames!r} must be '
                         '>= 16 and >= 2')
    background = _background(rng, size)
    shape = _polygon(rng)
    colour = rng.integers(170, 256, 3)
    noise_std = rng.uniform(2, 6)
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t, (centre, radius, angle) in enumerate(
            _trajectory(rng, label // 2, size, frames)):
        img = background.copy()
        _draw(img, _place(shape, centre, radius, angle), colour)
        noisy = img + rng.normal(0, noise_std, img.shape)
        clip[t] = np.clip(noisy, 0, 255).astype(np.uint8)
    if label % 2 == 1:  # the partner class: the same motion played back
        clip = clip[::-1].copy()
    return clip


def write_video(path: str, clip: np.ndarray, fps: int = _FPS) -> None:
    """Write RGB frames ``(T, H, W, 3)`` as an ``mp4v`` .mp4 file."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    h, w = clip.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (w, h))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {path!r} with mp4v')
    try:
        for frame in clip:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _split_counts(num_per_class: int) -> Dict[str, int]:
    counts = {name: int(num_per_class * share) for name, share in SPLITS}
    counts['train'] = num_per_class - sum(
        n for name, n in counts.items() if name != 'train')
    return counts


def generate_dataset(out: str,
                     seed: int = 0,
                     num_per_class: int = 60,
                     size: int = 32,
                     frames: int = 16,
                     verbose: bool = False) -> Dict[str, int]:
    """Write the whole dataset under ``out``.

    Args:
        out (str): Output directory; created if missing. Existing files of
            the same names are overwritten.
        seed (int): Dataset seed. Defaults to 0.
        num_per_class (int): Clips per class over all splits (60% train,
            20% val, 20% test). Defaults to 60.
        size (int): Frame height and width. Defaults to 32.
        frames (int): Frames per clip. Defaults to 16.
        verbose (bool): Print one line per split. Defaults to False.

    Returns:
        dict: Number of clips written per split.
    """
    if num_per_class < 5:
        raise ValueError(f'num_per_class={num_per_class!r} must be >= 5 so '
                         'that every split gets a clip of every class')
    counts = _split_counts(num_per_class)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'classes.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    written = {}
    for split, _ in SPLITS:
        lines = []
        for index in range(counts[split]):
            for label, name in enumerate(CLASSES):
                rng = np.random.default_rng(
                    [seed, _SPLIT_IDS[split], label, index])
                rel = f'videos/{split}/{name}_{index:04d}.mp4'
                write_video(
                    osp.join(out, rel),
                    render_clip(rng, label, size=size, frames=frames))
                lines.append(f'{rel} {label}')
        with open(osp.join(out, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        written[split] = len(lines)
        if verbose:
            print(f'{split}: {len(lines)} clips', flush=True)
    return written


def read_annotations(path: str) -> List[Tuple[str, int]]:
    """Read a ``<relative path> <label>`` annotation file."""
    with open(path) as f:
        rows = [line.split() for line in f if line.strip()]
    return [(rel, int(label)) for rel, label in rows]


def write_broken_video(path: str,
                       kind: str,
                       seed: int = 0,
                       size: int = 32,
                       frames: int = 8) -> str:
    """Write an unreadable video of one kind, for reliability tests.

    Kinds (see :data:`BROKEN_KINDS`): ``'empty'`` (0 bytes),
    ``'truncated'`` (a real clip cut to its first third of bytes),
    ``'random'`` (random bytes), ``'zero_frames'`` (an mp4 container with
    no frame; decord refuses it) and ``'text'`` (plain text).

    Args:
        path (str): File to write; parent directories are created.
        kind (str): One of :data:`BROKEN_KINDS`.
        seed (int): Seed of the content. Defaults to 0.
        size (int): Frame size of the clip the truncated file is cut
            from. Defaults to 32.
        frames (int): Its number of frames. Defaults to 8.

    Returns:
        str: ``path``.
    """
    if kind not in BROKEN_KINDS:
        raise ValueError(f'kind={kind!r} is not valid; valid choices: '
                         f'{sorted(BROKEN_KINDS)}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    rng = np.random.default_rng([seed, 99])
    if kind == 'empty':
        open(path, 'wb').close()
    elif kind == 'random':
        with open(path, 'wb') as f:
            f.write(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == 'text':
        with open(path, 'w') as f:
            f.write('this is not a video\n')
    elif kind == 'zero_frames':
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'),
                                 _FPS, (size, size))
        writer.release()
    else:  # truncated
        write_video(path, render_clip(rng, 0, size=size, frames=frames))
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 3])
    return path


def write_broken_set(out: str, seed: int = 0) -> List[str]:
    """Write one file of every broken kind plus ``broken.txt``.

    Returns:
        list[str]: Relative paths, also listed with label 0 in
        ``<out>/broken.txt`` so a ``VideoDataset`` can load them.
    """
    rels = [f'broken/{kind}.mp4' for kind in BROKEN_KINDS]
    for rel, kind in zip(rels, BROKEN_KINDS):
        write_broken_video(osp.join(out, rel), kind, seed=seed)
    with open(osp.join(out, 'broken.txt'), 'w') as f:
        f.write(''.join(f'{rel} 0\n' for rel in rels))
    return rels


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the time-reversed motion demo dataset')
    parser.add_argument('--out', default='data/demo', help='output dir')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed')
    parser.add_argument(
        '--num-per-class',
        type=int,
        default=60,
        help='clips per class over train/val/test (60/20/20%%)')
    parser.add_argument('--size', type=int, default=32, help='frame size')
    parser.add_argument('--frames', type=int, default=16, help='clip length')
    parser.add_argument(
        '--broken',
        action='store_true',
        help='also write one unreadable file of every kind under '
        '<out>/broken/ and list them in <out>/broken.txt')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    counts = generate_dataset(
        args.out,
        seed=args.seed,
        num_per_class=args.num_per_class,
        size=args.size,
        frames=args.frames,
        verbose=True)
    if args.broken:
        write_broken_set(args.out, seed=args.seed)
    print(f'wrote {sum(counts.values())} clips of {len(CLASSES)} classes '
          f'to {args.out} in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
