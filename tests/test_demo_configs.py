"""The demo configs: structure, and one train + val iteration each."""
import math
from pathlib import Path

import pytest
from conftest import REPO_ROOT, load_tool
from mmengine.config import Config
from mmengine.runner import Runner

import mmcsn  # noqa: F401  (stack fixes, registers CSN / bLResNet)

CONFIGS = sorted((REPO_ROOT / 'configs' / 'demo').glob('*.py'))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def test_three_demo_configs():
    names = [c.name for c in CONFIGS]
    assert len(names) == 3, names
    backbones = {Config.fromfile(c).model.backbone.type for c in CONFIGS}
    assert backbones == {'CSN', 'bLResNet', 'ResNet'}


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_config_structure(config: Path):
    cfg = Config.fromfile(config)
    assert cfg.custom_imports == dict(
        imports=['mmcsn'], allow_failed_imports=False)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.randomness.seed == 0
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    expected = dict(Recognizer3D='NCTHW', Recognizer2D='NCHW')[cfg.model.type]
    assert cfg.model.data_preprocessor.format_shape == expected
    for loader in LOADERS:
        dataset = cfg[loader].dataset
        assert dataset.data_prefix.video == 'data/demo'
        pipeline = dataset.pipeline
        types = [t.type for t in pipeline]
        # a horizontal flip turns move_left into move_right
        assert 'Flip' not in types
        assert types[:3] == ['CheckedDecordInit', 'SampleFrames',
                             'CheckedDecordDecode']
        fmt = next(t for t in pipeline if t.type == 'FormatShape')
        assert fmt.input_format == expected
        sample = pipeline[1]
        assert sample.get('test_mode', False) == (loader != 'train_dataloader')
    assert cfg.test_pipeline == cfg.test_dataloader.dataset.pipeline


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_one_train_and_val_iteration(config: Path, demo_data_root, tmp_path):
    demo = load_tool('tools/demo.py')
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(demo.data_options(str(demo_data_root)))
    cfg.merge_from_dict({
        'train_dataloader.batch_size': 2,
        'train_dataloader.dataset.indices': 2,  # one iteration
        'val_dataloader.batch_size': 2,
        'val_dataloader.dataset.indices': 2,
        **demo.epoch_options(2),
        'train_cfg.max_epochs': 1,
    })
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1 and runner.epoch == 1
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0
    top1 = runner.message_hub.get_scalar('val/acc/top1').current()
    assert 0.0 <= top1 <= 1.0
    assert (tmp_path / 'epoch_1.pth').is_file()


# inference on a real clip: tests/test_all_configs.py (every small config)


def test_complexity_and_expectations():
    demo = load_tool('tools/demo.py')
    sizes = {}
    for _, config, _ in demo.DEMO_MODELS:
        params, gflops = demo.count_complexity(str(REPO_ROOT / config))
        assert params > 0 and gflops > 0
        sizes[Path(config).name.split('_')[0]] = params
    assert sizes['ircsn'] < sizes['tsn'] < sizes['blvnet-tam']
    row = dict(model='m', temporal=True, top1=0.79, direction=0.9)
    assert demo.check_expectations([row]) == ['m: top-1 0.790 < 0.8']
    assert demo.check_expectations([dict(row, top1=0.8)]) == []
    blind = dict(row, temporal=False, top1=0.5, direction=0.7)
    assert 'direction accuracy 0.700' in demo.check_expectations([blind])[0]


def test_plot_curves(tmp_path):
    import json
    plot = load_tool('tools/analysis/plot_curves.py')
    runs = []
    for name, accs in (('a', [0.2, 0.9]), ('b', [0.1, 0.4])):
        log = tmp_path / name / '20260101_000000' / 'vis_data'
        log.mkdir(parents=True)
        rows = [dict(loss=2.0 - i / 4, epoch=1 + i // 2, iter=i + 1,
                     step=i + 1) for i in range(4)]
        rows += [{'acc/top1': a, 'step': e + 1} for e, a in enumerate(accs)]
        (log / 'scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in rows) + '\n')
        runs.append(str(tmp_path / name))
    curves = plot.load_curves(plot.find_scalars(runs[0]))
    assert curves['loss_x'] == [0.5, 1.0, 1.5, 2.0]
    assert curves['val'] == [0.2, 0.9] and curves['val_x'] == [1, 2]
    out = plot.plot_curves(runs, str(tmp_path / 'c.png'), chance=0.125)
    assert Path(out).read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        plot.find_scalars(str(tmp_path / 'missing'))
