"""Every shipped config loads, builds, and is what its NAME says.

Config names follow MMAction2's convention, e.g.
``ircsn_ig65m-pretrained-r152-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb``.
A small parser reads the tokens it knows and each one is compared with the
value the config RESOLVES to after inheritance (the built model for the
backbone/head, the config for data and schedule). MMAction2 1.2.0 ships a
config whose name lacks ``bnfrozen`` but which resolves to
``bn_frozen=True``; the last test shows this check catches that.
"""
import re
from pathlib import Path
from typing import Dict, List, Tuple

import mmaction
import pytest
import torch
import yaml
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmcsn  # noqa: F401  (registers mmcsn models, compat fixes)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    p for p in (REPO / 'configs').rglob('*.py')
    if '_base_' not in p.relative_to(REPO / 'configs').parts)

# Dataset token -> class count.
DATASET_CLASSES: Dict[str, int] = {
    'kinetics400': 400,  # Kinetics-400
    'kinetics600': 600,  # Kinetics-600
    'kinetics700': 700,  # Kinetics-700
    'sthv1': 174,  # Something-Something V1
    'sthv2': 174,  # Something-Something V2
    'mit': 339,  # Moments in Time
    'ucf101': 101,  # UCF-101
    'hmdb51': 51,  # HMDB-51
}


def parse_name(stem: str) -> Dict[str, object]:
    """Read the tokens of a config name that imply a config value.

    Args:
        stem (str): The file name without ``.py``.

    Returns:
        dict: Only the facts the name states (absent token, absent key).
    """
    tokens = re.split(r'[_-]', stem)
    facts: Dict[str, object] = dict(bnfrozen='bnfrozen' in tokens)
    for i, tok in enumerate(tokens):
        if tok in ('ircsn', 'ipcsn'):
            facts['bottleneck_mode'] = tok[:2]
        elif re.fullmatch(r'r\d+', tok):
            facts['depth'] = int(tok[1:])
        elif re.fullmatch(r'\d+xb\d+', tok):
            facts['batch_size'] = int(tok.split('xb')[1])
        elif re.fullmatch(r'\d+x\d+x\d+', tok):
            facts['sampling'] = tuple(int(v) for v in tok.split('x'))
        elif re.fullmatch(r'f?\d+x\d+', tok):  # bLVNet 'f8x2': 16 frames
            a, b = tok.lstrip('f').split('x')
            facts['frames'] = int(a) * int(b)
        elif re.fullmatch(r'\d+e', tok):
            facts['epochs'] = int(tok[:-1])
        elif tok in DATASET_CLASSES:
            facts['num_classes'] = DATASET_CLASSES[tok]
        elif tok == 'pretrained' and i > 0:
            facts['pretrained'] = tokens[i - 1]
    return facts


def _train_pipeline(cfg: Config) -> List[dict]:
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset  # RepeatDataset & co.
    return dataset.pipeline


def _pretrained_source(cfg: Config) -> object:
    backbone = cfg.model.backbone
    init_cfg = backbone.get('init_cfg') or {}
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return (backbone.get('pretrained') or cfg.get('load_from') or any(
        c.get('type') == 'Pretrained' for c in cfgs))


def check_name(stem: str, cfg: Config, model) -> Tuple[int, List[str]]:
    """Compare the name's facts with what ``cfg``/``model`` resolve to.

    Returns:
        tuple: (number of checks made, list of mismatch descriptions).
    """
    facts = parse_name(stem)
    got: Dict[str, object] = {}
    backbone = model.backbone
    # bnfrozen <-> bn_frozen (and norm_eval, which bn_frozen needs in
    # MMAction2); checked whenever the backbone has the attribute
    if hasattr(backbone, 'bn_frozen'):
        frozen = facts['bnfrozen']
        got['bnfrozen'] = (bool(backbone.bn_frozen), bool(backbone.norm_eval))
        facts['bnfrozen'] = (frozen, frozen)
    else:
        facts.pop('bnfrozen')
    for key in ('bottleneck_mode', 'depth'):
        if key in facts:  # ResNet3dCSN keeps no bottleneck_mode attribute
            got[key] = getattr(backbone, key,
                               cfg.model.backbone.get(key, None))
    if 'num_classes' in facts:
        got['num_classes'] = model.cls_head.num_classes
    if 'batch_size' in facts:
        got['batch_size'] = cfg.train_dataloader.batch_size
    if 'epochs' in facts:
        got['epochs'] = cfg.train_cfg.max_epochs
    if 'sampling' in facts or 'frames' in facts:
        sample = [
            t for t in _train_pipeline(cfg) if t['type'] == 'SampleFrames'
        ]
        s = sample[0] if sample else {}
        triple = (s.get('clip_len'), s.get('frame_interval', 1),
                  s.get('num_clips', 1))
        if 'sampling' in facts:
            got['sampling'] = triple
        if 'frames' in facts:
            got['frames'] = (triple[0] or 0) * triple[2]
    if 'pretrained' in facts:
        facts['pretrained'] = True
        got['pretrained'] = bool(_pretrained_source(cfg))
    bad = [
        f'{key}: name says {facts[key]!r}, config resolves to {got[key]!r}'
        for key in facts if got[key] != facts[key]
    ]
    return len(facts), bad


def _build(cfg: Config):
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    with torch.device('meta'):  # attributes only: no memory, no compute
        return MODELS.build(cfg.model)  # no init_weights: no download


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[str(p.relative_to(REPO)) for p in CONFIGS])
def test_config_builds_and_name_matches(path):
    cfg = Config.fromfile(str(path))
    assert 'mmcsn' in cfg.custom_imports['imports']
    model = _build(cfg)
    if path.parent.name == 'csn':
        assert cfg.model.backbone.type == 'CSN'
    checks, bad = check_name(path.stem, cfg, model)
    assert checks >= 1, f'{path.name}: no name token was checked'
    assert not bad, f'{path.name}: ' + '; '.join(bad)


def test_shipped_configs_exist():
    names = {p.parent.name for p in CONFIGS}
    assert 'csn' in names
    assert len([p for p in CONFIGS if p.parent.name == 'csn']) >= 11


def test_metafiles_point_at_shipped_configs():
    for metafile in (REPO / 'configs').rglob('metafile.yml'):
        meta = yaml.safe_load(metafile.read_text())
        for entry in meta['Models']:
            assert (REPO / entry['Config']).is_file(), entry['Config']
            assert Path(entry['Config']).stem == entry['Name']


def test_parser_reads_other_families():
    assert parse_name('blvnet-tam-r50-a2-b4_8xb8-f8x2-50e_sthv1-rgb') == dict(
        bnfrozen=False, depth=50, batch_size=8, frames=16, epochs=50,
        num_classes=174)
    assert parse_name('ircsn_tiny-r50_1xb8-8x2x1-12e_motion-rgb') == dict(
        bnfrozen=False, bottleneck_mode='ir', depth=50, batch_size=8,
        sampling=(8, 2, 1), epochs=12)


def test_check_catches_mmaction_bnfrozen_trap():
    """MMAction2's non-bnfrozen IG65M config resolves to bn_frozen=True."""
    mim = Path(mmaction.__file__).parent / '.mim' / 'configs'
    name = 'ircsn_ig65m-pretrained-r152_8xb12-32x2x1-58e_kinetics400-rgb'
    cfg = Config.fromfile(str(mim / 'recognition' / 'csn' / f'{name}.py'))
    checks, bad = check_name(name, cfg, _build(cfg))
    assert checks >= 5
    assert len(bad) == 1 and bad[0].startswith('bnfrozen: name says')
