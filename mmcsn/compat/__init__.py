"""Fixes for defects of the OpenMMLab stack as PyPI serves it.

Each fix is narrow, idempotent and applied at ``import mmcsn`` so that
MMAction2's own tools work unchanged once a config lists mmcsn in
``custom_imports``. See README, "Compatibility shims".
"""
from .cpu_dist import install_cpu_dist_init
from .drn_shim import install_drn_shim, shim_active
from .mim_scope import install_mim_scope
from .safe_load import install_safe_globals, mmengine_safe_globals

__all__ = [
    'apply_all', 'install_cpu_dist_init', 'install_drn_shim',
    'install_mim_scope', 'install_safe_globals', 'mmengine_safe_globals',
    'shim_active'
]


def apply_all() -> None:
    """Apply every fix; each one is a no-op where it is not needed."""
    install_drn_shim()
    install_safe_globals()
    install_cpu_dist_init()
    install_mim_scope()
