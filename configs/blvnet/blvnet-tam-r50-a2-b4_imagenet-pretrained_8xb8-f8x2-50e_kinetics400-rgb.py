# bLVNet-TAM-50 (alpha 2, beta 4), 16 frames (8 big-little pairs, "f8x2"),
# Kinetics-400 (400 classes).
# Official checkpoint: kinetics400-bLVNet-TAM-50-a2-b4-f8x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
_base_ = [
    './_base_/models/blvnet-tam_r50-a2-b4.py',
    './_base_/datasets/kinetics400_video.py',
    './_base_/schedules/sgd-nesterov_cosine-50e.py',
    './_base_/default_runtime.py'
]

model = dict(cls_head=dict(num_classes=400))
