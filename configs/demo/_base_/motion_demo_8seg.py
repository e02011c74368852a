# The 2D demo models (bLVNet-TAM and the TSN baseline) see the same frames:
# TSN sampling, 8 ordered segments of one frame each. No Flip (a mirrored
# "move_left" clip is a "move_right" clip); crops act on all frames alike.
_base_ = ['./motion_demo.py']

num_segments = 8
train_pipeline = [
    dict(type='CheckedDecordInit', on_error='skip', io_backend='disk'),
    dict(
        type='SampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=num_segments),
    dict(type='CheckedDecordDecode', on_error='skip'),
    dict(type='RandomResizedCrop', area_range=(0.6, 1.0)),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='CheckedDecordInit', io_backend='disk'),
    dict(
        type='SampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=num_segments,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
