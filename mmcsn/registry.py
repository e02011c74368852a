"""Registry nodes of the ``mmcsn`` scope: aliases of MMAction2's.

mmcsn registers every module into MMAction2's registries
(``mmaction.registry``). This module exists for one reason: a config that
inherits ``_base_ = 'mmcsn::...'`` gets ``_scope_='mmcsn'`` on the dicts
it inherits (mmengine's rule for ``pkg::`` bases), and mmengine then
imports ``mmcsn.registry`` and builds from the registry node of scope
``mmcsn``. Each node below is an empty child of MMAction2's node of the
same name, so a lookup falls through to MMAction2 (and mmengine) and
builds exactly what the ``mmaction`` scope would. Register new modules
into ``mmaction.registry``, not here.
"""
from mmaction import registry as _mmaction
from mmengine.registry import Registry

__all__ = ['SCOPE', 'NODES']

SCOPE = 'mmcsn'


def _alias(parent: Registry) -> Registry:
    # the parent's locations: a lookup here imports what MMAction2's would
    return Registry(parent.name, parent=parent, scope=SCOPE,
                    locations=list(parent._locations) + ['mmcsn'])


# MMAction2's nodes that hang under mmengine's root registries (TOKENIZER
# is a root of its own, with no mmengine parent: nothing to alias)
NODES = {
    name: _alias(node)
    for name, node in vars(_mmaction).items()
    if isinstance(node, Registry) and node.parent is not None
}
globals().update(NODES)
__all__ += sorted(NODES)
