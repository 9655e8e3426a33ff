"""One locate, in RTLoc's order (``../shared/seeds``: "The Locate Process in Detail").

1. The commands (configuration files first, then the command line) make the regions and the
   entities, in the order named: sections (``Locate Section``; ``Locate NTSection`` ones form
   one block that keeps their offsets), copies, stack, heap, the boot table (``Header``), the
   page tables (``PageTable``, their size from the regions unless given). An entity of a
   virtual region (``Virtual->Physical``) gets a pseudo entity for the pages behind it.
2. ``Reserve``: what earlier located images occupy moves the regions' bottom marks past it.
3. Every entity of fixed size is placed, in the order named, each in its region from the
   high-water mark (``TopDown``: below the top mark), aligned to the larger of the alignment
   asked for and its own; an entity of a virtual region starts a page of its own, and its
   pages are placed in its physical region next.
4. The fixups are recomputed for where the sections landed (:mod:`.fixups`).
5. The copies are made (zlib-compressed where asked) and placed, in order.
6. Stack and heap without a size take the rest of their region, those in the ``FillRAM``
   region after the unused RAM of the other regions has been given to it.
7. The page tables are made (:mod:`.paging`), the boot table is written (paging first, so
   that copies and zero fills reach virtual addresses); the load image is assembled in an
   offline image space (:class:`~linkload.space.image.ImageSpace`): what is stored where at
   load time.

The input file is never changed; any error leaves nothing half made.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zlib
from dataclasses import dataclass

import numpy as np

from ..arch import ARCHES
from ..errors import ConfigError, FixupError, LinkError, PlacementError
from ..space.image import ImageSpace
from .boot import BootEntry, BootTable, Op
from .config import Config, LocateCommand, MemType, RegionCommand, Where, check_overlaps
from .fixups import FixupResult, relocate
from .layout import Entity, EntityKind, Region
from .paging import PageMap, default_size, page_map, round_up
from .program import Program, ProgramSection

# GNU ld's range-extension veneers carry no relocation: moving sections apart would leave
# them jumping to where their targets were.
_VENEER_SYMBOL = re.compile(r"(_veneer|_from_arm|_from_thumb|\.long_branch\.|_plt_branch)")
_VENEER_SECTIONS = (".glue_7", ".glue_7t", ".vfp11_veneer", ".v4_bx", ".branch_lt")
STACK_ALIGN = 16


@dataclass
class Located:
    """The result of a locate: where everything went, the relocated bytes and the load
    image. ``section_addresses``: where each program section runs; ``images``: each
    section's initialised bytes, relocated; ``stored``: the bytes of each copy (by entity
    index); ``symbol_values``: every symbol's address, moved; ``image``: the load image;
    ``paging``: the page tables (None: no ``Locate PageTable``)."""

    program: Program
    regions: list[Region]
    entities: list[Entity]
    section_addresses: np.ndarray
    images: list[np.ndarray]
    stored: dict[int, bytes]
    fixups: FixupResult
    boot: BootTable
    header: Entity | None
    entry: int
    symbol_values: np.ndarray
    image: ImageSpace
    paging: PageMap | None = None

    def region(self, name: str) -> Region:
        return next(r for r in self.regions if r.name == name)

    @property
    def page_table(self) -> Entity | None:
        """The entity of the page tables (``Locate PageTable``), if any."""
        return next((e for e in self.entities if e.kind is EntityKind.PAGE_TABLE), None)

    def section_entity(self, index: int) -> Entity:
        return next(e for e in self.entities if e.kind is EntityKind.SECTION and e.section == index)

    def load_address(self, index: int) -> int:
        """Where section ``index``'s bytes are at load time (its copy, or where it runs)."""
        entity = self.section_entity(index)
        return entity.load if entity.load is not None else entity.address

    def loaded_chunks(self) -> list[tuple[int, bytes]]:
        """(address, bytes) of everything stored at load time, ascending: what a flash tool
        or a loader writes."""
        chunks = []
        for e in self.entities:
            if e.load is None or not e.stored:
                continue
            chunks.append((e.load, self.image.read(e.load, e.stored)))
        return sorted(chunks)

    def symbol(self, name: str) -> int:
        """The located address of the program's symbol ``name``."""
        names = self.program.symbol_names
        for i, n in enumerate(names):
            if n == name and self.program.symbol_sections[i] >= 0:
                return int(self.symbol_values[i])
        raise LinkError(f"no symbol {name!r} in a section of the program", file=self.program.file)


def locate(program: Program, config: Config) -> Located:
    """Locate ``program`` as ``config`` says (see the module docstring)."""
    return _Locate(program, config).run()


class _Locate:
    def __init__(self, program: Program, config: Config) -> None:
        self.program = program
        self.config = config
        self.paging = program.arch.paging
        commands = self._virtual_regions(config.regions)
        bits = program.arch.bits
        limit = min(1 << bits, 1 << 63)  # (the locator's addresses are 64-bit signed numbers)
        for c in commands:
            if c.address < 0 or c.end > limit:
                raise c.where.error(f"region {c.name} [{c.address:#x}, {c.end:#x}) does not lie in "
                                    f"the {bits}-bit address space of {program.name}"
                                    + (" (below 2**63)" if bits == 64 else ""))
        self.regions = {c.name: Region.of(c) for c in commands}
        self.page_table: Entity | None = None
        self._backing_where: dict[int, Where] = {}  # id of a PAGES entity -> its Locate command
        self.entities: list[Entity] = []
        self.section_entities: dict[int, Entity] = {}
        self.image_block: Entity | None = None
        self._block_low = 0  # where the NTSection block starts, as linked
        self.copies: list[tuple[Entity, LocateCommand]] = []
        self.header: Entity | None = None
        self.word = program.arch.word_size

    def _virtual_regions(self, commands: list[RegionCommand]) -> list[RegionCommand]:
        """The regions, virtual ones checked against the CPU's paging and given their default
        size (one area of its page tables)."""
        # (which CPUs have paging is their arch files' say: named for the message only)
        paged = ", ".join(a.name for a in ARCHES.values() if a.paging is not None)
        out = []
        for c in commands:
            if c.virtual:
                if self.paging is None:
                    raise c.where.error(f"virtual region {c.name} needs paging, and the "
                                        f"{self.program.arch.name} CPU of {self.program.name} has "
                                        f"none linkload knows (virtual regions are for {paged} "
                                        "programs)")
                page = self.paging.page_size
                if not c.size:
                    c = dataclasses.replace(c, size=self.paging.area_size)
                if c.address % page or c.size % page:
                    raise c.where.error(f"virtual region {c.name} [{c.address:#x}, {c.end:#x}) is "
                                        f"not page aligned: its address and size must be multiples "
                                        f"of {page:#x}")
            out.append(c)
            check_overlaps(out)
        table = self.config.page_table
        if table is not None and self.paging is None:
            raise table.where.error(f"Locate PageTable: the {self.program.arch.name} CPU has no "
                                    f"paging linkload knows (programs for {paged} have)")
        return out

    # -- the steps -------------------------------------------------------------------------------
    def run(self) -> Located:
        self._make_entities()
        self._reserve()
        self._place_fixed()
        addresses = self._section_addresses()
        images = [np.frombuffer(s.data, np.uint8).copy() for s in self.program.sections]
        if not self._moves_whole(addresses):
            self._refuse_veneers()
        fixups = relocate(self.program, addresses, images)
        stored = self._place_copies(images)
        self._place_unsized()
        pages, tables = self._page_tables()
        boot = self._boot_table(addresses)
        symbols = self._moved_symbols(addresses)
        image = self._load_image(images, stored, boot, tables)
        return Located(self.program, list(self.regions.values()), self.entities, addresses, images,
                       stored, fixups, boot, self.header, boot.entry, symbols, image, pages)

    # 1. entities, in the order named
    def _make_entities(self) -> None:
        ntsections: list[tuple[ProgramSection, LocateCommand]] = []
        for command in self.config.locates:
            self._check_region(command)
            if command.optional and self.program.section(command.name) is None:
                continue  # (an ld script's output section the program lacks: ld dropped it)
            if command.entity in ("Section", "NTSection"):
                section = self._section(command)
                if command.entity == "NTSection":
                    if self.image_block is None:
                        self.image_block = self._add(Entity(EntityKind.IMAGE, command.name,
                                                            command.region, 0), command)
                    ntsections.append((section, command))
                else:
                    self._add_section(section, command)
            elif command.entity == "Copy":
                copy = self._add(Entity(EntityKind.COPY, command.name, command.region, 0,
                                        self._align(command, 1), command.alloc, command.access,
                                        compressed=command.compress))
                self.copies.append((copy, command))
            elif command.entity in ("Stack", "Heap"):
                kind = EntityKind.STACK if command.entity == "Stack" else EntityKind.HEAP
                self._add(Entity(kind, command.name, command.region, command.size,
                                 self._align(command, STACK_ALIGN), command.alloc, command.access),
                          command)
            elif command.entity == "Header":
                if self.header is not None:
                    raise command.where.error("a second Locate Header")
                self.header = self._add(Entity(EntityKind.HEADER, command.name, command.region,
                                               self._header_size(), self._align(command, self.word),
                                               command.alloc, command.access))
            elif command.entity == "PageTable":
                self.page_table = self._add(Entity(
                    EntityKind.PAGE_TABLE, command.name, command.region,
                    command.size or default_size(self.paging, self.regions.values()),
                    self._align(command, self.paging.table_size), command.alloc, command.access))
        if ntsections:
            self._make_block(ntsections)
        self._check_all_located()
        for copy, command in self.copies:
            section = self.program.section(command.name)
            if section is None or section.index not in self.section_entities:
                raise command.where.error(f"Locate Copy {command.name}: no section of that name is "
                                          "located (a Copy stores a located section's bytes)")
            copy.section = section.index
            copy.name = section.name

    def _add(self, entity: Entity, command: LocateCommand | None = None) -> Entity:
        """Add ``entity``; in a virtual region (``command`` says), with the pseudo entity of
        the pages behind it after it, and starting a page of its own (its pages are its
        alone: they get its access, and they are placed apart from the others')."""
        self.entities.append(entity)
        if command is not None and command.physical is not None:
            page = self.paging.page_size
            entity.align = max(entity.align, page)
            entity.backing = Entity(EntityKind.PAGES, f"pages of {entity.name}", command.physical,
                                    round_up(entity.size, page), page)
            self.entities.append(entity.backing)
            self._backing_where[id(entity.backing)] = command.where
        return entity

    def _memory(self, command: LocateCommand) -> Region:
        """The region whose memory holds what ``command`` locates (behind a virtual one)."""
        return self.regions[command.physical or command.region]

    def _align(self, command: LocateCommand, own: int) -> int:
        return max(command.align or self.config.default_align, own, 1)

    def _section(self, command: LocateCommand) -> ProgramSection:
        section = self.program.section(command.name)
        if section is None:
            names = ", ".join(s.name for s in self.program.sections)
            raise command.where.error(f"the program has no section {command.name!r} (it has {names})")
        if section.index in self.section_entities or any(
                e.kind is EntityKind.IMAGE and section.index in e.members for e in self.entities):
            raise command.where.error(f"section {section.name} is located twice")
        memory = self._memory(command)
        if section.writable and memory.memtype is not MemType.RAM:
            raise command.where.error(
                f"section {section.name} is written by the program: region {memory.name} is "
                f"{memory.memtype.value}; locate it in RAM (and keep its bytes in ROM with "
                "Locate Copy)")
        return section

    def _add_section(self, section: ProgramSection, command: LocateCommand) -> None:
        if command.size and command.size < section.size:
            raise command.where.error(f"size {command.size:#x} is smaller than section "
                                      f"{section.name} ({section.size:#x} bytes)")
        entity = self._add(Entity(EntityKind.SECTION, section.name, command.region,
                                  max(command.size, section.size), self._align(command, section.align),
                                  command.alloc, command.access, section=section.index), command)
        self.section_entities[section.index] = entity

    def _make_block(self, named: list[tuple[ProgramSection, LocateCommand]]) -> None:
        """The NTSection block: the named sections and every section between them, their
        offsets kept, in one region."""
        first = named[0][1]
        for section, command in named:
            if (command.region, command.physical) != (first.region, first.physical):
                raise command.where.error(
                    f"NTSection {section.name} is in region {command.region}, but NTSections keep "
                    f"their offsets and must share one region ({first.region}, line {first.where.line})")
        low = min(s.address for s, _ in named)
        high = max(s.end for s, _ in named)
        members = [s for s in self.program.sections if low <= s.address and s.end <= high]
        block = self.image_block
        block.region, block.name = first.region, first.name if len(named) == 1 else \
            f"{self.program.name} ({', '.join(s.name for s, _ in named)})"
        block.size = high - low
        block.align = max([self._align(c, s.align) for s, c in named] + [s.align for s in members])
        block.alloc, block.access = first.alloc, first.access
        block.members = tuple(s.index for s in members)
        block.section = None
        if block.backing is not None:
            block.align = max(block.align, self.paging.page_size)
            block.backing.size = round_up(block.size, self.paging.page_size)
        for s in members:
            if s.index in self.section_entities:
                raise first.where.error(
                    f"section {s.name} is located twice: by a Locate Section of its own and in "
                    f"the NTSection block (the NTSections and every section between them)")
            if s.writable and self._memory(first).memtype is not MemType.RAM:
                raise first.where.error(f"section {s.name} is written by the program: the "
                                        f"NTSection block cannot go to {first.region}, which is not RAM")
            self.section_entities[s.index] = Entity(EntityKind.SECTION, s.name, first.region,
                                                    s.size, s.align, section=s.index)
        self._block_low = low
        at = self.entities.index(block) + 1  # the block's sections follow it, placed with it
        self.entities[at:at] = [self.section_entities[s.index] for s in members]

    def _check_region(self, command: LocateCommand) -> None:
        region = self._memory(command)
        if region.memtype is MemType.DEVICE or region.access == "NoAccess":
            raise command.where.error(f"region {region.name} is a device or has no access: "
                                      f"nothing can be located there")
        if command.entity in ("Stack", "Heap") and region.memtype is not MemType.RAM:
            raise command.where.error(f"a {command.entity.lower()} must be in RAM, and "
                                      f"{region.name} is {region.memtype.value}")

    def _check_all_located(self) -> None:
        missing = [s.name for s in self.program.sections if s.index not in self.section_entities]
        if missing:
            raise ConfigError(f"{self.program.name}: sections {', '.join(missing)} are not located "
                              "(name each in a Locate Section or NTSection command)",
                              file=self.program.file)

    def _header_size(self) -> int:
        """The boot table's size, counting every entry it may need."""
        zero_fills = sum(1 for s in self.program.sections if s.size > len(s.data))
        copies = sum(1 for c in self.config.locates if c.entity == "Copy")
        free_blocks = len(self.config.regions) if self.config.fill_ram else 0
        paging = 1 if self.config.page_table else 0
        return BootTable.size_for(zero_fills + copies + free_blocks + paging, self.word)

    # 2. reserved images
    def _reserve(self) -> None:
        for command in self.config.reserves:
            for start, end, name in _reserved_ranges(command.path, command.where):
                for region in self.regions.values():
                    lo, hi = max(start, region.address), min(end, region.end)
                    if lo < hi:
                        region.reserve(lo, hi)
                        entity = Entity(EntityKind.RESERVED, name, region.name, hi - lo, address=lo)
                        region.entities.append(entity)
                        self.entities.append(entity)

    # 3. entities of fixed size, in the order named
    def _place_fixed(self) -> None:
        in_block = self.image_block.members if self.image_block else ()
        for e in self.entities:
            if e.placed or e.kind in (EntityKind.COPY, EntityKind.RESERVED, EntityKind.PAGES):
                continue
            if e.kind is EntityKind.SECTION and e.section in in_block:
                continue  # placed with its block
            if e.kind in (EntityKind.STACK, EntityKind.HEAP) and not e.size:
                continue
            self._place(e)
            if e.kind is EntityKind.IMAGE:
                for i in e.members:
                    member = self.section_entities[i]
                    member.address = e.address + self.program.sections[i].address - self._block_low

    def _place(self, entity: Entity) -> None:
        """Place ``entity`` in its region and, in a virtual one, the pages behind it next."""
        self.regions[entity.region].place(entity)
        if entity.backing is not None:
            entity.backing.size = round_up(entity.size, self.paging.page_size)
            try:
                self.regions[entity.backing.region].place(entity.backing)
            except PlacementError as e:  # (the command that asked for the pages is the culprit)
                raise self._backing_where[id(entity.backing)].error(
                    f"the physical pages of {entity.describe()} do not fit: {e}") from None

    def _section_addresses(self) -> np.ndarray:
        return np.array([self.section_entities[s.index].address for s in self.program.sections],
                        np.int64)

    def _moves_whole(self, addresses: np.ndarray) -> bool:
        old = np.array([s.address for s in self.program.sections], np.int64)
        delta = addresses - old
        return bool(len(delta) == 0 or (delta == delta[0]).all())

    def _refuse_veneers(self) -> None:
        for s in self.program.sections:
            if s.name in _VENEER_SECTIONS and s.size:
                raise LinkError(f"section {s.name} holds linker-made veneers, which carry no "
                                "relocations: they would jump to the old addresses once sections "
                                "move apart; locate the program as a whole (NTSection)",
                                file=self.program.file)
        for name, where in zip(self.program.symbol_names, self.program.symbol_sections.tolist(),
                               strict=True):
            if where >= 0 and _VENEER_SYMBOL.search(name):
                raise LinkError(f"{name} is a linker-made veneer, which carries no relocations: it "
                                "would jump to the old address once sections move apart; locate "
                                "the program as a whole (NTSection)", file=self.program.file)

    # 5. copies
    def _place_copies(self, images: list[np.ndarray]) -> dict[int, bytes]:
        stored = {}
        for copy, _command in self.copies:
            raw = images[copy.section].tobytes()
            data = zlib.compress(raw, 9) if copy.compressed else raw
            copy.size = copy.stored = len(data)
            self.regions[copy.region].place(copy)
            copy.load = copy.address
            self.section_entities[copy.section].load = copy.address
            stored[self.entities.index(copy)] = data
        return stored

    # 6. stack and heap without a size, FillRAM
    def _place_unsized(self) -> None:
        fill = self.config.fill_ram.region if self.config.fill_ram else None
        unsized = [e for e in self.entities
                   if e.kind in (EntityKind.STACK, EntityKind.HEAP) and not e.placed]
        for e in [e for e in unsized if e.region != fill]:
            self._take_rest(e)
        if fill is not None:
            self._fill_ram(fill)
        for e in [e for e in unsized if e.region == fill]:
            self._take_rest(e)

    def _take_rest(self, entity: Entity) -> None:
        region = self.regions[entity.region]
        entity.size = region.rest(entity.align)
        if entity.backing is not None:  # as much as its pages can back, in whole pages
            page = self.paging.page_size
            behind = self.regions[entity.backing.region].rest(page) // page * page
            entity.size = min(entity.size, behind)
        if entity.size <= 0:
            raise PlacementError(f"{entity.describe()} takes the rest of region {region.name}, and "
                                 "nothing is left of it")
        self._place(entity)

    def _fill_ram(self, fill: str) -> None:
        for region in self.regions.values():
            if region.name == fill or region.memtype is not MemType.RAM or region.access != "Assign":
                continue
            if region.free:
                entity = Entity(EntityKind.FREE, f"unused RAM for {fill}", region.name,
                                region.free, address=region.bottom)
                region.bottom = region.top
                region.entities.append(entity)
                self.entities.append(entity)

    # 7. the boot table and the load image
    def _page_tables(self) -> tuple[PageMap | None, bytes]:
        """The page tables' map and bytes, now that everything is placed."""
        if self.page_table is None:
            return None, b""
        virtual = [e for e in self.entities if e.backing is not None]
        return page_map(self.paging, self.regions, virtual, self.page_table, self.config.page_table)

    def _boot_table(self, addresses: np.ndarray) -> BootTable:
        entries = []
        if self.page_table is not None:  # first: the entries after it may write virtual addresses
            entries.append(BootEntry(Op.PAGING, self.page_table.address, 0, self.page_table.size))
        for copy, _command in self.copies:
            section = self.program.sections[copy.section]
            op = Op.INFLATE if copy.compressed else Op.COPY
            entries.append(BootEntry(op, int(addresses[copy.section]), copy.address, len(section.data)))
        for s in self.program.sections:
            in_ram = self._memtype(self.section_entities[s.index]) is MemType.RAM
            if s.size > len(s.data) and in_ram:
                entries.append(BootEntry(Op.ZERO, int(addresses[s.index]) + len(s.data), 0,
                                         s.size - len(s.data)))
        for e in self.entities:
            if e.kind is EntityKind.FREE:
                entries.append(BootEntry(Op.FREE, e.address, 0, e.size))
        stack = next((e for e in self.entities if e.kind is EntityKind.STACK), None)
        heap = next((e for e in self.entities if e.kind is EntityKind.HEAP), None)
        return BootTable(self._entry(addresses), stack.end if stack else 0,
                         heap.address if heap else 0, heap.size if heap else 0, tuple(entries),
                         self.word, self.program.byteorder)

    def _memtype(self, entity: Entity) -> MemType:
        """What memory holds ``entity``'s bytes (behind a virtual region, its pages')."""
        if self.regions[entity.region].memtype is MemType.VIRTUAL:
            return self.regions[self._virtual_of(entity).backing.region].memtype
        return self.regions[entity.region].memtype

    def _virtual_of(self, entity: Entity) -> Entity:
        """The entity of a virtual region that has pages behind it: ``entity``, or the
        NTSection block it belongs to."""
        if entity.backing is not None or self.image_block is None:
            return entity
        return self.image_block

    def _stored_at(self, entity: Entity) -> int:
        """Where ``entity``'s bytes are stored: where it runs, or behind a virtual region, the
        same offset in its pages."""
        if self.regions[entity.region].memtype is not MemType.VIRTUAL:
            return entity.address
        owner = self._virtual_of(entity)
        return owner.backing.address + entity.address - owner.address

    def _entry(self, addresses: np.ndarray) -> int:
        entry = self.program.entry
        section = self.program.section_at(entry)
        if section is None:
            raise LinkError(f"the entry point {entry:#x} lies in no section", file=self.program.file)
        return entry + int(addresses[section.index]) - section.address

    def _moved_symbols(self, addresses: np.ndarray) -> np.ndarray:
        old = np.array([s.address for s in self.program.sections], np.int64)
        delta = np.concatenate([addresses - old, [0]])
        where = self.program.symbol_sections
        moved = self.program.symbol_values + delta[np.where(where >= 0, where, len(old))]
        bits = self.program.arch.bits
        outside = np.flatnonzero((where >= 0) & ((moved < 0) | (moved >= 1 << bits)))
        if len(outside):
            i = int(outside[0])
            section = self.program.sections[int(where[i])]
            raise FixupError(f"the symbol, linked at {int(self.program.symbol_values[i]):#x} in "
                             f"[{section.address:#x}, {section.end:#x}), moves with its section to "
                             f"{int(moved[i]):#x}, outside the {bits}-bit address space",
                             file=self.program.file, section=section.name,
                             symbol=self.program.symbol_names[i])
        return moved

    def _load_image(self, images: list[np.ndarray], stored: dict[int, bytes],
                    boot: BootTable, tables: bytes) -> ImageSpace:
        """What is stored where at load time, in an image space of the RAM and ROM regions
        (each range reserved there first: two entities never share a byte); a section of a
        virtual region is stored in the pages behind it."""
        space = ImageSpace([(r.address, r.size, r.name) for r in self.regions.values()
                            if r.memtype in (MemType.RAM, MemType.ROM)], page_size=1)

        def put(entity: Entity, address: int, data: bytes | np.ndarray) -> None:
            if len(data):
                try:
                    space.reserve(len(data), 1, address=address)
                except PlacementError:
                    raise PlacementError(f"{entity.describe()} at {address:#x} overlaps another "
                                         "entity's bytes") from None
                space.write(address, data)
            entity.load, entity.stored = (address, len(data)) if len(data) else (entity.load, 0)

        for i, e in enumerate(self.entities):
            if e.kind is EntityKind.COPY:
                put(e, e.address, stored[i])
            elif e.kind is EntityKind.HEADER:
                put(e, e.address, boot.pack())
            elif e.kind is EntityKind.PAGE_TABLE:
                put(e, e.address, tables)
        copied = {copy.section for copy, _command in self.copies}
        for s in self.program.sections:
            e = self.section_entities[s.index]
            if s.index in copied:  # its bytes are in the copy
                e.stored = 0
                continue
            rom = self._memtype(e) is MemType.ROM
            data = images[s.index]
            if rom and s.size > len(data):  # ROM is not zeroed at start-up: store the zeros
                data = np.concatenate([data, np.zeros(s.size - len(data), np.uint8)])
            put(e, self._stored_at(e), data)
        return space


def _reserved_ranges(path: str, where) -> list[tuple[int, int, str]]:
    """[start, end) and name of everything an earlier locate placed (its layout.json)."""
    file = os.path.join(path, "layout.json") if os.path.isdir(path) else path
    try:
        with open(file, encoding="utf-8") as f:
            layout = json.load(f)
        ranges = []
        # (what runs at virtual addresses occupies no memory there: its pages are entities too)
        virtual = {r["name"] for r in layout.get("regions", []) if r.get("type") == MemType.VIRTUAL.value}
        for i, e in enumerate(layout["entities"]):
            if e["kind"] in (EntityKind.RESERVED.value, EntityKind.FREE.value) or e["address"] is None \
                    or e.get("region") in virtual:
                continue
            address, size = e["address"], e["size"]
            for what, value in (("address", address), ("size", size)):
                if type(value) is not int or value < 0:  # (not a float, a bool, a string)
                    raise ValueError(f"entity {i}'s {what} is {value!r}, not a number of bytes")
            ranges.append((address, address + size, f"{layout['program']}: {e['kind']} {e['name']}"))
        return ranges
    except OSError as e:
        raise where.error(f"Reserve: cannot read {file}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise where.error(f"Reserve: {file} is not a layout written by linkload locate ({e})") from None


__all__ = ["Located", "locate"]
