"""Parameter and FLOP counting in the two conventions the CSN papers use.

* Papers and the VMZ zoo: GFLOPs per clip = multiply-adds (MACs) of the
  convolutions and linear layers.
* MMAction2's metafiles: the same MACs plus 2 x the elements of every
  normalisation layer's output (mmengine's counter charges an affine norm
  2 operations per element).

The count runs on a copy of the model on the ``meta`` device, so a
ip-CSN-152 at 32x256x256 costs a fraction of a second and no memory.
"""
import copy
from collections import defaultdict
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['count_complexity', 'mmaction_flops', 'recognizer_forward']

# norm layers whose output elements MMAction2 (mmengine) counts as FLOPs
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def recognizer_forward(model: nn.Module,
                       input_shape: Sequence[int],
                       random: bool = False,
                       requires_grad: bool = False) -> Callable:
    """Return a function that runs ``model`` on an input of a shape.

    For an MMAction2 recognizer (a module with ``extract_feat``) the shape
    is the backbone's input: ``(N, C, T, H, W)`` for a 3D recognizer, which
    is fed as one clip per sample, or ``(T, C, H, W)`` for a 2D recognizer,
    fed as one sample of T segments; the count covers backbone, neck and
    head. Any other module gets a tensor of ``input_shape`` as is.

    Args:
        model (nn.Module): The model.
        input_shape (Sequence[int]): See above.
        random (bool): Feed ``torch.randn`` values drawn once from seed 0
            (the same input on every call) instead of zeros.
            Defaults to False.
        requires_grad (bool): Make the input require grad (a backward
            then computes its gradient too). Defaults to False.

    Returns:
        Callable: ``fn(device) -> output``; ``fn.inputs`` holds the inputs
        made so far.
    """
    shape = tuple(int(s) for s in input_shape)
    cache = {}

    def make(full, device):
        key = (full, str(device))
        if key not in cache:
            if random and torch.device(device).type != 'meta':
                gen = torch.Generator().manual_seed(0)
                cache[key] = torch.randn(full, generator=gen).to(device)
            else:
                cache[key] = torch.zeros(full, device=device)
            cache[key].requires_grad_(requires_grad)
        return cache[key]

    if not hasattr(model, 'extract_feat'):

        def run_module(device):
            return model(make(shape, device))

        run_module.inputs = cache
        return run_module
    if len(shape) == 5:  # (N, C, T, H, W) -> (N, 1 clip, C, T, H, W)
        full = (shape[0], 1) + shape[1:]
    elif len(shape) == 4:  # (T, C, H, W) -> (1 sample, T segments, ...)
        full = (1, ) + shape
    else:
        raise ValueError('input_shape of a recognizer must have 4 (T, C, H, '
                         f'W) or 5 (N, C, T, H, W) entries, got {shape}')

    def run(device):
        return model.extract_feat(make(full, device), stage='head')[0]

    run.inputs = cache  # the cached inputs, e.g. to reset their .grad
    return run


def count_complexity(model: nn.Module,
                     input_shape: Sequence[int],
                     forward: Optional[Callable] = None,
                     on_meta: bool = True) -> Dict[str, Union[int, dict]]:
    """Count parameters, conv/linear MACs and norm elements of one forward.

    Args:
        model (nn.Module): The model (left untouched; a copy is counted).
        input_shape (Sequence[int]): Input shape, see
            :func:`recognizer_forward`.
        forward (Callable, optional): ``fn(model_copy, device) -> output``
            replacing the default forward. Defaults to None.
        on_meta (bool): Count on a ``meta``-device copy (no compute, no
            memory). Set False for models with data-dependent control flow.
            Defaults to True.

    Returns:
        dict: ``params`` (all parameters), ``macs`` (conv + linear
        multiply-adds), ``macs_by_op`` (MACs per aten op name) and
        ``norm_elements`` (output elements of every norm layer).
    """
    params = sum(p.numel() for p in model.parameters())
    device = torch.device('meta') if on_meta else next(
        iter(model.parameters()), torch.empty(0)).device
    counted = copy.deepcopy(model).to(device) if on_meta else model
    was_training = counted.training
    counted.eval()

    norm_elements = [0]

    def norm_hook(module, inputs, output):
        norm_elements[0] += output.numel()

    handles = [
        m.register_forward_hook(norm_hook) for m in counted.modules()
        if isinstance(m, _NORM_TYPES)
    ]
    try:
        run = (lambda dev: forward(counted, dev)) if forward else \
            recognizer_forward(counted, input_shape)
        # grad mode on: modules that fold BN into the conv only in no-grad
        # eval calls (mmcsn's CSN) then run their norm layers, which the
        # MMAction2 count needs. Nothing is stored on the meta device.
        with torch.enable_grad(), FlopCounterMode(display=False) as counter:
            run(device)
    finally:
        for handle in handles:
            handle.remove()
        counted.train(was_training)

    macs_by_op = defaultdict(int)
    for op, flops in counter.get_flop_counts()['Global'].items():
        # FlopCounterMode counts a multiply-add as 2 FLOPs
        macs_by_op[str(op).split('.')[-1]] += flops // 2
    return dict(
        params=params,
        macs=sum(macs_by_op.values()),
        macs_by_op=dict(macs_by_op),
        norm_elements=norm_elements[0])


def mmaction_flops(result: dict) -> int:
    """MMAction2-metafile FLOPs: MACs + 2 x norm elements.

    Args:
        result (dict): Output of :func:`count_complexity`.

    Returns:
        int: The FLOPs as MMAction2's metafiles print them.
    """
    return result['macs'] + 2 * result['norm_elements']
