"""Utilities: tool helpers, complexity counting, MMAction2 entry scripts."""
from .builders import (
    TensorGraph,
    build_model,
    input_shape_from_config,
    load_config,
    recognizer_forward,
    recognizer_input_shape,
)
from .complexity import count_complexity, mmaction_flops
from .entry import mmaction_tool, run_mmaction_tool

__all__ = [
    'TensorGraph', 'build_model', 'input_shape_from_config', 'load_config',
    'recognizer_forward', 'recognizer_input_shape', 'count_complexity',
    'mmaction_flops', 'mmaction_tool', 'run_mmaction_tool'
]
