"""Params, GMACs and GFLOPs of a config, counted as the papers and MMAction2.

Examples::

    # the input shape of one test view, from the config's test pipeline
    python tools/analysis/complexity.py CONFIG
    python tools/analysis/complexity.py CONFIG --shape 1 3 32 256 256
    python tools/analysis/complexity.py CONFIG --shape 16 3 224 224  # 2D
    python tools/analysis/complexity.py CONFIG --cfg-options \\
        model.backbone.depth=50 --by-op
    # a registered backbone (JSON dict) instead of a config: --shape needed
    python tools/analysis/complexity.py \\
        '{"type": "bLResNet", "depth": 50, "num_segments": 16}' \\
        --shape 16 3 224 224

``--shape`` is the backbone's input: ``N C T H W`` for 3D recognizers (one
clip per sample) and ``T C H W`` for 2D recognizers (T segments of one
sample). Without it the shape is one view of the config's test pipeline
(``SampleFrames`` clip_len, crop or resize size, ``FormatShape``; see
:func:`mmcsn.utils.input_shape_from_config`), and the number of views a
test sample makes is printed too. Two figures are printed:

* ``GMACs``: multiply-adds of the convolutions and linear layers (the
  papers' and VMZ's "GFLOPs");
* ``GFLOPs (MMAction2)``: the same MACs + 2 x the output elements of every
  norm layer, as MMAction2's metafiles (mmengine's counter) print them.

The count runs on the meta device: no weights are computed on.
"""
import argparse
import json
import sys
import warnings
from typing import List, Optional

# importing mmcsn is when upstream warnings fire: record them, then
# prepare_entry_process silences the known-harmless ones, shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmengine.config import DictAction

    from mmcsn.utils import (
        build_model,
        count_complexity,
        input_shape_from_config,
        load_config,
        mmaction_flops,
    )
    from mmcsn.utils.runtime import prepare_entry_process

__all__ = ['main', 'parse_args']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` for tests)."""
    parser = argparse.ArgumentParser(
        description='Params, GMACs (conv + linear multiply-adds) and '
        'MMAction2 GFLOPs of a model built from a config')
    parser.add_argument(
        'config', help='config file, or a JSON dict of a registered backbone')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='backbone input: N C T H W (3D) or T C H W (2D); default: one '
        "view of the config's test pipeline")
    parser.add_argument(
        '--by-op', action='store_true', help='also print GMACs per aten op')
    parser.add_argument(
        '--json', default=None, help='also write the result to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, xxx=yyy format')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Build the config's model, count it and print the result.

    Args:
        argv (list[str], optional): Command line; ``sys.argv`` if None.

    Returns:
        dict: The counts (see :func:`mmcsn.utils.count_complexity`) plus
        ``mmaction_flops``, ``shape``, ``shape_source`` (``'--shape'`` or
        ``'test pipeline'``) and ``views`` (None with ``--shape``).
    """
    args = parse_args(argv)
    prepare_entry_process(_caught)
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg)
    if args.shape:
        shape, views, source = list(args.shape), None, '--shape'
    elif 'test_dataloader' in cfg or 'test_pipeline' in cfg:
        shape, views = input_shape_from_config(cfg)
        source = 'test pipeline'
    else:
        raise ValueError(f'--shape is required for {args.config!r}: a bare '
                         'module has no test pipeline to take it from')
    result = count_complexity(model, shape)
    result['mmaction_flops'] = mmaction_flops(result)
    result.update(shape=list(shape), shape_source=source, views=views)

    print(f'config: {args.config}')
    print(f'input shape ({source}): {" x ".join(map(str, shape))}' +
          (f'; {views} view(s) per test sample' if views else ''))
    print('| params (M) | GMACs (conv + linear multiply-adds) | '
          'GFLOPs (MMAction2: GMACs + 2 x norm output elements) |')
    print('|---|---|---|')
    print(f'| {result["params"] / 1e6:.2f} | {result["macs"] / 1e9:.2f} | '
          f'{result["mmaction_flops"] / 1e9:.3f} |')
    if args.by_op:
        for op, macs in sorted(result['macs_by_op'].items()):
            print(f'  {op}: {macs / 1e9:.4f} GMACs')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result



if __name__ == '__main__':
    try:
        main()
    except (ValueError, OSError) as err:  # bad input: one line, exit 1
        sys.exit(f'error: {err}')
