# Shared settings of the demo configs: the embedded time-reversed motion
# dataset (tools/data/make_motion_clips.py), a CPU-sized schedule and CPU
# distributed settings. Each demo config adds its model and the pipelines.
_base_ = ['mmaction::_base_/default_runtime.py']

# mmcsn registers its backbones; loaded in every process (DDP ranks too).
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

# MMAction2's registries for the model (and its data preprocessor) even
# when it is built without a Runner, e.g. MODELS.build(cfg.model)
model = dict(_scope_='mmaction')

# dataset settings; paths are relative to the working directory (the repo).
# The variables are read once, when this file is loaded: a config that
# inherits a demo config moves the data with the dataset keys of each split
# (tools/demo.py's data_options() writes them), e.g.
#   train_dataloader = dict(dataset=dict(
#       ann_file='my_data/train.txt', data_prefix=dict(video='my_data')))
# and the same for val_dataloader (val.txt) and test_dataloader (test.txt).
dataset_type = 'VideoDataset'
data_root = 'data/demo'
ann_file_train = f'{data_root}/train.txt'
ann_file_val = f'{data_root}/val.txt'
ann_file_test = f'{data_root}/test.txt'
num_classes = 8
file_client_args = dict(io_backend='disk')

# The clips are tiny and decoding is cheap: workers would only add forked
# processes on a 2-core machine. Each config sets the pipelines.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root)))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root),
        test_mode=True))
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root),
        test_mode=True))
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

# schedule: short, from scratch, AdamW with a linear warm-up and cosine decay
max_epochs = 12
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=20, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5,
         by_epoch=True, begin=1, end=max_epochs, convert_to_iter_based=True)
]

# runtime: frequent logs, one kept checkpoint plus the best one
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, ignore_last=False),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1,
        save_best='auto'))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
# --resume restores the Python/numpy/torch RNG streams too (docs/safety.md)
# StrictLoadHook: test.py / load_from / --resume refuse a checkpoint that
# does not fit the model (opt out: --cfg-options strict_load=False)
# VersionInfoHook: the log records mmcsn/MMAction2/mmengine/torch versions
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='StrictLoadHook'),
    dict(type='VersionInfoHook')
]

# Distributed training (tools/dist_train.sh CONFIG 2) needs no settings:
# without CUDA, mmcsn picks gloo and a DDP wrapper without device_ids
# (README, "Distributed training"). Kept as they were; with one GPU per
# process device_ids=None works as well. Use backend='nccl' on GPUs.
env_cfg = dict(dist_cfg=dict(backend='gloo'))
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel',
    device_ids=None,
    broadcast_buffers=False)
randomness = dict(seed=0, deterministic=False, diff_rank_seed=False)
auto_scale_lr = dict(enable=False, base_batch_size=8)
