# bLVNet-TAM-50 (alpha 2, beta 4), 32 frames (16 big-little pairs, "f16x2"),
# Something-Something V2 (174 classes).
# Official checkpoint: st2stv2-bLVNet-TAM-50-a2-b4-f16x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
_base_ = [
    './_base_/models/blvnet-tam_r50-a2-b4.py',
    './_base_/datasets/sthv2_video.py',
    './_base_/schedules/sgd-nesterov_multistep-25e.py',
    './_base_/default_runtime.py'
]

num_frames = 32

model = dict(backbone=dict(num_segments=num_frames, pretrained=None))
load_from = ('work_dirs/blvnet-tam-r50-a2-b4_imagenet-pretrained_'
             '8xb8-f8x2-50e_sthv2-rgb/epoch_50.pth')

# the f8x2 pipelines of the dataset base, sampling num_frames frames
train_pipeline = [
    dict(step, num_clips=num_frames) if step.type == 'SampleFrames' else step
    for step in _base_.train_pipeline
]
val_pipeline = [
    dict(step, num_clips=num_frames) if step.type == 'SampleFrames' else step
    for step in _base_.val_pipeline
]
test_pipeline = val_pipeline

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
