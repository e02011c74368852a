# bLVNet-TAM-50 (alpha 2, beta 4), 32 frames (16 big-little pairs, "f16x2"),
# Kinetics-400 (400 classes).
# Official checkpoint: kinetics400-bLVNet-TAM-50-a2-b4-f16x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
_base_ = [
    './_base_/models/blvnet-tam_r50-a2-b4.py',
    './_base_/datasets/kinetics400_video.py',
    './_base_/schedules/sgd-nesterov_multistep-25e.py',
    './_base_/default_runtime.py'
]

num_frames = 32

model = dict(
    backbone=dict(num_segments=num_frames, pretrained=None),
    cls_head=dict(num_classes=400))
load_from = ('work_dirs/blvnet-tam-r50-a2-b4_imagenet-pretrained_'
             '8xb8-f8x2-50e_kinetics400-rgb/epoch_50.pth')

# the f8x2 pipelines of the dataset base, sampling num_frames frames
# (each of the 3 test clips is num_frames frames)
train_pipeline = [
    dict(step, num_clips=num_frames) if step.type == 'SampleFrames' else step
    for step in _base_.train_pipeline
]
val_pipeline = [
    dict(step, num_clips=num_frames) if step.type == 'SampleFrames' else step
    for step in _base_.val_pipeline
]
test_pipeline = [
    dict(step, clip_len=num_frames) if step.type == 'UniformSample' else step
    for step in _base_.test_pipeline
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# the paper's Kinetics fine-tuning lr at batch 64
optim_wrapper = dict(optimizer=dict(lr=0.005))
