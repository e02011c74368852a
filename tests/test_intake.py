"""One checkpoint intake for every family: read -> unwrap -> convert ->
strict load with a named report, and URLs cached by URL with a hash check.

Both backbones are driven through the same tests (parametrised over the
family); what differs between them is data (``CheckpointFamily``), which
``test_family_rules_are_data`` shows on a toy module.
"""
import functools
import hashlib
import http.server
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import local_http_server

import mmcsn  # noqa: F401
from mmcsn.checkpoint import (
    CheckpointFamily,
    ChecksumError,
    DownloadError,
    KeyMismatchError,
    UnsafeCheckpointError,
    WrongFamilyError,
    load_pretrained,
    resolve_pretrained,
)
from mmcsn.checkpoint.download import cache_path, expected_sha256
from mmcsn.models.backbones.blresnet import bLResNet
from mmcsn.models.backbones.csn import CSN


def _csn(**kwargs) -> CSN:
    return CSN(depth=50, base_channels=4, **kwargs)


def _blres(**kwargs) -> bLResNet:
    return bLResNet(depth=50, num_segments=2, **kwargs)


BUILD = dict(CSN=_csn, bLResNet=_blres)
# a conv weight of each family to damage (not the stem: it marks the layout)
STEM = {'CSN': 'layer1.0.conv1.conv.weight',
        'bLResNet': 'layer1.big.0.conv1.weight'}
# a key in each family's naming that no model of the test has
EXTRA = 'layer1.99.conv1.conv.weight'


@functools.lru_cache(maxsize=None)
def _source_weights(family: str) -> 'OrderedDict[str, torch.Tensor]':
    """Random (non-init) weights of a family's model, built once."""
    torch.manual_seed(1)
    model = BUILD[family]()
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.normal_()
    return OrderedDict((k, v.clone()) for k, v in model.state_dict().items())


def _recognizer_file(path: Path, family: str, prefix: str = 'backbone.'):
    """A recognizer checkpoint: ``prefix``-ed backbone + a classifier."""
    sd = OrderedDict(
        (prefix + k, v) for k, v in _source_weights(family).items())
    sd['cls_head.fc_cls.weight'] = torch.zeros(3, 8)
    torch.save({'state_dict': sd, 'meta': {'epoch': 3}}, path)
    return str(path)


def _assert_loaded(model: nn.Module, family: str) -> None:
    want = _source_weights(family)
    got = model.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), key


# ------------------------------------------------------ both families
@pytest.mark.parametrize('family,how', [
    ('CSN', 'pretrained'), ('CSN', 'init_cfg'), ('CSN', 'init_weights'),
    ('bLResNet', 'pretrained'), ('bLResNet', 'init_weights')])
def test_both_families_load_the_same_way(tmp_path, family, how):
    path = _recognizer_file(tmp_path / 'r.pth', family)
    if how == 'pretrained':
        model = BUILD[family](pretrained=path)
        model.init_weights()
    elif how == 'init_cfg':
        model = BUILD[family](
            init_cfg=dict(type='Pretrained', checkpoint=path))
        model.init_weights()
    else:  # the MMAction2 ResNet3d signature: init_weights(pretrained)
        model = BUILD[family]()
        model.init_weights(pretrained=path)
    _assert_loaded(model, family)


@pytest.mark.parametrize('family', ['CSN', 'bLResNet'])
def test_report_names_keys_and_counts(tmp_path, family):
    sd = OrderedDict(_source_weights(family))
    stem = sd.pop(STEM[family])
    sd[EXTRA] = torch.zeros(1)
    path = tmp_path / 'damaged.pth'
    torch.save(sd, path)
    model = BUILD[family](pretrained=str(path))
    with pytest.raises(KeyMismatchError) as info:
        model.init_weights()
    message = str(info.value)
    assert repr(str(path)) in message and f'fit {family}' in message
    assert f'1 missing key(s): {STEM[family]}' in message
    assert f'1 unexpected key(s): {EXTRA}' in message
    assert info.value.report['missing'] == [STEM[family]]
    # shape mismatch: the conv with one output channel too many
    sd.pop(EXTRA)
    sd[STEM[family]] = torch.cat([stem, stem[:1]])
    torch.save(sd, path)
    with pytest.raises(KeyMismatchError,
                       match=r'1 shape-mismatched key\(s\): '
                       + STEM[family].replace('.', r'\.')):
        BUILD[family](pretrained=str(path)).init_weights()


@pytest.mark.parametrize('family', ['CSN', 'bLResNet'])
def test_prefix_selects_keys(tmp_path, family):
    path = _recognizer_file(tmp_path / 'p.pth', family,
                            prefix='model.backbone.')
    model = BUILD[family](init_cfg=dict(
        type='Pretrained', checkpoint=path, prefix='model.backbone.'))
    model.init_weights()
    _assert_loaded(model, family)
    with pytest.raises(WrongFamilyError,
                       match=r"no key under prefix 'nothing\.'"):
        BUILD[family](init_cfg=dict(type='Pretrained', checkpoint=path,
                                    prefix='nothing.')).init_weights()
    # negative control: without the prefix the keys are not found
    with pytest.raises((WrongFamilyError, KeyMismatchError)):
        BUILD[family](pretrained=path).init_weights()


@pytest.mark.parametrize('family', ['CSN', 'bLResNet'])
def test_other_family_is_refused_by_name(tmp_path, family):
    other = 'bLResNet' if family == 'CSN' else 'CSN'
    path = _recognizer_file(tmp_path / 'other.pth', other)
    with pytest.raises(WrongFamilyError, match='wrong model family'):
        BUILD[family](pretrained=path).init_weights()


def test_pretrained_and_init_cfg_give_one_error_for_both():
    for owner in ('CSN', 'bLResNet'):
        both = dict(pretrained='a.pth',
                    init_cfg=dict(type='Pretrained', checkpoint='b.pth'))
        pattern = (f"^{owner}: pretrained must be None when init_cfg has a "
                   "'Pretrained' entry .*not both")
        with pytest.raises(ValueError, match=pattern):
            resolve_pretrained(owner, both['pretrained'], both['init_cfg'])
        # the backbones refuse it at build, with the same words
        with pytest.raises(ValueError, match=pattern):
            BUILD[owner](**both)
        with pytest.raises(ValueError, match='init_cfg Pretrained takes '
                           'checkpoint='):
            resolve_pretrained(owner, None, dict(type='Pretrained'))
        with pytest.raises(ValueError, match='init_cfg Pretrained takes'):
            resolve_pretrained(owner, None, dict(
                type='Pretrained', checkpoint='a.pth', strict=False))
    spec, others = resolve_pretrained(
        'CSN', None, [dict(type='Constant', layer='Conv3d', val=0),
                      dict(type='Pretrained', checkpoint='a.pth',
                           prefix='backbone.', sha256='ab' * 4)])
    assert spec == ('a.pth', 'backbone.', 'abababab')
    assert others == [dict(type='Constant', layer='Conv3d', val=0)]


# -------------------------------------------------- allowed-missing data
class _Toy(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(2, 2)
        self.extra = nn.Linear(2, 2)  # a group a source may lack


def _toy_family(allowed) -> CheckpointFamily:
    def convert(sd):  # a family whose files are backbone-relative
        return OrderedDict(('backbone.' + k, v) for k, v in sd.items()), \
            'toy', []

    return CheckpointFamily('Toy', convert, allowed)


def test_family_rules_are_data(tmp_path):
    """The same intake, a different family: only the data changes."""
    source = _Toy()
    path = tmp_path / 'toy.pth'
    torch.save({k: v for k, v in source.state_dict().items()
                if k.startswith('body.')}, path)
    strict = _toy_family(None)
    with pytest.raises(KeyMismatchError, match='2 missing key'):
        load_pretrained(_Toy(), str(path), strict)
    lenient = _toy_family(lambda key: key.startswith('extra.'))
    target = _Toy()
    report = load_pretrained(target, str(path), lenient)
    assert report['kept_init'] == ['extra.weight', 'extra.bias']
    assert torch.equal(target.body.weight, source.body.weight)
    # a file with part of the group is judged strictly
    torch.save({k: v for k, v in source.state_dict().items()
                if k != 'extra.bias'}, path)
    with pytest.raises(KeyMismatchError, match='1 missing key.*extra.bias'):
        load_pretrained(_Toy(), str(path), lenient)


def test_blresnet_tams_may_be_absent_only_as_a_whole(tmp_path):
    weights = _source_weights('bLResNet')
    no_tam = OrderedDict((k, v) for k, v in weights.items()
                         if not (k.startswith('tam.') or '.tam.' in k))
    path = tmp_path / 'imagenet.pth'
    torch.save({'state_dict': no_tam}, path)
    model = _blres()
    report = model.load_pretrained(str(path))
    assert len(report['kept_init']) == len(weights) - len(no_tam) == 21
    assert report['format'] == 'blresnet_imagenet'
    one_tam = OrderedDict(no_tam, **{'tam.prev.weight':
                                     weights['tam.prev.weight']})
    torch.save({'state_dict': one_tam}, path)
    with pytest.raises(KeyMismatchError, match=r'20 missing key\(s\)'):
        _blres().load_pretrained(str(path))


# --------------------------------------------------------------- URLs
class _Quiet(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``."""
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    with local_http_server(handler) as (url, httpd):
        yield root, url, httpd


@pytest.fixture
def hub_dir(tmp_path):
    """A private torch hub dir, so the cache starts empty."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub'
    torch.hub.set_dir(old)


def _serve_csn(root: Path, rel: str, seed: int) -> 'dict':
    torch.manual_seed(seed)
    sd = _csn().state_dict()
    for value in sd.values():
        if value.is_floating_point():
            value.normal_()
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return sd


def _loaded_from(url: str, **kwargs) -> 'dict':
    model = _csn(**kwargs) if kwargs else _csn(pretrained=url)
    model.init_weights()
    return model.state_dict()


def test_url_cache_is_keyed_by_the_whole_url(server, hub_dir):
    root, url, httpd = server
    v1 = _serve_csn(root, 'v1/csn.pth', seed=1)
    v2 = _serve_csn(root, 'v2/csn.pth', seed=2)
    got1 = _loaded_from(f'{url}/v1/csn.pth')
    got2 = _loaded_from(f'{url}/v2/csn.pth')
    key = 'conv1.conv.weight'
    assert torch.equal(got1[key], v1[key])
    assert torch.equal(got2[key], v2[key])
    assert not torch.equal(got1[key], got2[key])
    assert cache_path(f'{url}/v1/csn.pth') != cache_path(f'{url}/v2/csn.pth')
    # offline: the server is gone, the cached copies still load
    httpd.shutdown()
    httpd.server_close()
    assert torch.equal(_loaded_from(f'{url}/v2/csn.pth')[key], v2[key])
    with pytest.raises(DownloadError, match=r'cannot download .*/v3/'):
        _loaded_from(f'{url}/v3/csn.pth')


def test_url_hash_from_the_name_and_from_the_config(server, hub_dir):
    root, url, _ = server
    sd = _serve_csn(root, 'tmp.pth', seed=3)
    digest = hashlib.sha256((root / 'tmp.pth').read_bytes()).hexdigest()
    os.rename(root / 'tmp.pth', root / f'csn-{digest[:8]}.pth')
    os.link(root / f'csn-{digest[:8]}.pth', root / 'csn-deadbeef.pth')
    os.link(root / f'csn-{digest[:8]}.pth', root / 'plain.pth')
    key = 'conv1.conv.weight'
    # torch hub's convention: the name carries the hash prefix
    assert expected_sha256(f'{url}/csn-{digest[:8]}.pth') == digest[:8]
    good = _loaded_from(f'{url}/csn-{digest[:8]}.pth')
    assert torch.equal(good[key], sd[key])
    bad = f'{url}/csn-deadbeef.pth'
    with pytest.raises(ChecksumError) as info:
        _loaded_from(bad)
    assert all(s in str(info.value) for s in (bad, 'deadbeef', digest))
    assert not os.path.exists(cache_path(bad))  # nothing kept
    # the config gives the hash (the name has none)
    plain = f'{url}/plain.pth'
    with pytest.raises(ChecksumError, match='expected 00000000'):
        _loaded_from(plain, init_cfg=dict(
            type='Pretrained', checkpoint=plain, sha256='0' * 8))
    got = _loaded_from(plain, init_cfg=dict(
        type='Pretrained', checkpoint=plain, sha256=digest))
    assert torch.equal(got[key], sd[key])
    # a damaged cached copy is caught on the next load, not used
    with open(cache_path(f'{url}/csn-{digest[:8]}.pth'), 'r+b') as f:
        f.seek(100)
        f.write(b'\0' * 8)
    with pytest.raises(ChecksumError, match='cached copy'):
        _loaded_from(f'{url}/csn-{digest[:8]}.pth')


def test_url_with_code_is_refused(server, hub_dir, tmp_path):
    root, url, _ = server

    class Marker:

        def __reduce__(self):
            return os.mkdir, (str(tmp_path / 'PWNED'), )

    torch.save({'state_dict': _csn().state_dict(), 'x': Marker()},
               root / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='would run code'):
        _loaded_from(f'{url}/evil.pth')
    assert not (tmp_path / 'PWNED').exists()


def test_runner_url_loads_use_the_checked_cache(server, hub_dir, tmp_path):
    """``load_from=URL`` / ``tools/test.py CFG URL`` go through mmengine's
    ``_load_checkpoint``: same URL cache and checked reader as above."""
    from mmengine.runner.checkpoint import _load_checkpoint
    root, url, _ = server
    v1 = _serve_csn(root, 'v1/csn.pth', seed=1)
    v2 = _serve_csn(root, 'v2/csn.pth', seed=2)
    key = 'conv1.conv.weight'
    got1 = _load_checkpoint(f'{url}/v1/csn.pth', map_location='cpu')
    got2 = _load_checkpoint(f'{url}/v2/csn.pth', map_location='cpu')
    assert torch.equal(got1[key], v1[key])
    assert torch.equal(got2[key], v2[key])  # not v1's cached csn.pth
    assert os.path.isfile(cache_path(f'{url}/v2/csn.pth'))

    class Marker:

        def __reduce__(self):
            return os.mkdir, (str(tmp_path / 'PWNED'), )

    torch.save({'state_dict': v1, 'x': Marker()}, root / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='would run code'):
        _load_checkpoint(f'{url}/evil.pth', map_location='cpu')
    assert not (tmp_path / 'PWNED').exists()


# ------------------------------------------------- one table per family
def test_architecture_tables_have_one_source():
    """Models and converters read the same objects from mmcsn.archs,
    which imports nothing (so the checkpoint layer can use it)."""
    import ast

    from mmcsn import archs
    from mmcsn.checkpoint import csn as ckpt_csn
    from mmcsn.models.backbones import blresnet as blres_mod
    from mmcsn.models.backbones import csn as csn_mod
    tree = ast.parse(Path(archs.__file__).read_text())
    imported = [n for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, 'module', None) for n in imported] == ['typing']
    assert csn_mod.STAGE_BLOCKS is archs.CSN_STAGE_BLOCKS
    assert ckpt_csn.CSN_STAGE_BLOCKS is archs.CSN_STAGE_BLOCKS
    assert blres_mod.ARCH_SETTINGS is archs.BLRESNET_STAGE_BLOCKS
    assert blres_mod.STAGE_CHANNELS is archs.BLRESNET_STAGE_CHANNELS


@pytest.mark.parametrize('depth', [50, 101, 152])
def test_blvnet_converter_reads_depth_off_the_table(depth):
    from mmcsn.checkpoint.blvnet import infer_blvnet_arch
    with torch.device('meta'):
        model = bLResNet(depth=depth, num_segments=2, alpha=4)
    arch = infer_blvnet_arch(
        {'backbone.' + k: v for k, v in model.state_dict().items()})
    assert arch['depth'] == depth and arch['alpha'] == 4


def test_config_hash_checks_local_files_too(tmp_path):
    path = _recognizer_file(tmp_path / 'r.pth', 'CSN')
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    model = _csn(init_cfg=dict(type='Pretrained', checkpoint=path,
                               sha256=digest[:12]))
    model.init_weights()
    _assert_loaded(model, 'CSN')
    with pytest.raises(ChecksumError, match=f'got {digest}'):
        _csn(init_cfg=dict(type='Pretrained', checkpoint=path,
                           sha256='f' * 64)).init_weights()
    with pytest.raises(ValueError, match='sha256 must be 8 to 64 hex'):
        resolve_pretrained('CSN', None, dict(
            type='Pretrained', checkpoint=path, sha256='xyz'))
