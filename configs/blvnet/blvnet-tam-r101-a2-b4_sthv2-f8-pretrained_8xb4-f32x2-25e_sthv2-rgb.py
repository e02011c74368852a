# bLVNet-TAM-101 (alpha 2, beta 4), 64 frames (32 big-little pairs, "f32x2"),
# Something-Something V2 (174 classes).
# Official checkpoint: st2stv2-bLVNet-TAM-101-a2-b4-f32x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
# Same recipe as the f16x2 config it inherits, on 64 frames; 8xb4 = 8 GPUs
# x 4 clips, so lr 0.005 = 0.01 x 32 / 64.
_base_ = [
    './blvnet-tam-r101-a2-b4_sthv2-f8-pretrained_'
    '8xb8-f16x2-25e_sthv2-rgb.py'
]

num_frames = 64

model = dict(backbone=dict(num_segments=num_frames))

# the pipelines of the base, sampling num_frames frames
train_pipeline = [
    dict(step, num_clips=num_frames) if step.type == 'SampleFrames' else step
    for step in _base_.train_pipeline
]
val_pipeline = [
    dict(step, num_clips=num_frames) if step.type == 'SampleFrames' else step
    for step in _base_.val_pipeline
]
test_pipeline = val_pipeline

train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(optimizer=dict(lr=0.005))
auto_scale_lr = dict(base_batch_size=32)
