"""The runtime linker (CPU- and format-neutral): the passes of one link (:mod:`.job`), the
module graph (:mod:`.linker`), and the rebinding of references (:mod:`.rebind`)."""

from .context import AUTO
from .linker import REFUSE_POLICY, REL_POLICY, Linker
from .module import LoadedModule

__all__ = ["AUTO", "REFUSE_POLICY", "REL_POLICY", "Linker", "LoadedModule"]
