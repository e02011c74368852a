"""Fold eval-mode BatchNorm into the conv before it (a deploy step).

``y = bn(conv(x))`` with frozen statistics is one affine map per output
channel, so the pair becomes one conv with ``w' = w * s`` and
``b' = (b - mean) * s + beta`` where ``s = gamma / sqrt(var + eps)``; the
BN is replaced by ``nn.Identity``. Computed in float64, stored in the
conv's dtype.

Pairs are found in three ways, each safe by construction or checked:

1. containers that own a conv and the norm applied right after it:
   mmcsn's ``ConvNormAct`` (CSN) and mmcv's ``ConvModule`` (MMAction2's
   backbones) whose ``order`` puts ``'norm'`` right after ``'conv'``;
2. a conv followed by a BN inside an ``nn.Sequential`` (the shortcut
   projections of bLResNet and ResNet);
3. with an example input, every remaining ``bn(conv(x))`` written in a
   ``forward`` (bLResNet's blocks and stem): one traced call records
   which BN received the very tensor a conv returned, each used once.
   The folded model is then compared with the original on that input;
   if they differ, the traced folds are undone and a warning names them.
"""
import warnings
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = ['fold_conv_bn', 'fold_batchnorm']

# max |folded - original| allowed, relative to max |original| (fp32)
VERIFY_RTOL = 1e-4


def fold_conv_bn(conv: _ConvNd, bn: _BatchNorm) -> None:
    """Fold ``bn`` (eval statistics) into ``conv``'s weight and bias.

    Args:
        conv (nn.Module): A ``Conv1d/2d/3d`` (any subclass); gets a bias
            if it had none.
        bn (nn.Module): The BatchNorm applied to ``conv``'s output.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f'{type(bn).__name__} has no running statistics '
                         '(track_running_stats=False): it cannot be folded')
    if bn.num_features != conv.out_channels:
        raise ValueError(f'BN of {bn.num_features} channels cannot follow a '
                         f'conv of {conv.out_channels} output channels')
    w = conv.weight.detach().double()
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    bias = (conv.bias.detach().double() if conv.bias is not None else
            torch.zeros_like(scale))
    shift = (bias - bn.running_mean.double()) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    shape = (-1, ) + (1, ) * (w.dim() - 1)
    dtype = conv.weight.dtype
    conv.weight = nn.Parameter(
        (w * scale.reshape(shape)).to(dtype),
        requires_grad=conv.weight.requires_grad)
    conv.bias = nn.Parameter(shift.to(dtype), requires_grad=False)


def _is_bn(module: Optional[nn.Module]) -> bool:
    return isinstance(module, _BatchNorm) and not module.training


def _fold_containers(model: nn.Module) -> List[str]:
    """Pass 1: ConvNormAct and conv-then-norm ConvModule."""
    from mmcv.cnn import ConvModule

    from mmcsn.models.backbones.csn_blocks import ConvNormAct

    folded = []
    for name, m in model.named_modules():
        if isinstance(m, ConvNormAct):
            pass
        elif isinstance(m, ConvModule):
            order = tuple(m.order)
            if not (m.with_norm and 'norm' in order and
                    order.index('norm') == order.index('conv') + 1):
                continue
        else:
            continue
        norm = getattr(m, m.norm_name, None) if m.norm_name else None
        if not (_is_bn(norm) and isinstance(m.conv, _ConvNd)):
            continue
        fold_conv_bn(m.conv, norm)
        setattr(m, m.norm_name, nn.Identity())
        if isinstance(m, ConvModule):
            m.with_norm = False  # also bypasses efficient_conv_bn_eval
        folded.append(f'{name}.{m.norm_name}' if name else m.norm_name)
    return folded


def _fold_sequentials(model: nn.Module) -> List[str]:
    """Pass 2: ``Sequential(..., conv, bn, ...)``."""
    folded = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, _ConvNd) and _is_bn(bn):
                fold_conv_bn(conv, bn)
                seq._modules[b] = nn.Identity()
                folded.append(f'{name}.{b}' if name else b)
    return folded


def _trace_pairs(model: nn.Module, example: torch.Tensor
                 ) -> Tuple[Dict[str, str], object]:
    """Pass 3 discovery: BN name -> conv name, and the model's output."""
    names = {m: n for n, m in model.named_modules()}
    produced: Dict[int, Tuple[str, torch.Tensor]] = {}
    calls: Dict[str, int] = {}
    fed: Dict[str, List[str]] = {}

    def conv_hook(module, args, output):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        produced[id(output)] = (name, output)  # keep it alive: ids unique

    def bn_hook(module, args):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        src = produced.get(id(args[0]))
        fed.setdefault(name, []).append(
            src[0] if src is not None and src[1] is args[0] else '')

    handles = []
    for m, n in names.items():
        if isinstance(m, _ConvNd):
            handles.append(m.register_forward_hook(conv_hook))
        elif _is_bn(m):
            handles.append(m.register_forward_pre_hook(bn_hook))
    try:
        with torch.no_grad():
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    pairs = {}
    for bn, sources in fed.items():
        conv = sources[0]
        if (len(sources) == 1 and conv and calls.get(conv) == 1
                and calls.get(bn) == 1):
            pairs[bn] = conv
    return pairs, out


def _flat(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flat(o)]
    return []


def _replace(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    parent_name, _, attr = name.rpartition('.')
    parent = model.get_submodule(parent_name) if parent_name else model
    old = parent._modules[attr]
    parent._modules[attr] = new
    return old


def _fold_traced(model: nn.Module, example: torch.Tensor) -> List[str]:
    """Pass 3: traced ``bn(conv(x))`` pairs, verified on ``example``."""
    pairs, reference = _trace_pairs(model, example)
    if not pairs:
        return []
    saved = {}
    for bn_name, conv_name in pairs.items():
        conv = model.get_submodule(conv_name)
        saved[bn_name] = (conv, conv.weight, conv.bias)
        fold_conv_bn(conv, model.get_submodule(bn_name))
        saved[bn_name] += (_replace(model, bn_name, nn.Identity()), )
    with torch.no_grad():
        folded = _flat(model(example))
    reference = _flat(reference)
    ok = len(folded) == len(reference) and all(
        a.shape == b.shape and float((a - b).abs().max()) <= VERIFY_RTOL *
        max(float(b.abs().max()), 1e-6)
        for a, b in zip(folded, reference))
    if ok:
        return sorted(pairs)
    for bn_name, (conv, weight, bias, bn) in saved.items():
        conv.weight, conv.bias = weight, bias
        _replace(model, bn_name, bn)
    warnings.warn('folding the BatchNorms found by tracing changed the '
                  'outputs, so they stay unfolded: ' + ', '.join(pairs))
    return []


def fold_batchnorm(model: nn.Module,
                   example_inputs: Optional[torch.Tensor] = None
                   ) -> List[str]:
    """Fold every eval-mode BatchNorm that directly follows a conv.

    Args:
        model (nn.Module): Folded in place; put in eval mode first.
        example_inputs (Tensor, optional): One fp32 input of ``model`` to
            find and check ``bn(conv(x))`` pairs written in ``forward``
            code. Defaults to None.

    Returns:
        list[str]: Names of the BatchNorms folded (now ``nn.Identity``).
    """
    model.eval()
    folded = _fold_containers(model) + _fold_sequentials(model)
    if example_inputs is not None:
        folded += _fold_traced(model, example_inputs)
    return folded
