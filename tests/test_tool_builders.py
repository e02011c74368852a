"""The tools' shared helpers (mmcsn.utils.builders) and what they give the
tools: input shapes from a config's test pipeline, the complexity table's
headers, the benchmark's progress lines, GEMM roof and public twins."""
import ast
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, load_tool
from mmengine.config import Config

import mmcsn  # noqa: F401  (registers mmcsn modules)
from mmcsn.benchmark import BenchSpec, build_models
from mmcsn.utils import (
    build_model,
    count_complexity,
    input_shape_from_config,
    load_config,
    recognizer_input_shape,
)

DEMO_CSN = (REPO_ROOT /
            'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py')
CSN_K400 = (REPO_ROOT / 'configs/csn/'
            'ircsn_ig65m-pretrained-r152_8xb12-32x2x1-58e_kinetics400-rgb.py')
BLVNET = (REPO_ROOT / 'configs/blvnet/'
          'blvnet-tam-r50-a2-b4_imagenet-pretrained_8xb8-f8x2-50e_sthv1-rgb.py')
TINY_CSN = ('{"type": "CSN", "depth": 50, "base_channels": 8, '
            '"stage_blocks": [1, 1, 1, 1]}')
TAM = '{"type": "TemporalAggregation", "channels": 4, "num_segments": 2}'
FAST = ['--iters', '1', '--warmup', '0', '--threads', '1']


# ------------------------------------------------------------ load / build
def test_load_config_json_and_overrides():
    cfg = load_config('{"type": "CSN", "depth": 50}', ['model.depth=101'])
    assert cfg.model == dict(type='CSN', depth=101)
    cfg = load_config(str(DEMO_CSN), {'model.cls_head.num_classes': 3})
    assert cfg.model.cls_head.num_classes == 3


@pytest.mark.parametrize('spec,match', [
    ('{"type": "CSN", depth: 50}', 'is not valid JSON'),
    ('["CSN"]', 'no such file'),
    ('{"depth": 50}', 'must be a dict with a "type" key'),
    ('configs/no_such_config.py', "'configs/no_such_config.py': no such"),
])
def test_load_config_refuses_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        load_config(spec)


def test_load_config_refuses_non_str():
    with pytest.raises(TypeError, match='config must be a str'):
        load_config(dict(type='CSN'))


def test_build_model_drops_pretrained_unless_asked(tmp_path):
    """Counting / timing never downloads: backbone.pretrained is dropped."""
    url = 'https://example.invalid/never-downloaded.pth'
    cfg = Config(dict(model=dict(
        type='Recognizer3D',
        backbone=dict(type='CSN', depth=50, base_channels=8,
                      stage_blocks=(1, 1, 1, 1), pretrained=url),
        cls_head=dict(type='I3DHead', num_classes=2, in_channels=256))))
    model = build_model(cfg)
    model.init_weights()  # would fetch the URL if it were kept
    assert model.backbone.pretrained is None
    assert cfg.model.backbone.pretrained == url  # the caller's cfg intact
    kept = build_model(cfg, pretrained=True)
    assert kept.backbone.pretrained == url


@pytest.mark.parametrize('shape,match', [
    ((3, 8, 64), 'must have 4 .* or 5'),
    ((1, 3, 0, 8, 8), 'positive ints'),
    ('13888', 'positive ints'),
])
def test_recognizer_input_shape_is_checked(shape, match):
    model = build_model(str(DEMO_CSN))
    with pytest.raises(ValueError, match=match):
        recognizer_input_shape(model, shape)


# ------------------------------------------------ shape from the test pipeline
@pytest.mark.parametrize('config,shape,views', [
    (DEMO_CSN, [1, 3, 8, 32, 32], 1),  # Resize keep_ratio=False
    (CSN_K400, [1, 3, 32, 256, 256], 30),  # 10 clips x ThreeCrop 256
    (BLVNET, [16, 3, 224, 224], 1),  # 16 segments, CenterCrop 224
])
def test_shape_from_shipped_configs(config, shape, views):
    assert input_shape_from_config(load_config(str(config))) == (shape,
                                                                 views)


def _cfg(pipeline, **backbone):
    return Config(dict(
        model=dict(type='Recognizer3D', backbone=dict(type='CSN', **backbone)),
        test_dataloader=dict(dataset=dict(pipeline=pipeline))))


SAMPLE = dict(type='SampleFrames', clip_len=16, frame_interval=2, num_clips=2)
NCTHW = dict(type='FormatShape', input_format='NCTHW')


@pytest.mark.parametrize('pipeline,backbone,want', [
    # the last size-setting step wins: a crop after a resize
    ([SAMPLE, dict(type='Resize', scale=(-1, 128)),
      dict(type='TenCrop', crop_size=(112, 96)), NCTHW], {},
     ([1, 3, 16, 96, 112], 20)),
    # short side only: taken as a square
    ([SAMPLE, dict(type='Resize', scale=(-1, 160)), NCTHW], {},
     ([1, 3, 16, 160, 160], 2)),
    # a flow backbone's in_channels
    ([SAMPLE, dict(type='CenterCrop', crop_size=64), NCTHW],
     dict(in_channels=2), ([1, 2, 16, 64, 64], 2)),
    # 2D: clip_len x num_clips segments of one view
    ([dict(type='SampleFrames', clip_len=2, num_clips=4),
      dict(type='CenterCrop', crop_size=64),
      dict(type='FormatShape', input_format='NCHW')], {},
     ([8, 3, 64, 64], 1)),
])
def test_shape_rules(pipeline, backbone, want):
    assert input_shape_from_config(_cfg(pipeline, **backbone)) == want


@pytest.mark.parametrize('pipeline,match', [
    ([], 'has no test pipeline'),
    ([SAMPLE, NCTHW], r'has no frame size \(Resize / crop\)'),
    ([dict(type='CenterCrop', crop_size=64), NCTHW], 'has no frame sampler'),
    ([SAMPLE, dict(type='CenterCrop', crop_size=64)], 'no FormatShape'),
    ([SAMPLE, dict(type='CenterCrop', crop_size=64),
      dict(type='FormatShape', input_format='NCTHW_Heatmap')],
     "input_format='NCTHW_Heatmap'"),
])
def test_shape_refused_when_the_pipeline_does_not_say(pipeline, match):
    with pytest.raises(ValueError, match=match) as err:
        input_shape_from_config(_cfg(pipeline))
    assert '--shape' in str(err.value)


def test_complexity_cli_takes_the_shape_from_the_config(capsys):
    tool = load_tool('tools/analysis/complexity.py')
    result = tool.main([str(DEMO_CSN)])
    assert result['shape'] == [1, 3, 8, 32, 32]
    assert (result['shape_source'], result['views']) == ('test pipeline', 1)
    printed = capsys.readouterr().out
    assert 'input shape (test pipeline): 1 x 3 x 8 x 32 x 32' in printed
    # one figure per named convention, and they differ (BN elements)
    assert 'GMACs (conv + linear multiply-adds)' in printed
    assert 'GFLOPs (MMAction2: GMACs + 2 x norm output elements)' in printed
    assert 'GFLOPs (conv+linear MACs)' not in printed
    assert result['mmaction_flops'] > result['macs']
    assert f'| {result["macs"] / 1e9:.2f} |' in printed
    # --shape wins over the pipeline: 4x the frames, 4x the conv MACs
    bigger = tool.main([str(DEMO_CSN), '--shape', '1', '3', '32', '32', '32'])
    assert bigger['shape_source'] == '--shape' and bigger['views'] is None
    conv = result['macs_by_op']['convolution']
    assert bigger['macs_by_op']['convolution'] == 4 * conv


# ------------------------------------------------------------------ benchmark
def test_benchmark_progress_goes_to_stderr(capsys):
    tool = load_tool('tools/analysis/benchmark.py')
    tool.main([TAM, '--shape', '4', '4', '3', '3', '--iters', '2',
               '--warmup', '1', '--threads', '1', '--roof-size', '32'])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines()
             if line.startswith('[benchmark]')]
    for want in ('building A', 'eval warmup 1/1 A', 'eval round 1/2:',
                 'eval round 2/2:', 'train round 2/2:', 'done'):
        assert any(want in line for line in lines), want
    assert '[benchmark]' not in out  # results only on stdout
    assert '| config | B |' in out
    tool.main([TAM, '--shape', '4', '4', '3', '3', '--quiet', *FAST,
               '--roof-size', '32'])
    assert '[benchmark]' not in capsys.readouterr().err


def test_benchmark_roofline_fields(capsys):
    """Achieved GFLOP/s and its fraction of a GEMM roof timed in the same
    rounds; the FLOPs are 2 x the complexity tool's MACs."""
    tool = load_tool('tools/analysis/benchmark.py')
    result = tool.main([TINY_CSN, '--shape', '1', '3', '4', '32', '32',
                        '--compare-impl', 'plain-pw', '--mode', 'eval',
                        '--roof-size', '48', '--iters', '3', '--warmup',
                        '0', '--threads', '1'])
    entry = result['eval']
    roof = entry['roof']
    assert roof['size'] == 48 and roof['median_ms'] > 0
    assert roof['gflops_per_s'] == pytest.approx(
        2 * 48**3 / (roof['median_ms'] / 1e3) / 1e9)
    assert roof['best_gflops_per_s'] == pytest.approx(
        2 * 48**3 / (min(roof['times_ms']) / 1e3) / 1e9)
    macs = count_complexity(build_model(TINY_CSN), (1, 3, 4, 32, 32))['macs']
    for name in ('A', 'B'):
        got = entry[name]
        assert got['gflop'] == pytest.approx(2 * macs / 1e9)
        assert got['gflops_per_s'] == pytest.approx(
            got['gflop'] / (got['median_ms'] / 1e3))
        assert got['roof_fraction'] == pytest.approx(
            got['gflops_per_s'] / roof['gflops_per_s'])
        best = got['gflop'] / (min(got['times_ms']) / 1e3)
        assert got['best_roof_fraction'] == pytest.approx(
            best / roof['best_gflops_per_s'])
    printed = capsys.readouterr().out
    assert 'fp32 GEMM roof (48^3 torch.mm' in printed
    assert f'{entry["A"]["roof_fraction"]:.0%} of the roof' in printed
    assert f'best rounds: {entry["A"]["best_roof_fraction"]:.0%}' in printed
    # --roof-size 0: no roof, no fractions
    off = tool.main([TINY_CSN, '--shape', '1', '3', '4', '32', '32',
                     '--mode', 'eval', '--roof-size', '0', *FAST])
    assert 'roof' not in off['eval']
    assert 'roof_fraction' not in off['eval']['A']


@pytest.mark.parametrize('argv,match', [
    (['--iters', '0'], '--iters must be >= 1'),
    (['--roof-size', '-1'], '--roof-size must be >= 0'),
    (['--vs', 'b.py', '--compare-impl', 'mmaction'], 'either --vs or'),
])
def test_benchmark_refuses_bad_arguments(argv, match):
    tool = load_tool('tools/analysis/benchmark.py')
    with pytest.raises(ValueError, match=match):
        tool.parse_args([TAM, *argv])


def test_plain_pw_twin_uses_the_public_flag():
    """B = the CSN config with ``pointwise_gemm=False`` (no private
    attribute), A's weights; the same outputs."""
    models = build_models(BenchSpec(TINY_CSN, compare_impl='plain-pw'))
    a, b = models['A'], models['B']
    assert a.pointwise_gemm is True and b.pointwise_gemm is False
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    x = torch.randn(1, 3, 4, 32, 32).contiguous(
        memory_format=torch.channels_last_3d)
    with torch.no_grad():
        assert torch.allclose(a.eval()(x), b.eval()(x), atol=1e-5)
    with pytest.raises(ValueError, match='plain-pw needs a CSN backbone'):
        build_models(BenchSpec(TAM, compare_impl='plain-pw'))


def test_bench_spec_round_trips_as_json():
    """The memory subprocess gets the spec as JSON: nothing is lost."""
    import dataclasses
    import json
    spec = BenchSpec(TINY_CSN, b_options=['model.with_cp=True'],
                     shape=[1, 3, 4, 8, 8], threads=1)
    again = BenchSpec(**json.loads(json.dumps(dataclasses.asdict(spec))))
    assert again == spec and again.label == 'model.with_cp=True'
    with pytest.raises(ValueError, match='compare_impl=.*one of'):
        BenchSpec(TAM, compare_impl='tensorrt')


# --------------------------------------------------------------- structure
def _imports(path: Path) -> set:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _tool_problems(path: Path) -> list:
    """What makes a tool more than a thin CLI over mmcsn.utils."""
    source = path.read_text()
    problems = [
        pattern for pattern in ('spec_from_file_location', 'run_path',
                                '._pointwise', 'Config.fromfile',
                                'MODELS.build') if pattern in source
    ]
    if not any(name.startswith('mmcsn.utils') for name in _imports(path)):
        problems.append('no mmcsn.utils import')
    return problems


@pytest.mark.parametrize('tool', [
    'tools/analysis/benchmark.py', 'tools/analysis/complexity.py',
    'tools/deploy/export_onnx.py'
])
def test_tools_are_thin_and_import_no_tool_by_path(tool):
    assert _tool_problems(REPO_ROOT / tool) == []


def test_structure_check_catches_a_by_path_import(tmp_path):
    """Negative control: the old benchmark.py's habits are caught."""
    bad = tmp_path / 'bad_tool.py'
    bad.write_text(
        'import importlib.util\n'
        'spec = importlib.util.spec_from_file_location("x", "y")\n'
        'module._pointwise = False\n')
    assert _tool_problems(bad) == [
        'spec_from_file_location', '._pointwise', 'no mmcsn.utils import'
    ]


def test_blvnet_reference_lives_in_the_package():
    """Used by the benchmark's official twin and the tests: one home."""
    assert not (REPO_ROOT / 'tools/analysis/blvnet_reference.py').exists()
    from mmcsn.benchmark.blvnet_reference import OfficialTAM
    twin = build_models(BenchSpec(TAM, compare_impl='official'))['B']
    assert isinstance(twin, OfficialTAM)


def test_cli_bad_input_is_one_line_not_a_traceback(tmp_path):
    """As a user runs it: exit 1, ``error: ...`` naming the input."""
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools/analysis/complexity.py'),
         str(tmp_path / 'missing.py')],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: config '{tmp_path / 'missing.py'}': no such file")
