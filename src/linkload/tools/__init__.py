"""Build tools: turn ordinary objects into loadable module files (``makerel``: PowerPC
partially linked ELF files into Dolphin/Revolution RELs; ``nxflat``: ARM objects into NuttX
NXFLAT programs; ``mksymtab``: NuttX's export table in C)."""

from .makerel import MakerelResult, RelOutput, build, makerel

__all__ = ["MakerelResult", "RelOutput", "build", "makerel"]
