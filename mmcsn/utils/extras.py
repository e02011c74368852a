"""Optional dependencies (setup.cfg extras) and the message naming them.

Tools check an extra *before* loading anything heavy, so a user without
it gets one line with the exact install command and exit status 1, not a
traceback after the model has been built.
"""
import importlib.metadata
import importlib.util
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ['EXTRAS', 'missing_extra']

# extra -> import names; setup.cfg [options.extras_require] lists the
# same packages (tests/test_extras.py keeps the two in step)
EXTRAS: Dict[str, Tuple[str, ...]] = {
    'deploy': ('onnx', 'onnxruntime'),
    # moviepy.editor: MMAction2's video writer imports it; moviepy 2
    # removed it, so the check names the module, not the package
    'viz': ('matplotlib', 'moviepy.editor'),
}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # parent package missing / broken
        return False


# module -> (distribution it imports, first major version that breaks it):
# moviepy 1.0.3's write_videofile gets fps=None with decorator 5
_BREAKING_MAJOR = {'moviepy.editor': ('decorator', 5)}


def _too_new(modules: Sequence[str]) -> List[Tuple[str, int]]:
    found = []
    for module in modules:
        if module not in _BREAKING_MAJOR:
            continue
        dist, bad = _BREAKING_MAJOR[module]
        try:
            major = int(importlib.metadata.version(dist).split('.')[0])
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
        if major >= bad:
            found.append((dist, bad))
    return found


def missing_extra(extra: str,
                  modules: Optional[Sequence[str]] = None,
                  feature: str = '') -> Optional[str]:
    """Say what is missing for an optional feature, or None.

    Args:
        extra (str): The setup.cfg extra, a key of :data:`EXTRAS`.
        modules (Sequence[str], optional): The modules the feature needs;
            defaults to all of the extra's.
        feature (str): What needs them, for the message (e.g.
            ``'--out-video'``). Defaults to ``''``.

    Returns:
        str | None: ``None`` if all are importable, else a one-line
        message naming the missing modules and the install command.
    """
    if extra not in EXTRAS:
        raise ValueError(f'extra must be one of {sorted(EXTRAS)}, got '
                         f'{extra!r}')
    modules = EXTRAS[extra] if modules is None else tuple(modules)
    unknown = [m for m in modules if m not in EXTRAS[extra]]
    if unknown:
        raise ValueError(f'modules {unknown} are not in the {extra!r} '
                         f'extra {EXTRAS[extra]}')
    missing = [m for m in modules if not _importable(m)]
    missing += [f'{dist}<{bad}' for dist, bad in _too_new(modules)]
    if not missing:
        return None
    what = f'{feature} needs' if feature else 'needs'
    names = ', '.join(m.replace('moviepy.editor', 'moviepy<2')
                      for m in missing)
    return (f'{what} {names} (not installed or a version that does not '
            f'work): pip install "mmcsn[{extra}]"')
