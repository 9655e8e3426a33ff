"""File formats: one file per format, each turning bytes into a :class:`~linkload.model.Module`
(and, for the formats linkload writes, back), and describing them for ``linkload dump``.

This file is their registry: a new format is one file here and one entry in :data:`FORMATS`.
Symbol lists and maps (:mod:`.symtab`) name a static module's symbols and are read where a
static module is given, not through the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import FormatError
from ..model import Module
from . import dol, elf, nxflat, pe, rel
from .base import Source, module_name, read_bytes


@dataclass(frozen=True)
class Format:
    """A file format: how to recognise it (its ``magic`` at offset 0, else a file name
    extension), read it into a Module (``read(data, name, file)``), describe it
    (``dump(data, file, disasm=, plf=)`` yields lines) and, where linkload writes it, write a
    Module read from it back (``write(module)``)."""

    name: str
    read: Callable[..., Module]
    dump: Callable[..., Iterator[str]]
    magic: bytes | None = None
    extensions: tuple[str, ...] = ()
    write: Callable[[Module], bytes] | None = None
    # Reads a linked program for the locator: its fixups as relocations and each symbol's
    # section (``Module.symbol_sections``); None: programs of this format cannot be located.
    read_program: Callable[..., Module] | None = None


FORMATS: tuple[Format, ...] = (
    Format("elf", elf.read, elf.dump, magic=elf.MAGIC, read_program=elf.read_program),
    Format("rel", rel.read, rel.dump, extensions=(".rel",), write=rel.write_module),
    Format("dol", dol.read, dol.dump, extensions=(".dol",)),
    Format("nxflat", nxflat.read, nxflat.dump, magic=nxflat.MAGIC, extensions=(".nxf",),
           write=nxflat.write_module),
    Format("pe", pe.read, pe.dump, magic=pe.MAGIC, extensions=(".exe", ".dll"),
           read_program=pe.read),
)


def guess_format(data: bytes | bytearray | memoryview, file: str,
                 formats: Sequence[Format] | None = None) -> Format | None:
    """The format of a file among ``formats`` (default: every registered one): by its magic,
    else by its extension (REL and DOL have no magic); None if neither tells."""
    formats = FORMATS if formats is None else formats
    for f in formats:
        if f.magic is not None and bytes(data[:len(f.magic)]) == f.magic:
            return f
    lowered = file.lower()
    return next((f for f in formats if f.extensions and lowered.endswith(f.extensions)), None)


def _format_of(data: bytes | bytearray | memoryview, file: str, format: str | None) -> Format:
    if format is not None:
        found = next((f for f in FORMATS if f.name == format), None)
        if found is None:
            names = ", ".join(f.name for f in FORMATS)
            raise FormatError(f"unknown format {format!r} (one of {names})", file=file)
        return found
    found = guess_format(data, file)
    if found is None:
        raise FormatError("unrecognised file format", file=file, offset=0)
    return found


def read_module(source: Source, name: str | None = None, format: str | None = None,
                **options) -> Module:
    """Read any supported module or object file: ELF and NXFLAT recognised by their
    contents, REL and DOL by their extension or an explicit ``format`` (``"elf"``, ``"rel"``,
    ``"dol"``, ``"nxflat"``). ``options`` go to the format's reader (NXFLAT: ``abi``).
    Messages name the file, or for bytes given with a ``name``, ``<bytes of 'name'>``."""
    data, file = read_bytes(source)
    if name and isinstance(source, bytes | bytearray | memoryview):
        file = f"<bytes of {name!r}>"
    return _format_of(data, file, format).read(data, module_name(file, name), file, **options)


def read_program(source: Source, name: str | None = None, format: str | None = None) -> Module:
    """Read a linked program to be located (``linkload locate``): an ELF executable (its
    relocations kept with ``--emit-relocs``, or a PIE's ``RELATIVE`` ones) or a PE image
    (its base relocations), with its fixups and each symbol's section."""
    data, file = read_bytes(source)
    found = _format_of(data, file, format)
    if found.read_program is None:
        raise FormatError(f"a {found.name} file is not a program the locator can place", file=file)
    return found.read_program(data, module_name(file, name), file)


def dump(source: Source, *, disasm: bool = False, format: str | None = None,
         plf: Source | None = None) -> Iterator[str]:
    """Lines describing the file ``source`` (``linkload dump``), its format recognised as by
    :func:`read_module`. ``disasm`` adds a disassembly of its code, for the CPU the file is
    for; ``plf``, the partially linked ELF a REL was made from, names the REL's sections and
    gives their alignment needs."""
    data, file = read_bytes(source)
    yield from _format_of(data, file, format).dump(data, file, disasm=disasm, plf=plf)


__all__ = ["FORMATS", "Format", "Source", "dump", "guess_format", "read_bytes",
           "read_module", "read_program"]
