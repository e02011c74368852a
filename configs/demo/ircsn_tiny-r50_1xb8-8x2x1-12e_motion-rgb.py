# Tiny ir-CSN (Recognizer3D) for the motion demo: the CSN-50 bottleneck
# layout (1x1x1 -> depthwise 3x3x3 -> 1x1x1) with one block per stage and
# 1/4 of the width, on 8 frames taken every second frame (the whole clip).
_base_ = ['./_base_/motion_demo.py']

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='CSN',
        depth=50,
        pretrained=None,
        pretrained2d=False,
        base_channels=16,
        stage_blocks=(1, 1, 1, 1),
        # no stem max-pool: at 32 px it would leave 8x8 maps for stage 1
        with_pool1=False,
        with_pool2=False,
        bottleneck_mode='ir',
        norm_eval=False,
        zero_init_residual=False),
    cls_head=dict(
        type='I3DHead',
        num_classes={{_base_.num_classes}},
        in_channels=512,  # base_channels * 8 * expansion 4
        spatial_type='avg',
        dropout_ratio=0.2,
        init_std=0.01,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

# No Flip: a mirrored "move_left" clip is a "move_right" clip. Crops and
# resizes act on all frames alike and keep the time-reversal pairing.
train_pipeline = [
    dict(type='CheckedDecordInit', on_error='skip', io_backend='disk'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='CheckedDecordDecode', on_error='skip'),
    dict(type='RandomResizedCrop', area_range=(0.6, 1.0)),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='CheckedDecordInit', io_backend='disk'),
    dict(
        type='SampleFrames',
        clip_len=8,
        frame_interval=2,
        num_clips=1,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
