# bLVNet-TAM-50 (alpha 2, beta 4), 16 frames (8 big-little pairs, "f8x2"),
# Something-Something V2 (174 classes).
# Official checkpoint: st2stv2-bLVNet-TAM-50-a2-b4-f8x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
# The official recipe (IBM/bLVNet-TAM opts.py defaults and README
# command): SGD + nesterov, lr 0.01 at a global batch of 64, cosine over
# 50 epochs, init from the ImageNet bLResNet-50 (IBM/BigLittleNet).
# Name: 8xb8 = 8 GPUs x 8 clips; f8x2 = 8 frame pairs = 16 frames (one
# per TSN segment), the official model name; 50e = 50 epochs.
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

num_frames = 16  # T = 2 x 8; odd frames -> big branch, even -> little

# model settings
model = dict(
    type='Recognizer2D',
    backbone=dict(
        type='bLResNet',
        depth=50,
        alpha=2,  # width ratio big / little branch
        beta=4,  # depth ratio big / little branch
        num_segments=num_frames,
        with_tam=True,
        blending_frames=3,
        frozen_stages=-1,
        norm_eval=False,
        # ImageNet bLResNet-50 of IBM/BigLittleNet: its keys map 1:1, the
        # 21 TAM weights are not in it and keep their kaiming init.
        pretrained='pretrained/ImageNet-bLResNet-50-a2-b4.pth.tar'),
    cls_head=dict(
        type='TSNHead',
        num_classes=174,
        in_channels=2048,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.5,
        init_std=0.001,
        average_clips='prob'),
    # ImageNet normalisation in RGB order (official: /255, mean 0.485...)
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCHW'))

# dataset settings (MMAction2's sthv2 layout)
dataset_type = 'VideoDataset'
data_root = 'data/sthv2/videos'
data_root_val = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

file_client_args = dict(io_backend='disk')
train_pipeline = [
    # a broken training video is logged by name and another sample is
    # drawn (docs/safety.md); val/test keep the default on_error='raise'
    dict(type='CheckedDecordInit', on_error='skip', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=num_frames),
    dict(type='CheckedDecordDecode', on_error='skip'),
    # the official data preparation stores frames at short side 256
    dict(type='Resize', scale=(-1, 256)),
    dict(
        type='MultiScaleCrop',
        input_size=224,
        scales=(1, 0.875, 0.75, 0.66),
        random_crop=False,
        max_wh_scale_gap=1,
        num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    # The official code flips Something-Something too, without
    # swapping left/right labels; kept for a faithful
    # reproduction (MMAction2's TSM configs pass a
    # flip_label_map instead).
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# Official test.py with --disable_scaleup: short side 224, centre crop
# 224, one clip of segment centres (= SampleFrames test_mode, clip_len 1).
val_pipeline = [
    dict(type='CheckedDecordInit', **file_client_args),
    dict(
        type='SampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=num_frames,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# single clip, single centre crop (the README protocol)
test_pipeline = val_pipeline

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
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

# schedule (official opts.py defaults)
max_epochs = 50
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# lr 0.01 for the README's global batch 64; other batches: linear rule
# lr = 0.01 x batch / 64 (--auto-scale-lr does it from base_batch_size).
# Weight decay on every parameter (BN and TAM too), no clipping, no AMP.
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4,
        nesterov=True))
# CosineAnnealingLR(T_max=epochs, eta_min=0), stepped once per epoch
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)

default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=3))
# Store / restore the Python, numpy and torch RNG states with every
# checkpoint so that --resume continues the same run (docs/safety.md;
# exact with num_workers=0 or persistent_workers=False). The runtime base
# has no custom hooks; configs that inherit this one keep this list.
custom_hooks = [dict(type='RNGStateHook')]
