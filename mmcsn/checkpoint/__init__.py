"""Checkpoint I/O and pure key-conversion functions."""
from .blvnet import (
    blresnet_imagenet_to_mmcsn,
    blvnet_tam_to_mmcsn,
    convert_blvnet_checkpoint,
    detect_blvnet_format,
)
from .csn import (
    caffe2_to_mmcsn,
    convert_to_mmcsn,
    convert_to_mmcsn_recognizer,
    detect_csn_layout,
    mmaction_to_mmcsn,
    pytorchvideo_to_mmcsn,
    vmz_pt_to_mmcsn,
)
from .io import (
    CheckpointError,
    describe_key_mismatch,
    load_checkpoint_file,
    load_state_dict_checked,
    save_checkpoint_atomic,
    unwrap_state_dict,
)

__all__ = [
    'CheckpointError', 'describe_key_mismatch', 'load_checkpoint_file',
    'load_state_dict_checked', 'save_checkpoint_atomic', 'unwrap_state_dict',
    'caffe2_to_mmcsn', 'convert_to_mmcsn', 'convert_to_mmcsn_recognizer',
    'detect_csn_layout', 'mmaction_to_mmcsn', 'pytorchvideo_to_mmcsn',
    'vmz_pt_to_mmcsn', 'blresnet_imagenet_to_mmcsn', 'blvnet_tam_to_mmcsn',
    'convert_blvnet_checkpoint', 'detect_blvnet_format'
]
