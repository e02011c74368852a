"""Fast kernels used by mmcsn's modules (same parameters as torch's)."""
from .depthwise_conv3d import DepthwiseConv3d, depthwise_conv3d
from .fast_conv import FastConv3d, FastDepthwiseConv3d
from .pointwise import ops_observed, pointwise_conv3d, pointwise_fast_path

__all__ = [
    'DepthwiseConv3d', 'depthwise_conv3d', 'pointwise_conv3d',
    'pointwise_fast_path', 'ops_observed', 'FastConv3d',
    'FastDepthwiseConv3d'
]
