"""TemporalAggregation: fast autograd path vs the official formulation."""
from typing import List

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS

import mmcsn  # noqa: F401  (registers the module)
from mmcsn.models.common import TemporalAggregation, temporal_aggregate


def reference_tam(x: torch.Tensor, holders: List[nn.Conv2d],
                  duration: int) -> torch.Tensor:
    """The official bLVNet-TAM ``TAM.forward`` (depthwise convs + pad).

    ``holders`` are in offset order ``t - B//2 .. t + B//2``.
    """
    num = len(holders)
    xs = [m(x) for m in holders]
    xs = [y.view((-1, duration) + y.shape[1:]) for y in xs]
    shifted = []
    for i, y in enumerate(xs):
        shift = i - num // 2
        t = y.shape[1]
        if shift < 0:
            y = F.pad(y, (0, 0, 0, 0, 0, 0, -shift, 0))[:, :t]
        elif shift > 0:
            y = F.pad(y, (0, 0, 0, 0, 0, 0, 0, shift))[:, shift:]
        shifted.append(y)
    out = torch.relu(torch.stack(shifted).sum(0))
    return out.view((-1, ) + out.shape[2:])


def _tam(blending_frames: int, channels: int = 6, segments: int = 4,
         dtype=torch.float32) -> TemporalAggregation:
    torch.manual_seed(blending_frames)
    tam = TemporalAggregation(channels, segments, blending_frames).to(dtype)
    with torch.no_grad():  # mixed signs so that ReLU clips some outputs
        for m in tam.weight_holders():
            m.weight.normal_()
    return tam


# (B, T): the official B = 3, wider windows, and B > T (offsets that
# fall outside the clip entirely: only zero padding is left for them)
@pytest.mark.parametrize('blending_frames, segments', [(3, 4), (5, 4),
                                                       (1, 4), (3, 8),
                                                       (5, 2), (7, 3)])
def test_fast_matches_reference_forward_and_grads(blending_frames,
                                                  segments):
    tam = _tam(blending_frames, segments=segments)
    x = torch.randn(2 * segments, 6, 3, 5, requires_grad=True)
    out = tam(x)
    x_ref = x.detach().clone().requires_grad_()
    ref = reference_tam(x_ref, tam.weight_holders(), segments)
    assert (ref == 0).any() and (ref > 0).any()  # ReLU active both ways
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)

    grad = torch.randn_like(out)
    params = [m.weight for m in tam.weight_holders()]
    got = torch.autograd.grad(out, [x] + params, grad)
    want = torch.autograd.grad(ref, [x_ref] + params, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('blending_frames', [1, 3, 5])
def test_gradcheck_float64(blending_frames):
    # fixed seed: finite differences must not straddle the ReLU kink
    torch.manual_seed(0)
    weights = torch.randn(
        blending_frames, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 4, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    out = temporal_aggregate(x, weights)
    assert (out == 0).any() and (out > 0).any()  # both sides of the ReLU
    assert torch.autograd.gradcheck(
        lambda a, w: temporal_aggregate(a, w), (x, weights))
    # the (N, C, T, H, W) layout of a 3D neck
    x5 = x.detach().transpose(1, 2).contiguous().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, w: temporal_aggregate(a, w, time_dim=2, channel_dim=1),
        (x5, weights))


def test_shift_direction():
    """prev=1 gives frame t-1, next=1 gives t+1, zero padding at ends."""
    tam = TemporalAggregation(1, 4)
    frames = torch.arange(1., 5.).view(4, 1, 1, 1)
    expected = {
        'prev': [0., 1., 2., 3.],
        'curr': [1., 2., 3., 4.],
        'next': [2., 3., 4., 0.]
    }
    for name, want in expected.items():
        with torch.no_grad():
            for m in tam.weight_holders():
                m.weight.zero_()
            getattr(tam, name).weight.fill_(1.)
        assert tam(frames).flatten().tolist() == want
    tam5 = TemporalAggregation(1, 4, blending_frames=5)
    with torch.no_grad():
        for i, m in enumerate(tam5.blending_layers):
            m.weight.fill_(float(i == 0))
    assert tam5(frames).flatten().tolist() == [0., 0., 1., 2.]
    with torch.no_grad():
        tam.next.weight.zero_()
        tam.prev.weight.fill_(-1.)
        tam.curr.weight.fill_(1.5)
    # [1, 2, 3, 4] * 1.5 - [0, 1, 2, 3]: no clip; then a negative sum
    assert tam(frames).flatten().tolist() == [1.5, 2., 2.5, 3.]
    with torch.no_grad():
        tam.curr.weight.fill_(0.5)
    assert tam(frames).flatten().tolist() == [0.5, 0., 0., 0.]  # ReLU


def test_5d_entry_matches_2d():
    tam = _tam(3)
    x = torch.randn(2 * 4, 6, 3, 5)
    flat = tam(x)
    x5 = x.view(2, 4, 6, 3, 5).transpose(1, 2)  # (N, C, T, H, W)
    out5 = tam.forward_5d(x5)
    torch.testing.assert_close(
        out5.transpose(1, 2).reshape(x.shape), flat)


@pytest.mark.parametrize('blending_frames', [3, 5])
def test_forward_pairs_equals_tam_on_duplicated_frames(blending_frames):
    tam = _tam(blending_frames, segments=8)
    pairs = torch.randn(2 * 4, 6, 3, 3, requires_grad=True)
    little, big = tam.forward_pairs(pairs)
    dup = pairs.repeat_interleave(2, dim=0)
    ref = tam(dup)
    torch.testing.assert_close(little, ref[0::2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(big, ref[1::2], rtol=1e-5, atol=1e-6)
    grad = torch.randn(2, *little.shape)
    params = [pairs] + [m.weight for m in tam.weight_holders()]
    got = torch.autograd.grad([little, big], params, [grad[0], grad[1]])
    dup_grad = torch.stack([grad[0], grad[1]], 1).flatten(0, 1)
    want = torch.autograd.grad(ref, params, dup_grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_state_dict_names_and_init():
    tam = MODELS.build(
        dict(type='TemporalAggregation', channels=1024, num_segments=8))
    assert list(tam.state_dict()) == [
        'prev.weight', 'next.weight', 'curr.weight'
    ]
    assert tam.prev.weight.shape == (1024, 1, 1, 1)
    std = torch.cat([m.weight for m in tam.weight_holders()]).std().item()
    assert abs(std - (2 / 1024)**0.5) < 0.1 * (2 / 1024)**0.5  # fan_out
    tam5 = TemporalAggregation(8, 4, blending_frames=5)
    assert list(tam5.state_dict()) == [
        f'blending_layers.{i}.weight' for i in range(5)
    ]
    # independent weights, not one module repeated
    assert len(list(tam5.parameters())) == 5


@pytest.mark.parametrize(
    'kwargs, match',
    [(dict(channels=0, num_segments=4), 'channels must be a positive int'),
     (dict(channels=4, num_segments=-1), 'num_segments must be a positive'),
     (dict(channels=4, num_segments=4, blending_frames=4),
      r'blending_frames must be an odd int >= 1 .* got 4'),
     (dict(channels=4, num_segments=4, blending_frames=0),
      'blending_frames must be an odd int')])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TemporalAggregation(**kwargs)


def test_bad_inputs():
    tam = TemporalAggregation(4, 4)
    with pytest.raises(ValueError, match=r'x must be 4-d'):
        tam(torch.zeros(4, 4, 2))
    with pytest.raises(ValueError, match=r'3 channels.*channels=4'):
        tam(torch.zeros(4, 3, 2, 2))
    with pytest.raises(ValueError, match=r'batch size 6 .*num_segments=4'):
        tam(torch.zeros(6, 4, 2, 2))
    with pytest.raises(ValueError, match=r'x must be 5-d'):
        tam.forward_5d(torch.zeros(4, 4, 2, 2))
    with pytest.raises(ValueError, match=r'weights must have shape \(K, C\)'):
        temporal_aggregate(torch.zeros(1, 4, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match='offsets must be distinct'):
        temporal_aggregate(
            torch.zeros(1, 4, 3), torch.zeros(2, 3), offsets=[1, 1])
