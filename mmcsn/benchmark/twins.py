"""Models A and B of a benchmark: a config and its comparison twin.

A is built from a config (or JSON dict) with random weights from seed 0.
B is one of:

* ``--vs CONFIG_B``: another model (own weights; outputs not compared);
* ``--b-options k=v ...``: A's config with overrides, A's weights;
* ``--compare-impl``, A's weights unless said otherwise:

  ========== ==========================================================
  mmaction   MMAction2's ``ResNet3dCSN`` of a CSN config
  plain-dw   every ``DepthwiseConv3d`` on a plain ``F.conv3d`` autograd
  plain-pw   the dense 1x1x1 convs as ``F.conv3d`` (CSN
             ``pointwise_gemm=False``)
  official   the official bLVNet-TAM formulation
             (:mod:`mmcsn.benchmark.blvnet_reference`)
  compile    ``torch.compile`` of A
  onnxruntime A exported to ONNX, run by ONNX Runtime (eval only)
  ========== ==========================================================
"""
import copy
import os
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcsn.utils import (
    TensorGraph,
    build_model,
    load_config,
    recognizer_forward,
    recognizer_input_shape,
)

__all__ = [
    'IMPLS', 'BenchSpec', 'build_models', 'is_trainable', 'max_abs_diff'
]

IMPLS = ('mmaction', 'plain-dw', 'plain-pw', 'official', 'compile',
         'onnxruntime')
# mmcsn CSN arguments that MMAction2's ResNet3dCSN does not take
_MMCSN_ONLY_ARGS = ('memory_format', 'fuse_bn_eval', 'pointwise_gemm',
                    'groups', 'expansion', 'with_pool1')
_CSN_TYPES = ('CSN', 'mmcsn.CSN')


@dataclass
class BenchSpec:
    """What to build: everything :func:`build_models` needs, plain data
    (a memory-measuring subprocess gets it as JSON)."""
    config: str
    vs: Optional[str] = None
    compare_impl: Optional[str] = None
    b_options: Optional[List[str]] = None
    cfg_options: Optional[List[str]] = None
    compile_backend: str = 'inductor'
    shape: List[int] = field(default_factory=lambda: [1, 3, 16, 112, 112])
    threads: int = 2

    def __post_init__(self) -> None:
        if sum(map(bool, (self.vs, self.compare_impl, self.b_options))) > 1:
            raise ValueError('use either --vs or --compare-impl, not both '
                             '(nor --b-options with either)')
        if self.compare_impl is not None and \
                self.compare_impl not in IMPLS:
            raise ValueError(f'compare_impl={self.compare_impl!r}: expected '
                             f'one of {", ".join(IMPLS)}')

    @property
    def label(self) -> str:
        """What B is, for tables."""
        return self.vs or self.compare_impl or (' '.join(self.b_options)
                                                if self.b_options else '-')


def _csn_config(spec: BenchSpec, impl: str):
    """A fresh copy of A's config and its CSN backbone dict (to edit)."""
    cfg = load_config(spec.config, spec.cfg_options)
    model = cfg.model
    backbone = model.backbone if 'backbone' in model else model
    if backbone.type not in _CSN_TYPES:
        raise ValueError(f'--compare-impl {impl} needs a CSN backbone, got '
                         f'{backbone.type!r}')
    return cfg, backbone


def _mmaction_twin(spec: BenchSpec, model_a: nn.Module) -> nn.Module:
    """MMAction2 ``ResNet3dCSN`` version of an mmcsn CSN config."""
    twin, backbone = _csn_config(spec, 'mmaction')
    backbone.type = 'ResNet3dCSN'
    for key in _MMCSN_ONLY_ARGS:
        backbone.pop(key, None)
    # ResNet3dCSN requires ``pretrained`` and defaults with_pool2 to True
    # (mmcsn: False): pin mmcsn's effective values
    backbone.setdefault('pretrained', None)
    backbone.setdefault('with_pool2', False)
    return _same_weights(build_model(twin), model_a)


def _same_weights(model_b: nn.Module, model_a: nn.Module) -> nn.Module:
    # the twins' state_dict layouts are identical by design: load strictly
    model_b.load_state_dict(model_a.state_dict(), strict=True)
    return model_b


def _plain_dw(model: nn.Module) -> nn.Module:
    """Patch every DepthwiseConv3d instance to run a plain ``F.conv3d``."""
    from mmcsn.ops import DepthwiseConv3d

    def plain(conv):
        original = conv.forward

        def forward(x, *folded, **kw):
            # a call with BN folded in (scale, shift: no-grad eval) never
            # reaches DepthwiseConv3d's own autograd Function: keep it
            if folded or kw:
                return original(x, *folded, **kw)
            return F.conv3d(x, conv.weight, conv.bias, conv.stride,
                            conv.padding, conv.dilation, conv.groups)

        return forward

    patched = 0
    for module in model.modules():
        if isinstance(module, DepthwiseConv3d):
            module.forward = plain(module)
            patched += 1
    if not patched:
        raise ValueError('--compare-impl plain-dw: the model has no '
                         'DepthwiseConv3d')
    return model


def _plain_pw(spec: BenchSpec, model_a: nn.Module) -> nn.Module:
    """A's CSN config with ``pointwise_gemm=False``, A's weights."""
    cfg, backbone = _csn_config(spec, 'plain-pw')
    backbone.pointwise_gemm = False
    return _same_weights(build_model(cfg), model_a)


class OrtModel(nn.Module):
    """An eval-only stand-in running the model's ONNX export in ORT."""

    def __init__(self, model: nn.Module, shape: List[int],
                 threads: int) -> None:
        super().__init__()
        from mmcsn.utils.deploy import export_onnx, onnxruntime_session

        graph = TensorGraph(copy.deepcopy(model))
        example = torch.randn(recognizer_input_shape(model, shape))
        self._dir = tempfile.TemporaryDirectory()
        path = os.path.join(self._dir.name, 'model.onnx')
        export_onnx(graph, example, path)
        self.session = onnxruntime_session(path, threads)
        if hasattr(model, 'extract_feat'):
            self.extract_feat = lambda inputs, stage='head': (
                self.forward(inputs), )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {'input': x.detach().cpu().numpy()})
        return torch.from_numpy(out[0])

    def train(self, mode: bool = True) -> 'OrtModel':
        if mode:
            raise RuntimeError('an ONNX Runtime session cannot train')
        return super().train(False)


def is_trainable(model: nn.Module) -> bool:
    """False for eval-only stand-ins (ONNX Runtime)."""
    return not isinstance(model, OrtModel)


def max_abs_diff(models: Dict[str, nn.Module], shape: Sequence[int],
                 device: torch.device) -> float:
    """Max abs difference of B's eval output from A's (same input)."""
    outs = []
    for model in (models['A'], models['B']):
        model.eval()
        with torch.no_grad():
            out = recognizer_forward(model, shape, random=True)(device)
        outs.append(out[0] if isinstance(out, (tuple, list)) else out)
    a, b = outs
    if a.shape != b.shape and a.shape[0] == 2 * b.shape[0]:
        a = a[1::2]  # bLResNet returns each official pair map twice
    return (a.float() - b.float()).abs().max().item()


def build_models(spec: BenchSpec) -> Dict[str, nn.Module]:
    """``{'A': model}`` plus ``'B'`` when the spec names a twin.

    With ``official``, a recognizer A is reduced to its backbone (the
    official code is a backbone).
    """
    torch.manual_seed(0)
    model_a = build_model(load_config(spec.config, spec.cfg_options))
    models = {'A': model_a}
    impl = spec.compare_impl
    if spec.vs:
        models['B'] = build_model(load_config(spec.vs, spec.cfg_options))
    elif spec.b_options or impl == 'plain-dw':
        cfg_b = load_config(spec.config,
                            (spec.cfg_options or []) + (spec.b_options or []))
        model_b = _same_weights(build_model(cfg_b), model_a)
        models['B'] = _plain_dw(model_b) if impl == 'plain-dw' else model_b
    elif impl == 'mmaction':
        models['B'] = _mmaction_twin(spec, model_a)
    elif impl == 'plain-pw':
        models['B'] = _plain_pw(spec, model_a)
    elif impl == 'official':
        from .blvnet_reference import official_twin
        if hasattr(model_a, 'extract_feat'):
            model_a = models['A'] = model_a.backbone
        models['B'] = official_twin(model_a)
    elif impl == 'compile':
        model_b = copy.deepcopy(model_a)
        if hasattr(model_b, 'extract_feat'):
            model_b.extract_feat = torch.compile(
                model_b.extract_feat, backend=spec.compile_backend)
            models['B'] = model_b
        else:
            models['B'] = torch.compile(
                model_b, backend=spec.compile_backend)
    elif impl == 'onnxruntime':
        models['B'] = OrtModel(model_a, spec.shape, spec.threads)
    return models

