"""Data transforms and datasets mmcsn registers into MMAction2."""
from .checked_decord import (
    CheckedDecordDecode,
    CheckedDecordInit,
    VideoReadError,
)

__all__ = ['CheckedDecordDecode', 'CheckedDecordInit', 'VideoReadError']
