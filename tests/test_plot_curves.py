"""tools/analysis/plot_curves.py stitches every run of a work dir.

The work dir is built in mmengine's format (``<timestamp>/vis_data/
scalars.json``; train rows carry ``epoch``, global ``iter`` and ``step``,
val rows the metric and ``step`` = epoch), the layout a real resumed run
of the demo config writes.
"""
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import load_tool

PER_EPOCH = 4  # iterations per epoch


def _run(root: Path, stamp: str, iters, vals, use_scalars=True) -> None:
    log = root / stamp / 'vis_data'
    log.mkdir(parents=True)
    rows = []
    for it in iters:
        epoch = (it - 1) // PER_EPOCH + 1
        rows.append(dict(lr=0.1, loss=10.0 * int(stamp[-1]) + it,
                         epoch=epoch, iter=it, step=it))
        if it % PER_EPOCH == 0 and epoch in vals:
            rows.append({'acc/top1': vals[epoch], 'step': epoch})
    name = 'scalars.json' if use_scalars else f'{stamp}.json'
    (log / name).write_text('\n'.join(json.dumps(r) for r in rows) + '\n')


@pytest.fixture
def resumed_work_dir(tmp_path) -> Path:
    """Epochs 1-2; killed mid-epoch 3; resumed from epoch 2 to epoch 4."""
    work = tmp_path / 'work'
    _run(work, '20260101_000001', range(1, 9), {1: 0.2, 2: 0.3})
    _run(work, '20260101_000002', range(9, 11), {})  # killed
    # the resume wrote only <timestamp>.json (older mmengine layout)
    _run(work, '20260101_000003', range(9, 17), {3: 0.5, 4: 0.6},
         use_scalars=False)
    (work / '20260101_000004').mkdir()  # a run that died before logging
    return work


def test_every_run_is_stitched_on_an_epoch_axis(resumed_work_dir):
    plot = load_tool('tools/analysis/plot_curves.py')
    logs = plot.find_scalars(str(resumed_work_dir))
    assert [Path(p).parts[-3] for p in logs] == [
        '20260101_000001', '20260101_000002', '20260101_000003']
    curves = plot.load_curves(logs)
    assert curves['loss_x'] == [i / PER_EPOCH for i in range(1, 17)]
    # epochs 1-2 from run 1, 3-4 from run 3; run 2's overlap replaced
    assert curves['loss'] == [10.0 + i for i in range(1, 9)] + [
        30.0 + i for i in range(9, 17)]
    assert curves['val_x'] == [1, 2, 3, 4]
    assert curves['val'] == [0.2, 0.3, 0.5, 0.6]
    assert curves['resumes'] == [2.0, 2.0]
    # negative control: the newest run alone (the old behaviour) misses
    # half the training
    last = plot.load_curves(logs[-1:])
    assert last['val_x'] == [3, 4] and len(last['loss']) == 8


def test_cli_writes_png_and_names_missing_matplotlib(resumed_work_dir,
                                                     tmp_path, monkeypatch,
                                                     capsys):
    plot = load_tool('tools/analysis/plot_curves.py')
    out = tmp_path / 'curves.png'
    assert plot.main([str(resumed_work_dir), '--out', str(out)]) == 0
    assert out.read_bytes()[:4] == b'\x89PNG'
    assert plot.main([str(tmp_path / 'empty'), '--out', str(out)]) == 1
    assert 'no */vis_data/scalars.json' in capsys.readouterr().err

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *args: None
        if name == 'matplotlib' else find_spec(name, *args))
    out.unlink()
    assert plot.main([str(resumed_work_dir), '--out', str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ('error: plot_curves.py needs matplotlib (not '
                   'installed): pip install "mmcsn[viz]"')
    assert not out.exists()


def test_a_torn_last_line_is_skipped(tmp_path):
    plot = load_tool('tools/analysis/plot_curves.py')
    _run(tmp_path, '20260101_000001', range(1, 5), {1: 0.4})
    log = tmp_path / '20260101_000001' / 'vis_data' / 'scalars.json'
    with open(log, 'a') as f:
        f.write('{"loss": 1.0, "ep')  # killed mid-write
    with pytest.warns(UserWarning, match='not JSON, skipped'):
        curves = plot.load_curves(str(tmp_path))
    assert curves['val'] == [0.4] and len(curves['loss']) == 4
