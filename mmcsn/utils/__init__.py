"""Utilities: complexity counting, MMAction2 entry scripts."""
from .complexity import count_complexity, mmaction_flops, recognizer_forward
from .entry import mmaction_tool, run_mmaction_tool

__all__ = [
    'count_complexity', 'mmaction_flops', 'recognizer_forward',
    'mmaction_tool', 'run_mmaction_tool'
]
