"""Params and FLOPs of a config, counted as the papers and MMAction2 do.

Examples::

    python tools/analysis/complexity.py CONFIG --shape 1 3 32 256 256
    python tools/analysis/complexity.py CONFIG --shape 16 3 224 224  # 2D
    python tools/analysis/complexity.py CONFIG --cfg-options \\
        model.backbone.depth=50 --by-op
    # a registered backbone (JSON dict) instead of a config
    python tools/analysis/complexity.py \\
        '{"type": "bLResNet", "depth": 50, "num_segments": 16}' \\
        --shape 16 3 224 224

``--shape`` is the backbone's input: ``N C T H W`` for 3D recognizers (one
clip per sample) and ``T C H W`` for 2D recognizers (T segments of one
sample). The count runs on the meta device: no weights are computed on.
"""
import argparse
import json
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

__all__ = ['main', 'parse_args']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` for tests)."""
    parser = argparse.ArgumentParser(
        description='Params and GFLOPs (conv + linear multiply-adds) of a '
        'model built from a config')
    parser.add_argument(
        'config', help='config file, or a JSON dict of a registered backbone')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        help='backbone input: N C T H W (3D) or T C H W (2D); defaults to '
        '1 3 32 224 224 for 3D and 8 3 224 224 for 2D recognizers')
    parser.add_argument(
        '--by-op', action='store_true', help='also print MACs per aten op')
    parser.add_argument(
        '--json', default=None, help='also write the result to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, xxx=yyy format')
    return parser.parse_args(argv)


def _default_shape(model) -> List[int]:
    """Default input shape for the recognizer's dimensionality."""
    if not hasattr(model, 'extract_feat'):
        raise ValueError('--shape is required for a bare backbone')
    if type(model).__name__.endswith('2D'):
        return [8, 3, 224, 224]
    return [1, 3, 32, 224, 224]


def main(argv: Optional[List[str]] = None) -> dict:
    """Build the config's model, count it and print the result.

    Args:
        argv (list[str], optional): Command line; ``sys.argv`` if None.

    Returns:
        dict: The counts (see :func:`mmcsn.utils.count_complexity`) plus
        ``mmaction_flops`` and ``shape``.
    """
    args = parse_args(argv)
    from mmaction.registry import MODELS

    import mmcsn  # noqa: F401  (stack fixes + registers mmcsn modules)
    from mmcsn.utils import count_complexity, mmaction_flops

    if args.config.lstrip().startswith('{'):
        cfg = Config(dict(model=json.loads(args.config)))
    else:
        cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model_cfg = cfg.model
    # counting needs no pretrained weights (and must not download them)
    if 'backbone' in model_cfg and 'pretrained' in model_cfg.backbone:
        model_cfg.backbone.pretrained = None
    model = MODELS.build(model_cfg)
    shape = args.shape or _default_shape(model)
    result = count_complexity(model, shape)
    result['mmaction_flops'] = mmaction_flops(result)
    result['shape'] = list(shape)

    print(f'config: {args.config}')
    print(f'input shape: {" x ".join(map(str, shape))}')
    print('| params (M) | GFLOPs (conv+linear MACs) | GFLOPs MMAction2 '
          '(+2 x norm elements) |')
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
    main()
