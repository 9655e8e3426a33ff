"""linkload: a relocatable module system.

Build compact relocatable modules from ordinary object files, load them into a running program
(this process, or an emulated target), link them against it and against each other with direct
references, unlink and reload them, and place programs into memory regions.

>>> from linkload import Linker
>>> ld = Linker.native()          # this process is the static module
>>> m = ld.link("plugin.o")       # doctest: +SKIP

The names below are imported when first used (``linkload.Linker`` loads the linker, the
spaces and numpy; ``linkload.LinkError`` only the errors), so that a command or a tool that
needs one part of the package does not pay for the others.
"""

from __future__ import annotations

import importlib

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
    UnsupportedFixupError,
)

__version__ = "0.1.0"

#: Exported name -> the module that defines it, imported on first use.
_LAZY = {
    "Linker": ".link",
    "LoadedModule": ".link",
    "Module": ".model",
    "Section": ".model",
    "SectionKind": ".model",
    "read_module": ".formats",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'linkload' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later uses find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "UnsupportedFixupError",
    "read_module",
]
