# VMZ's ip-CSN-152 Kinetics-400 models (the caffe2 zoo's .pkl files and
# the PyTorch ipCSN_152_*_kinetics weights), converted with
#   python tools/convert/caffe2_to_mmcsn.py SRC.pkl DST.pth \
#       --mode ip --depth 152
#   python tools/convert/vmz_to_mmcsn.py SRC.pth DST.pth --mode ip
# and tested as VMZ measured its published numbers: the ir-CSN-152 VMZ
# config (DenseI3DHead, VMZ's normalisation) with ip blocks.
_base_ = ['./ircsn_vmz-r152_32x2x1_kinetics400-rgb.py']

model = dict(backbone=dict(bottleneck_mode='ip'))
