# bLVNet-TAM-101 (alpha 2, beta 4), 32 frames (16 big-little pairs, "f16x2"),
# Something-Something V1 (174 classes).
# Official checkpoint: st2stv1-bLVNet-TAM-101-a2-b4-f16x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
# Same recipe as the R50 config it inherits; only the depth and the f8x2
# model it starts from change.
_base_ = [
    './blvnet-tam-r50-a2-b4_sthv1-f8-pretrained_'
    '8xb8-f16x2-25e_sthv1-rgb.py'
]

model = dict(backbone=dict(depth=101))
load_from = ('work_dirs/blvnet-tam-r101-a2-b4_imagenet-pretrained_'
             '8xb8-f8x2-50e_sthv1-rgb/epoch_50.pth')
