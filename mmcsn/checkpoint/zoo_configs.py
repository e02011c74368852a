"""Which shipped config tests a converted checkpoint as its source did.

The converters (``tools/convert/*``) name it in their success message:
a converted PyTorchVideo or VMZ checkpoint reproduces its source's
numbers only with the source's head (``DenseI3DHead``), normalisation and
BN eps, which these configs set.
"""
from typing import Dict, Optional, Tuple

__all__ = ['ZOO_CONFIGS', 'SOURCES', 'config_for']

# (source, mode, depth) -> config path relative to the repository root
# (and to ``mmcsn/.mim`` of an installed package)
ZOO_CONFIGS: Dict[Tuple[str, str, int], str] = {
    ('pytorchvideo', 'ir', 101):
    'configs/csn/ircsn_pytorchvideo-r101_32x2x1_kinetics400-rgb.py',
    ('vmz', 'ir', 152): 'configs/csn/ircsn_vmz-r152_32x2x1_kinetics400-rgb.py',
    ('vmz', 'ip', 152): 'configs/csn/ipcsn_vmz-r152_32x2x1_kinetics400-rgb.py',
}
# converter source layouts (``source_layout`` of a converted checkpoint's
# meta) -> the family whose test protocol applies; None: the existing
# configs already test it as its source did (MMAction2 checkpoints:
# I3DHead, configs/csn/README.md) or several configs fit (bLVNet: one per
# dataset, configs/blvnet/README.md)
SOURCES: Dict[str, Optional[str]] = {
    'pytorchvideo': 'pytorchvideo',
    'vmz': 'vmz',
    'vmz_pt': 'vmz',  # VMZ PyTorch (tools/convert/vmz_to_mmcsn.py)
    'caffe2': 'vmz',  # VMZ caffe2 (tools/convert/caffe2_to_mmcsn.py)
    'mmaction': None,
    'blvnet': None,
    'blresnet_imagenet': None,
}


def config_for(source: str, mode: Optional[str],
               depth: Optional[int]) -> Optional[str]:
    """The shipped source-protocol config for a converted checkpoint.

    Args:
        source (str): The converter's source layout: ``'pytorchvideo'``,
            ``'vmz_pt'`` (or ``'vmz'``), ``'caffe2'``, ``'mmaction'``,
            ``'blvnet'``, ``'blresnet_imagenet'``.
        mode (str, optional): ``'ir'``, ``'ip'`` or None (no CSN mode).
        depth (int, optional): Backbone depth.

    Returns:
        str | None: Config path relative to the repository (or ``.mim``)
        root, e.g. ``'configs/csn/ircsn_vmz-r152_32x2x1_kinetics400-rgb.py'``;
        None when no released model of that source has this architecture
        or the source needs no config of its own.

    Raises:
        ValueError: Unknown ``source`` or ``mode``.
    """
    if source not in SOURCES:
        raise ValueError(f'source must be one of {sorted(SOURCES)}, got '
                         f'{source!r}')
    if mode not in ('ir', 'ip', None):
        raise ValueError(f"mode must be 'ir', 'ip' or None, got {mode!r}")
    family = SOURCES[source]
    if family is None or mode is None:
        return None
    return ZOO_CONFIGS.get((family, mode, depth))
