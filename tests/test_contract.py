"""The contract every registered mmcsn model module keeps (timm-style).

The modules come from MMAction2's ``MODELS`` registry, filtered to mmcsn's,
so a new module is picked up; it must then get a tiny recipe in
:data:`TINY` (the test says so). For each: it builds tiny, runs forward and
backward in train mode, every parameter that requires grad receives a
finite gradient, its state_dict loads strictly into a fresh instance that
then gives the same outputs, ``train()``/``eval()`` reach every submodule,
and ``repr`` works.

Hooks mean something: a forward hook on every conv module fires in train
mode, in eval mode and in no-grad eval (where CSN folds BN and runs 1x1x1
convs as GEMMs inside the conv module's own forward), and the complexity
counter counts the same in no-grad mode as with gradients on.
"""
from typing import Callable, Dict, List, Tuple

import mmaction.registry as mmaction_registry
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmcsn  # noqa: F401  (registers)
from mmcsn.models.common.tam import TemporalAggregation
from mmcsn.utils.complexity import count_complexity

# name -> (tiny constructor arguments, input shape)
TINY: Dict[str, Tuple[dict, Tuple[int, ...]]] = {
    'CSN': (dict(depth=50, base_channels=8, stage_blocks=(1, 1, 1, 1)),
            (2, 3, 8, 32, 32)),
    # bLResNet has no width argument: depth 50 (~24M parameters) once, at
    # 32x32 px with 4 segments
    'bLResNet': (dict(depth=50, num_segments=4), (4, 3, 32, 32)),
    'TemporalAggregation': (dict(channels=4, num_segments=4), (8, 4, 5, 5)),
    'TAMNeck': (dict(in_channels=4, num_segments=4), (2, 4, 8, 3, 3)),
    'DenseI3DHead': (dict(num_classes=3, in_channels=8, pool_size=(1, 2, 2)),
                     (2, 8, 2, 3, 3)),
}


def mmcsn_models() -> Dict[str, type]:
    return {
        name: cls
        for name, cls in mmaction_registry.MODELS.module_dict.items()
        if getattr(cls, '__module__', '').startswith('mmcsn')
    }


MODELS = mmcsn_models()


def _tensors(out) -> List[torch.Tensor]:
    """Every tensor of an output (tensor, tuple, or a neck's (x, dict))."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters (eval differs)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def _build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = MODELS[name](**TINY[name][0])
    model.init_weights() if hasattr(model, 'init_weights') else None
    with torch.no_grad():
        _randomize_bn(model)
        for p in model.parameters():  # no zero-initialised branch
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _input(name: str) -> torch.Tensor:
    return torch.randn(TINY[name][1], generator=torch.Generator().manual_seed(
        1))


@pytest.fixture(scope='module')
def built() -> Callable[[str], nn.Module]:
    cache = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache[name] = _build(name)
        return cache[name]

    return get


def test_every_registered_model_has_a_tiny_recipe():
    assert {'CSN', 'bLResNet', 'TemporalAggregation', 'TAMNeck'} <= set(
        MODELS)
    missing = sorted(set(MODELS) - set(TINY))
    assert not missing, f'add a tiny recipe to TINY for {missing}'


@pytest.mark.parametrize('name', sorted(TINY))
def test_forward_backward_reaches_every_parameter(name, built):
    model = built(name).train()
    outs = _tensors(model(_input(name)))
    assert outs and all(torch.isfinite(o).all() for o in outs)
    model.zero_grad(set_to_none=True)
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert trainable
    missed = [n for n, p in trainable if p.grad is None]
    assert not missed, f'no gradient reached {missed}'
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    assert not bad, f'non-finite gradients in {bad}'
    # at least most parameters get a non-zero gradient
    zero = [n for n, p in trainable if not p.grad.any()]
    assert len(zero) <= len(trainable) // 10, zero


@pytest.mark.parametrize('name', sorted(TINY))
def test_state_dict_round_trips_strictly(name, built):
    model = built(name).eval()
    fresh = _build(name, seed=1).eval()
    x = _input(name)
    with torch.no_grad():
        before = _tensors(fresh(x))
        fresh.load_state_dict(model.state_dict(), strict=True)
        got, expected = _tensors(fresh(x)), _tensors(model(x))
    assert len(got) == len(expected)
    # the negative control: another seed gave other outputs
    assert not all(torch.allclose(b, e) for b, e in zip(before, expected))
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', sorted(TINY))
def test_train_eval_switch_reaches_every_submodule(name, built):
    model = built(name)
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert model.training
    bn_eval = getattr(model, 'norm_eval', False) or getattr(
        model, 'bn_frozen', False)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and bn_eval:
            continue
        assert m.training, type(m).__name__
    model.eval()


@pytest.mark.parametrize('name', sorted(TINY))
def test_repr(name, built):
    text = repr(built(name))
    assert text.startswith(f'{name}(')


# ---------------------------------------------------------------- hooks
def _convs(model: nn.Module) -> Dict[str, nn.Module]:
    """Every conv module that computes (TAM's weight holders never run)."""
    holders = {
        id(h)
        for m in model.modules() if isinstance(m, TemporalAggregation)
        for h in m.weight_holders()
    }
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd) and id(m) not in holders
    }


def _silent_convs(model: nn.Module, x: torch.Tensor) -> List[str]:
    """Names of the conv modules whose forward hook did not fire."""
    convs = _convs(model)
    seen = set()
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: seen.add(n))
        for n, m in convs.items()
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    assert convs
    return sorted(set(convs) - seen)


@pytest.mark.parametrize('mode', ['train', 'eval', 'no-grad eval'])
@pytest.mark.parametrize('name', ['CSN', 'bLResNet'])
def test_forward_hook_on_every_conv_fires(name, mode, built):
    model = built(name)
    model.train(mode == 'train')
    with torch.set_grad_enabled(mode != 'no-grad eval'):
        assert _silent_convs(model, _input(name)) == []
    model.eval()


def test_hook_check_can_fail():
    """Negative control: a conv called through its functional form."""

    class Functional(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv3d(3, 4, 1)

        def forward(self, x):
            return F.conv3d(x, self.conv.weight, self.conv.bias)

    assert _silent_convs(Functional(), torch.zeros(1, 3, 2, 2, 2)) == [
        'conv'
    ]


def test_csn_fast_paths_are_inside_the_conv_modules(built):
    """The hook sees the GEMM and the folded calls, with equal outputs."""
    model = built('CSN').eval()
    x = _input('CSN')
    with torch.no_grad():
        fast = model(x)
        model.pointwise_gemm = False
        model.fuse_bn_eval = False
        try:
            assert not any(m.conv.pointwise_gemm for m in model.modules()
                           if hasattr(m, 'conv'))
            plain = model(x)
        finally:
            model.pointwise_gemm = True
            model.fuse_bn_eval = True
    assert torch.allclose(fast, plain, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match='CSN: pointwise_gemm must be a bool'):
        model.pointwise_gemm = 'no'


def test_complexity_counts_the_same_without_grad(built):
    model = built('CSN')
    shape = TINY['CSN'][1]
    with_grad = count_complexity(model, shape)
    with torch.no_grad():
        without = count_complexity(model, shape)
    assert with_grad == without
    assert without['norm_elements'] > 0
