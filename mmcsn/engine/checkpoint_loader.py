"""Route mmengine's local and http(s) checkpoint reads through mmcsn's.

mmengine's ``Runner.load_checkpoint`` (``tools/test.py``, ``load_from``,
``--resume``, ``init_recognizer``) reads local files with its own
``load_from_local`` -> ``torch.load``: an empty, text, PNG or truncated
file surfaces as a bare ``EOFError`` / ``KeyError: 101`` / torch's advice
to set ``weights_only=False``, and a directory as "not found". Replacing
the loader of mmengine's local scheme (prefix ``''``) with
:func:`load_from_local_checked` gives every such load
:func:`mmcsn.checkpoint.io.load_checkpoint_file`'s one-line
:class:`~mmcsn.checkpoint.errors.CheckpointError` (not found / is a
directory / no permission / corrupt or truncated / would run code), and
still ``weights_only=True``.

mmengine's own ``http://`` / ``https://`` loader caches by file name
only (``.../v1/csn.pth`` and ``.../v2/csn.pth`` share one cache file) and
checks no hash; :func:`load_from_http_checked` replaces it with
:func:`mmcsn.checkpoint.download.cached_download` (cached by the whole
URL, sha256-checked against a ``-<hash>`` in the file name) and the same
checked reader. Other schemes (``open-mmlab://``, ``s3://``, ...) are
untouched.
"""
import os.path as osp

from mmengine.runner import CheckpointLoader

__all__ = [
    'load_from_local_checked', 'load_from_http_checked',
    'install_checked_local_loader'
]


def load_from_local_checked(filename: str, map_location=None) -> object:
    """mmengine's local-file loader, through mmcsn's checked reader.

    Args:
        filename (str): Local path (``~`` is expanded, as mmengine does).
        map_location (str | callable, optional): As for ``torch.load``.

    Returns:
        object: The loaded checkpoint.
    """
    from mmcsn.checkpoint.io import load_checkpoint_file
    return load_checkpoint_file(
        osp.expanduser(filename), map_location=map_location)


def load_from_http_checked(filename: str, map_location=None) -> object:
    """mmengine's http(s) loader, through mmcsn's cache and reader.

    Args:
        filename (str): ``http://`` or ``https://`` URL.
        map_location (str | callable, optional): As for ``torch.load``.

    Returns:
        object: The loaded checkpoint.
    """
    from mmcsn.checkpoint.download import cached_download
    from mmcsn.checkpoint.io import load_checkpoint_file
    return load_checkpoint_file(
        cached_download(filename, sha256=None), map_location=map_location)


def install_checked_local_loader() -> None:
    """Make mmcsn's checked loaders mmengine's local and http(s) ones."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_checked, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_http_checked,
        force=True)
