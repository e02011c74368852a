# Kinetics-400 videos (MMAction2's kinetics400 layout), tested on 3 clips
# x 3 crops.
_base_ = ['./video_f8x2.py']

data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
ann_file_test = 'data/kinetics400/kinetics400_val_list_videos.txt'

# Kinetics: 3 clips x 3 crops (the view count implied by the 0.84 TFLOPs
# of the TimeSformer table; the paper's count is unverified). Each clip
# takes one frame per segment, at 1/4, 1/2 and 3/4 of the segment; the
# official --num_clips instead shifts the centres by -1/0/+1 frame. Three
# 224 crops along the long side of the short-side-224 frames. Every view
# is a contiguous group of num_frames frames, as bLResNet needs.
test_pipeline = [
    dict(type='CheckedDecordInit', **_base_.file_client_args),
    dict(
        type='UniformSample',
        clip_len=_base_.num_frames,
        num_clips=3,
        test_mode=True),
    dict(type='CheckedDecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = dict(
    dataset=dict(
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline))
