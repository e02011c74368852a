# ir-CSN-50, IG-65M pretrained backbone, fine-tuned 58 epochs on
# Kinetics-400 with frozen BN. MMAction2 zoo: 79.44 / 94.26 (30 views).
_base_ = [
    'mmaction::_base_/models/ircsn_r152.py',
    './_base_/csn_kinetics400_32x2x1_58e.py'
]
custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CSN',
        depth=50,
        bottleneck_mode='ir',
        norm_eval=True,
        bn_frozen=True,
        # VMZ irCSN_50_ig65m_from_scratch pkl converted by MMAction2
        pretrained='https://download.openmmlab.com/mmaction/recognition/csn/'
        'ircsn_from_scratch_r50_ig65m_20210617-ce545a37.pth'))
