"""Classification heads."""
from .dense_i3d_head import DenseI3DHead

__all__ = ['DenseI3DHead']
