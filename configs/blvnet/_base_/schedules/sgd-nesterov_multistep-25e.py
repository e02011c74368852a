# Fine-tuning a longer clip ("{dataset}-f8-pretrained" in the config
# names) from the f8x2 config of the same depth and dataset: load_from its
# epoch_50.pth; TAM weights are per channel, so the 8x2 weights load
# unchanged. Paper schedule (secondary source, see README.md): 25 epochs,
# lr 0.01 at batch 64 (Kinetics: 0.005) divided by 10 every 10 epochs; the
# optimizer is the official one.
_base_ = ['./sgd-nesterov_cosine-50e.py']

max_epochs = 25
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[10, 20],
        gamma=0.1)
]
