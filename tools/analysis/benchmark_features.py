"""Benchmarks of the inference path (docs/benchmarks.md, sections 11-13).

    # bf16 vs fp32 eval of a backbone (interleaved rounds, output cosine)
    python tools/analysis/benchmark_features.py dtype \\
        '{"type": "CSN", "depth": 50}' --shape 1 3 16 112 112
    # a trained recognizer on a test set: top-1 agreement, feature cosine
    python tools/analysis/benchmark_features.py agreement CONFIG CKPT \\
        --ann-file data/demo/test.txt --data-root data/demo
    # extraction windows/s: mmcsn vs MMAction2's clip_feature_extraction.py
    python tools/analysis/benchmark_features.py extract CONFIG CKPT \\
        --video-list LIST --video-root ROOT --window-stride 4
    # 1 vs 2 processes (torchrun, gloo)
    python tools/analysis/benchmark_features.py scaling CONFIG CKPT \\
        --video-list LIST --video-root ROOT --window-stride 4

Every figure printed is measured in this run; ratios compare runs made
side by side (A/B interleaved). ``--json FILE`` saves the result.
"""
import argparse
import json
import os.path as osp
import sys
import warnings
from typing import List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EXTRACT = osp.join(REPO, 'tools', 'extract_features.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='mode', required=True)
    p = sub.add_parser('dtype', help='bf16/fp16 vs fp32 eval of a backbone')
    p.add_argument('model', help='config file or JSON backbone dict')
    p.add_argument('--shape', type=int, nargs='+', required=True)
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'],
                   help='fp32, bf16, fp16, or autocast-bf16 (the fp32 model '
                   "under torch.autocast('cpu', torch.bfloat16))")
    p.add_argument('--rounds', type=int, default=10)
    p = sub.add_parser('agreement', help='fp32 vs bf16 on a test set')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--ann-file', required=True)
    p.add_argument('--data-root', required=True)
    p.add_argument('--dtype', default='bf16')
    p.add_argument('--limit', type=int, default=None)
    for mode in ('extract', 'scaling'):
        p = sub.add_parser(mode, help='extraction throughput: ' + (
            'mmcsn vs MMAction2' if mode == 'extract' else '1 vs 2 ranks'))
        p.add_argument('config')
        p.add_argument('checkpoint')
        p.add_argument('--video-list', required=True)
        p.add_argument('--video-root', required=True)
        p.add_argument('--clip-len', type=int, default=16)
        p.add_argument('--frame-interval', type=int, default=1)
        p.add_argument('--window-stride', type=int, default=16)
        p.add_argument('--batch-size', type=int, default=8)
        p.add_argument('--dtype', default='fp32')
        p.add_argument('--num-workers', type=int, default=1)
        p.add_argument('--rounds', type=int, default=2)
        p.add_argument('--threads', type=int, default=None,
                       help='OMP_NUM_THREADS of every process (extract)')
        p.add_argument('--work-dir', default='work_dirs/bench_features')
    parser.add_argument('--json', default=None, help='save the result')
    return parser.parse_args(argv)


def _backbone(spec: str):
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from mmcsn.utils import load_config
    init_default_scope('mmaction')
    if spec.lstrip().startswith('{'):
        return MODELS.build(json.loads(spec))
    return MODELS.build(load_config(spec).model.backbone)


def _extract_cmd(args, out: str, extra: List[str]) -> List[str]:
    return [
        sys.executable, EXTRACT, args.config, args.checkpoint,
        '--video-list', args.video_list, '--video-root', args.video_root,
        '--out-dir', out, '--clip-len',
        str(args.clip_len), '--frame-interval',
        str(args.frame_interval), '--window-stride',
        str(args.window_stride), '--batch-size',
        str(args.batch_size), '--dtype', args.dtype, '--num-workers',
        str(args.num_workers)
    ] + extra


def _videos(args) -> List[str]:
    with open(args.video_list) as f:
        return [
            osp.join(args.video_root, line.split()[0]) for line in f
            if line.split()
        ]


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        from mmcsn.utils.runtime import prepare_entry_process
    prepare_entry_process(caught)
    from mmcsn.benchmark import features as bench

    if args.mode == 'dtype':
        result = bench.dtype_speed(_backbone(args.model), args.shape,
                                   args.dtypes, args.rounds)
        for name in args.dtypes:
            print(f'{name}: {result["ms"][name]:.1f} ms, '
                  f'{result["speedup"][name]:.2f}x vs fp32, cosine '
                  f'{result["cosine"].get(name, float("nan")):.5f}')
    elif args.mode == 'agreement':
        result = bench.dtype_agreement(args.config, args.checkpoint,
                                       args.ann_file, args.data_root,
                                       args.dtype, args.limit)
        print(json.dumps(result, indent=1))
    else:
        work = args.work_dir
        one_thread = dict(OMP_NUM_THREADS='1')
        if args.mode == 'extract':
            env = ({} if args.threads is None else
                   dict(OMP_NUM_THREADS=str(args.threads)))
            if args.dtype != 'fp32':
                raise SystemExit('MMAction2\'s extractor runs in fp32 only; '
                                 'use --dtype fp32 for this comparison')
            commands = {
                'mmcsn': (_extract_cmd(args, f'{work}/mmcsn', []), env,
                          f'{work}/mmcsn', None),
                'mmaction2': (bench.mmaction_extractor_command(
                    sys.executable, args.config, args.checkpoint,
                    f'{work}/mmaction2', args.video_list, args.video_root,
                    args.window_stride, args.frame_interval), env,
                    f'{work}/mmaction2',
                    bench.mmaction_windows(_videos(args),
                                           args.window_stride)),
            }
        else:
            torchrun = [
                sys.executable, '-m', 'torch.distributed.run',
                '--nproc_per_node=2', '--master_port=29533'
            ]
            two = _extract_cmd(args, f'{work}/two', ['--launcher', 'pytorch'])
            commands = {
                '1 process x 2 threads': (_extract_cmd(
                    args, f'{work}/one2', []), {}, f'{work}/one2', None),
                '1 process x 1 thread': (_extract_cmd(
                    args, f'{work}/one1', []), one_thread, f'{work}/one1',
                    None),
                '2 processes x 1 thread': (torchrun + two[1:], one_thread,
                                           f'{work}/two', None),
            }
        result = bench.time_commands(commands, args.rounds)
        base = next(iter(result.values()))['windows_per_s']
        for name, entry in result.items():
            print(f'{name}: {entry["windows"]} windows in '
                  f'{entry["seconds"]:.1f} s = '
                  f'{entry["windows_per_s"]:.2f} windows/s '
                  f'({entry["windows_per_s"] / base:.2f}x); '
                  f'{entry["cpu_seconds"]:.1f} CPU s = '
                  f'{entry["windows_per_cpu_s"]:.2f} windows/CPU-s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
