"""Export a config's model (or a registered backbone) to ONNX and check it.

Examples::

    python tools/deploy/export_onnx.py CONFIG model.onnx \\
        --shape 1 3 8 112 112 --checkpoint ckpt.pth --verify
    python tools/deploy/export_onnx.py '{"type": "CSN", "depth": 50}' \\
        csn50.onnx --shape 1 3 8 112 112

For a recognizer the exported graph is backbone + neck + head (class
scores); ``--shape`` is the backbone input as in
``tools/analysis/complexity.py``. The model is exported in eval mode with
the TorchScript exporter at opset 17 (``dynamo=False``: no onnxscript
needed). mmcsn's custom autograd Functions run their plain-op forward
while exporting, so the graph holds only standard ONNX ops.
"""
import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ['export_onnx', 'main', 'onnxruntime_outputs']

OPSET = 17


class _RecognizerGraph(nn.Module):
    """Recognizer backbone + neck + head as one tensor-in tensor-out net."""

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        self.recognizer = recognizer

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.recognizer.extract_feat(inputs, stage='head')[0]


def _graph_and_input(model: nn.Module,
                     shape: Sequence[int]) -> Tuple[nn.Module, torch.Tensor]:
    """Wrap recognizers; make the example input for ``shape``."""
    shape = tuple(int(s) for s in shape)
    if not hasattr(model, 'extract_feat'):
        return model, torch.randn(shape)
    if len(shape) == 5:
        full = (shape[0], 1) + shape[1:]
    elif len(shape) == 4:
        full = (1, ) + shape
    else:
        raise ValueError('shape of a recognizer must have 4 (T, C, H, W) or '
                         f'5 (N, C, T, H, W) entries, got {shape}')
    return _RecognizerGraph(model), torch.randn(full)


def export_onnx(model: nn.Module,
                example: torch.Tensor,
                path: str,
                opset: int = OPSET) -> str:
    """Export ``model(example)`` to ``path`` (eval mode, no grad).

    Args:
        model (nn.Module): Tensor-in tensor-out module.
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


def _contiguous_layout(model: nn.Module) -> None:
    """Switch mmcsn backbones to NCDHW: the TorchScript exporter rejects
    ``Tensor.contiguous(memory_format=...)`` and the layout does not change
    the graph's values."""
    for module in model.modules():
        if getattr(module, 'memory_format', None) == 'channels_last_3d':
            module.memory_format = 'contiguous'


def onnxruntime_outputs(path: str, example: torch.Tensor) -> List:
    """Run the exported graph with ONNX Runtime on CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': example.numpy()})


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` for tests)."""
    parser = argparse.ArgumentParser(description='Export a model to ONNX')
    parser.add_argument(
        'config', help='config file, or a JSON dict of a registered backbone')
    parser.add_argument('output', help='output .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1, 3, 8, 112, 112],
        help='backbone input: N C T H W (3D) or T C H W (2D)')
    parser.add_argument('--checkpoint', default=None, help='weights to load')
    parser.add_argument('--opset', type=int, default=OPSET)
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare ONNX Runtime with PyTorch (max abs difference)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Build, optionally load weights, export and verify.

    Returns:
        dict: ``path`` and, with ``--verify``, ``max_abs_diff``.
    """
    args = parse_args(argv)
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmcsn  # noqa: F401  (stack fixes + registers mmcsn modules)
    from mmcsn.checkpoint.io import (
        load_checkpoint_file,
        load_state_dict_checked,
        unwrap_state_dict,
    )

    if args.config.lstrip().startswith('{'):
        cfg = Config(dict(model=json.loads(args.config)))
    else:
        cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    if 'backbone' in cfg.model and 'pretrained' in cfg.model.backbone:
        cfg.model.backbone.pretrained = None
    model = MODELS.build(cfg.model)
    if args.checkpoint:
        state = unwrap_state_dict(load_checkpoint_file(args.checkpoint))
        load_state_dict_checked(model, state, strict=True)
    graph, example = _graph_and_input(model, args.shape)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    export_onnx(graph, example, args.output, args.opset)
    result = dict(path=args.output)
    print(f'exported {args.output} (opset {args.opset})')
    if args.verify:
        with torch.no_grad():
            expected = graph(example)
        got = torch.from_numpy(onnxruntime_outputs(args.output, example)[0])
        result['max_abs_diff'] = (got - expected).abs().max().item()
        print(f'ONNX Runtime vs PyTorch: max abs diff '
              f'{result["max_abs_diff"]:.3g}')
    return result


if __name__ == '__main__':
    main()
