# Something-Something V1 as JPEG frames (MMAction2's sthv1 layout,
# '{:05}.jpg'). Same pipelines as video_f8x2.py, with the frames read by
# RawFrameDecode in place of the two decord steps.
_base_ = ['./video_f8x2.py']

dataset_type = 'RawframeDataset'
data_root = 'data/sthv1/rawframes'
data_root_val = 'data/sthv1/rawframes'
ann_file_train = 'data/sthv1/sthv1_train_list_rawframes.txt'
ann_file_val = 'data/sthv1/sthv1_val_list_rawframes.txt'
ann_file_test = 'data/sthv1/sthv1_val_list_rawframes.txt'

train_pipeline = [
    dict(type='RawFrameDecode', **_base_.file_client_args)
    if step.type == 'CheckedDecordDecode' else step
    for step in _base_.train_pipeline if step.type != 'CheckedDecordInit'
]
val_pipeline = [
    dict(type='RawFrameDecode', **_base_.file_client_args)
    if step.type == 'CheckedDecordDecode' else step
    for step in _base_.val_pipeline if step.type != 'CheckedDecordInit'
]
test_pipeline = val_pipeline

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(img=data_root),
        filename_tmpl='{:05}.jpg',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(img=data_root_val),
        filename_tmpl='{:05}.jpg',
        pipeline=val_pipeline))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(img=data_root_val),
        filename_tmpl='{:05}.jpg',
        pipeline=test_pipeline))
