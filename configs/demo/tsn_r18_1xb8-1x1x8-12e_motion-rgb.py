# TSN baseline for the motion demo: a 2D ResNet-18 on 8 segments with an
# average consensus. It sees each frame alone and averages the scores, so it
# is blind to frame order: on time-reversed pairs it can at best name the
# pair (25% top-1, 50% within each pair).
_base_ = ['./_base_/motion_demo_8seg.py']

model = dict(
    type='Recognizer2D',
    backbone=dict(
        type='ResNet',
        depth=18,
        pretrained=None,
        num_stages=3,  # 256 channels are plenty for 64 px frames
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, ),
        norm_eval=False),
    cls_head=dict(
        type='TSNHead',
        num_classes={{_base_.num_classes}},
        in_channels=256,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.2,
        init_std=0.01,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCHW'))
