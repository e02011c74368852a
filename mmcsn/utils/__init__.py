"""Utilities: complexity counting."""
from .complexity import count_complexity, mmaction_flops, recognizer_forward

__all__ = ['count_complexity', 'mmaction_flops', 'recognizer_forward']
