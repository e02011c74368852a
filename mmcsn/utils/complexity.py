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

from .builders import recognizer_forward

__all__ = ['count_complexity', 'mmaction_flops']

# norm layers whose output elements MMAction2 (mmengine) counts as FLOPs
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def count_complexity(model: nn.Module,
                     input_shape: Sequence[int],
                     forward: Optional[Callable] = None,
                     on_meta: bool = True) -> Dict[str, Union[int, dict]]:
    """Count parameters, conv/linear MACs and norm elements of one forward.

    Args:
        model (nn.Module): The model (left untouched; a copy is counted).
        input_shape (Sequence[int]): Input shape, see
            :func:`mmcsn.utils.recognizer_forward`.
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
        # mmcsn's fast paths (BN folding, GEMM 1x1x1 convs) step aside
        # under a dispatch mode (mmcsn.ops.ops_observed): the norm hooks
        # fire and aten.convolution is counted in any grad mode.
        with FlopCounterMode(display=False) as counter:
            run(device)
    finally:
        for handle in handles:
            handle.remove()
        counted.train(was_training)

    macs_by_op = defaultdict(int)
    for op, flops in counter.get_flop_counts().get('Global', {}).items():
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
