# Runtime shared by every bLVNet-TAM config: MMAction2's runtime plus the
# mmcsn import, checkpointing and RNG-state hooks.
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['mmcsn'], allow_failed_imports=False)

default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=3))
# Store / restore the Python, numpy and torch RNG states with every
# checkpoint so that --resume continues the same run (docs/safety.md;
# exact with num_workers=0 or persistent_workers=False). The runtime base
# has no custom hooks; configs that inherit this one keep this list.
# StrictLoadHook: test.py / load_from / --resume refuse a checkpoint that
# does not fit the model (opt out: --cfg-options strict_load=False)
# VersionInfoHook: the log records mmcsn/MMAction2/mmengine/torch versions
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='StrictLoadHook'),
    dict(type='VersionInfoHook')
]
