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
    # (tools/analysis/blvnet_reference.py, same weights)
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
"train" is forward + backward of ``output.sum()`` with grads reset, no
optimizer. Before timing, B's eval output is compared with A's (same
weights) and the max abs difference is printed and saved; ``--vs`` models
have their own weights and are not compared. Inputs are ``randn`` from
seed 0, drawn once. Peak memory (``--memory``) is measured in a fresh
subprocess per model and mode: on CPU the peak of live tensor memory
allocated by one call (the profiler's allocation record replayed; the
column printed), plus peak RSS (``VmHWM``) growth over two calls in the
JSON (``rss_peak_mb``, noisier: allocator caching, other load); on CUDA
``max_memory_allocated``.
``--input-grad`` makes train steps also compute the input gradient (for
modules that sit inside a network, such as TAM). Set the malloc
thresholds (``--malloc-tuning on``, the default) to get stable CPU timings.
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['main', 'parse_args']

IMPLS = ('mmaction', 'plain-dw', 'plain-pw', 'official', 'compile',
         'onnxruntime')
# mmcsn CSN arguments that MMAction2's ResNet3dCSN does not take
_MMCSN_ONLY_ARGS = ('memory_format', 'fuse_bn_eval', 'groups', 'expansion',
                    'with_pool1')


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
        'with dense 1x1x1 convs as plain F.conv3d (plain-pw), as '
        'the official bLVNet-TAM code (official; bLResNet or '
        'TemporalAggregation, a recognizer is reduced to its backbone), '
        'under torch.compile (compile) or in ONNX Runtime (onnxruntime, '
        'eval only)')
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
        '--malloc-tuning',
        choices=('on', 'off'),
        default='on',
        help='raise glibc malloc thresholds (mmcsn.ops.tune_malloc)')
    parser.add_argument('--json', default=None, help='write results here')
    parser.add_argument(
        '--md', default=None, help='append the Markdown rows to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='override entries of every config, xxx=yyy format')
    parser.add_argument('--memory-child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if sum(map(bool, (args.vs, args.compare_impl, args.b_options))) > 1:
        raise ValueError('use either --vs or --compare-impl, not both '
                         '(nor --b-options with either)')
    return args


def _load_cfg(spec: str, options: Optional[List[str]]):
    """mmengine Config of a config file or a JSON backbone dict."""
    from mmengine.config import Config, DictAction

    if spec.lstrip().startswith('{'):
        cfg = Config(dict(model=json.loads(spec)))
    else:
        cfg = Config.fromfile(spec)
    if options:
        parsed = argparse.ArgumentParser()
        parsed.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parsed.parse_args(['--o', *options]).o)
    model = cfg.model
    if 'backbone' in model and 'pretrained' in model.backbone:
        model.backbone.pretrained = None  # timing needs no download
    return cfg


def _build(cfg) -> nn.Module:
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmcsn  # noqa: F401  (stack fixes + registers mmcsn modules)

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return MODELS.build(cfg.model)


def _mmaction_twin(cfg, model_a: nn.Module) -> nn.Module:
    """MMAction2 ``ResNet3dCSN`` version of an mmcsn CSN config."""
    twin = cfg.copy()
    backbone = twin.model.backbone if 'backbone' in twin.model else twin.model
    if backbone.type not in ('CSN', 'mmcsn.CSN'):
        raise ValueError('--compare-impl mmaction needs a CSN backbone, got '
                         f'{backbone.type!r}')
    backbone.type = 'ResNet3dCSN'
    for key in _MMCSN_ONLY_ARGS:
        backbone.pop(key, None)
    # ResNet3dCSN requires ``pretrained`` and defaults with_pool2 to True
    # (mmcsn: False): pin mmcsn's effective values
    backbone.setdefault('pretrained', None)
    backbone.setdefault('with_pool2', False)
    model_b = _build(twin)
    # same weights: the state_dict layouts are identical by design
    model_b.load_state_dict(model_a.state_dict(), strict=True)
    return model_b


def _plain_dw(model: nn.Module) -> nn.Module:
    """Patch every DepthwiseConv3d instance to run a plain ``F.conv3d``."""
    from mmcsn.ops import DepthwiseConv3d

    def plain(conv):
        return lambda x: F.conv3d(x, conv.weight, conv.bias, conv.stride, conv
                                  .padding, 1, conv.groups)

    patched = 0
    for module in model.modules():
        if isinstance(module, DepthwiseConv3d):
            module.forward = plain(module)
            patched += 1
    if not patched:
        raise ValueError('--compare-impl plain-dw: the model has no '
                         'DepthwiseConv3d')
    return model


def _plain_pw(model: nn.Module) -> nn.Module:
    """Switch the matmul 1x1x1 path of every CSN ConvNormAct off."""
    from mmcsn.models.backbones.csn_blocks import ConvNormAct

    patched = 0
    for module in model.modules():
        if isinstance(module, ConvNormAct) and module._pointwise:
            module._pointwise = False
            patched += 1
    if not patched:
        raise ValueError('--compare-impl plain-pw: the model has no dense '
                         '1x1x1 ConvNormAct')
    return model


def _runner(model: nn.Module,
            shape: Tuple[int, ...],
            mode: str,
            device: torch.device,
            input_grad: bool = False) -> Callable[[], None]:
    """A closure running one eval forward or one train step."""
    from mmcsn.utils import recognizer_forward

    forward = recognizer_forward(
        model, shape, random=True,
        requires_grad=input_grad and mode == 'train')
    if mode == 'eval':
        model.eval()

        def run():
            with torch.no_grad():
                forward(device)
    else:
        model.train()

        def run():
            out = forward(device)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.float().sum().backward()
            for p in model.parameters():
                p.grad = None
            for x in forward.inputs.values():
                x.grad = None

    return run


def _module_share(model: nn.Module, run: Callable[[], None],
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


def _top_ops(run: Callable[[], None], top: int) -> List[dict]:
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


_VIEW_NODES = ('ViewBackward0', 'UnsafeViewBackward0', 'ReshapeAliasBackward0',
               'AliasBackward0')


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_interleaved(runs: Dict[str, Callable], iters: int, warmup: int,
                      device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call of each runner, interleaved, order swapped."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runs}
    names = list(runs)
    for i in range(iters):
        for name in (names if i % 2 == 0 else names[::-1]):
            _sync(device)
            start = time.perf_counter()
            runs[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _status_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _memory_child(args: argparse.Namespace) -> None:
    """Run inside a fresh process: peak memory of one model and mode."""
    which, mode = args.memory_child.split(':')
    model = _models(args)[which].to(args.device)  # the other one is freed
    device = torch.device(args.device)
    run = _runner(model, tuple(args.shape), mode, device, args.input_grad)
    if device.type == 'cuda':
        run()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        base = _status_kb('VmRSS') * 1024
        run()
        run()
        rss = _status_kb('VmHWM') * 1024 - base
        peak = _tensor_peak(run)
        print(json.dumps(dict(peak_bytes=peak, rss_peak_bytes=rss)))
        return
    print(json.dumps(dict(peak_bytes=peak, base_bytes=base)))


def _tensor_peak(run: Callable[[], None]) -> int:
    """Peak bytes of live CPU tensor memory allocated during ``run()``.

    Replays the profiler's allocation record (allocations inside each op,
    frees and allocations between ops) in time order. Unlike peak RSS it
    does not depend on the allocator's caching or on other processes.
    """
    from torch.profiler import profile

    with profile(profile_memory=True) as prof:
        run()
    deltas = []
    for event in prof.events():
        delta = (
            event.cpu_memory_usage
            if event.name == '[memory]' else event.self_cpu_memory_usage)
        if delta:
            deltas.append((event.time_range.start, delta))
    live = peak = 0
    for _, delta in sorted(deltas, key=lambda d: d[0]):
        live += delta
        peak = max(peak, live)
    return peak


def _models(args: argparse.Namespace) -> Dict[str, nn.Module]:
    cfg_a = _load_cfg(args.config, args.cfg_options)
    torch.manual_seed(0)
    model_a = _build(cfg_a)
    models = {'A': model_a}
    impl = args.compare_impl
    if args.vs:
        models['B'] = _build(_load_cfg(args.vs, args.cfg_options))
    elif impl == 'mmaction':
        models['B'] = _mmaction_twin(cfg_a, model_a)
    elif impl in ('plain-dw', 'plain-pw') or args.b_options:
        cfg_b = _load_cfg(args.config,
                          (args.cfg_options or []) + (args.b_options or []))
        model_b = _build(cfg_b)
        model_b.load_state_dict(model_a.state_dict(), strict=True)
        if impl == 'plain-dw':
            model_b = _plain_dw(model_b)
        elif impl == 'plain-pw':
            model_b = _plain_pw(model_b)
        models['B'] = model_b
    elif impl == 'official':
        official_twin = _tool_module('blvnet_reference.py').official_twin
        if hasattr(model_a, 'extract_feat'):
            model_a = models['A'] = model_a.backbone
        models['B'] = official_twin(model_a)
    elif impl == 'compile':
        model_b = copy.deepcopy(model_a)
        if hasattr(model_b, 'extract_feat'):
            model_b.extract_feat = torch.compile(
                model_b.extract_feat, backend=args.compile_backend)
            models['B'] = model_b
        else:
            models['B'] = torch.compile(
                model_b, backend=args.compile_backend)
    elif impl == 'onnxruntime':
        models['B'] = _OrtModel(model_a, args.shape, args.threads)
    return models


class _OrtModel(nn.Module):
    """An eval-only stand-in running the model's ONNX export in ORT."""

    def __init__(self, model: nn.Module, shape: List[int],
                 threads: int) -> None:
        super().__init__()
        import tempfile

        import onnxruntime

        export = _tool_module('../deploy/export_onnx.py')
        graph, example = export._graph_and_input(
            copy.deepcopy(model), shape)
        self._dir = tempfile.TemporaryDirectory()
        path = os.path.join(self._dir.name, 'model.onnx')
        export.export_onnx(graph, example, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])
        if hasattr(model, 'extract_feat'):
            self.extract_feat = lambda inputs, stage='head': (
                self.forward(inputs), )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {'input': x.detach().cpu().numpy()})
        return torch.from_numpy(out[0])

    def train(self, mode: bool = True) -> '_OrtModel':
        if mode:
            raise RuntimeError('an ONNX Runtime session cannot train')
        return super().train(False)


def _tool_module(relpath: str):
    """A tools/ script next to this one, imported by path."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), relpath)
    name = os.path.splitext(os.path.basename(path))[0] + '_tool'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trainable(model: nn.Module) -> bool:
    return not isinstance(model, _OrtModel)


def _max_abs_diff(models: Dict[str, nn.Module], shape: Tuple[int, ...],
                  device: torch.device) -> Optional[float]:
    """Max abs difference of B's eval output from A's (same input)."""
    from mmcsn.utils import recognizer_forward

    outs = []
    for model in (models['A'], models['B']):
        model.eval()
        with torch.no_grad():
            out = recognizer_forward(model, shape, random=True)(device)
        outs.append(out[0] if isinstance(out, (tuple, list)) else out)
    a, b = outs
    if a.shape != b.shape and a.shape[0] == 2 * b.shape[0]:
        a = a[1::2]  # bLResNet returns each official pair map twice
    return (a.float() - b.float()).abs().max().item()


def _peak_memory(argv: List[str], which: str, mode: str) -> dict:
    """Peak memory of one model and mode, in a fresh process."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv,
           '--memory-child', f'{which}:{mode}']
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _strip_memory_flags(argv: List[str]) -> List[str]:
    return [a for a in argv if a not in ('--memory', )]


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the benchmark; print a table; return the results.

    Args:
        argv (list[str], optional): Command line; ``sys.argv[1:]`` if None.

    Returns:
        dict: Per mode, per model: ``median_ms``, ``times_ms`` and (with
        ``--memory``) ``peak_mb``; ``ratio_b_over_a`` when there is a B.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.malloc_tuning == 'on':
        from mmcsn.ops.malloc_tuning import tune_malloc
        tune_malloc()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        _memory_child(args)
        return {}
    device = torch.device(args.device)
    models = {k: m.to(device) for k, m in _models(args).items()}
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
    if 'B' in models and not args.vs:
        results['max_abs_diff'] = _max_abs_diff(models, tuple(args.shape),
                                                device)
        print(f'B vs A, eval output: max abs diff '
              f'{results["max_abs_diff"]:.3g}')
    child_argv = _strip_memory_flags(argv)
    rows = []
    for mode in modes:
        runs = {
            k: _runner(m, tuple(args.shape), mode, device, args.input_grad)
            for k, m in models.items() if mode == 'eval' or _trainable(m)
        }
        times = _time_interleaved(runs, args.iters, args.warmup, device)
        entry = {}
        for name, values in times.items():
            entry[name] = dict(
                median_ms=statistics.median(values) * 1e3,
                times_ms=[v * 1e3 for v in values])
            if args.memory:
                peak = _peak_memory(child_argv, name, mode)
                entry[name]['peak_mb'] = peak['peak_bytes'] / 2**20
                if 'rss_peak_bytes' in peak:
                    entry[name]['rss_peak_mb'] = (
                        peak['rss_peak_bytes'] / 2**20)
        if args.profile:
            for name, run in runs.items():
                entry[name]['profile'] = _top_ops(run, args.profile)
                print(f'{mode} {name}: ' + '; '.join(
                    f'{r["op"]} x{r["calls"]} {r["share"]:.0%}'
                    for r in entry[name]['profile']))
        if args.share:
            entry['A']['share'] = _module_share(models['A'], runs['A'],
                                                args.share)
            print(f'{mode}: {args.share} share of A: ' + ', '.join(
                f'{k} {v:.3g}' for k, v in entry['A']['share'].items()))
        if 'B' in entry:
            entry['ratio_b_over_a'] = (
                entry['B']['median_ms'] / entry['A']['median_ms'])
        results[mode] = entry
        rows.append(_md_row(args, mode, entry))
    print('| config | B | shape | mode | A ms | B ms | B / A | A MB | B MB |')
    print('|---|---|---|---|---|---|---|---|---|')
    for row in rows:
        print(row)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    if args.md:
        with open(args.md, 'a') as f:
            f.write('\n'.join(rows) + '\n')
    return results


def _md_row(args: argparse.Namespace, mode: str, entry: dict) -> str:
    """One Markdown table row for a mode."""

    def cell(name, key, fmt):
        return format(entry[name][key], fmt) if (
            name in entry and key in entry[name]) else '-'

    ratio = format(entry['ratio_b_over_a'],
                   '.2f') if 'ratio_b_over_a' in entry else '-'
    name = os.path.basename(args.config)
    b = args.vs or args.compare_impl or (
        ' '.join(args.b_options) if args.b_options else '-')
    return (f'| {name} | {b} | '
            f'{"x".join(map(str, args.shape))} | {mode} | '
            f'{cell("A", "median_ms", ".1f")} | '
            f'{cell("B", "median_ms", ".1f")} | {ratio} | '
            f'{cell("A", "peak_mb", ".0f")} | {cell("B", "peak_mb", ".0f")} |')


if __name__ == '__main__':
    main()
