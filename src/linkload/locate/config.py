"""The locator's configuration language: RTLoc's commands, in either of its two syntaxes.

A configuration is a list of commands, one per line, read from configuration files and from
the command line (each argument a command). Both forms RTTarget-32's manual uses are
accepted, and may be mixed::

    Region = MyROM, F0000h, 64k, ROM          ; keyword, '=', comma-separated values
    Region MyRAM 0h 256k RAM Assign           // keyword and values separated by spaces
    Locate NTSection .text MyROM
    Locate Section .data MyRAM 0 16           ; size 0: the section's own; aligned to 16
    Locate Copy .data MyROM Deflate           ; stored in ROM, zlib-compressed
    Locate Stack Stack MyRAM 16k
    Locate Heap Heap MyRAM                    ; no size: the rest of the region
    Locate Header Boot MyROM
    Virtual VRAM 40000000h 1M                 ; virtual addresses (i386 paging), page aligned
    Locate Section .bss VRAM->MyRAM           ; runs in VRAM, its pages are MyRAM's
    Locate PageTable Pages MyRAM              ; the page tables (size: from the regions)
    FillRAM MyRAM
    Reserve ../bootloader/out                 ; what an earlier locate occupies
    Align 16                                  ; default alignment of entities

Keywords, entity kinds, memory types and access names are case-insensitive; names of regions
and sections are not. Numbers are decimal, ``0x``-prefixed or ``h``-suffixed hexadecimal,
optionally followed by ``k`` (×1024), ``M`` or ``G``. Comments start with ``;`` or ``//``.

Every error is a :class:`~linkload.errors.ConfigError` naming the file, the line and what was
expected there.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError

COMMAND_LINE = "<command line>"


class MemType(enum.Enum):
    """What a region holds. ``VIRTUAL``: nothing of its own, virtual addresses (``Virtual``)
    whose pages paging maps to physical memory of another region."""

    RAM = "RAM"
    ROM = "ROM"
    DEVICE = "Device"
    VIRTUAL = "Virtual"


#: What a ``Region`` command may say (a virtual region is made by ``Virtual``).
PHYSICAL = (MemType.RAM, MemType.ROM, MemType.DEVICE)


class Alloc(enum.Enum):
    """Where in its region an entity goes: from the bottom up (the default) or from the top
    down."""

    DEFAULT = "AllocDefault"
    BOTTOM_UP = "BottomUp"
    TOP_DOWN = "TopDown"


ACCESS = ("NoAccess", "SysRead", "System", "ReadOnly", "ReadWrite", "Assign")
ENTITIES = ("Section", "NTSection", "Copy", "Stack", "Heap", "Header", "PageTable")
# What may run at virtual addresses: the boot table, the copies' stored bytes and the page
# tables are read by start-up code before paging is on, at physical addresses.
VIRTUAL_ENTITIES = ("Section", "NTSection", "Stack", "Heap")
# RTLoc's entities linkload does not place (DOS-era boot code and files).
NOT_SUPPORTED = {"file": "files placed in the image are not supported",
                 "decompcode": "no boot code is placed: the boot table says what to copy",
                 "decompdata": "no boot code is placed: the boot table says what to copy",
                 "bootcode": "no boot code is placed: the boot table says what to copy",
                 "bootdata": "no boot code is placed: the boot table says what to copy"}
COMPRESS_WORDS = ("deflate", "compress", "compressed")


@dataclass(frozen=True)
class Where:
    """The line a command came from."""

    file: str
    line: int

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line)


@dataclass(frozen=True)
class RegionCommand:
    """``Region Name Address Size MemType [Access]``, or ``Virtual Name Address [Size]`` (a
    virtual region, its size 0 until the locator gives it the default: one area of the CPU's
    page tables)."""

    name: str
    address: int
    size: int
    memtype: MemType
    access: str
    where: Where

    @property
    def virtual(self) -> bool:
        return self.memtype is MemType.VIRTUAL

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass(frozen=True)
class LocateCommand:
    """``Locate Entity Name Region [Size [Align [Access [Alloc]]]] [Deflate]``; size and
    align 0 mean "the entity's own". ``Region`` may be ``Virtual->Physical``: the entity runs
    at addresses of the virtual region ``region``, its pages are memory of ``physical``."""

    entity: str  # one of ENTITIES
    name: str
    region: str
    size: int
    align: int
    access: str
    alloc: Alloc
    compress: bool
    where: Where
    optional: bool = False  # a section the program may lack (an ld script's output section)
    physical: str | None = None  # the region behind a virtual one (Virtual->Physical)


@dataclass(frozen=True)
class FillRamCommand:
    """``FillRAM Region``: the unused RAM of the other regions goes to this region's heap."""

    region: str
    where: Where


@dataclass(frozen=True)
class ReserveCommand:
    """``Reserve Image``: what an earlier located image occupies is not used (``path``: its
    output folder or its ``layout.json``, relative to the configuration file)."""

    path: str
    where: Where


@dataclass(frozen=True)
class AlignCommand:
    """``Align N``: the alignment of entities whose Locate command gives none."""

    align: int
    where: Where


Command = RegionCommand | LocateCommand | FillRamCommand | ReserveCommand | AlignCommand


# -- numbers and words --------------------------------------------------------------------------
_SCALES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_NUMBER = re.compile(r"^(0x[0-9a-f]+|[0-9a-f]+h|[0-9]+)([kmg]?)$", re.IGNORECASE)


def number(text: str) -> int | None:
    """``4096``, ``0x1000``, ``1000h``, ``4k``, ``1M``: the value, or None if ``text`` is not
    a number."""
    m = _NUMBER.match(text)
    if m is None:
        return None
    digits, scale = m.group(1).lower(), m.group(2).lower()
    if digits.startswith("0x"):
        value = int(digits, 16)
    elif digits.endswith("h"):
        value = int(digits[:-1], 16)
    else:
        value = int(digits)
    return value * _SCALES.get(scale, 1)


def _expect_number(token: str, what: str, where: Where) -> int:
    value = number(token)
    if value is None:
        raise where.error(f"expected {what} (a number such as 4096, 0x1000, 1000h or 64k), "
                          f"not {token!r}")
    return value


def _choice(token: str, choices: Iterable[str], what: str, where: Where) -> str:
    for choice in choices:
        if token.lower() == choice.lower():
            return choice
    raise where.error(f"expected {what} ({', '.join(choices)}), not {token!r}")


# -- parsing -------------------------------------------------------------------------------------
_COMMENT = re.compile(r";|//")
_HEAD = re.compile(r"^\s*([A-Za-z]+)\s*(=)?\s*(.*)$")


def split(line: str) -> tuple[str, list[str]] | None:
    """(keyword, values) of a line, or None for a blank or comment line. Values are
    separated by commas or spaces; a ``=`` may follow the keyword."""
    text = _COMMENT.split(line, maxsplit=1)[0].strip()
    if not text:
        return None
    m = _HEAD.match(text)
    if m is None:
        return text, []
    values = [v for v in re.split(r"[\s,]+", m.group(3)) if v]
    return m.group(1), values


def parse_line(line: str, where: Where) -> Command | None:
    """The command on one line (None for a blank or comment line)."""
    parts = split(line)
    if parts is None:
        return None
    keyword, values = parts
    handler = _HANDLERS.get(keyword.lower())
    if handler is None:
        raise where.error(f"expected a command (Region, Locate, FillRAM, Reserve, Align), not "
                          f"{keyword!r}")
    return handler(values, where)


def _region(values: list[str], where: Where) -> RegionCommand:
    if not 4 <= len(values) <= 5:
        raise where.error("expected Region Name Address Size MemType [Access], "
                          f"not {len(values)} values")
    name = values[0]
    address = _expect_number(values[1], "the region's address", where)
    size = _expect_number(values[2], "the region's size", where)
    if size <= 0:
        raise where.error(f"region {name} has size 0")
    memtype = MemType(_choice(values[3], [m.value for m in PHYSICAL], "a memory type", where))
    access = _choice(values[4], ACCESS, "an access", where) if len(values) == 5 else "Assign"
    return RegionCommand(name, address, size, memtype, access, where)


def _locate(values: list[str], where: Where) -> LocateCommand:
    if values and values[0].lower() in NOT_SUPPORTED:
        raise where.error(f"Locate {values[0]}: {NOT_SUPPORTED[values[0].lower()]}")
    compress = any(v.lower() in COMPRESS_WORDS for v in values)
    values = [v for v in values if v.lower() not in COMPRESS_WORDS]
    if not 3 <= len(values) <= 7:
        raise where.error("expected Locate Entity Name Region [Size [Align [Access [Alloc]]]]")
    entity = _choice(values[0], ENTITIES, "an entity", where)
    name, region = values[1], values[2]
    physical = None
    if "->" in region:
        region, _, physical = region.partition("->")
        if not region or not physical or "->" in physical:
            raise where.error(f"expected VirtualRegion->PhysicalRegion, not {values[2]!r}")
    size = _expect_number(values[3], "a size", where) if len(values) > 3 else 0
    align = _expect_number(values[4], "an alignment", where) if len(values) > 4 else 0
    if align & (align - 1):
        raise where.error(f"alignment {align:#x} is not a power of two")
    access = _choice(values[5], ACCESS, "an access", where) if len(values) > 5 else "Assign"
    alloc = Alloc(_choice(values[6], [a.value for a in Alloc], "an allocation", where)) \
        if len(values) > 6 else Alloc.DEFAULT
    if compress and entity != "Copy":
        raise where.error(f"only a Copy can be compressed, not a {entity}")
    return LocateCommand(entity, name, region, size, align, access, alloc, compress, where,
                         physical=physical)


def _fill_ram(values: list[str], where: Where) -> FillRamCommand:
    if len(values) != 1:
        raise where.error("expected FillRAM Region")
    return FillRamCommand(values[0], where)


def _reserve(values: list[str], where: Where) -> ReserveCommand:
    if len(values) != 1:
        raise where.error("expected Reserve Image (an earlier locate's output folder or its "
                          "layout.json)")
    base = os.path.dirname(where.file) if where.file != COMMAND_LINE else ""
    return ReserveCommand(os.path.join(base, values[0]), where)


def _align(values: list[str], where: Where) -> AlignCommand:
    if len(values) != 1:
        raise where.error("expected Align N")
    align = _expect_number(values[0], "an alignment", where)
    if align <= 0 or align & (align - 1):
        raise where.error(f"alignment {align:#x} is not a power of two")
    return AlignCommand(align, where)


def _virtual(values: list[str], where: Where) -> RegionCommand:
    if not 2 <= len(values) <= 3:
        raise where.error("expected Virtual Name Address [Size]")
    name = values[0]
    address = _expect_number(values[1], "the virtual region's address", where)
    size = _expect_number(values[2], "the virtual region's size", where) if len(values) == 3 else 0
    if len(values) == 3 and size <= 0:
        raise where.error(f"virtual region {name} has size 0")
    return RegionCommand(name, address, size, MemType.VIRTUAL, "Assign", where)


_HANDLERS = {"region": _region, "locate": _locate, "fillram": _fill_ram, "reserve": _reserve,
             "align": _align, "virtual": _virtual}


def parse(text: str, file: str) -> list[Command]:
    """The commands of a configuration file's text."""
    out = []
    for number_, line in enumerate(text.splitlines(), start=1):
        command = parse_line(line, Where(file, number_))
        if command is not None:
            out.append(command)
    return out


def read_text(path: str | os.PathLike) -> str:
    """The text of the configuration file ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the configuration: {e.strerror}", file=os.fspath(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file", file=os.fspath(path)) from None


def read_file(path: str | os.PathLike) -> list[Command]:
    """The commands of the configuration file ``path`` (RTLoc's commands)."""
    return parse(read_text(path), os.fspath(path))


def command_line(arguments: Sequence[str]) -> list[Command]:
    """The commands given on the command line, one per argument."""
    out = []
    for i, text in enumerate(arguments, start=1):
        command = parse_line(text, Where(COMMAND_LINE, i))
        if command is not None:
            out.append(command)
    return out


# -- a whole configuration -------------------------------------------------------------------------
@dataclass
class Config:
    """Every command, checked as a whole: region names unique and regions disjoint, every
    Locate naming a region, at most one FillRAM; virtual regions used as ``Virtual->Physical``
    with entities that may run there, and only with a ``Locate PageTable``."""

    regions: list[RegionCommand] = field(default_factory=list)
    locates: list[LocateCommand] = field(default_factory=list)
    fill_ram: FillRamCommand | None = None
    reserves: list[ReserveCommand] = field(default_factory=list)
    default_align: int = 1

    @classmethod
    def of(cls, commands: Iterable[Command]) -> Config:
        config = cls()
        for c in commands:
            if isinstance(c, RegionCommand):
                config._add_region(c)
            elif isinstance(c, LocateCommand):
                config.locates.append(c)
            elif isinstance(c, FillRamCommand):
                if config.fill_ram is not None:
                    raise c.where.error(f"a second FillRAM (the first is at "
                                        f"{config.fill_ram.where.file}:{config.fill_ram.where.line})")
                config.fill_ram = c
            elif isinstance(c, ReserveCommand):
                config.reserves.append(c)
            elif isinstance(c, AlignCommand):
                config.default_align = c.align
        names = {r.name for r in config.regions}
        for c in [*config.locates, *([config.fill_ram] if config.fill_ram else [])]:
            behind = [c.physical] if isinstance(c, LocateCommand) and c.physical else []
            for name in [c.region, *behind]:
                if name not in names:
                    raise c.where.error(f"no region {name!r} (defined: "
                                        f"{', '.join(sorted(names)) or 'none'})")
        config._check_virtual()
        return config

    @property
    def page_table(self) -> LocateCommand | None:
        """The ``Locate PageTable`` command, if any."""
        return next((c for c in self.locates if c.entity == "PageTable"), None)

    def _check_virtual(self) -> None:
        tables = [c for c in self.locates if c.entity == "PageTable"]
        if len(tables) > 1:
            first = tables[0].where
            raise tables[1].where.error(f"a second Locate PageTable (the first is at "
                                        f"{first.file}:{first.line})")
        virtual = [r for r in self.regions if r.virtual]
        if virtual and not tables:
            raise virtual[0].where.error(f"virtual region {virtual[0].name} needs paging: add a "
                                         "Locate PageTable (Locate PageTable Name Region)")
        if self.fill_ram is not None and self.region(self.fill_ram.region).virtual:
            raise self.fill_ram.where.error(f"FillRAM {self.fill_ram.region}: unused RAM is not "
                                            "remapped into a virtual region")
        for c in self.locates:
            region = self.region(c.region)
            if c.physical is not None and not region.virtual:
                raise c.where.error(f"{c.region}->{c.physical}: region {c.region} is not virtual "
                                    f"(made by a Virtual command)")
            if c.physical is not None and self.region(c.physical).virtual:
                raise c.where.error(f"{c.region}->{c.physical}: the pages behind a virtual region "
                                    f"are physical memory, and {c.physical} is virtual too")
            if region.virtual and c.physical is None:
                raise c.where.error(f"region {c.region} is virtual: name the physical region "
                                    f"whose pages hold the {c.entity.lower()} ({c.region}->RAM)")
            if region.virtual and c.entity not in VIRTUAL_ENTITIES:
                raise c.where.error(f"a {c.entity} is read at its physical address before paging "
                                    f"is on: locate it in a physical region, not {c.region}")

    def _add_region(self, region: RegionCommand) -> None:
        for other in self.regions:
            if other.name == region.name:
                raise region.where.error(f"a second region {region.name} (the first is at "
                                         f"{other.where.file}:{other.where.line})")
        check_overlaps([*self.regions, region])
        self.regions.append(region)

    def region(self, name: str) -> RegionCommand:
        return next(r for r in self.regions if r.name == name)


def check_overlaps(regions: Sequence[RegionCommand]) -> None:
    """The last of ``regions`` overlaps none of the others (a virtual region too: paging maps
    every physical region's pages one to one, so a virtual address must not be one of
    theirs)."""
    region = regions[-1]
    for other in regions[:-1]:
        if region.address < other.end and other.address < region.end:
            raise region.where.error(
                f"region {region.name} [{region.address:#x}, {region.end:#x}) overlaps region "
                f"{other.name} [{other.address:#x}, {other.end:#x})")
