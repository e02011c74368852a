"""mmcsn models; importing this module registers them in MMAction2."""
import mmaction.models  # noqa: F401  (MMAction2's own names first)

from .backbones import *  # noqa: F401,F403
from .common import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
