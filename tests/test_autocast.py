"""bf16 CPU autocast gives finite outputs close to fp32 for every backbone.

Tolerance: the max-abs error must stay below 5e-2 of the fp32 output's
max-abs value. bf16 keeps 8 significant bits (unit roundoff 2**-9, about
2e-3), each conv/matmul input is rounded once, and ~20-50 such layers
compound; measured on these models (seed 0) the ratio is 0.36e-2 (CSN
ir), 0.58e-2 (CSN ip), 0.62e-2 (bLResNet) and 1.1e-2 (ResNet+TAMNeck),
so 5e-2 leaves a 4x margin while a real defect (an op overflowing, a
layer silently run in the wrong precision and NaN/inf, a dtype mix-up
that mangles values) is far larger. Every output is also checked to be
bf16, which proves autocast really ran.

GPU fp16 training uses mmengine's ``AmpOptimWrapper`` (``--amp``), which
asserts a GPU and is not testable here; see docs/safety.md.
"""
import pytest
import torch
import torch.nn as nn
from conftest import randomize_norms
from mmaction.registry import MODELS

import mmcsn  # noqa: F401
from mmcsn.models.backbones.blresnet import bLResNet
from mmcsn.models.backbones.csn import CSN
from mmcsn.models.necks.tam_neck import TAMNeck

RTOL_OF_MAX = 5e-2


class _ResNetTAM(nn.Module):
    """MMAction2 ResNet-18 + TAMNeck, reshaped as Recognizer2D does."""

    def __init__(self, segments: int = 2) -> None:
        super().__init__()
        self.segments = segments
        self.backbone = MODELS.build(
            dict(type='ResNet', depth=18, out_indices=(2, 3),
                 pretrained=None))
        self.neck = TAMNeck(512, segments)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = tuple(
            m.reshape((-1, self.segments) + m.shape[1:]).transpose(1, 2)
            for m in self.backbone(x))
        return self.neck(maps)[0]


CASES = {
    'csn-ir': (lambda: CSN(depth=50, base_channels=4,
                           bottleneck_mode='ir'), (1, 3, 8, 32, 32)),
    'csn-ip': (lambda: CSN(depth=50, base_channels=4,
                           bottleneck_mode='ip'), (1, 3, 8, 32, 32)),
    'blresnet': (lambda: bLResNet(depth=50, num_segments=2),
                 (2, 3, 64, 64)),
    'resnet-tamneck': (_ResNetTAM, (2, 3, 32, 32)),
}


@pytest.mark.parametrize('name', list(CASES))
def test_bf16_autocast_matches_fp32(name):
    build, shape = CASES[name]
    torch.manual_seed(0)
    model = randomize_norms(build())
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert ref.dtype == torch.float32
    assert out.dtype == torch.bfloat16  # autocast really ran
    assert torch.isfinite(out).all()
    scale = ref.abs().max()
    assert scale > 0
    err = (out.float() - ref).abs().max()
    assert err <= RTOL_OF_MAX * scale, f'{err / scale:.3g} of max-abs'
