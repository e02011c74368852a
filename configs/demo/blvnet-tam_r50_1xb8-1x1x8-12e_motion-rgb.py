# bLVNet-TAM for the motion demo: the big-little ResNet-50 with temporal
# aggregation modules (TAM) in a stock Recognizer2D + TSNHead, on 8 ordered
# segments (4 little/big frame pairs). Depth 50 is the smallest bLResNet.
_base_ = ['./_base_/motion_demo_8seg.py']

num_segments = 8  # = the base pipeline's segments
model = dict(
    type='Recognizer2D',
    backbone=dict(
        type='bLResNet',
        depth=50,
        alpha=2,
        beta=4,
        num_segments=num_segments,
        with_tam=True,
        blending_frames=3,
        norm_eval=False),
    cls_head=dict(
        type='TSNHead',
        num_classes={{_base_.num_classes}},
        in_channels=2048,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.2,
        init_std=0.001,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCHW'))

# 25 M parameters from scratch: half the base learning rate keeps the first
# epochs stable
optim_wrapper = dict(optimizer=dict(lr=1e-3))
