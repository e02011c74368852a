"""Runner hooks mmcsn registers into mmengine/MMAction2."""
from .rng_state_hook import RNGStateHook, get_rng_state, set_rng_state

__all__ = ['RNGStateHook', 'get_rng_state', 'set_rng_state']
