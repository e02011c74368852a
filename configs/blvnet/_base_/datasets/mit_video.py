# Moments in Time videos (MMAction2's mit layout).
_base_ = ['./video_f8x2.py']

data_root = 'data/mit/videos/training'
data_root_val = 'data/mit/videos/validation'
ann_file_train = 'data/mit/mit_train_list_videos.txt'
ann_file_val = 'data/mit/mit_val_list_videos.txt'
ann_file_test = 'data/mit/mit_val_list_videos.txt'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_test, data_prefix=dict(video=data_root_val)))
