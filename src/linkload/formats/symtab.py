"""Symbol lists of a static module (a DOL has no symbol table), and names for a REL's sections.

Recognised line by line, mixed freely; ``#`` and ``//`` start comments, blank lines are
skipped:

* ``ADDRESS:NAME`` or ``ADDRESS NAME`` (``80004000:main``, ``0x80004000 main``): an absolute
  address, hexadecimal with or without ``0x``.
* ``SECTION,OFFSET:NAME`` (``1,0x20:foo``, ``.text,0x20:foo``, ``text0,0x100:bar``): a place in
  a section, given by index or name (for a DOL: its slot names ``text0``..``data10``).
* ``MODULE,SECTION,OFFSET:NAME`` (``2,1,00000040:other_func``, the LST lines of pyelf2rel's
  ``makelst`` and ttyd-tools' ``elf2rel``): a place in section ``SECTION`` of the REL module
  with id ``MODULE`` (module and section decimal, or hexadecimal with ``0x``; the offset
  hexadecimal). Module 0 is the static module: its offset is the address.
* ``NAME = SECTION:0xADDRESS; // type:function size:0x40`` (decomp-toolkit ``symbols.txt``).
* CodeWarrior / Dolphin linker maps: inside a ``<section> section layout`` block, the rows
  ``OFFSET SIZE ADDRESS [FILEOFFSET] ALIGN NAME [OBJECT]`` (``UNUSED`` rows and the rows naming
  the section itself are skipped); inside ``Linker generated symbols:``, ``NAME ADDRESS``. Other
  lines of a map (memory map, link tree) are ignored.

:func:`parse` returns :class:`SymbolEntry` items; :func:`read` a static Module whose symbols
are ABS rows (what the REL builder and the linker look names up in). Addresses, offsets and
sizes are 32-bit numbers (the static modules named are GameCube and Wii programs): a larger
one is a FormatError naming its line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError
from ..model import ABS, FUNC, GLOBAL, NOTYPE, OBJECT, SYMBOL_DTYPE, Module
from . import elf as elf_format
from .base import module_name


@dataclass(frozen=True)
class SymbolEntry:
    """One named place: an ``address``, or a ``section`` (index or name) and ``offset``;
    ``module`` is the id of the REL module it is in (None: the static module, or a module
    the list is given for)."""

    name: str
    address: int | None = None
    section: int | str | None = None
    offset: int = 0
    size: int = 0
    type: int = NOTYPE
    line: int = 0
    module: int | None = None

    @property
    def in_other_module(self) -> bool:
        """True for a ``MODULE,SECTION,OFFSET:NAME`` line of a module other than the static
        one."""
        return self.module is not None and self.module != 0


ADDRESS_LIMIT = (1 << 32) - 1  # the static modules named here are 32-bit programs
_HEX = r"(?:0[xX])?[0-9a-fA-F]+"
_ADDRESS = re.compile(rf"^({_HEX})\s*[:\s]\s*(\S+)$")
_SECTION_OFFSET = re.compile(rf"^([^\s,:]+)\s*,\s*({_HEX})\s*:\s*(\S+)$")
_MODULE_SECTION_OFFSET = re.compile(
    rf"^((?:0[xX])?[0-9a-fA-F]+)\s*,\s*((?:0[xX])?[0-9a-fA-F]+)\s*,\s*({_HEX})\s*:\s*(\S+)$")
_SYMBOLS_TXT = re.compile(rf"^(\S+)\s*=\s*([^\s:;]+):({_HEX})\s*;?\s*(?://\s*(.*))?$")
_MAP_ROW = re.compile(r"^\s*([0-9a-fA-F]{8})\s+([0-9a-fA-F]{6,8})\s+([0-9a-fA-F]{8})\s+"
                      r"(?:([0-9a-fA-F]{8})\s+)?(\d+)\s+(\S+)(?:\s+(.*))?$")
_MAP_LAYOUT = re.compile(r"^(\S+) section layout\s*$")
_MAP_GENERATED = re.compile(r"^\s+(\S+)\s+([0-9a-fA-F]{8})\s*$")


def _int(text: str) -> int:
    return int(text, 16)


def _number(text: str) -> int:
    """``0x``-prefixed hexadecimal, else decimal (leading zeros allowed, as in ``size:010``):
    sizes, and module and section numbers as the LST tools write them."""
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text, 10)


def _strip_comment(line: str) -> str:
    for mark in ("#", "//"):
        at = line.find(mark)
        if at >= 0:
            line = line[:at]
    return line.strip()


def parse(text: str, file: str = "<text>") -> list[SymbolEntry]:
    """The symbols of a list or map (see the module docstring); a line that fits none of the
    forms outside a map raises :class:`FormatError` naming it."""
    out: list[SymbolEntry] = []
    block: str | None = None  # the map block being read, if any
    is_map = "section layout" in text or "Linker generated symbols" in text
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.rstrip()
        layout = _MAP_LAYOUT.match(stripped)
        if layout:
            block = layout.group(1)
            continue
        if stripped.startswith("Linker generated symbols"):
            block = "@generated"
            continue
        if is_map and stripped and not stripped[0].isspace():
            block = None  # "Memory map:", "Link map of ...": not symbols
        if block is not None:
            entry = _map_line(stripped, block, number)
            if entry is not None:
                out.append(_fits(entry, file))
            continue
        if is_map:
            continue
        entry = _list_line(raw, number)
        if entry is not None:
            out.append(_fits(entry, file))
        elif _strip_comment(raw):
            raise FormatError(f"line {number}: not 'address:name', 'section,offset:name', "
                              f"'module,section,offset:name' or 'name = section:address': "
                              f"{raw.strip()!r}", file=file)
    return out


def _fits(entry: SymbolEntry, file: str) -> SymbolEntry:
    """``entry``, if its numbers fit the 32-bit address space of the static module (a
    GameCube or Wii program) that every symbol list names."""
    for what, value in (("address", entry.address), ("offset", entry.offset),
                        ("size", entry.size)):
        if value is not None and not 0 <= value <= ADDRESS_LIMIT:
            raise FormatError(f"line {entry.line}: {what} {value:#x} of {entry.name!r} does not "
                              "fit a 32-bit address space", file=file)
    return entry


def _list_line(raw: str, number: int) -> SymbolEntry | None:
    head, colon, name = raw.partition(":")
    if colon and name and "/" not in name and "#" not in name and "=" not in raw:
        try:  # the common case, ADDRESS:NAME, without a regular expression
            address = int(head, 16)
        except ValueError:
            pass
        else:
            name = name.strip()
            if name and not any(c.isspace() for c in name):
                return SymbolEntry(name, address, line=number)
    symbols_txt = _SYMBOLS_TXT.match(raw.strip()) if "=" in raw else None
    if symbols_txt:
        name, section, address, attrs = symbols_txt.groups()
        size = re.search(r"size:(0[xX][0-9a-fA-F]+|\d+)", attrs or "")
        kind = re.search(r"type:(\w+)", attrs or "")
        return SymbolEntry(name, _int(address), section, 0, _number(size.group(1)) if size else 0,
                           {"function": FUNC, "object": OBJECT}.get(kind.group(1) if kind else "",
                                                                    NOTYPE), number)
    line = _strip_comment(raw)
    if not line:
        return None
    head = line.partition(":")[0]  # names may hold commas (C++), the place before them not
    by_module = _MODULE_SECTION_OFFSET.match(line) if head.count(",") == 2 else None
    if by_module:
        module, section, offset, name = by_module.groups()
        try:
            module_id, section_index = _number(module), _number(section)
        except ValueError:
            return None
        if module_id == 0:  # the static module: the offset is the address
            return SymbolEntry(name, _int(offset), section_index, _int(offset), line=number,
                               module=0)
        return SymbolEntry(name, None, section_index, _int(offset), line=number,
                           module=module_id)
    by_section = _SECTION_OFFSET.match(line)
    if by_section:
        section, offset, name = by_section.groups()
        return SymbolEntry(name, None, int(section) if section.isdigit() else section,
                           _int(offset), line=number)
    by_address = _ADDRESS.match(line)
    if by_address:
        return SymbolEntry(by_address.group(2), _int(by_address.group(1)), line=number)
    return None


def _map_line(line: str, block: str, number: int) -> SymbolEntry | None:
    if block == "@generated":
        generated = _MAP_GENERATED.match(line)
        return SymbolEntry(generated.group(1), _int(generated.group(2)), line=number) \
            if generated else None
    row = _MAP_ROW.match(line)
    if not row:
        return None  # headings, UNUSED rows, tree lines
    _, size, address, _, _, name, _ = row.groups()
    if name == block or name.startswith("..."):
        return None  # a file's contribution to the section, not a symbol
    kind = FUNC if block in (".init", ".text") else OBJECT
    return SymbolEntry(name, _int(address), block, 0, _int(size), kind, number)


def parse_file(path: str | os.PathLike) -> list[SymbolEntry]:
    """:func:`parse` of a file."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", file=os.fspath(path)) from None
    return parse(text, os.fspath(path))


def resolve(entries: Iterable[SymbolEntry], sections: dict[int | str, int] | None = None,
            file: str = "<text>") -> list[SymbolEntry]:
    """The static module's entries with an ``address`` each: ``section,offset`` entries are
    placed with ``sections`` (section index or name -> address, e.g. a DOL's slots); entries
    of other modules (:attr:`SymbolEntry.in_other_module`) are left out."""
    out = []
    for e in entries:
        if e.in_other_module:
            continue
        if e.address is not None:
            out.append(e)
            continue
        if sections is None or e.section not in sections:
            raise FormatError(f"line {e.line}: section {e.section!r} of {e.name!r} is unknown "
                              "here (give the DOL or ELF it belongs to)", file=file)
        out.append(_fits(SymbolEntry(e.name, sections[e.section] + e.offset, e.section,
                                     e.offset, e.size, e.type, e.line), file))
    return out


def other_modules(entries: Iterable[SymbolEntry]) -> list[SymbolEntry]:
    """The entries that name places in other REL modules (``MODULE,SECTION,OFFSET:NAME``
    with a module id other than 0)."""
    return [e for e in entries if e.in_other_module]


def to_module(entries: Iterable[SymbolEntry], name: str = "static", file: str = "") -> Module:
    """A static Module (kind ``"executable"``) whose symbols are the entries, as ABS rows.
    Every entry must have an address (see :func:`resolve`); the first of a name wins."""
    seen: dict[str, SymbolEntry] = {}
    for e in entries:
        if e.address is None:
            raise FormatError(f"line {e.line}: {e.name!r} has no address", file=file)
        seen.setdefault(e.name, _fits(e, file))
    names = list(seen)
    encoded = [n.encode("utf-8", "surrogateescape") + b"\0" for n in names]
    lengths = np.array([len(b) for b in encoded], np.int64)
    symbols = np.zeros(len(names) + 1, SYMBOL_DTYPE)
    symbols["module"] = -1
    symbols["section"][0] = -1
    rows = symbols[1:]
    rows["name"] = 1 + np.cumsum(lengths) - lengths
    rows["value"] = [seen[n].address for n in names]
    rows["size"] = [seen[n].size for n in names]
    rows["section"] = ABS
    rows["bind"] = GLOBAL
    rows["type"] = [seen[n].type for n in names]
    return Module(name, "ppc", ">", 32, symbols=symbols, strtab=b"\0" + b"".join(encoded),
                  file=file, kind="executable")


def read(source: str | os.PathLike, name: str | None = None,
         sections: dict[int | str, int] | None = None) -> Module:
    """A static Module from a symbol list or map file (``section,offset`` lines placed with
    ``sections``, e.g. :func:`dol_sections` of the DOL)."""
    file = os.fspath(source)
    entries = resolve(parse_file(file), sections, file)
    return to_module(entries, module_name(file, name), file)


def dol_sections(dol: Module) -> dict[int | str, int]:
    """Section index and name -> address for the sections of a static module (DOL or ELF)."""
    out: dict[int | str, int] = {}
    for s in dol.sections:
        if s.address is not None:
            out[s.name] = s.address
            out[s.index] = s.address
    return out


def section_names(entries: Iterable[SymbolEntry]) -> dict[tuple[int, int], str]:
    """(section index, offset) -> name, for labelling a REL's sections in dumps."""
    return {(e.section, e.offset): e.name for e in entries
            if isinstance(e.section, int) and e.module is None}


# -- export tables (NuttX's mksymtab CSV) ------------------------------------------------------
@dataclass(frozen=True)
class ExportRow:
    """One row of a NuttX export CSV (``tools/mksymtab``'s input): ``"name","header",
    "condition","rettype","param1",...``. A row without parameters is a variable (its table
    entry is ``&name``); with them, a function."""

    name: str
    header: str = ""
    condition: str = ""
    rettype: str = ""
    params: tuple[str, ...] = ()
    line: int = 0

    @property
    def is_function(self) -> bool:
        return bool(self.params)


def _csv_fields(line: str, file: str, number: int) -> list[str]:
    """The fields of a CSV line whose every field is quoted (a parameter type such as
    ``int (*)(int)`` holds commas of its own)."""
    fields, rest = [], line.strip()
    while rest:
        if not rest.startswith('"'):
            raise FormatError(f"line {number}: a field is not quoted: {rest[:40]!r}", file=file)
        end = rest.find('"', 1)
        if end < 0:
            raise FormatError(f"line {number}: a quote is not closed", file=file)
        fields.append(rest[1:end])
        rest = rest[end + 1:].lstrip()
        if rest.startswith(","):
            rest = rest[1:].lstrip()
        elif rest:
            raise FormatError(f"line {number}: expected a comma after {fields[-1]!r}", file=file)
    return fields


def parse_exports_csv(text: str, file: str = "<text>") -> list[ExportRow]:
    """The rows of a NuttX export CSV (blank lines and ``#`` comments skipped)."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _csv_fields(line, file, number)
        if not fields or not fields[0]:
            raise FormatError(f"line {number}: no name", file=file)
        fields += [""] * (4 - len(fields))
        rows.append(ExportRow(fields[0], fields[1], fields[2], fields[3], tuple(fields[4:]),
                              number))
    return rows


def read_exports_csv(path: str | os.PathLike) -> list[ExportRow]:
    """The rows of the NuttX export CSV file ``path`` (UTF-8 text)."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", file=file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FormatError(f"line {line}: byte {data[e.start]:#04x} is not UTF-8 text",
                          file=file, offset=e.start) from None
    return parse_exports_csv(text, file)


def export_names(source: str | os.PathLike) -> list[str]:
    """The names a firmware exports, from a NuttX export CSV (``*.csv``), the firmware's ELF
    file (its global symbols) or a symbol list (``address:name`` lines)."""
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", file=path) from None
    if head == elf_format.MAGIC:
        module = elf_format.read(path)
        return module.symbol_names(module.exported())
    if path.lower().endswith(".csv"):
        return [row.name for row in read_exports_csv(path)]
    return [entry.name for entry in parse_file(path)]


__all__ = ["ExportRow", "SymbolEntry", "dol_sections", "export_names", "other_modules", "parse",
           "parse_exports_csv", "parse_file", "read", "read_exports_csv", "resolve",
           "section_names", "to_module"]
