"""Where a step's time goes: top ops, and the share of one module class."""
from typing import Callable, Dict, List

import torch.nn as nn

__all__ = ['module_share', 'top_ops']

# autograd nodes skipped when walking from a module's output to the node
# that computed it
_VIEW_NODES = ('ViewBackward0', 'UnsafeViewBackward0', 'ReshapeAliasBackward0',
               'AliasBackward0')


def top_ops(run: Callable[[], None], top: int) -> List[dict]:
    """Profile one call; the ``top`` ops by self CPU time."""
    from torch.profiler import profile

    with profile() as prof:
        run()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return [
        dict(
            op=e.key,
            calls=e.count,
            self_ms=e.self_cpu_time_total / 1e3,
            share=e.self_cpu_time_total / total) for e in rows
    ]


def module_share(model: nn.Module, run: Callable[[], None],
                 class_name: str) -> Dict[str, float]:
    """Profile one call of ``run``; time inside ``class_name`` modules.

    Forward: a profiler range around every such module's forward.
    Backward: the autograd nodes that produced those modules' outputs
    (view nodes skipped), e.g. ``_TemporalAggregateFnBackward`` for TAM.
    """
    from torch.autograd.profiler import record_function
    from torch.profiler import profile

    label = f'share::{class_name}'
    ranges, nodes, handles = [], set(), []

    def pre_hook(module, inputs):
        ranges.append(record_function(label))
        ranges[-1].__enter__()

    def post_hook(module, inputs, output):
        ranges.pop().__exit__(None, None, None)
        outs = output if isinstance(output, (tuple, list)) else [output]
        for out in outs:
            fn = getattr(out, 'grad_fn', None)
            while fn is not None and fn.name() in _VIEW_NODES:
                fn = fn.next_functions[0][0]
            if fn is not None:
                nodes.add(fn.name())

    for module in model.modules():
        if type(module).__name__ == class_name:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
    if not handles:
        raise ValueError(f'--share: no module of class {class_name!r}')
    try:
        with profile() as prof:
            with record_function('share::step'):
                run()
    finally:
        for handle in handles:
            handle.remove()
    total = forward = backward = 0.0
    for event in prof.key_averages():
        if event.key == 'share::step':
            total += event.cpu_time_total
        elif event.key == label:
            forward += event.cpu_time_total
        elif any(event.key == f'autograd::engine::evaluate_function: {n}'
                 for n in nodes):
            backward += event.cpu_time_total
    return dict(
        step_ms=total / 1e3,
        forward_ms=forward / 1e3,
        backward_ms=backward / 1e3,
        share=(forward + backward) / max(total, 1e-9))
