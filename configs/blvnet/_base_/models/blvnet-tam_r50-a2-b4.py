# bLVNet-TAM-50 (alpha 2, beta 4) on 8 big-little frame pairs ("f8x2"),
# initialised from the ImageNet bLResNet-50 of IBM/BigLittleNet, with the
# stock MMAction2 Recognizer2D + TSNHead. The configs set the depth, the
# number of frames and the classes of their row.
model = dict(
    # MMAction2's registries for the model and its data preprocessor even
    # when it is built without a Runner, e.g. MODELS.build(cfg.model)
    _scope_='mmaction',
    type='Recognizer2D',
    backbone=dict(
        type='bLResNet',
        depth=50,
        alpha=2,  # width ratio big / little branch
        beta=4,  # depth ratio big / little branch
        # T = 2 x 8 frames; odd frames -> big branch, even -> little
        num_segments=16,
        with_tam=True,
        blending_frames=3,
        frozen_stages=-1,
        norm_eval=False,
        # ImageNet bLResNet-50 of IBM/BigLittleNet: its keys map 1:1, the
        # 21 TAM weights are not in it and keep their kaiming init.
        pretrained='pretrained/ImageNet-bLResNet-50-a2-b4.pth.tar'),
    cls_head=dict(
        type='TSNHead',
        num_classes=174,  # Something-Something V1 / V2
        in_channels=2048,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.5,
        init_std=0.001,
        average_clips='prob'),
    # ImageNet normalisation in RGB order (official: /255, mean 0.485...)
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCHW'))
