"""Every snippet of docs/custom_data.md, executed on real mp4 files.

The doc marks each fenced block: ``<!-- run -->`` before a shell block
(run with bash in the project directory, ``MMCSN`` = this checkout),
``<!-- file: PATH -->`` before a config (written to PATH). Blocks run in
document order; the only change is ``max_epochs`` -> 1. "Your videos" are
three classes of the demo clips in a folder per class, and ``bikes.mp4``
(a real H.264 clip) is the single video of the inference step.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmcsn.checkpoint import load_checkpoint_file, unwrap_state_dict

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / 'docs' / 'custom_data.md'
BLOCK = re.compile(
    r'(?:<!-- (run|file: (\S+)) -->\n)?```(\w+)\n(.*?)\n```', re.S)


def doc_blocks():
    """``(kind, path, language, body)`` of every fenced block, in order."""
    return [(m.group(1) and m.group(1).split(':')[0], m.group(2),
             m.group(3), m.group(4))
            for m in BLOCK.finditer(DOC.read_text())]


def test_every_code_block_is_marked():
    blocks = doc_blocks()
    assert len(blocks) >= 8
    for kind, _, language, body in blocks:
        if language == 'text':  # a directory sketch, not code
            continue
        assert kind in ('run', 'file'), f'unexecuted block:\n{body}'
        assert (kind == 'run') == (language == 'shell'), body


def _project(root: Path, demo_data_root: Path, bikes_clip: Path) -> None:
    """data/my_videos/{train,val}/<class>/*.mp4 from three demo classes."""
    for split in ('train', 'val'):
        lines = (demo_data_root / f'{split}.txt').read_text().split('\n')
        for line in filter(None, lines):
            rel = line.split()[0]
            cls = Path(rel).name.rsplit('_', 1)[0]
            if cls not in ('move_left', 'move_right', 'grow'):
                continue
            dst = root / 'data/my_videos' / split / cls / Path(rel).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo_data_root / rel, dst)
    shutil.copy(bikes_clip, root / 'bikes.mp4')


@pytest.mark.slow
def test_custom_data_doc_end_to_end(tmp_path, demo_data_root, bikes_clip):
    _project(tmp_path, demo_data_root, bikes_clip)
    # `python` = this interpreter, as in an activated virtualenv
    path = os.pathsep.join([str(Path(sys.executable).parent),
                            os.environ.get('PATH', '')])
    env = dict(os.environ, MMCSN=str(REPO), OMP_NUM_THREADS='1', PATH=path)
    outputs = []
    for kind, path, language, body in doc_blocks():
        if kind == 'file':
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(
                re.sub(r'max_epochs=\d+', 'max_epochs=1', body) + '\n')
        elif kind == 'run':
            run_env = env
            if 'export MMCSN=' in body:  # it must find the tools itself
                run_env = {k: v for k, v in env.items() if k != 'MMCSN'}
                body += '\ntest -f "$MMCSN/tools/train.py" && echo "$MMCSN"'
            proc = subprocess.run(
                ['bash', '-euo', 'pipefail', '-c', body], cwd=tmp_path,
                env=run_env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, timeout=300)
            assert proc.returncode == 0, f'{body}\n---\n{proc.stdout[-3000:]}'
            outputs.append(proc.stdout)
    found, annotate, train, curves, convert, finetune, test, infer, dist = (
        outputs)
    assert found.strip() == str(REPO / 'mmcsn' / '.mim')
    assert 'train 9 videos, 3 classes' in annotate
    assert (tmp_path / 'data/my_videos/classes.txt').read_text().split() == [
        'grow', 'move_left', 'move_right']
    for out in (train, finetune, dist):
        assert 'Epoch(train)' in out and 'Epoch(val)' in out
    # the run's log file records the stack; no known-harmless warnings
    (log, ) = (tmp_path / 'work_dirs/my_videos').glob('*/*.log')
    assert 'Versions: mmcsn' in log.read_text()
    for known in ('MultiScaleDeformableAttention', 'pkg_resources',
                  '"FileClient"', '"HardDiskBackend"'):
        assert known not in train, known
    png = tmp_path / 'work_dirs/my_videos/curves.png'
    assert curves.strip() == 'work_dirs/my_videos/curves.png'
    assert png.read_bytes()[:4] == b'\x89PNG'
    assert (tmp_path / 'checkpoints/converted.pth').is_file()
    # fine-tuning started from the converted backbone, and froze its BN:
    # the BN statistics and affine parameters after an epoch are the
    # converted ones (trained, so unlike a fresh init's 0/1)
    def weights(rel):
        return unwrap_state_dict(load_checkpoint_file(str(tmp_path / rel)))

    converted = weights('checkpoints/converted.pth')
    tuned = weights('work_dirs/my_videos_ft/epoch_1.pth')
    bn = [k for k in converted
          if k.startswith('backbone.') and '.bn.' in k
          and k.endswith(('running_mean', 'running_var', 'weight'))]
    assert len(bn) > 20
    for key in bn:
        assert torch.equal(tuned[key], converted[key]), key
    stem_mean = converted['backbone.conv1.bn.running_mean']
    assert not torch.equal(stem_mean, torch.zeros_like(stem_mean))
    assert re.search(r'Epoch\(test\).*acc/top1', test)
    ranked = [line.split() for line in infer.splitlines()
              if re.match(r'\s+\d\. ', line)]
    assert [r[0] for r in ranked] == ['1.', '2.', '3.']
    assert {r[1] for r in ranked} == {'grow', 'move_left', 'move_right'}
    assert infer.splitlines()[0].startswith('bikes.mp4  (')
