"""Fetch checkpoints given as URLs: cached by URL, atomic, hash-checked.

::

    URL --sha256(URL)--> <cache>/<16 hex>-<file name>
         |  cached?  yes -> check sha256 (if expected) -> path (offline ok)
         `-- no -> stream to a temp file, hashing -> check -> rename -> path

The cache key is the whole URL, so ``.../v1/csn.pth`` and
``.../v2/csn.pth`` never share a file. The expected sha256 comes from the
caller (``init_cfg=dict(type='Pretrained', checkpoint=URL,
sha256=...)``) or, as in ``torch.hub``, from a hash prefix in the file
name (``name-<8 or more hex digits, at least one a-f>.pth``, OpenMMLab's
convention, e.g. ``..._20210312-c7a3cc5b.pth``; an all-digit suffix such
as ``-20210312`` is a date or version, not a hash); a mismatch is an
error naming the URL, the expected and the actual hash, and nothing is
kept. A download shorter than its Content-Length is an error too.
"""
import hashlib
import os
import re
import tempfile
import urllib.parse
import urllib.request
from typing import Optional

from .errors import ChecksumError, DownloadError, os_error

__all__ = ['is_url', 'expected_sha256', 'cache_path', 'cached_download',
           'file_sha256']

URL_SCHEMES = ('http://', 'https://')
# torch.hub's convention: ``<name>-<sha256 prefix>.<ext>``; the prefix
# must hold a letter: ``-20210312.pth`` is a date far more often than a hash
_HASH_IN_NAME = re.compile(r'-([0-9a-f]*[a-f][0-9a-f]*)\.')
_HEX = re.compile(r'^[0-9a-f]{8,64}$')
_CHUNK = 1 << 20


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL (not a local path)."""
    return isinstance(source, str) and source.startswith(URL_SCHEMES)


def _file_name(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return re.sub(r'[^A-Za-z0-9._-]', '_', name) or 'checkpoint'


def expected_sha256(url: str, sha256: Optional[str] = None) -> Optional[str]:
    """The sha256 (or prefix of >= 8 hex digits) a download must have.

    Without ``sha256``, a ``-<hex>.`` suffix of the URL's file name is taken
    as a sha256 prefix only when it has 8 to 64 hex digits and at least one
    letter a-f (``csn_20210312-c7a3cc5b.pth``); an all-digit suffix
    (``ircsn_r50-20210312.pth``) is a date or version and is ignored.

    Args:
        url (str): The URL.
        sha256 (str, optional): Given by the config; wins over the name.

    Returns:
        str | None: Lower-case hex, or None when nothing is known.
    """
    if sha256 is not None:
        sha256 = str(sha256).lower()
        if not _HEX.match(sha256):
            raise ValueError(f'sha256 must be 8 to 64 hex digits, got '
                             f'{sha256!r}')
        return sha256
    for match in _HASH_IN_NAME.finditer(_file_name(url)):
        if 8 <= len(match.group(1)) <= 64:
            return match.group(1)
    return None


def cache_dir() -> str:
    """``$TORCH_HOME/hub/checkpoints/mmcsn`` (follows ``torch.hub``)."""
    import torch.hub
    return os.path.join(torch.hub.get_dir(), 'checkpoints', 'mmcsn')


def cache_path(url: str, folder: Optional[str] = None) -> str:
    """Where ``url`` is cached: keyed by a hash of the whole URL."""
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return os.path.join(folder or cache_dir(), f'{key}-{_file_name(url)}')


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _check(url: str, actual: str, expected: Optional[str],
           where: str) -> None:
    if expected is not None and not actual.startswith(expected):
        raise ChecksumError(
            f'sha256 mismatch for {url!r} ({where}): expected '
            f'{expected}, got {actual}', url)


def cached_download(url: str,
                    sha256: Optional[str] = None,
                    folder: Optional[str] = None,
                    timeout: float = 60.0) -> str:
    """Return a local copy of ``url``, downloading it once.

    Args:
        url (str): http(s) URL of a checkpoint.
        sha256 (str, optional): Expected sha256 (or a prefix of >= 8 hex
            digits). Defaults to None (the name's hash prefix, if any).
        folder (str, optional): Cache folder. Defaults to
            :func:`cache_dir`.
        timeout (float): Socket timeout in seconds. Defaults to 60.

    Returns:
        str: The cached file (also used offline on later calls).

    Raises:
        ChecksumError: The content's sha256 is not the expected one.
        DownloadError: The URL cannot be fetched and nothing is cached.
    """
    expected = expected_sha256(url, sha256)
    path = cache_path(url, folder)
    if os.path.isfile(path):
        # checked every time: a damaged cache must not load silently
        _check(url, file_sha256(path), expected,
               f'cached copy {path!r}; delete it to download again')
        return path
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix='.' + os.path.basename(path) + '.', suffix='.part',
            dir=os.path.dirname(path))
    except OSError as err:
        raise os_error(err, os.path.dirname(path), 'download cache',
                       'write') from err
    try:
        with os.fdopen(fd, 'wb') as out:
            actual = _fetch(url, out, path, timeout)
        _check(url, actual, expected, 'download, not kept')
        os.chmod(tmp, 0o644)
        # two processes (e.g. DDP ranks) may race here: each renames its
        # own complete copy of the same bytes; either result is whole
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _fetch(url: str, out, path: str, timeout: float) -> str:
    """Stream ``url`` into ``out``; return the content's sha256."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = _content_length(response)
            for chunk in iter(lambda: response.read(_CHUNK), b''):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
    except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts
        reason = getattr(err, 'reason', None) or err
        raise DownloadError(
            f'cannot download {url!r}: {reason} (no cached copy at '
            f'{path!r})', url) from err
    # read(amt) returns short data when the server closes early; without
    # an expected hash the partial file would be cached as complete
    if expected is not None and received != expected:
        raise DownloadError(
            f'cannot download {url!r}: incomplete, expected {expected} '
            f'bytes (Content-Length), received {received}; nothing '
            f'cached at {path!r}', url)
    out.flush()
    os.fsync(out.fileno())
    return digest.hexdigest()


def _content_length(response) -> Optional[int]:
    """The response's Content-Length, or None when absent or unusable."""
    value = response.headers.get('Content-Length')
    try:
        length = int(value)
    except (TypeError, ValueError):
        return None
    return length if length >= 0 else None
