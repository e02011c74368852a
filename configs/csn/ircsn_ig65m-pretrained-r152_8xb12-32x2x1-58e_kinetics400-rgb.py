# ir-CSN-152, IG-65M pretrained backbone, fine-tuned 58 epochs on
# Kinetics-400 with BN TRAINED (bn_frozen=False, norm_eval=False).
# MMAction2's config of this name inherits bn_frozen=True from its bnfrozen
# sibling, so its published 82.87 top-1 comes from frozen-BN training; this
# config really trains BN (README, "BN frozen or not").
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
        # VMZ irCSN_152_ig65m_from_scratch_f125286141.pkl as converted by
        # MMAction2 (README, "Checkpoints")
        pretrained='https://download.openmmlab.com/mmaction/recognition/'
        'csn/ircsn_from_scratch_r152_ig65m_20200807-771c4135.pth'))
