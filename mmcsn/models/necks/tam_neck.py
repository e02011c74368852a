"""TAMNeck: temporal aggregation on the last feature map of a 2D backbone.

bLVNet-TAM puts seven TAMs inside its own backbone. This neck puts one TAM
after *any* 2D backbone run by MMAction2's stock ``Recognizer2D``, so that a
TSN model mixes information across neighbouring frames before its
consensus, at the price of ``blending_frames * C`` parameters.

Contract with ``Recognizer2D`` (mmaction 1.2 ``extract_feat``):

* the recognizer iterates over the backbone output and reshapes each map
  to ``(N, C, V*T, H, W)``, where ``V*T`` is ``inputs.shape[1]`` (views
  times segments, views contiguous); it then calls
  ``neck(x, data_samples=...)`` and expects ``(x, loss_aux)``;
* it squeezes dim 2 of the returned tensor and passes ``num_segs=1`` to
  the head, so the neck must collapse time (and views) to size 1.

Because the recognizer iterates over the backbone output, the backbone
must return a tuple of maps (for MMAction2's ``ResNet``: two or more
``out_indices``, e.g. ``(2, 3)``); a bare tensor is sliced per sample by
the recognizer and is rejected here with an explanation.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmaction.registry import MODELS
from mmaction.utils import OptConfigType, SampleList
from mmengine.model import BaseModule
from torch import Tensor

from mmcsn.validate import ArgSpec, InitCfg, Int, Str

from ..common.tam import (
    BLENDING_FRAMES,
    TemporalAggregation,
    temporal_aggregate,
)

__all__ = ['TAMNeck']

# How the neck reduces the T aggregated frames of one view to one map.
COLLAPSE_MODES = ('mean', 'max')


@MODELS.register_module()
class TAMNeck(BaseModule):
    """Temporal Aggregation Module (bLVNet-TAM) as a ``Recognizer2D`` neck.

    The neck takes the backbone's last map in ``(N, C, V*T, H, W)``,
    applies one depthwise TAM over the ``T`` segments of each view
    (``out[t] = ReLU(w_prev*x[t-1] + w_curr*x[t] + w_next*x[t+1])``, zero
    padded at the clip ends, never across views), collapses ``T`` and then
    averages the ``V`` views, returning ``(N, C, 1, H, W)``. With a
    ``TSNHead`` this matches TSN, whose consensus also averages all views
    and segments of a video.

    By default the TAM starts as the identity (``w_curr = 1``, the other
    weights 0): on a non-negative (post-ReLU) feature map the model then
    computes exactly what TSN computes, so the neck can be added to a
    trained TSN checkpoint without changing its predictions, and learns
    its temporal mixing from there.

    Args:
        in_channels (int): Channels of the backbone map the neck reads.
        num_segments (int): Segments ``T`` per view (``num_clips`` of the
            ``SampleFrames`` transform).
        blending_frames (int): Frames each TAM output mixes (3: previous,
            current, next). Defaults to 3.
        collapse (str): Reduction over ``T`` after the TAM, one of
            ``'mean'`` and ``'max'``. Defaults to ``'mean'``.
        in_index (int): Which map of the backbone's output tuple to read.
            Defaults to -1 (the last one).
        init_cfg (dict or list[dict], optional): mmengine initialisation
            config for the TAM. Defaults to None, which keeps the identity
            initialisation described above.
    """

    @ArgSpec(
        'TAMNeck',
        in_channels=Int(min=1),
        num_segments=Int(min=1),
        blending_frames=BLENDING_FRAMES,
        collapse=Str(choices=COLLAPSE_MODES),
        in_index=Int(),
        init_cfg=InitCfg())
    def __init__(self,
                 in_channels: int,
                 num_segments: int,
                 blending_frames: int = 3,
                 collapse: str = 'mean',
                 in_index: int = -1,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.blending_frames = blending_frames
        self.collapse = collapse
        self.in_index = in_index
        self.tam = TemporalAggregation(
            in_channels, num_segments, blending_frames=blending_frames)
        # Identity from construction on, so that a model built without
        # ``init_weights`` (e.g. then loaded from a TSN checkpoint) is TSN.
        self._init_identity()

    def init_weights(self) -> None:
        """Identity TAM unless an ``init_cfg`` asks for something else."""
        if self.init_cfg is None:
            self._init_identity()
            self._is_init = True
        else:
            super().init_weights()

    @torch.no_grad()
    def _init_identity(self) -> None:
        """Zero every blending weight but the current frame's, which is 1."""
        for offset, holder in zip(self.tam.offsets,
                                  self.tam.weight_holders()):
            holder.weight.fill_(1.0 if offset == 0 else 0.0)

    def forward(self,
                x: Union[Tensor, Sequence[Tensor]],
                data_samples: Optional[SampleList] = None
                ) -> Tuple[Tensor, dict]:
        """Aggregate over time, collapse time and views.

        Args:
            x (Tensor or Sequence[Tensor]): A map ``(N, C, V*T, H, W)``
                or the backbone's tuple of such maps (``in_index`` picks
                one).
            data_samples (list[ActionDataSample], optional): Unused; part
                of the ``Recognizer2D`` neck interface. Defaults to None.

        Returns:
            tuple[Tensor, dict]: The map ``(N, C, 1, H, W)`` and an empty
            auxiliary-loss dict.
        """
        feat = self._select(x)
        n, c, s, h, w = feat.shape
        if c != self.in_channels:
            raise ValueError(f'expected {self.in_channels} channels '
                             f'(in_channels), got a map of shape '
                             f'{tuple(feat.shape)}')
        if s % self.num_segments:
            raise ValueError(
                f'the map has {s} frames on dim 2, not a multiple of '
                f'num_segments={self.num_segments}: every view (clip x '
                f'crop) must have num_segments frames, so use '
                f'num_clips={self.num_segments} in the SampleFrames of '
                f'every pipeline (train, val and test)')
        views = s // self.num_segments
        # (N, C, V*T, H, W) viewed as (N, C, V, T, H, W): one TAM per view
        # along its own time axis, so no frame is mixed across views.
        out = temporal_aggregate(
            feat.reshape(n, c, views, self.num_segments, h, w),
            self.tam.blending_weights(),
            self.tam.offsets,
            time_dim=3,
            channel_dim=1)
        if self.collapse == 'mean':
            out = out.mean(dim=3)
        else:
            out = out.amax(dim=3)
        # Views are averaged like TSN's consensus averages them.
        out = out.mean(dim=2)
        return out.unsqueeze(2), dict()

    def _select(self, x: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """The 5-D map to aggregate, with input errors explained."""
        if isinstance(x, Tensor):
            feat = x
        elif isinstance(x, (list, tuple)):
            if len(x) == 0:
                raise ValueError('TAMNeck got an empty sequence of maps')
            if all(isinstance(e, Tensor) and e.dim() == 4 for e in x):
                raise ValueError(
                    f'TAMNeck got {len(x)} 4-D tensors instead of 5-D maps: '
                    f'Recognizer2D iterates over the backbone output, so a '
                    f'backbone returning a single tensor is sliced per '
                    f'sample. Make the backbone return a tuple of maps '
                    f'(MMAction2 ResNet: out_indices=(2, 3)); the neck '
                    f'reads x[in_index].')
            try:
                feat = x[self.in_index]
            except IndexError:
                raise ValueError(
                    f'in_index={self.in_index} is out of range for '
                    f'{len(x)} maps') from None
        else:
            raise TypeError(f'TAMNeck expects a Tensor or a tuple of '
                            f'Tensors, got {type(x).__name__}')
        if feat.dim() != 5:
            raise ValueError(f'TAMNeck expects a 5-D map (N, C, T, H, W), '
                             f'got shape {tuple(feat.shape)}')
        return feat

