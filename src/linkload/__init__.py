"""linkload: a relocatable module system.

Build compact relocatable modules from ordinary object files, load them into a running program
(this process, or an emulated target), link them against it and against each other with direct
references, unlink and reload them, and place programs into memory regions.

>>> from linkload import Linker
>>> ld = Linker.native()          # this process is the static module
>>> m = ld.link("plugin.o")       # doctest: +SKIP
"""

from .errors import (
    ConfigError,
    DebuggerError,
    FixupError,
    FormatError,
    LinkError,
    ModuleStateError,
    PlacementError,
    RelocationOverflowError,
    UndefinedSymbolError,
    UnsupportedError,
)
from .formats import read_module
from .link import Linker, LoadedModule
from .model import Module, Section, SectionKind

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "FixupError",
    "DebuggerError",
    "FormatError",
    "LinkError",
    "Linker",
    "LoadedModule",
    "Module",
    "ModuleStateError",
    "PlacementError",
    "RelocationOverflowError",
    "Section",
    "SectionKind",
    "UndefinedSymbolError",
    "UnsupportedError",
    "read_module",
]
