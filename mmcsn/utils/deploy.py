"""ONNX export and ONNX Runtime inference of mmcsn models.

The model is exported in eval mode with the TorchScript exporter
(``dynamo=False``: no onnxscript needed). mmcsn's custom autograd Functions
run their plain-op forward while exporting, so the graph holds only
standard ONNX ops. ``onnx`` and ``onnxruntime`` are optional dependencies
(``pip install "mmcsn[deploy]"``, checked by
:func:`mmcsn.utils.extras.missing_extra`), imported only when called.
"""
from typing import List

import torch
import torch.nn as nn

__all__ = [
    'OPSET', 'export_onnx', 'onnxruntime_outputs', 'onnxruntime_session'
]

OPSET = 17


def _contiguous_layout(model: nn.Module) -> None:
    """Switch mmcsn backbones to NCDHW: the TorchScript exporter rejects
    ``Tensor.contiguous(memory_format=...)`` and the layout does not change
    the graph's values."""
    for module in model.modules():
        if getattr(module, 'memory_format', None) == 'channels_last_3d':
            module.memory_format = 'contiguous'


def export_onnx(model: nn.Module,
                example: torch.Tensor,
                path: str,
                opset: int = OPSET) -> str:
    """Export ``model(example)`` to ``path`` (eval mode, no grad).

    Args:
        model (nn.Module): Tensor-in tensor-out module (wrap a recognizer
            in :class:`mmcsn.utils.TensorGraph`). Switched to eval mode and
            to the contiguous memory format.
        example (Tensor): Example input (its shape is fixed in the graph).
        path (str): Output ``.onnx`` file.
        opset (int): ONNX opset. Defaults to 17.

    Returns:
        str: ``path``.
    """
    model.eval()
    _contiguous_layout(model)
    with torch.no_grad():
        torch.onnx.export(
            model, (example, ),
            path,
            input_names=['input'],
            output_names=['output'],
            opset_version=opset,
            dynamo=False)
    return path


def onnxruntime_session(path: str, threads: int = 0):
    """An ONNX Runtime CPU session of an exported graph.

    Args:
        path (str): The ``.onnx`` file.
        threads (int): Intra-op threads (0: ONNX Runtime's default).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def onnxruntime_outputs(path: str, example: torch.Tensor) -> List:
    """Run the exported graph with ONNX Runtime on CPU."""
    session = onnxruntime_session(path)
    return session.run(None, {'input': example.detach().cpu().numpy()})
