"""Every mmcsn module is registered once, under the name the README lists.

The README's "Registered modules" table is the documentation users read;
this test keeps it and the registries in step, and checks that mmcsn
never shadows a name MMAction2 owns.
"""
import re
from pathlib import Path

import mmaction.registry as mmaction_registry
import mmengine.registry as mmengine_registry
from mmengine.registry import Registry

import mmcsn  # noqa: F401  (registers)

README = Path(__file__).resolve().parents[1] / 'README.md'


def documented() -> dict:
    """``{(registry, name)}`` rows of the README table."""
    text = README.read_text()
    block = text.split('<!-- registered:start -->')[1].split(
        '<!-- registered:end -->')[0]
    rows = re.findall(r'^\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|', block, re.M)
    assert rows, 'README registered-modules table is empty'
    return {(reg, name) for name, reg in rows}


def mmcsn_entries() -> list:
    """``(registry, name, obj)`` for every mmcsn object in any registry."""
    found = []
    seen = set()
    for module in (mmaction_registry, mmengine_registry):
        for reg_name in dir(module):
            reg = getattr(module, reg_name)
            if not isinstance(reg, Registry) or id(reg) in seen:
                continue
            seen.add(id(reg))
            for name, obj in reg.module_dict.items():
                if getattr(obj, '__module__', '').startswith('mmcsn'):
                    found.append((reg_name, name, obj))
    return found


def test_every_registered_module_is_documented_and_vice_versa():
    entries = mmcsn_entries()
    assert {(reg, name) for reg, name, _ in entries} == documented()


def test_each_module_is_registered_once():
    objs = [obj for _, _, obj in mmcsn_entries()]
    assert len(objs) == len(set(objs)), 'a class is registered twice'


def test_mmaction_names_are_not_shadowed():
    import mmaction.models.common as mmaction_common
    from mmaction.models.backbones.resnet3d_csn import ResNet3dCSN
    assert mmaction_registry.MODELS.get('ResNet3dCSN') is ResNet3dCSN
    # MMAction2's own public names (``TAM`` among them, TANet's module)
    # must stay MMAction2's: no mmcsn module may take one.
    ours = {name for _, name, _ in mmcsn_entries()}
    theirs = set(mmaction_common.__all__) | {
        name for reg in (mmaction_registry.MODELS, mmaction_registry.HOOKS,
                         mmaction_registry.TRANSFORMS)
        for name, obj in reg.module_dict.items()
        if obj.__module__.startswith('mmaction')
    }
    assert {'TAM', 'ResNet3dCSN', 'DecordInit'} <= theirs
    assert not ours & theirs
