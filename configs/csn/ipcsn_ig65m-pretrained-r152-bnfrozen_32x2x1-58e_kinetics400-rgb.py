# ip-CSN-152, IG-65M pretrained, Kinetics-400, frozen BN. The published
# numbers (MMAction2 82.68 / 95.69, VMZ 82.5 / 95.3) are VMZ's own
# fine-tuned weights, converted: test them with this config (README).
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
        # VMZ ipCSN_152_ig65m_from_scratch pkl converted by MMAction2
        pretrained='https://download.openmmlab.com/mmaction/recognition/csn/'
        'ipcsn_from_scratch_r152_ig65m_20210617-c4b99d38.pth'))
