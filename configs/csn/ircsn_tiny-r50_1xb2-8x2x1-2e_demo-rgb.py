# A tiny ir-CSN (CSN-50 block layout, one block per stage, 1/4 width) that
# trains on any VideoDataset in minutes on a CPU:
#   python tools/train.py \
#       configs/csn/ircsn_tiny-r50_1xb2-8x2x1-2e_demo-rgb.py --work-dir /tmp/x
# The variables below are read once, when this file is loaded: edit them
# here, or, in a config that inherits this one, set the dataset keys
# (re-assigning `data_root` there would not reach the dicts below):
#   train_dataloader = dict(dataset=dict(
#       ann_file='my_data/train.txt', data_prefix=dict(video='my_data')))
#   val_dataloader = dict(dataset=dict(
#       ann_file='my_data/val.txt', data_prefix=dict(video='my_data')))
#   test_dataloader = val_dataloader
# `data_prefix.video` holds the videos; the annotation files list
# "relative/path.mp4 label" per line.
data_root = 'data/demo'
ann_file_train = f'{data_root}/train.txt'
ann_file_val = f'{data_root}/val.txt'
num_classes = 8

_base_ = [
    'mmaction::_base_/models/ircsn_r152.py',
    'mmaction::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CSN',
        depth=50,
        bottleneck_mode='ir',
        stage_blocks=(1, 1, 1, 1),
        base_channels=16,
        norm_eval=False,
        bn_frozen=False,
        pretrained=None),
    cls_head=dict(
        num_classes=num_classes,
        in_channels=512,  # base_channels * 8 * expansion 4
        dropout_ratio=0.2),
    # the base's max_testing_views chunking needs val batch size 1
    test_cfg=None)

dataset_type = 'VideoDataset'
file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(type='CheckedDecordInit', on_error='skip', **file_client_args),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='CheckedDecordDecode', on_error='skip'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='RandomResizedCrop', area_range=(0.6, 1.0)),
    dict(type='Resize', scale=(56, 56), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='CheckedDecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=8,
        frame_interval=2,
        num_clips=1,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='CenterCrop', crop_size=56),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# single centre clip, as in validation (read by MMAction2's inferencer)
test_pipeline = val_pipeline
# no workers: tiny clips decode fast, forked workers only cost memory
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=2, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=20, norm_type=2))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
# --resume restores the Python/numpy/torch RNG streams too (docs/safety.md)
# StrictLoadHook: test.py / load_from / --resume refuse a checkpoint that
# does not fit the model (opt out: --cfg-options strict_load=False)
# VersionInfoHook: the log records mmcsn/MMAction2/mmengine/torch versions
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='StrictLoadHook'),
    dict(type='VersionInfoHook')
]
