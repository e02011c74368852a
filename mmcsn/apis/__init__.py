"""Inference engines a user calls: feature extraction, the bf16 path.

Not imported by ``import mmcsn`` (it pulls in the data pipeline); import
``mmcsn.apis`` where it is needed.
"""
from .features import FeatureExtractor, extract_features
from .fuse import fold_batchnorm, fold_conv_bn
from .inference import (
    VideoPrediction,
    init_recognizer_strict,
    load_label_map,
    model_num_classes,
    recognize_video,
    recognize_videos,
)
from .precision import (
    cast_inputs,
    check_dtype_supported,
    cpu_bf16_support,
    parse_dtype,
    prepare_for_inference,
)
from .windows import WindowSpec, num_windows, window_frame_indices

__all__ = [
    'VideoPrediction', 'init_recognizer_strict', 'load_label_map',
    'model_num_classes', 'recognize_video', 'recognize_videos',
    'FeatureExtractor', 'extract_features', 'fold_batchnorm',
    'fold_conv_bn', 'cast_inputs', 'check_dtype_supported',
    'cpu_bf16_support', 'parse_dtype', 'prepare_for_inference',
    'WindowSpec', 'num_windows', 'window_frame_indices'
]
