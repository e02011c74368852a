# ir-CSN-152, IG-65M pretrained backbone, fine-tuned 58 epochs on
# Kinetics-400 with frozen BN (statistics and affine parameters).
# MMAction2 zoo: 82.84 / 95.92 (30 views).
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
        norm_eval=True,
        bn_frozen=True,
        # VMZ irCSN_152_ig65m_from_scratch_f125286141.pkl converted by
        # MMAction2 (README, "Checkpoints")
        pretrained='https://download.openmmlab.com/mmaction/recognition/csn/'
        'ircsn_from_scratch_r152_ig65m_20200807-771c4135.pth'))
