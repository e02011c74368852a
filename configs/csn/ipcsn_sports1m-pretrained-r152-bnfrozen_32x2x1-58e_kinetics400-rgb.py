# ip-CSN-152, Sports-1M pretrained, Kinetics-400, frozen BN. Published
# (MMAction2 79.07 / 93.82, VMZ 78.8 / 93.5) = VMZ's fine-tuned weights,
# converted (README).
_base_ = [
    'mmaction::_base_/models/ircsn_r152.py',
    './_base_/csn_kinetics400_32x2x1_58e.py'
]
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CSN',
        depth=152,
        bottleneck_mode='ip',
        norm_eval=True,
        bn_frozen=True,
        # VMZ ipCSN_152_sports1m_from_scratch pkl converted by MMAction2
        pretrained='https://download.openmmlab.com/mmaction/recognition/csn/'
        'ipcsn_from_scratch_r152_sports1m_20210617-7a7cc5b9.pth'),
    # VMZ's Sports1M / from-scratch models were trained with this mean/std
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[110.2008, 100.63983, 95.99475],
        std=[58.14765, 56.46975, 55.332195],
        format_shape='NCTHW'))
