"""Top-k action labels of video files with a trained or converted model.

::

    python tools/infer.py VIDEO [VIDEO ...] --config CONFIG \\
        --checkpoint CKPT [--label-map classes.txt] [--topk 5] \\
        [--out-video DIR] [--device cpu|cuda]

Prints the top-k labels and scores and the time of each video. The
checkpoint is loaded strictly (``weights_only=True``); a video that cannot
be read gets one line naming it and the others go on; the exit status is
1 if any video failed. ``--out-video`` writes each video with its
predictions drawn on through MMAction2's ``ActionVisualizer`` (needs
``pip install "mmcsn[viz]"``). The work is :mod:`mmcsn.apis.inference`.
"""
import argparse
import os.path as osp
import sys
import warnings

# importing mmcsn is when upstream warnings fire: record them, then
# prepare_entry_process silences the known-harmless ones, shows the rest
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter('always')
    from mmcsn.utils.extras import missing_extra
    from mmcsn.utils.runtime import prepare_entry_process


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('videos', nargs='+', metavar='VIDEO')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', required=True, help='.pth weights')
    parser.add_argument(
        '--label-map', help='class names, one per line (class order)')
    parser.add_argument('--topk', type=int, default=5, help='labels shown')
    parser.add_argument(
        '--out-video', metavar='DIR',
        help='write each video with its predictions drawn on into DIR')
    parser.add_argument('--fps', type=int, default=30,
                        help='frame rate of --out-video files')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' (default), 'cuda' or 'cuda:N'")
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    for name in ('config', 'checkpoint', 'label_map'):
        path = getattr(args, name)
        if path is not None and not osp.isfile(path):
            parser.error(f'--{name.replace("_", "-")} {path!r}: no such '
                         'file')
    return args


def main(argv=None) -> int:
    prepare_entry_process(_caught)
    args = parse_args(argv)
    if args.out_video is not None:
        # before building anything: MMAction2 only finds out at the end
        missing = missing_extra('viz', ['moviepy.editor'], '--out-video')
        if missing:
            print(f'error: {missing}', file=sys.stderr)
            return 1
    from mmcsn.apis.inference import (
        init_recognizer_strict,
        load_label_map,
        model_num_classes,
        recognize_videos,
    )
    from mmcsn.checkpoint import CheckpointError
    try:
        model = init_recognizer_strict(args.config, args.checkpoint,
                                       args.device)
        labels = None if args.label_map is None else load_label_map(
            args.label_map, model_num_classes(model))
    except (CheckpointError, ValueError, TypeError,
            FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    failed = 0
    for pred in recognize_videos(model, args.videos, args.topk, labels,
                                 args.out_video, args.fps):
        if pred.error:
            failed += 1
            print(f'FAILED {pred.error}', file=sys.stderr)
            continue
        print(f'{pred.video}  ({pred.seconds:.2f} s)')
        for rank, (_, label, score) in enumerate(pred.topk, 1):
            print(f'  {rank}. {label}  {score:.4f}')
        if pred.out_video:
            print(f'  -> {pred.out_video}')
    if failed:
        print(f'{failed} of {len(args.videos)} videos failed',
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
