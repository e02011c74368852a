"""Plot training-loss and validation-accuracy curves of mmengine runs.

Reads every run of each work dir -- the ``<timestamp>/vis_data/
scalars.json`` (or ``<timestamp>.json``) that mmengine's
``LocalVisBackend`` writes per start, so a ``--resume`` adds one -- and
stitches them into one curve per work dir on an epoch axis, in two
panels: training loss and validation top-1 against epochs::

    python tools/analysis/plot_curves.py work_dirs/a work_dirs/b \\
        --labels a b --out curves.png

Stitching::

    run 1 (epochs 1-2) | run 2 (--resume, epochs 3-5) | run 3 ...
    x = global iteration / iterations per epoch; where a later run
    repeats iterations (killed mid-epoch, resumed from the last
    checkpoint) the later run's points replace the earlier ones

Needs matplotlib (``pip install "mmcsn[viz]"``).
"""
import argparse
import glob
import importlib.util
import json
import os
import os.path as osp
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Union

__all__ = ['find_scalars', 'load_curves', 'plot_curves']


def find_scalars(work_dir: str) -> List[str]:
    """The scalar logs of every run under ``work_dir``, oldest first.

    Args:
        work_dir (str): An mmengine work dir, or the path of one
            ``scalars.json`` itself.

    Returns:
        list[str]: One log per run (``vis_data/scalars.json``, else
        ``vis_data/<timestamp>.json``), in time order.
    """
    if osp.isfile(work_dir):
        return [work_dir]
    found = []
    # timestamped dirs (YYYYmmdd_HHMMSS) sort in time order
    for run in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data'))):
        stamp = osp.basename(osp.dirname(run))
        for name in ('scalars.json', f'{stamp}.json'):
            if osp.isfile(osp.join(run, name)):
                found.append(osp.join(run, name))
                break
    if not found:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir!r}: was it trained '
            "with mmengine's LocalVisBackend?")
    return found


def _read_rows(path: str, metric: str):
    train, val = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                # a run killed mid-write leaves a partial last line
                warnings.warn(f'{path}:{number}: not JSON, skipped')
                continue
            if 'loss' in row and 'epoch' in row and 'iter' in row:
                train.append(row)
            elif metric in row and 'step' in row:
                val.append(row)
    return train, val


def load_curves(paths: Union[str, Sequence[str]],
                metric: str = 'acc/top1') -> Dict[str, List[float]]:
    """Read and stitch the loss and validation curves of runs.

    Args:
        paths (str | Sequence[str]): One ``scalars.json``, a work dir, or
            the logs of consecutive runs (:func:`find_scalars`), oldest
            first.
        metric (str): Validation metric to read. Defaults to
            ``'acc/top1'``.

    Returns:
        dict: ``loss_x`` (fractional epochs), ``loss``, ``val_x``
        (epochs), ``val``, and ``resumes`` (the epoch at which each later
        run started).
    """
    if isinstance(paths, str):
        paths = find_scalars(paths)
    train: List[dict] = []
    val: List[dict] = []
    starts = []
    for path in paths:
        run_train, run_val = _read_rows(path, metric)
        if not run_train and not run_val:
            continue  # e.g. a tools/test.py run in the same work dir
        if run_train:
            first = run_train[0]
            # the later run wins where runs overlap
            train = [r for r in train if r['iter'] < first['iter']]
            val = [r for r in val if r['step'] < first['epoch']]
            if train:  # a resumed run: where its predecessor stopped
                starts.append(train[-1]['iter'])
        elif run_val:
            val = [r for r in val if r['step'] < run_val[0]['step']]
        train += run_train
        val += run_val
    # iterations per epoch: the logger writes each epoch's last iteration
    # (the global count), so a complete epoch e ends at e * per_epoch; an
    # epoch cut short by a kill only gives less, hence the max
    per_epoch = max((r['iter'] / r['epoch'] for r in train), default=1.0)
    return dict(
        loss_x=[r['iter'] / per_epoch for r in train],
        loss=[r['loss'] for r in train],
        val_x=[r['step'] for r in val],
        val=[r[metric] for r in val],
        resumes=[i / per_epoch for i in starts])


def plot_curves(work_dirs: Sequence[str],
                out: str,
                labels: Optional[Sequence[str]] = None,
                metric: str = 'acc/top1',
                chance: Optional[float] = None) -> str:
    """Draw the stitched curves of several work dirs into one PNG.

    Args:
        work_dirs (Sequence[str]): Work dirs (or ``scalars.json`` paths).
        out (str): Output image path.
        labels (Sequence[str], optional): Legend names; defaults to the
            work dir names.
        metric (str): Validation metric. Defaults to ``'acc/top1'``.
        chance (float, optional): Draw a dashed chance-level line at this
            accuracy. Defaults to None.

    Returns:
        str: ``out``.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only, no display needed
    import matplotlib.pyplot as plt

    if labels is None:
        labels = [osp.basename(osp.normpath(w)) for w in work_dirs]
    if len(labels) != len(work_dirs):
        raise ValueError(f'labels has {len(labels)} entries for '
                         f'{len(work_dirs)} work dirs')
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for work_dir, label in zip(work_dirs, labels):
        curves = load_curves(find_scalars(work_dir), metric)
        (line, ) = ax_loss.plot(curves['loss_x'], curves['loss'],
                                label=label)
        ax_acc.plot(curves['val_x'], curves['val'], marker='o', label=label,
                    color=line.get_color())
        for epoch in curves['resumes']:  # where a resumed run took over
            for ax in (ax_loss, ax_acc):
                ax.axvline(epoch, color=line.get_color(), linestyle=':',
                           linewidth=1)
    if chance is not None:
        ax_acc.axhline(chance, color='grey', linestyle='--', label='chance')
    ax_loss.set(xlabel='epoch', ylabel='training loss', title='Loss')
    ax_acc.set(xlabel='epoch', ylabel=metric, ylim=(0, 1.02),
               title='Validation accuracy (dotted: resumed)')
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='mmengine work dirs')
    parser.add_argument('--labels', nargs='+', help='legend names')
    parser.add_argument('--out', default='curves.png', help='output PNG')
    parser.add_argument('--metric', default='acc/top1', help='val metric')
    parser.add_argument(
        '--chance', type=float, default=None, help='chance accuracy line')
    args = parser.parse_args(argv)
    # checked here, not via mmcsn.utils.extras: importing mmcsn (torch,
    # MMAction2) would cost seconds in a plotting tool; same message
    if importlib.util.find_spec('matplotlib') is None:
        print('error: plot_curves.py needs matplotlib (not installed): '
              'pip install "mmcsn[viz]"', file=sys.stderr)
        return 1
    try:
        print(plot_curves(args.work_dirs, args.out, args.labels,
                          args.metric, args.chance))
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
