"""Extract clip features of many videos (resumable, kill-safe, sharded).

    python tools/extract_features.py CONFIG CHECKPOINT --video-list LIST \\
        [--video-root ROOT] --out-dir OUT [--clip-len L] \\
        [--frame-interval I] [--window-stride S] [--batch-size B] \\
        [--dtype fp32|bf16|fp16] [--launcher none|pytorch|slurm]

Writes ``OUT/<video relative to ROOT>.npy`` (float32 ``(num_windows, C)``)
and a ``.json`` of metadata per video; failures go to ``OUT/failed.txt``
and make the exit status 1. See docs/features.md.
"""
import argparse
import sys
import warnings
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract pooled backbone features of sliding windows '
        'over every video of a list (docs/features.md)')
    parser.add_argument('config', help='model config (its test pipeline '
                        'preprocesses the frames)')
    parser.add_argument('checkpoint', help='checkpoint (loaded strictly)')
    parser.add_argument('--video-list', required=True,
                        help='MMAction2 video list: "path [label]" lines')
    parser.add_argument('--video-root', default=None,
                        help='folder the list\'s paths are relative to')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--clip-len', type=int, default=None,
                        help='frames per window (default: the config\'s '
                        'test sampler)')
    parser.add_argument('--frame-interval', type=int, default=None,
                        help='step between frames of a window (default: '
                        'the config\'s test sampler)')
    parser.add_argument('--window-stride', type=int, default=None,
                        help='frames between window starts (default: '
                        'clip_len * frame_interval)')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='windows per forward pass')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'],
                        default='fp32',
                        help='compute dtype (bf16: AVX512-BF16/AMX CPUs or '
                        'CUDA; fp16: CUDA); features are saved as float32')
    parser.add_argument('--layer', type=int, default=None,
                        help='backbone stage to pool, 0-based as '
                        'out_indices (default: the config\'s last)')
    parser.add_argument('--num-workers', type=int, default=1,
                        help='decoding processes (0: decode in the main '
                        'process)')
    parser.add_argument('--min-frames', type=int, default=None,
                        help='videos with fewer frames fail as too short '
                        '(default: clip_len)')
    parser.add_argument('--device', default=None,
                        help='cpu, cuda or cuda:N (default: cuda:LOCAL_RANK '
                        'if available, else cpu)')
    parser.add_argument('--no-fold-bn', action='store_true',
                        help='keep BatchNorm layers (folding is exact up to '
                        'rounding)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        from mmcsn.utils.runtime import prepare_entry_process
    # known upstream warnings off; malloc thresholds raised (1.5-2x faster
    # CPU inference, docs/benchmarks.md)
    prepare_entry_process(caught)
    from mmcsn.apis.features import default_window_spec, extract_features
    from mmcsn.apis.windows import WindowSpec
    try:
        spec = None
        if args.clip_len or args.frame_interval or args.window_stride:
            from mmengine.config import Config
            base = default_window_spec(Config.fromfile(args.config),
                                       args.clip_len, args.frame_interval)
            spec = WindowSpec(base.clip_len, base.frame_interval,
                              args.window_stride or base.stride)
        summary, failures = run(args, extract_features, spec)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # bad arguments, list, config, checkpoint or dtype: nothing was
        # extracted; say why without a traceback
        print(f'error: {err}', file=sys.stderr)
        return 2
    import torch.distributed as dist
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(f'summary: {summary}', file=sys.stderr)
        if failures:
            print(f'{len(failures)} video(s) failed, listed in '
                  f'{args.out_dir}/failed.txt', file=sys.stderr)
    return 1 if failures else 0


def run(args: argparse.Namespace, extract_features, spec):
    """The extraction with the parsed arguments."""
    return extract_features(
        args.config,
        args.checkpoint,
        args.video_list,
        args.out_dir,
        video_root=args.video_root,
        launcher=args.launcher,
        spec=spec,
        layer=args.layer,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        min_frames=args.min_frames,
        fold_bn=not args.no_fold_bn)


if __name__ == '__main__':
    sys.exit(main())
