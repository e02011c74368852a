"""Reduced-precision inference: a real bf16 (CPU/CUDA) and fp16 (CUDA) path.

``torch.autocast`` around a model casts the fp32 weights of every conv on
every call and keeps BatchNorm as a separate fp32 pass: on ir-CSN-50 it
gave only 1.30x over fp32 on an AVX512-BF16 CPU. This module deploys the
model instead, once:

1. BatchNorm folded into the preceding conv (:mod:`mmcsn.apis.fuse`): new
   conv weight and bias, the BN replaced by ``nn.Identity``;
2. weights and buffers cast to the target dtype;
3. 4-d/5-d weights in channels-last (oneDNN's native layout), and inputs
   cast the same way by :func:`cast_inputs`.

The hardware is checked first: bf16 on a CPU needs oneDNN's bf16 kernels
(AVX512-BF16 or AMX; plain AVX512 emulates bf16 and is slower than fp32),
fp16 is accelerated only on CUDA. Where it is missing the call raises a
``RuntimeError`` saying why, or, with ``fallback=True``, warns and keeps
fp32.

The result is an inference-only model: its state_dict has no BN keys, so
never save it as a training checkpoint.
"""
import os
import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

from .fuse import fold_batchnorm

__all__ = [
    'DTYPES', 'parse_dtype', 'cpu_bf16_support', 'check_dtype_supported',
    'prepare_for_inference', 'cast_inputs', 'module_dtype', 'cast_io'
]

# CLI spelling -> torch dtype
DTYPES = {
    'fp32': torch.float32,
    'bf16': torch.bfloat16,
    'fp16': torch.float16,
}
_CPU_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def parse_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """``'fp32'|'bf16'|'fp16'`` (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f'dtype={dtype!r} is not valid; valid choices: '
                     f'{sorted(DTYPES)} or the matching torch dtypes')


def _cpu_flags() -> Tuple[str, ...]:
    """Feature flags of the first CPU in /proc/cpuinfo (Linux only)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return tuple(line.split(':', 1)[1].split())
    except OSError:
        pass
    return ()


def cpu_bf16_support() -> Tuple[bool, str]:
    """Whether this CPU runs bf16 convs and matmuls natively.

    Needs oneDNN in torch, oneDNN's own bf16 check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) and, where
    ``/proc/cpuinfo`` exists, the ``avx512_bf16`` or ``amx_bf16`` flag
    (without them oneDNN emulates bf16 with AVX512 and is slower than
    fp32).

    Returns:
        tuple[bool, str]: The answer and a one-line reason.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if not torch.backends.mkldnn.is_available():
        return False, 'this torch build has no oneDNN (mkldnn)'
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    if not native:
        return False, (f'oneDNN reports no bf16 support on this CPU '
                       f'(vector capability {capability})')
    flags = _cpu_flags()
    if os.path.exists('/proc/cpuinfo') and not any(
            f in flags for f in _CPU_BF16_FLAGS):
        return False, (f'the CPU lacks {" / ".join(_CPU_BF16_FLAGS)} '
                       f'(capability {capability}); bf16 would be emulated')
    have = [f for f in _CPU_BF16_FLAGS if f in flags] or ['oneDNN bf16']
    return True, f'{", ".join(have)} (capability {capability})'


def check_dtype_supported(dtype: Union[str, torch.dtype],
                          device: Union[str, torch.device] = 'cpu') -> None:
    """Raise ``RuntimeError`` if ``dtype`` has no fast path on ``device``.

    Args:
        dtype (str | torch.dtype): ``fp32``, ``bf16`` or ``fp16``.
        device (str | torch.device): Where the model runs.
    """
    dtype = parse_dtype(dtype)
    device = torch.device(device)
    if dtype == torch.float32:
        return
    name = {torch.bfloat16: 'bf16', torch.float16: 'fp16'}[dtype]
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError(f'{name} on {device} needs CUDA, which this '
                               'torch build or machine lacks')
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise RuntimeError(
                'bf16 needs a GPU with native bf16 (Ampere or newer); use '
                "dtype='fp16' on this GPU")
        return
    if device.type != 'cpu':
        raise RuntimeError(f'{name} inference is supported on cpu and cuda '
                           f'devices, not {device.type!r}')
    if dtype == torch.float16:
        raise RuntimeError(
            'fp16 inference is CUDA-only: CPU convs have no fast fp16 '
            "kernels; use dtype='bf16' on CPUs with AVX512-BF16/AMX, or "
            "'fp32'")
    ok, reason = cpu_bf16_support()
    if not ok:
        raise RuntimeError(
            f'bf16 inference on this CPU is not supported: {reason}. It '
            "needs AVX512-BF16 or AMX; use dtype='fp32' (or fallback=True "
            'to fall back to fp32 with a warning)')


def module_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the first floating-point parameter (fp32 if none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _channels_last(model: nn.Module) -> None:
    """4-d weights to channels_last, 5-d to channels_last_3d, in place."""
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is None:
                continue
            fmt = {4: torch.channels_last,
                   5: torch.channels_last_3d}.get(p.dim())
            if fmt is not None:
                p.data = p.data.contiguous(memory_format=fmt)


def prepare_for_inference(model: nn.Module,
                          dtype: Union[str, torch.dtype] = torch.bfloat16,
                          device: Union[str, torch.device, None] = None,
                          example_inputs: Optional[torch.Tensor] = None,
                          fold_bn: bool = True,
                          channels_last: Optional[bool] = None,
                          fallback: bool = False) -> nn.Module:
    """Deploy ``model`` for inference in ``dtype``, in place.

    Args:
        model (nn.Module): A backbone or a whole recognizer.
        dtype (str | torch.dtype): ``'fp32'``, ``'bf16'`` or ``'fp16'``.
            Defaults to bf16.
        device (str | torch.device, optional): Target device. Defaults to
            where the model's parameters are.
        example_inputs (Tensor, optional): One input of ``model`` (fp32).
            With it, conv/BN pairs that are not visible in the module tree
            (``bn(conv(x))`` in a ``forward``) are found by one traced
            call and folded too, and the folded model is checked against
            the original on it. Defaults to None (tree-visible pairs
            only).
        fold_bn (bool): Fold BatchNorm into convs. Defaults to True.
        channels_last (bool, optional): Channels-last weights. Defaults to
            True for bf16/fp16 (oneDNN's native bf16 layout; 2x faster
            than fp32 on ir-CSN-50) and False for fp32, where oneDNN
            reorders the weights itself.
        fallback (bool): Where ``dtype`` is unsupported, warn and prepare
            an fp32 model instead of raising. Defaults to False.

    Returns:
        nn.Module: ``model`` in eval mode, with ``model.inference_dtype``
        set to the dtype actually used.

    Raises:
        RuntimeError: ``dtype`` is not supported on ``device`` (and
            ``fallback`` is False).
    """
    dtype = parse_dtype(dtype)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else 'cpu'
    device = torch.device(device)
    try:
        check_dtype_supported(dtype, device)
    except RuntimeError as err:
        if not fallback:
            raise
        warnings.warn(f'{err}; falling back to fp32 as fallback=True asks')
        dtype = torch.float32
    model.eval()
    if fold_bn:
        fold_batchnorm(model, example_inputs=example_inputs)
    model.to(device=device, dtype=dtype)
    if channels_last is None:
        channels_last = dtype != torch.float32
    if channels_last:
        _channels_last(model)
    model.inference_dtype = dtype
    return model


def cast_inputs(x: torch.Tensor, dtype: Union[str, torch.dtype],
                channels_last: bool = True) -> torch.Tensor:
    """Cast an input batch to ``dtype`` (and channels-last for 4-d/5-d)."""
    x = x.to(parse_dtype(dtype))
    if channels_last and x.dim() in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if x.dim() ==
                         4 else torch.channels_last_3d)
    return x


def cast_io(module: nn.Module, dtype: Union[str, torch.dtype]) -> nn.Module:
    """Make a deployed ``module`` take and return fp32 tensors.

    Registers hooks that cast its input with :func:`cast_inputs` and its
    floating-point outputs (tensors, tuples, lists) back to fp32, so the
    rest of a recognizer (heads, pooling) runs unchanged.

    Returns:
        nn.Module: ``module``.
    """
    dtype = parse_dtype(dtype)

    def to_float(out):
        if isinstance(out, torch.Tensor):
            return out.float() if out.is_floating_point() else out
        if isinstance(out, (tuple, list)):
            return type(out)(to_float(o) for o in out)
        return out

    module.register_forward_pre_hook(
        lambda m, args: (cast_inputs(args[0], dtype), ) + tuple(args[1:]))
    module.register_forward_hook(lambda m, args, out: to_float(out))
    return module
