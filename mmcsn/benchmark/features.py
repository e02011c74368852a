"""Benchmarks of the inference path: bf16 vs fp32, extraction throughput.

The library under ``tools/analysis/benchmark_features.py``:

* :func:`dtype_speed` -- one backbone in fp32 and deployed in bf16/fp16
  (:func:`mmcsn.apis.prepare_for_inference`), timed in interleaved
  rounds, plus the cosine of their outputs;
* :func:`dtype_agreement` -- a trained recognizer on a test set in both
  dtypes: top-1 agreement and the cosine of the pooled features;
* :func:`time_commands` -- whole commands (two extractors, or 1 vs 2
  processes) run A/B interleaved, with the windows each one wrote.

Every ratio comes from one run, side by side.
"""
import copy
import os
import os.path as osp
import resource
import shutil
import statistics
import subprocess
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcsn.apis.precision import cast_inputs, cast_io, prepare_for_inference

__all__ = [
    'dtype_speed', 'dtype_agreement', 'time_commands', 'count_windows',
    'mmaction_windows', 'mmaction_extractor_command'
]


def _median_ms(times: List[float]) -> float:
    return 1e3 * statistics.median(times)


def dtype_speed(backbone: nn.Module,
                shape: Sequence[int],
                dtypes: Sequence[str] = ('fp32', 'bf16'),
                rounds: int = 10,
                warmup: int = 2) -> Dict:
    """Median eval time of ``backbone`` per dtype, interleaved.

    ``fp32`` is the backbone as built (eval mode, mmcsn's own fast
    paths); ``autocast-bf16`` the same model under CPU bf16 autocast; the
    others are deployed copies (BN folded, cast, channels-last).

    Returns:
        dict: ``ms`` (dtype -> median ms), ``speedup`` (dtype -> fp32 ms /
        its ms) and ``cosine`` (dtype -> cosine of the flattened output
        against fp32).
    """
    backbone = backbone.eval()
    x = torch.randn(*shape)
    models = {}
    for name in dtypes:
        if name == 'fp32':
            models[name] = (backbone, x)
        elif name == 'autocast-bf16':
            models[name] = (_Autocast(backbone), x)
        else:
            fast = prepare_for_inference(
                copy.deepcopy(backbone), name, example_inputs=x)
            models[name] = (fast, cast_inputs(x, name))
    times = {name: [] for name in models}
    outputs = {}
    with torch.inference_mode():
        for name, (model, inp) in models.items():
            for _ in range(warmup):
                outputs[name] = model(inp)
        for _ in range(rounds):
            for name, (model, inp) in models.items():
                start = time.perf_counter()
                model(inp)
                times[name].append(time.perf_counter() - start)
    ref = _flat(outputs['fp32']) if 'fp32' in outputs else None
    ms = {k: _median_ms(v) for k, v in times.items()}
    return dict(
        shape=list(shape),
        ms=ms,
        speedup={k: ms.get('fp32', float('nan')) / v
                 for k, v in ms.items()},
        cosine={
            k: float(F.cosine_similarity(_flat(o), ref, dim=0))
            for k, o in outputs.items()
        } if ref is not None else {})


class _Autocast(nn.Module):
    """The fp32 model under ``torch.autocast(cpu, bfloat16)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        with torch.autocast('cpu', torch.bfloat16):
            return self.model(x)


def _flat(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[-1]
    return out.float().flatten()


def dtype_agreement(config: str,
                    checkpoint: str,
                    ann_file: str,
                    data_root: str,
                    dtype: str = 'bf16',
                    limit: Optional[int] = None) -> Dict:
    """Top-1 agreement and feature cosine of fp32 vs ``dtype`` on a set.

    Each video goes through the config's own test pipeline once; the
    recognizer runs twice on it: as built (fp32) and with its backbone
    deployed in ``dtype`` (:func:`mmcsn.apis.cast_io` keeps the head in
    fp32).

    Returns:
        dict: ``videos``, ``top1_agreement``, ``cosine_mean``,
        ``cosine_min``, the two top-1 accuracies and the mean ms per video
        of each model.
    """
    from mmaction.registry import DATASETS
    from mmengine.config import Config

    from mmcsn.apis.inference import init_recognizer_strict
    cfg = Config.fromfile(config)
    ref = init_recognizer_strict(cfg, checkpoint)
    fast = copy.deepcopy(ref)
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset_cfg.update(ann_file=ann_file, data_prefix=dict(video=data_root))
    dataset = DATASETS.build(dataset_cfg)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    agree = hits_ref = hits_fast = 0
    cosines, ms_ref, ms_fast = [], [], []
    prepared = False
    with torch.inference_mode():
        for i in range(count):
            sample = dataset[i]
            data = dict(inputs=[sample['inputs']],
                        data_samples=[sample['data_samples']])
            if not prepared:
                batch = ref.data_preprocessor(copy.copy(data), False)
                captured = []
                hook = fast.backbone.register_forward_pre_hook(
                    lambda m, a: captured.append(a[0]))
                fast.extract_feat(batch['inputs'], stage='backbone')
                hook.remove()
                prepare_for_inference(fast.backbone, dtype,
                                      example_inputs=captured[0])
                cast_io(fast.backbone, dtype)
                prepared = True
            results = {}
            for name, model, ms in (('ref', ref, ms_ref),
                                    ('fast', fast, ms_fast)):
                start = time.perf_counter()
                batch = model.data_preprocessor(copy.copy(data), False)
                feats, _ = model.extract_feat(batch['inputs'],
                                              stage='backbone')
                feats = feats[-1] if isinstance(feats, tuple) else feats
                pred = model.test_step(data)[0].pred_score
                ms.append(1e3 * (time.perf_counter() - start))
                results[name] = (feats.float().flatten(), int(pred.argmax()))
            label = int(sample['data_samples'].gt_label)
            agree += results['ref'][1] == results['fast'][1]
            hits_ref += results['ref'][1] == label
            hits_fast += results['fast'][1] == label
            cosines.append(
                float(
                    F.cosine_similarity(
                        results['ref'][0], results['fast'][0], dim=0)))
    return dict(
        videos=count,
        dtype=dtype,
        top1_agreement=agree / count,
        cosine_mean=float(np.mean(cosines)),
        cosine_min=float(np.min(cosines)),
        top1_fp32=hits_ref / count,
        top1_fast=hits_fast / count,
        ms_per_video_fp32=float(np.median(ms_ref)),
        ms_per_video_fast=float(np.median(ms_fast)))


def count_windows(out_dir: str) -> int:
    """Windows written by mmcsn's extractor: rows of the ``.npy`` files."""
    total = 0
    for folder, _, files in os.walk(out_dir):
        for name in files:
            if name.endswith('.npy'):
                total += np.load(osp.join(folder, name),
                                 mmap_mode='r').shape[0]
    return total


def mmaction_windows(video_paths: Sequence[str], stride: int) -> int:
    """Clips MMAction2's ``UntrimmedSampleFrames`` takes from the videos:
    centres ``stride // 2, stride // 2 + stride, ...`` below the frame
    count (its per-video ``.pkl`` files are pickles, not read here)."""
    import decord
    return sum(
        len(range(stride // 2, len(decord.VideoReader(p)), stride))
        for p in video_paths)


def mmaction_extractor_command(python: str, config: str, checkpoint: str,
                               out_dir: str, video_list: str,
                               video_root: str, stride: int,
                               frame_interval: int) -> List[str]:
    """MMAction2's ``clip_feature_extraction.py`` (from its wheel) in
    long-video mode, with mmcsn imported first (its models)."""
    from mmcsn.utils.entry import mmaction_tool
    script = mmaction_tool(osp.join('misc', 'clip_feature_extraction.py'))
    argv = [
        script, config, checkpoint, out_dir, '--video-list', video_list,
        '--video-root', video_root, '--long-video-mode', '--clip-interval',
        str(stride), '--frame-interval',
        str(frame_interval)
    ]
    code = ('import sys, runpy, mmcsn; sys.argv = {!r}; '
            'runpy.run_path(sys.argv[0], run_name="__main__")'.format(argv))
    return [python, '-c', code]


def time_commands(commands: Dict[str, Tuple[List[str], Dict[str, str], str,
                                            Optional[int]]],
                  rounds: int = 2,
                  log: Callable[[str], None] = print) -> Dict:
    """Run each command ``rounds`` times, interleaved, from a clean output.

    Args:
        commands (dict): name -> (argv, extra environment, output folder
            deleted before every run, windows it extracts or None to
            count the ``.npy`` rows written).
        rounds (int): Runs of each command. Defaults to 2.
        log (Callable): Progress messages. Defaults to ``print``.

    Returns:
        dict: name -> ``seconds`` (median wall time, process start
        included), ``cpu_seconds`` (median user + system CPU time of the
        process and its children: steadier than wall time on a shared
        machine), ``windows``, ``windows_per_s`` and
        ``windows_per_cpu_s``.
    """
    times = {name: [] for name in commands}
    cpu = {name: [] for name in commands}
    windows = {}
    for r in range(rounds):
        for name, (argv, env, out, count) in commands.items():
            shutil.rmtree(out, ignore_errors=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run(argv, env=dict(os.environ, **env),
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime -
                             before.ru_utime - before.ru_stime)
            if proc.returncode != 0:
                raise RuntimeError(f'{name} failed (exit '
                                   f'{proc.returncode}):\n'
                                   f'{proc.stderr[-3000:]}')
            times[name].append(seconds)
            windows[name] = count_windows(out) if count is None else count
            log(f'round {r + 1}/{rounds} {name}: {seconds:.1f} s, '
                f'{cpu[name][-1]:.1f} CPU s, {windows[name]} windows')
    result = {}
    for name in commands:
        seconds = statistics.median(times[name])
        cpu_seconds = statistics.median(cpu[name])
        result[name] = dict(seconds=seconds, runs=times[name],
                            cpu_seconds=cpu_seconds, cpu_runs=cpu[name],
                            windows=windows[name],
                            windows_per_s=windows[name] / seconds,
                            windows_per_cpu_s=windows[name] / cpu_seconds)
    return result
