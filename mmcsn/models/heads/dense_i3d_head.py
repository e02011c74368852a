"""The test-time head of PyTorchVideo's and VMZ's CSN: dense prediction.

MMAction2's ``I3DHead`` averages the whole feature map, then applies the
classifier. PyTorchVideo's ``ResNetBasicHead`` (``create_csn``: AvgPool3d
kernel (4, 7, 7) in the hub ``csn_r101``, (1, 7, 7) by default, stride 1,
no padding, dropout 0, no activation) and VMZ's caffe2 test net (average
pool of kernel (T/8, 7, 7), stride 1, then the FC at every position)
instead slide a fixed window::

    features (N, C, T', H', W')
      -- avg_pool3d(kernel=pool_size, stride=1) -->  (N, C, t, h, w)
      -- dropout --> fc_cls at each of the t*h*w positions --> (N, t*h*w, K)
      -- mean over positions -->                      (N, K)

At the training size (224 px -> a 7x7 map) both heads are the same; at the
256-px ThreeCrop test views of the published numbers (an 8x8 map) the
window weights the centre of the map more than its border and the logits
differ by a few percent, so a source's numbers need the source's head.
The state_dict (``fc_cls.weight/bias``) is ``I3DHead``'s: converted
checkpoints load into either.
"""
from typing import Sequence, Tuple

import torch.nn.functional as F
from mmaction.models.heads import I3DHead
from mmaction.registry import MODELS
from torch import Tensor

from mmcsn.validate import ArgSpec, Float, Int, Seq

__all__ = ['DenseI3DHead']


@MODELS.register_module()
class DenseI3DHead(I3DHead):
    """``I3DHead`` with a fixed-window average pool and dense prediction.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the backbone's output.
        pool_size (Sequence[int]): ``(t, h, w)`` window of the stride-1
            average pool, clipped to the feature map (so a map smaller
            than the window is pooled globally, as ``I3DHead`` does).
            Defaults to ``(4, 7, 7)`` (PyTorchVideo's ``csn_r101``; VMZ:
            ``(clip_len // 8, 7, 7)``).
        dropout_ratio (float): Dropout before the classifier (training
            only). Defaults to 0 (PyTorchVideo's ``create_csn``).
        **kwargs: The rest of ``I3DHead``'s arguments (``loss_cls``,
            ``init_std``, ``average_clips``...); ``spatial_type`` is
            ignored (the pool is this head's).
    """

    @ArgSpec(
        'DenseI3DHead',
        num_classes=Int(min=1),
        in_channels=Int(min=1),
        pool_size=Seq(Int(min=1), length=3),
        dropout_ratio=Float(min=0, below=1))
    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 pool_size: Sequence[int] = (4, 7, 7),
                 dropout_ratio: float = 0.0,
                 **kwargs) -> None:
        kwargs.pop('spatial_type', None)
        super().__init__(num_classes, in_channels, spatial_type=None,
                         dropout_ratio=dropout_ratio, **kwargs)
        self.pool_size: Tuple[int, int, int] = pool_size

    def forward(self, x: Tensor, **kwargs) -> Tensor:
        """Class scores of each clip.

        Args:
            x (Tensor): Backbone features, ``(N, C, T', H', W')``.

        Returns:
            Tensor: ``(N, num_classes)`` scores.
        """
        if x.dim() != 5:
            raise ValueError('DenseI3DHead expects (N, C, T, H, W) features, '
                             f'got shape {tuple(x.shape)}')
        window = tuple(min(p, s) for p, s in zip(self.pool_size, x.shape[2:]))
        x = F.avg_pool3d(x, window, stride=1)
        if self.dropout is not None:
            x = self.dropout(x)
        # (N, C, t, h, w) -> (N, t*h*w, C): the classifier at each position
        scores = self.fc_cls(x.flatten(2).transpose(1, 2))
        return scores.mean(dim=1)
