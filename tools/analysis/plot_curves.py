"""Plot training-loss and validation-accuracy curves of mmengine runs.

Reads the ``<work_dir>/<timestamp>/vis_data/scalars.json`` log that
mmengine's ``LocalVisBackend`` writes (the newest run of each work dir) and
draws one line per run in two panels: training loss against epochs and
validation top-1 against epochs::

    python tools/analysis/plot_curves.py work_dirs/a work_dirs/b \\
        --labels a b --out curves.png
"""
import argparse
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

__all__ = ['find_scalars', 'load_curves', 'plot_curves']


def find_scalars(work_dir: str) -> str:
    """The ``scalars.json`` of the newest run under ``work_dir``.

    Args:
        work_dir (str): An mmengine work dir, or the path of a
            ``scalars.json`` itself.

    Returns:
        str: Path of the log.
    """
    if osp.isfile(work_dir):
        return work_dir
    found = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir!r}: was it trained '
            "with mmengine's LocalVisBackend?")
    return found[-1]  # timestamped dirs sort in time order


def load_curves(path: str,
                metric: str = 'acc/top1') -> Dict[str, List[float]]:
    """Read the loss and validation curves from one ``scalars.json``.

    Args:
        path (str): The log file.
        metric (str): Validation metric to read. Defaults to
            ``'acc/top1'``.

    Returns:
        dict: ``loss_x`` (fractional epochs), ``loss``, ``val_x``
        (epochs), ``val``.
    """
    train, val = [], []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            if 'loss' in row and 'epoch' in row:
                train.append(row)
            elif metric in row:
                val.append(row)
    # iterations per epoch = the last logged iteration of epoch 1 (the
    # logger also writes the last iteration of an epoch)
    per_epoch = max((r['iter'] for r in train if r['epoch'] == 1),
                    default=1)
    return dict(
        loss_x=[r['iter'] / per_epoch for r in train],
        loss=[r['loss'] for r in train],
        val_x=[r['step'] for r in val],
        val=[r[metric] for r in val])


def plot_curves(work_dirs: Sequence[str],
                out: str,
                labels: Optional[Sequence[str]] = None,
                metric: str = 'acc/top1',
                chance: Optional[float] = None) -> str:
    """Draw the curves of several runs into one PNG.

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
        ax_loss.plot(curves['loss_x'], curves['loss'], label=label)
        ax_acc.plot(curves['val_x'], curves['val'], marker='o', label=label)
    if chance is not None:
        ax_acc.axhline(chance, color='grey', linestyle='--', label='chance')
    ax_loss.set(xlabel='epoch', ylabel='training loss', title='Loss')
    ax_acc.set(xlabel='epoch', ylabel=metric, ylim=(0, 1.02),
               title='Validation accuracy')
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='mmengine work dirs')
    parser.add_argument('--labels', nargs='+', help='legend names')
    parser.add_argument('--out', default='curves.png', help='output PNG')
    parser.add_argument('--metric', default='acc/top1', help='val metric')
    parser.add_argument(
        '--chance', type=float, default=None, help='chance accuracy line')
    args = parser.parse_args()
    print(plot_curves(args.work_dirs, args.out, args.labels, args.metric,
                      args.chance))


if __name__ == '__main__':
    main()
