"""The runtime linker (arch- and format-neutral)."""

from .job import AUTO
from .linker import REFUSE_POLICY, REL_POLICY, Linker
from .module import LoadedModule

__all__ = ["AUTO", "REFUSE_POLICY", "REL_POLICY", "Linker", "LoadedModule"]
