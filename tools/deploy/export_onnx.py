"""Export a config's model (or a registered backbone) to ONNX and check it.

Examples::

    python tools/deploy/export_onnx.py CONFIG model.onnx \\
        --checkpoint ckpt.pth --verify [--force]
    python tools/deploy/export_onnx.py '{"type": "CSN", "depth": 50}' \\
        csn50.onnx --shape 1 3 8 112 112

For a recognizer the exported graph is backbone + neck + head (class
scores). ``--shape`` is the backbone input (``N C T H W`` for 3D, ``T C H
W`` for 2D recognizers); without it, a config's test pipeline gives one
test view (see :func:`mmcsn.utils.input_shape_from_config`). The graph is
exported in eval mode at opset 17 (:mod:`mmcsn.utils.deploy`). Needs
``onnx`` (and ``onnxruntime`` for ``--verify``): ``pip install
"mmcsn[deploy]"``.
"""
import argparse
import sys
import warnings
from pathlib import Path
from typing import List, Optional

# importing mmcsn is when upstream warnings fire: record them, then
# prepare_entry_process silences the known-harmless ones, shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmcsn.utils.extras import missing_extra
    from mmcsn.utils.runtime import prepare_entry_process

__all__ = ['main', 'parse_args']


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
        default=None,
        help='backbone input: N C T H W (3D) or T C H W (2D); default: one '
        "view of the config's test pipeline")
    parser.add_argument('--checkpoint', default=None, help='weights to load')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare ONNX Runtime with PyTorch (max abs difference)')
    parser.add_argument(
        '--force',
        action='store_true',
        help='overwrite an existing output (default: refuse it)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='override config entries, xxx=yyy format')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Build, optionally load weights, export and verify.

    Exits with status 1 and the install command when ``onnx`` (or, with
    ``--verify``, ``onnxruntime``) is missing. An existing output is
    refused (``OutputExistsError``, before any work) unless ``--force``;
    the file is written with :func:`mmcsn.checkpoint.io.atomic_write`.

    Returns:
        dict: ``path``, ``shape`` and, with ``--verify``, ``max_abs_diff``.
    """
    args = parse_args(argv)
    # before anything heavy: a user without the extra gets one line
    missing = missing_extra(
        'deploy', ('onnx', 'onnxruntime') if args.verify else ('onnx', ),
        feature='export_onnx.py' + (' --verify' if args.verify else ''))
    if missing:
        print(missing, file=sys.stderr)
        raise SystemExit(1)
    prepare_entry_process(_caught)

    import torch

    from mmcsn.checkpoint.io import (
        atomic_write,
        check_output,
        load_checkpoint_file,
        load_state_dict_checked,
        unwrap_state_dict,
    )
    from mmcsn.utils import (
        TensorGraph,
        build_model,
        input_shape_from_config,
        load_config,
        recognizer_input_shape,
    )
    from mmcsn.utils.deploy import export_onnx, onnxruntime_outputs

    out = Path(args.output)
    for name, given in (('config', args.config),
                        ('--checkpoint', args.checkpoint)):
        if given and Path(given).is_file() and out.exists() and \
                out.samefile(given):
            raise ValueError(f'output {args.output!r} is the {name} file: '
                             'refusing to overwrite an input')
    inputs = [p for p in (args.config, args.checkpoint)
              if p and Path(p).is_file()]
    check_output(out, args.force, inputs)  # before the slow part
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg)
    if args.checkpoint:
        state = unwrap_state_dict(load_checkpoint_file(args.checkpoint))
        load_state_dict_checked(model, state, strict=True)
    shape = args.shape or input_shape_from_config(cfg)[0]
    example = torch.randn(recognizer_input_shape(model, shape))
    graph = TensorGraph(model)
    # a unique temporary name: a failed export leaves nothing, concurrent
    # exports and the user's own files are never touched
    atomic_write(out, lambda f: export_onnx(graph, example, f, args.opset),
                 args.force, inputs)
    result = dict(path=args.output, shape=list(shape))
    print(f'exported {args.output} (opset {args.opset}, input '
          f'{"x".join(map(str, example.shape))})')
    if args.verify:
        with torch.no_grad():
            expected = graph(example)
        got = torch.from_numpy(onnxruntime_outputs(args.output, example)[0])
        result['max_abs_diff'] = (got - expected).abs().max().item()
        print(f'ONNX Runtime vs PyTorch: max abs diff '
              f'{result["max_abs_diff"]:.3g}')
    return result


if __name__ == '__main__':
    try:
        main()
    except (ValueError, OSError) as err:  # bad input: one line, exit 1
        sys.exit(f'error: {err}')
