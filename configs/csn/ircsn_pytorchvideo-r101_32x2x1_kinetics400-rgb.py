# PyTorchVideo's hub csn_r101 (CSN_32x2_R101.pyth, Kinetics-400, published
# 77.00 / 92.90 at 10 clips x 3 crops of 32x256x256) converted with
#   python tools/convert/pytorchvideo_to_mmcsn.py CSN_32x2_R101.pyth DST.pth
# and tested as PyTorchVideo tests it: its BN eps (1e-5), its stem max-pool,
# its normalisation (mean 0.45, std 0.225 of [0, 1] input) and its head:
# a stride-1 AvgPool3d (4, 7, 7), the classifier at every position, then
# the mean (DenseI3DHead; I3DHead pools the 8x8 map of a 256 crop
# globally and gives different logits).
_base_ = [
    'mmaction::_base_/models/ircsn_r152.py',
    './_base_/csn_kinetics400_32x2x1_58e.py'
]
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CSN',
        depth=101,
        bottleneck_mode='ir',
        with_pool1=True,
        norm_cfg=dict(type='BN3d', requires_grad=True, eps=1e-5),
        norm_eval=False,
        bn_frozen=False,
        pretrained=None),
    cls_head=dict(
        type='DenseI3DHead',
        in_channels=2048,
        num_classes=400,
        pool_size=(4, 7, 7),
        dropout_ratio=0.0),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[114.75, 114.75, 114.75],
        std=[57.375, 57.375, 57.375],
        format_shape='NCTHW'))
