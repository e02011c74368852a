"""CSN block family: every variant runs; params/MACs match a formula.

The expected counts come from an analytic per-layer formula written here
(conv MACs = Cout * Cin / groups * kT * kH * kW * T_out * H_out * W_out,
conv params = Cout * Cin / groups * k, BN params = 2 * C), independent of
the model code, and are compared with the built module (sum of numel) and
with the FLOPs torch's ``FlopCounterMode`` counts while it runs.
"""
from typing import List, Tuple

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import mmcsn  # noqa: F401  (registers CSN)
from mmcsn.models.backbones import CSN

STAGES = {26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}
FAMILY = ['simple', 'simple-G', 'simple-D', 'bottleneck', 'bottleneck-G',
          'bottleneck-D', 'bottleneck-DG', 'ip']
G_MODES = {'simple-G', 'bottleneck-G', 'bottleneck-DG'}

# (cin, cout, groups, kernel volume, 'in' | 'out' resolution)
Layer = Tuple[int, int, int, int, str]


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _unit(kind: str, cin: int, cout: int, groups: int) -> List[Layer]:
    """One 3x3x3 unit of the paper's block study."""
    if kind == 'dense':
        return [(cin, cout, 1, 27, 'out')]
    if kind == 'G':
        return [(cin, cout, groups, 27, 'out')]
    # 'D': 1x1x1 then depthwise 3x3x3 ('ir' has no 1x1: caller skips it)
    return [(cin, cout, 1, 1, 'in'), (cout, cout, cout, 27, 'out')]


def _block_layers(mode: str, cin: int, planes: int, exp: int,
                  groups: int) -> List[Layer]:
    if mode.startswith('simple'):
        kind = {'simple': 'dense', 'simple-G': 'G', 'simple-D': 'D'}[mode]
        # the second unit runs at the (already strided) output resolution
        second = [(a, b, g, k, 'out')
                  for a, b, g, k, _ in _unit(kind, planes, planes, groups)]
        return _unit(kind, cin, planes, groups) + second
    g_pw = groups if mode == 'bottleneck-DG' else 1
    mid = {
        'bottleneck': [(planes, planes, 1, 27, 'out')],
        'bottleneck-G': [(planes, planes, groups, 27, 'out')],
        'bottleneck-D': [(planes, planes, planes, 27, 'out')],
        'ir': [(planes, planes, planes, 27, 'out')],
        'bottleneck-DG': [(planes, planes, planes, 27, 'out')],
        'ip': _unit('D', planes, planes, 1),
    }[mode]
    return ([(cin, planes, g_pw, 1, 'in')] + mid +
            [(planes, planes * exp, g_pw, 1, 'out')])


def analytic_counts(mode: str, depth: int, exp: int, groups: int = 1,
                    base: int = 64, thw=(8, 112, 112),
                    with_pool1: bool = True,
                    num_classes: int = 0) -> Tuple[int, int]:
    """Return (conv + fc MACs, all params) of a CSN by formula."""
    t, h, w = thw
    t, h, w = _out(t, 3, 1, 1), _out(h, 7, 2, 3), _out(w, 7, 2, 3)
    macs = base * 3 * 3 * 7 * 7 * t * h * w
    params = base * 3 * 3 * 7 * 7 + 2 * base
    if with_pool1:
        h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
    cin = base
    for i, n in enumerate(STAGES[depth]):
        planes = base * 2**i
        cout = planes * exp
        for b in range(n):
            s = 2 if i > 0 and b == 0 else 1
            size_in = t * h * w
            t, h, w = _out(t, 3, s, 1), _out(h, 3, s, 1), _out(w, 3, s, 1)
            size_out = t * h * w
            layers = _block_layers(mode, cin, planes, exp, groups)
            if s != 1 or cin != cout:
                layers.append((cin, cout, 1, 1, 'out'))  # projection
            for ci, co, g, k, res in layers:
                weights = co * ci // g * k
                macs += weights * (size_in if res == 'in' else size_out)
                params += weights + 2 * co
            cin = cout
    macs += cin * num_classes
    params += (cin * num_classes + num_classes) if num_classes else 0
    return macs, params


def _measure(model: CSN, x: torch.Tensor) -> Tuple[int, int, torch.Tensor]:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(x)
    params = sum(p.numel() for p in model.parameters())
    return counter.get_total_flops() // 2, params, out


@pytest.mark.parametrize('depth', [26, 50])
@pytest.mark.parametrize('mode', FAMILY)
def test_family_builds_runs_and_counts(mode, depth):
    groups = 4 if mode in G_MODES else None
    base = 16  # keeps 16 real forwards cheap; the formula takes any width
    model = CSN(depth=depth, bottleneck_mode=mode, groups=groups,
                base_channels=base)
    model.eval()
    macs, params, out = _measure(model, torch.randn(1, 3, 4, 32, 32))
    exp = 1 if mode.startswith('simple') or depth <= 34 else 4
    want_macs, want_params = analytic_counts(
        mode, depth, exp, groups or 1, base=base, thw=(4, 32, 32))
    assert out.shape == (1, base * 8 * exp, 1, 1, 1)
    assert torch.isfinite(out).all()
    assert params == pytest.approx(want_params, rel=0.01)
    assert macs == pytest.approx(want_macs, rel=0.01)


@pytest.mark.parametrize('with_pool1', [True, False])
def test_pool1_and_ir_alias_counts(with_pool1):
    """ir == bottleneck-D; with_pool1=False keeps 4x the stage-1 area."""
    kwargs = dict(depth=26, base_channels=16, with_pool1=with_pool1)
    ir = CSN(bottleneck_mode='ir', **kwargs).eval()
    bd = CSN(bottleneck_mode='bottleneck-D', **kwargs).eval()
    assert list(ir.state_dict()) == list(bd.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)
    macs, params, _ = _measure(ir, x)
    want = analytic_counts('bottleneck-D', 26, 1, base=16, thw=(4, 32, 32),
                           with_pool1=with_pool1)
    assert (macs, params) == pytest.approx(want, rel=0.01)


# spec section 5 (ir/ip, 400-class fc, x4 at depth 26 as MMAction2 would)
# and section 7 (dense = 'bottleneck'; depth 26 with VMZ's no-expansion
# rule): (mode, depth, expansion, GMACs at 8x112x112, params in M)
SPEC_ROWS = [
    ('ir', 26, 4, 2.00, 8.57),
    ('ip', 26, 4, 2.26, 9.27),
    ('ir', 50, None, 2.67, 13.13),
    ('ip', 50, None, 3.01, 14.40),
    ('ir', 101, None, 3.56, 22.21),
    ('ip', 101, None, 4.00, 24.60),
    ('ir', 152, None, 4.66, 29.70),
    ('ip', 152, None, 5.24, 33.02),
    ('bottleneck', 26, 4, 4.63, 27.32),
    ('bottleneck', 50, None, 7.47, 46.98),
    ('bottleneck', 101, None, 11.29, 86.03),
    ('bottleneck', 26, None, 3.64, 20.44),
    ('ip', 26, None, 1.27, 2.39),
    ('ir', 26, None, 1.01, 1.69),
]


@pytest.mark.parametrize('mode,depth,expansion,gmacs,mparams', SPEC_ROWS)
def test_spec_tables(mode, depth, expansion, gmacs, mparams):
    # built and run on the meta device: shapes and counts only, no compute
    with torch.device('meta'):
        model = CSN(depth=depth, bottleneck_mode=mode, expansion=expansion)
        model.eval()
        macs, params, out = _measure(model, torch.empty(1, 3, 8, 112, 112))
    feat = out.shape[1]
    assert feat == model.feat_dim
    macs += feat * 400  # + 400-class fc, as the spec counts
    params += feat * 400 + 400
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.01)
    assert params / 1e6 == pytest.approx(mparams, rel=0.01)
    exp = expansion or (1 if depth <= 34 else 4)
    assert (macs, params) == pytest.approx(
        analytic_counts(mode, depth, exp, num_classes=400), rel=0.01)
