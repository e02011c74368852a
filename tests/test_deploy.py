"""torch.compile and ONNX export of every mmcsn backbone and of TAM.

One tiny model per module. Backbones compile with the ``aot_eager``
backend (dynamo graph capture + AOTAutograd, the parts that break on
unsupported Python or ops) because inductor's C++ codegen takes 1-2
minutes per backbone on a 2-core machine; TAM and DepthwiseConv3d are small
enough for the default inductor backend.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, load_tool

import mmcsn  # noqa: F401  (stack fixes + registry)
from mmcsn.models.backbones import CSN, bLResNet
from mmcsn.models.common import TemporalAggregation
from mmcsn.utils.deploy import OPSET, export_onnx, onnxruntime_outputs

REPO = Path(__file__).resolve().parents[1]
DEMO_CSN = REPO / 'configs/demo/ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb.py'


def _tiny(name):
    """(module in eval mode with non-trivial BN statistics, input)."""
    torch.manual_seed(0)
    if name == 'csn':
        model = CSN(depth=50, base_channels=8, stage_blocks=(1, 1, 1, 1),
                    bottleneck_mode='ip')
        x = torch.randn(1, 3, 4, 32, 32)
    elif name == 'blresnet':
        model = bLResNet(depth=50, num_segments=4)
        x = torch.randn(4, 3, 32, 32)
    else:
        model = TemporalAggregation(8, num_segments=4)
        x = torch.randn(8, 8, 5, 5)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval(), x


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _assert_close(got, expected, tol):
    scale = expected.abs().max().item()
    assert scale > 0
    assert (got - expected).abs().max().item() <= tol * max(scale, 1.0)


@pytest.mark.parametrize('name,backend', [('csn', 'aot_eager'),
                                          ('blresnet', 'aot_eager'),
                                          ('tam', 'inductor')])
def test_torch_compile_forward(name, backend):
    model, x = _tiny(name)
    with torch.no_grad():
        expected = _first(model(x))
        got = _first(torch.compile(model, backend=backend)(x))
    _assert_close(got, expected, 1e-5)


@pytest.mark.parametrize('name', ['csn', 'blresnet', 'tam'])
def test_onnx_export_matches_onnxruntime(name, tmp_path):
    model, x = _tiny(name)
    with torch.no_grad():
        expected = _first(model(x))
    path = export_onnx(model, x, str(tmp_path / f'{name}.onnx'))
    import onnx
    graph = onnx.load(path)
    assert graph.opset_import[0].version == OPSET
    ops = {node.op_type for node in graph.graph.node}
    assert 'Conv' in ops or name == 'tam'
    got = torch.from_numpy(onnxruntime_outputs(path, x)[0])
    assert got.shape == expected.shape
    _assert_close(got, expected, 1e-4)


def test_export_cli_recognizer(tmp_path):
    result = load_tool('tools/deploy/export_onnx.py').main([
        str(DEMO_CSN),
        str(tmp_path / 'demo.onnx'), '--shape', '1', '3', '8', '32', '32',
        '--verify'
    ])
    assert result['max_abs_diff'] < 1e-4
    assert Path(result['path']).stat().st_size > 0


def test_export_cli_shape_from_test_pipeline(tmp_path):
    """No --shape: one view of the config's test pipeline (8x32x32)."""
    out = tmp_path / 'sub' / 'demo.onnx'
    result = load_tool('tools/deploy/export_onnx.py').main(
        [str(DEMO_CSN), str(out)])
    assert result['shape'] == [1, 3, 8, 32, 32]
    import onnx
    dims = [
        d.dim_value
        for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    ]
    assert dims == [1, 1, 3, 8, 32, 32]  # (N, clips, C, T, H, W)
    assert not list(out.parent.glob('*.part'))


def test_export_cli_never_overwrites_its_input(tmp_path):
    """The output path naming the checkpoint is refused, file intact."""
    ckpt = tmp_path / 'weights.pth'
    ckpt.write_bytes(b'precious')
    with pytest.raises(ValueError, match='is the --checkpoint file'):
        load_tool('tools/deploy/export_onnx.py').main([
            str(DEMO_CSN), str(ckpt), '--checkpoint', str(ckpt)])
    assert ckpt.read_bytes() == b'precious'


# blocks the named packages as if they were not installed, then runs the
# tool as a user would; prints nothing itself
_BLOCKED = '''
import runpy, sys
for name in {blocked!r}:
    sys.modules[name] = None  # "import name" now raises ImportError
sys.argv = ['export_onnx.py', *{argv!r}]
runpy.run_path({tool!r}, run_name='__main__')
'''


@pytest.mark.slow  # a subprocess each (imports mmcsn: ~5 s)
@pytest.mark.parametrize('blocked,flags,named', [
    (('onnx', ), [], 'onnx'),
    (('onnxruntime', ), ['--verify'], 'onnxruntime'),
    (('onnx', 'onnxruntime'), ['--verify'], 'onnx, onnxruntime'),
])
def test_export_without_onnx_says_how_to_install(tmp_path, blocked, flags,
                                                 named):
    out = tmp_path / 'never.onnx'
    code = textwrap.dedent(_BLOCKED).format(
        blocked=blocked,
        argv=[str(DEMO_CSN), str(out), *flags],
        tool=str(REPO_ROOT / 'tools/deploy/export_onnx.py'))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert f'needs {named} (not installed' in proc.stderr
    assert 'pip install "mmcsn[deploy]"' in proc.stderr
    assert not out.exists()


@pytest.mark.slow  # a subprocess that exports
def test_export_with_onnx_present_is_not_refused(tmp_path):
    """Negative control: the same harness, nothing blocked, exports."""
    out = tmp_path / 'ok.onnx'
    code = textwrap.dedent(_BLOCKED).format(
        blocked=(),
        argv=[str(DEMO_CSN), str(out)],
        tool=str(REPO_ROOT / 'tools/deploy/export_onnx.py'))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
