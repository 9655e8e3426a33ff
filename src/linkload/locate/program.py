"""What the locator sees of a linked program: its loaded sections at the addresses it was
linked for, its fixups as one table of numpy columns, its symbols and its entry point.

A :class:`Program` is made from the Module a format's ``read_program`` gives
(:func:`linkload.formats.read_program`): a PE image with its base relocations, an ELF
executable with the relocations ``--emit-relocs`` kept or a PIE's ``RELATIVE`` ones. Each
fixup is a field (its section and offset), the CPU's relocation kind, and its target: the
address S+A it pointed at as linked, and the section that address belongs to, taken from the
symbol the relocation names (never from the address: an end-of-section symbol shares its
address with the next section) or, for fixups that name no symbol, found later by address.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import arch as arch_registry
from ..arch import Arch
from ..errors import FormatError, UnsupportedError
from ..model import FIXED, IMAGE_ADDRESS, IMAGE_ADDRESS_PART, MOVES_APART, SectionKind

#: Fixup target sections that are not section indices: an absolute address that stays put,
#: an address of the image found by address, half of such an address (moves with the image).
TARGET_FIXED, TARGET_IMAGE, TARGET_IMAGE_PART = FIXED, IMAGE_ADDRESS, IMAGE_ADDRESS_PART


@dataclass(frozen=True)
class ProgramSection:
    """A loaded section of the program, where it was linked to run."""

    index: int  # in Program.sections
    number: int  # the file's own section number (``#N`` in a configuration)
    name: str
    kind: SectionKind
    address: int
    size: int
    data: bytes  # its initialised bytes (at most ``size``; the rest reads as zeros)
    align: int

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def writable(self) -> bool:
        return self.kind in (SectionKind.DATA, SectionKind.BSS)


@dataclass(frozen=True)
class Fixups:
    """The program's fixups, a row per field, as numpy columns (int64): the patched
    ``section`` (index in Program.sections) and ``offset`` in it, the CPU's ``kind``, the
    ``target`` address S+A as linked, the ``target_section`` (an index, or TARGET_FIXED,
    TARGET_IMAGE, TARGET_IMAGE_PART) and the ``symbol`` row named (for messages)."""

    section: np.ndarray
    offset: np.ndarray
    kind: np.ndarray
    target: np.ndarray
    target_section: np.ndarray
    symbol: np.ndarray

    def __len__(self) -> int:
        return len(self.section)

    def rows(self, rows: np.ndarray) -> Fixups:
        return Fixups(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Program:
    """A linked program to be located (see the module docstring)."""

    name: str
    file: str
    arch: Arch
    sections: list[ProgramSection]
    fixups: Fixups
    entry: int
    symbol_names: list[str]
    symbol_values: np.ndarray  # int64 addresses as linked
    symbol_sections: np.ndarray  # int64: a section index or TARGET_FIXED
    symbols: np.ndarray  # the rows (model.SYMBOL_DTYPE): binding, type, size
    moves: str = MOVES_APART  # how the fixups let it move (model.MOVES_*)

    @property
    def byteorder(self) -> str:
        return self.arch.byteorder

    def section(self, name: str) -> ProgramSection | None:
        """The section called ``name``, or ``#N``, the file's section number N."""
        if name.startswith("#") and name[1:].isdigit():
            return next((s for s in self.sections if s.number == int(name[1:])), None)
        return next((s for s in self.sections if s.name == name), None)

    def section_at(self, address: int) -> ProgramSection | None:
        return next((s for s in self.sections if s.address <= address < s.end), None)

    @classmethod
    def of(cls, module) -> Program:
        """The program of a Module read by ``formats.read_program``."""
        if module.symbol_sections is None:
            raise FormatError("not read as a program to locate (use formats.read_program)",
                              file=module.file)
        arch = arch_registry.get(module.machine)
        if (arch.bits, arch.byteorder) != (module.bits, module.byteorder):
            raise UnsupportedError(f"a {module.bits}-bit {module.machine} program", file=module.file)
        loaded = [i for i, s in enumerate(module.sections) if s.kind != SectionKind.DEBUG]
        limit = min(1 << arch.bits, 1 << 63)  # (addresses are 64-bit signed numbers here)
        for i in loaded:
            s = module.sections[i]
            if not 0 <= s.address <= s.address + s.size <= limit:
                raise UnsupportedError(f"the section [{s.address:#x}, {s.address + s.size:#x}) does "
                                       f"not lie in the {arch.bits}-bit address space"
                                       + (" below 2**63, where the locator places programs"
                                          if arch.bits == 64 else ""),
                                       file=module.file, section=s.name)
        renumber = np.full(len(module.sections) + 1, -1, np.int64)
        renumber[loaded] = np.arange(len(loaded))
        sections = [ProgramSection(k, s.index, s.name, s.kind, int(s.address), int(s.size),
                                   bytes(s.data or b"")[:s.size], max(int(s.align), 1))
                    for k, s in enumerate(module.sections[i] for i in loaded)]
        where = np.asarray(module.symbol_sections, np.int64)
        if len(where) != len(module.symbols) or (where >= len(module.sections)).any():
            raise FormatError("the symbols' sections do not match the program's sections",
                              file=module.file)
        where = np.where(where >= 0, renumber[np.maximum(where, 0)], where)
        values = module.symbols["value"].astype(np.int64)
        fixups = _fixups(module, renumber, where, values)
        return cls(module.name, module.file, arch, sections, fixups, int(module.entry),
                   module.names, values, where, module.symbols, module.moves)


def _fixups(module, renumber: np.ndarray, where: np.ndarray, values: np.ndarray) -> Fixups:
    runs = module.relocation_runs
    if not runs:
        empty = np.zeros(0, np.int64)
        return Fixups(empty, empty, empty, empty, empty, empty)
    section = np.concatenate([np.full(len(r), r.section, np.int64) for r in runs])
    offset = np.concatenate([r.offset.astype(np.int64) for r in runs])
    kind = np.concatenate([r.kind.astype(np.int64) for r in runs])
    symbol = np.concatenate([r.target.astype(np.int64) for r in runs])
    addend = np.concatenate([r.addend.astype(np.int64) for r in runs])
    if any(r.implicit for r in runs):
        raise FormatError("a program's fixups must carry their addends", file=module.file)
    section = renumber[section]
    if (section < 0).any():
        raise FormatError("a fixup patches a section that is not loaded", file=module.file)
    return Fixups(section, offset, kind, values[symbol] + addend, where[symbol], symbol)
