"""The runtime linker (arch- and format-neutral)."""

from .linker import AUTO, Linker, LoadedModule

__all__ = ["AUTO", "Linker", "LoadedModule"]
