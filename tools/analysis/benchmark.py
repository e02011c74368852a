"""Time and peak memory of models built from configs, A/B interleaved.

Examples::

    # eval forward and train step (fwd + bwd) of one config
    python tools/analysis/benchmark.py CONFIG --shape 1 3 16 112 112
    # two configs, interleaved A, B, A, B, ...; prints B / A
    python tools/analysis/benchmark.py CONFIG_A --vs CONFIG_B
    # the same config with MMAction2's implementation (ResNet3dCSN, same
    # weights), with DepthwiseConv3d's plain autograd backward or with the
    # dense 1x1x1 convs as plain F.conv3d as B
    python tools/analysis/benchmark.py CONFIG --compare-impl mmaction
    python tools/analysis/benchmark.py CONFIG --compare-impl plain-dw
    python tools/analysis/benchmark.py CONFIG --compare-impl plain-pw
    # a registered backbone instead of a config (JSON dict)
    python tools/analysis/benchmark.py '{"type": "CSN", "depth": 50}'
    # bLResNet / TemporalAggregation vs the official formulation
    # (mmcsn/benchmark/blvnet_reference.py, same weights)
    python tools/analysis/benchmark.py \
        '{"type": "bLResNet", "depth": 50, "num_segments": 16}' \
        --shape 16 3 112 112 --compare-impl official
    # the same model with other options (B only), e.g. checkpointing
    python tools/analysis/benchmark.py CONFIG --b-options \
        model.backbone.with_cp=True --memory
    # eager vs torch.compile / ONNX Runtime (eval; compile also trains)
    python tools/analysis/benchmark.py CONFIG --compare-impl compile
    python tools/analysis/benchmark.py CONFIG --compare-impl onnxruntime

Timings: ``--warmup`` untimed runs, then ``--iters`` rounds, each running
A then B (order swapped every round); the median per model is reported.
Eval rounds also time an fp32 ``torch.mm`` of two ``--roof-size`` squares
(the machine's GEMM roof, same threads, same rounds): the eval forward's
achieved GFLOP/s (2 x conv + linear MACs, as
``tools/analysis/complexity.py`` counts them, over the median time) and its
fraction of that roof are printed and saved. Progress (one line per phase
and round) goes to stderr; the results to stdout.
"train" is forward + backward of ``output.sum()`` with grads reset, no
optimizer. Before timing, B's eval output is compared with A's (same
weights) and the max abs difference is printed and saved; ``--vs`` models
have their own weights and are not compared. Inputs are ``randn`` from
seed 0, drawn once. Peak memory (``--memory``) is measured in a fresh
subprocess per model and mode (:mod:`mmcsn.benchmark.memory`): on CPU
the peak of live tensor memory allocated by one call (the profiler's
allocation record replayed; the column printed), plus peak RSS
(``VmHWM``) growth over two calls in the JSON (``rss_peak_mb``, noisier:
allocator caching, other load); on CUDA ``max_memory_allocated``.
``--input-grad`` makes train steps also compute the input gradient (for
modules that sit inside a network, such as TAM). Set the malloc
thresholds (``--malloc-tuning on``, the default) to get stable CPU timings.
The work is done by :mod:`mmcsn.benchmark`; this file parses arguments.
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings
from typing import List, Optional

# importing mmcsn is when upstream warnings fire: record them, then main()
# silences the known-harmless ones and shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    import torch

    from mmcsn.benchmark import (
        IMPLS,
        TABLE_HEADER,
        BenchSpec,
        add_roofline,
        build_models,
        eval_gflop,
        gemm_runner,
        is_trainable,
        make_runner,
        max_abs_diff,
        md_row,
        module_share,
        peak_memory,
        roofline_line,
        time_interleaved,
        top_ops,
    )
    from mmcsn.utils.runtime import prepare_entry_process

__all__ = ['main', 'parse_args']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` for tests)."""
    parser = argparse.ArgumentParser(
        description='Benchmark eval forward / train step time and memory')
    parser.add_argument(
        'config', help='config file, or a JSON dict of a registered backbone')
    parser.add_argument('--vs', default=None, help='config B (interleaved)')
    parser.add_argument(
        '--compare-impl',
        choices=IMPLS,
        default=None,
        help='B = the same model (same weights) as MMAction2 ResNet3dCSN '
        '(mmaction), with DepthwiseConv3d on plain autograd (plain-dw), '
        'with dense 1x1x1 convs as plain F.conv3d (plain-pw: CSN '
        'pointwise_gemm=False), as the official bLVNet-TAM code (official; '
        'bLResNet or TemporalAggregation, a recognizer is reduced to its '
        'backbone), under torch.compile (compile) or in ONNX Runtime '
        '(onnxruntime, eval only)')
    parser.add_argument(
        '--b-options',
        nargs='+',
        default=None,
        help='B = config A with these overrides (xxx=yyy), same weights')
    parser.add_argument(
        '--compile-backend',
        default='inductor',
        help='torch.compile backend of --compare-impl compile')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1, 3, 16, 112, 112],
        help='backbone input: N C T H W (3D) or T C H W (2D)')
    parser.add_argument(
        '--mode', choices=('eval', 'train', 'both'), default='both')
    parser.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='N',
        help='also profile one call of each model and mode and print the N '
        'ops with the most self CPU time, with their share of the step')
    parser.add_argument(
        '--share',
        default=None,
        metavar='CLASS',
        help='also profile model A and print the share of its step time '
        'spent in modules of this class (forward + their autograd nodes)')
    parser.add_argument(
        '--input-grad',
        action='store_true',
        help='train steps also compute the gradient of the input')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--memory', action='store_true', help='peak memory per model')
    parser.add_argument(
        '--roof-size',
        type=int,
        default=2048,
        metavar='N',
        help='eval rounds also time an fp32 N x N torch.mm (the GEMM roof '
        'the eval GFLOP/s is compared with); 0 turns it off')
    parser.add_argument(
        '--malloc-tuning',
        choices=('on', 'off'),
        default='on',
        help='raise glibc malloc thresholds (mmcsn.utils.runtime.tune_malloc)')
    parser.add_argument(
        '--quiet', action='store_true', help='no progress lines on stderr')
    parser.add_argument('--json', default=None, help='write results here')
    parser.add_argument(
        '--md', default=None, help='append the Markdown rows to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='override entries of every config, xxx=yyy format')
    args = parser.parse_args(argv)
    if sum(map(bool, (args.vs, args.compare_impl, args.b_options))) > 1:
        raise ValueError('use either --vs or --compare-impl, not both '
                         '(nor --b-options with either)')
    for name in ('iters', 'threads'):
        if getattr(args, name) < 1:
            raise ValueError(f'--{name} must be >= 1, got '
                             f'{getattr(args, name)}')
    for name in ('warmup', 'roof_size', 'profile'):
        if getattr(args, name) < 0:
            raise ValueError(f'--{name.replace("_", "-")} must be >= 0, got '
                             f'{getattr(args, name)}')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the benchmark; print a table; return the results.

    Args:
        argv (list[str], optional): Command line; ``sys.argv[1:]`` if None.

    Returns:
        dict: Per mode, per model: ``median_ms``, ``times_ms``, (with
        ``--memory``) ``peak_mb`` and, in eval, ``gflop``, ``gflops_per_s``
        and ``roof_fraction``; per mode ``ratio_b_over_a`` when there is a
        B and, in eval, ``roof`` (``size``, ``median_ms``,
        ``gflops_per_s``).
    """
    args = parse_args(argv)

    def say(line: str) -> None:
        if not args.quiet:
            print(f'[benchmark] {line}', file=sys.stderr, flush=True)

    prepare_entry_process(_caught, malloc_tuning=args.malloc_tuning == 'on')
    torch.set_num_threads(args.threads)
    spec = BenchSpec(
        config=args.config,
        vs=args.vs,
        compare_impl=args.compare_impl,
        b_options=args.b_options,
        cfg_options=args.cfg_options,
        compile_backend=args.compile_backend,
        shape=list(args.shape),
        threads=args.threads)
    device = torch.device(args.device)
    say(f'building A{" and B" if spec.label != "-" else ""} ...')
    models = {k: m.to(device) for k, m in build_models(spec).items()}
    shape = tuple(args.shape)
    modes = ('eval', 'train') if args.mode == 'both' else (args.mode, )
    results = dict(
        config=args.config,
        b=args.vs or args.compare_impl or args.b_options,
        shape=args.shape,
        threads=args.threads,
        device=str(device),
        torch=torch.__version__,
        date=time.strftime('%Y-%m-%d'),
        malloc_tuning=args.malloc_tuning,
        load_avg=os.getloadavg()[0] if hasattr(os, 'getloadavg') else None)
    # the 1-minute load counts this process too: above the core count,
    # others compete, and OpenMP threads wait at every barrier for a core
    if (results['load_avg'] or 0) > (os.cpu_count() or 1):
        say(f'warning: load average {results["load_avg"]:.1f} on '
            f'{os.cpu_count()} cores: other processes compete with the '
            f'{args.threads} thread(s) of this benchmark; absolute times '
            'and the roof fraction are unreliable, interleaved ratios less '
            'so')
    if 'B' in models and not args.vs:
        say('comparing B with A (eval output) ...')
        results['max_abs_diff'] = max_abs_diff(models, shape, device)
        print(f'B vs A, eval output: max abs diff '
              f'{results["max_abs_diff"]:.3g}')
    rows = []
    for mode in modes:
        runs = {
            k: make_runner(m, shape, mode, device, args.input_grad)
            for k, m in models.items() if mode == 'eval' or is_trainable(m)
        }
        roof = mode == 'eval' and args.roof_size > 0
        if roof:
            runs['gemm'] = gemm_runner(args.roof_size, device)
        say(f'{mode}: {args.warmup} warmup call(s) and {args.iters} '
            f'round(s) of {", ".join(runs)}')
        times = time_interleaved(runs, args.iters, args.warmup, device,
                                 progress=say, label=f'{mode} ')
        gemm_s = times.pop('gemm', None)
        entry = {}
        for name, values in times.items():
            entry[name] = dict(
                median_ms=statistics.median(values) * 1e3,
                times_ms=[v * 1e3 for v in values])
        if 'B' in entry:
            entry['ratio_b_over_a'] = (
                entry['B']['median_ms'] / entry['A']['median_ms'])
        if roof:
            say('counting the eval FLOPs (meta device) ...')
            add_roofline(entry, gemm_s, args.roof_size,
                         eval_gflop(models, spec))
            for line in roofline_line(entry):
                print(line)
        if args.memory:
            for name in entry:
                if name not in models:
                    continue
                peak = peak_memory(
                    spec, name, mode, args.device, args.input_grad,
                    args.malloc_tuning == 'on', progress=say)
                entry[name]['peak_mb'] = peak['peak_bytes'] / 2**20
                if 'rss_peak_bytes' in peak:
                    entry[name]['rss_peak_mb'] = (
                        peak['rss_peak_bytes'] / 2**20)
        if args.profile:
            for name in times:
                say(f'{mode}: profiling {name} ...')
                entry[name]['profile'] = top_ops(runs[name], args.profile)
                print(f'{mode} {name}: ' + '; '.join(
                    f'{r["op"]} x{r["calls"]} {r["share"]:.0%}'
                    for r in entry[name]['profile']))
        if args.share:
            say(f'{mode}: profiling the {args.share} share of A ...')
            entry['A']['share'] = module_share(models['A'], runs['A'],
                                               args.share)
            print(f'{mode}: {args.share} share of A: ' + ', '.join(
                f'{k} {v:.3g}' for k, v in entry['A']['share'].items()))
        results[mode] = entry
        rows.append(md_row(args.config, spec.label, args.shape, mode, entry))
    print(TABLE_HEADER)
    for row in rows:
        print(row)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    if args.md:
        with open(args.md, 'a') as f:
            f.write('\n'.join(rows) + '\n')
    say('done')
    return results



if __name__ == '__main__':
    try:
        main()
    except (ValueError, OSError) as err:  # bad input: one line, exit 1
        sys.exit(f'error: {err}')
