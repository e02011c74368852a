"""Fast kernels used by mmcsn's modules (same parameters as torch's)."""
from .depthwise_conv3d import DepthwiseConv3d, depthwise_conv3d
from .malloc_tuning import tune_malloc
from .pointwise import pointwise_conv3d, pointwise_fast_path

__all__ = [
    'DepthwiseConv3d', 'depthwise_conv3d', 'tune_malloc', 'pointwise_conv3d',
    'pointwise_fast_path'
]
