"""Checkpoints: the one intake, safe I/O and pure key conversion.

=================  ======================================================
module             job
=================  ======================================================
``intake``         path/URL -> safe read -> unwrap -> convert -> strict
``errors``         one exception class per reason a file is unusable
``io``             weights-only reading, unwrapping, atomic writing
``caffe2_pickle``  numpy-only unpickler for VMZ caffe2 blob pickles
``download``       URL cache keyed by URL, atomic, sha256-checked
``strict``         strict load with a named key report
``csn``            CSN layouts -> mmcsn (rules in ``csn_rules``)
``blvnet``         bLVNet-TAM / bLResNet files -> mmcsn
``summary``        converter meta record and success summary
``cli``            the converters' shared command line
=================  ======================================================
"""
from .blvnet import (
    blresnet_family,
    blresnet_imagenet_to_mmcsn,
    blvnet_tam_to_mmcsn,
    convert_blvnet_checkpoint,
    detect_blvnet_format,
)
from .csn import (
    CSN_FAMILY,
    caffe2_to_mmcsn,
    convert_csn_checkpoint,
    convert_to_mmcsn,
    convert_to_mmcsn_recognizer,
    detect_csn_layout,
    mmaction_to_mmcsn,
    pytorchvideo_to_mmcsn,
    vmz_pt_to_mmcsn,
)
from .errors import (
    CheckpointError,
    CheckpointIsADirectoryError,
    CheckpointNotFoundError,
    CheckpointPermissionError,
    ChecksumError,
    CorruptCheckpointError,
    DownloadError,
    KeyMismatchError,
    NoStateDictError,
    OutputExistsError,
    UnsafeCheckpointError,
    WrongFamilyError,
)
from .intake import (
    CheckpointFamily,
    PretrainedSpec,
    load_pretrained,
    read_checkpoint,
    resolve_pretrained,
)
from .io import (
    load_checkpoint_file,
    save_checkpoint_atomic,
    unwrap_state_dict,
)
from .strict import describe_key_mismatch, load_state_dict_checked

__all__ = [
    'CheckpointError', 'CheckpointNotFoundError',
    'CheckpointIsADirectoryError', 'CheckpointPermissionError',
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'WrongFamilyError',
    'NoStateDictError', 'KeyMismatchError', 'OutputExistsError',
    'ChecksumError', 'DownloadError', 'CheckpointFamily', 'PretrainedSpec',
    'load_pretrained', 'read_checkpoint', 'resolve_pretrained',
    'describe_key_mismatch', 'load_checkpoint_file',
    'load_state_dict_checked', 'save_checkpoint_atomic', 'unwrap_state_dict',
    'CSN_FAMILY', 'caffe2_to_mmcsn', 'convert_csn_checkpoint',
    'convert_to_mmcsn', 'convert_to_mmcsn_recognizer', 'detect_csn_layout',
    'mmaction_to_mmcsn', 'pytorchvideo_to_mmcsn', 'vmz_pt_to_mmcsn',
    'blresnet_family', 'blresnet_imagenet_to_mmcsn', 'blvnet_tam_to_mmcsn',
    'convert_blvnet_checkpoint', 'detect_blvnet_format'
]
