# bLVNet-TAM-50 (alpha 2, beta 4), 16 frames (8 big-little pairs, "f8x2"),
# Something-Something V1 (174 classes).
# Official checkpoint: st2stv1-bLVNet-TAM-50-a2-b4-f8x2.pth.tar
# (tools/convert/blvnet_to_mmcsn.py converts it; see README.md).
# Name: 8xb8 = 8 GPUs x 8 clips; f8x2 = 8 frame pairs = 16 frames (one
# per TSN segment), the official model name; 50e = 50 epochs.
_base_ = [
    './_base_/models/blvnet-tam_r50-a2-b4.py',
    './_base_/datasets/sthv1_rawframes.py',
    './_base_/schedules/sgd-nesterov_cosine-50e.py',
    './_base_/default_runtime.py'
]
