# VMZ's ir-CSN-152 Kinetics-400 models (the caffe2 zoo's .pkl files and
# the PyTorch irCSN_152_*_kinetics weights), converted with
#   python tools/convert/caffe2_to_mmcsn.py SRC.pkl DST.pth \
#       --mode ir --depth 152
#   python tools/convert/vmz_to_mmcsn.py SRC.pth DST.pth --mode ir
# and tested as VMZ measured its published numbers: 32x256x256 views with
# convolutional prediction -- a stride-1 average pool of (clip_len / 8, 7,
# 7), the FC at every position, then the mean (DenseI3DHead) -- and VMZ's
# normalisation (mean 0.43216/0.394666/0.37645, std 0.22803/0.22145/
# 0.216989 of [0, 1] input).
_base_ = [
    'mmaction::_base_/models/ircsn_r152.py',
    './_base_/csn_kinetics400_32x2x1_58e.py'
]
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CSN',
        depth=152,
        bottleneck_mode='ir',
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
        mean=[110.2008, 100.63983, 95.99475],
        std=[58.14765, 56.46975, 55.332195],
        format_shape='NCTHW'))
