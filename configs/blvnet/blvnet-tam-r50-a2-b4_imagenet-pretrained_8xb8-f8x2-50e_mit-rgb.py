# bLVNet-TAM-50 (alpha 2, beta 4), 16 frames (8 big-little pairs, "f8x2"),
# Moments in Time (339 classes).
# The official code never trained MiT and no released model or number
# exists (README.md); this is the recipe applied to MiT.
_base_ = [
    './_base_/models/blvnet-tam_r50-a2-b4.py',
    './_base_/datasets/mit_video.py',
    './_base_/schedules/sgd-nesterov_cosine-50e.py',
    './_base_/default_runtime.py'
]

model = dict(cls_head=dict(num_classes=339))
