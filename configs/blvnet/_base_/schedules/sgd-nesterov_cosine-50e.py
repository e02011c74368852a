# The official recipe (IBM/bLVNet-TAM opts.py defaults and README
# command): SGD + nesterov, lr 0.01 at a global batch of 64 (8 GPUs x 8
# clips), cosine over 50 epochs.
max_epochs = 50
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# lr 0.01 for the README's global batch 64; other batches: linear rule
# lr = 0.01 x batch / 64 (--auto-scale-lr does it from base_batch_size).
# Weight decay on every parameter (BN and TAM too), no clipping, no AMP.
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4,
        nesterov=True))
# CosineAnnealingLR(T_max=epochs, eta_min=0), stepped once per epoch
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
