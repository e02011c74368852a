"""Runner hooks mmcsn registers into mmengine/MMAction2."""
from .checkpoint_loader import (
    install_checked_local_loader,
    load_from_http_checked,
    load_from_local_checked,
)
from .rng_state_hook import RNGStateHook, get_rng_state, set_rng_state
from .strict_load_hook import StrictLoadHook
from .version_info_hook import VersionInfoHook

__all__ = [
    'RNGStateHook', 'get_rng_state', 'set_rng_state', 'VersionInfoHook',
    'StrictLoadHook', 'install_checked_local_loader',
    'load_from_local_checked', 'load_from_http_checked'
]

# mmengine's runner reads local checkpoints through mmcsn's checked reader
install_checked_local_loader()
