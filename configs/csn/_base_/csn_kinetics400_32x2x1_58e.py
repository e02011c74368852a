# Kinetics-400 data, 32x2x1 sampling and MMAction2's 58-epoch CSN schedule
# (configs/recognition/csn in MMAction2 1.2.0), shared by the CSN configs.
# Test protocol: 10 clips x ThreeCrop 256 = 30 views, short side 256.
_base_ = ['mmaction::_base_/default_runtime.py']

# dataset settings: point these at your copy of Kinetics-400. They are read
# once, when this file is loaded: a config that inherits a CSN config moves
# the data with the dataset keys of each split instead, e.g.
#   train_dataloader = dict(dataset=dict(
#       ann_file='k400/train.txt', data_prefix=dict(video='k400/train')))
# and the same for val_dataloader and test_dataloader.
dataset_type = 'VideoDataset'
data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
ann_file_test = ann_file_val
file_client_args = dict(io_backend='disk')

train_pipeline = [
    dict(type='CheckedDecordInit', on_error='skip', **file_client_args),
    dict(type='SampleFrames', clip_len=32, frame_interval=2, num_clips=1),
    dict(type='CheckedDecordDecode', on_error='skip'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='CheckedDecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=32,
        frame_interval=2,
        num_clips=1,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='CheckedDecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=32,
        frame_interval=2,
        num_clips=10,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=12,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

# schedule: fine-tuning a pretrained backbone, 8 GPUs x 12 clips
max_epochs = 58
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=3)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=16),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[32, 48],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=5e-4, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=40, norm_type=2))

default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=5))
# --resume restores the Python/numpy/torch RNG streams too (docs/safety.md)
# StrictLoadHook: test.py / load_from / --resume refuse a checkpoint that
# does not fit the model (opt out: --cfg-options strict_load=False)
# VersionInfoHook: the log records mmcsn/MMAction2/mmengine/torch versions
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='StrictLoadHook'),
    dict(type='VersionInfoHook')
]
# frozen BN affine parameters get no gradient (bn_frozen=True)
find_unused_parameters = True
# base_batch_size = 8 GPUs x 12 clips; enable with --auto-scale-lr
auto_scale_lr = dict(enable=False, base_batch_size=96)
