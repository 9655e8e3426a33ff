"""Regions and the entities placed in them, as RTLoc places them.

A region is filled from its **high-water marks**: ``bottom`` is the first free address from
below (``BottomUp`` entities go there), ``top`` the end of the free space (``TopDown``
entities go just below it). Regions are never fragmented: memory an earlier image occupies
(``Reserve``) moves the bottom mark past it, and what lies between the marks is the region's
free space. An entity that does not fit raises a :class:`~linkload.errors.PlacementError`
naming the entity, the region, both sizes and what else is there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import PlacementError
from .config import Alloc, MemType, RegionCommand


class EntityKind(enum.Enum):
    """What an entity is (its colour in the map)."""

    SECTION = "section"  # a section of the program, where it runs
    IMAGE = "image"  # sections located with NTSection: one block, offsets kept
    COPY = "copy"  # a section's bytes stored elsewhere (ROM), copied at start-up
    STACK = "stack"
    HEAP = "heap"
    HEADER = "header"  # the boot table
    RESERVED = "reserved"  # what an earlier located image occupies
    FREE = "free"  # unused RAM given to the FillRAM region's heap
    PAGE_TABLE = "pagetable"  # the page tables (Locate PageTable)
    PAGES = "pages"  # the physical pages behind an entity of a virtual region


@dataclass
class Entity:
    """A thing placed in a region: ``address`` is where it runs (or lies), ``size`` what it
    occupies there; ``load`` is where its bytes are at load time (a copied section: its
    copy; None: nothing to load), ``stored`` how many bytes are stored there."""

    kind: EntityKind
    name: str
    region: str
    size: int
    align: int = 1
    alloc: Alloc = Alloc.DEFAULT
    access: str = "Assign"
    address: int | None = None
    load: int | None = None
    stored: int = 0
    section: int | None = None  # the program section (SECTION, COPY: the one copied)
    members: tuple[int, ...] = ()  # IMAGE: its sections
    compressed: bool = False  # COPY: stored as a zlib stream
    # in a virtual region: the entity (PAGES, in a physical region) of the pages behind it
    backing: Entity | None = None

    @property
    def end(self) -> int:
        return (self.address or 0) + self.size

    @property
    def placed(self) -> bool:
        return self.address is not None

    def describe(self) -> str:
        return f"{self.kind.value} {self.name}"


@dataclass
class Region:
    """A region of the target's memory and its high-water marks."""

    name: str
    address: int
    size: int
    memtype: MemType
    access: str
    bottom: int = 0
    top: int = 0
    entities: list[Entity] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bottom, self.top = self.address, self.address + self.size

    @classmethod
    def of(cls, command: RegionCommand) -> Region:
        return cls(command.name, command.address, command.size, command.memtype, command.access)

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def free(self) -> int:
        return max(self.top - self.bottom, 0)

    @property
    def used(self) -> int:
        return self.size - self.free

    def reserve(self, start: int, end: int) -> None:
        """Memory [start, end) is taken by an earlier image: the bottom mark moves past it
        where it overlaps the free space (RTLoc does not fragment a region)."""
        if start < self.top and self.bottom < end:
            self.bottom = min(max(self.bottom, end), self.top)

    def place(self, entity: Entity) -> int:
        """Place ``entity`` at the bottom mark (or below the top mark, ``TopDown``), aligned
        to ``entity.align``; its address."""
        align = max(entity.align, 1)
        if entity.alloc is Alloc.TOP_DOWN:
            start = (self.top - entity.size) // align * align
            fits = start >= self.bottom
        else:
            start = -(-self.bottom // align) * align
            fits = start + entity.size <= self.top
        if not fits:
            raise self.overflow(entity)
        if entity.alloc is Alloc.TOP_DOWN:
            self.top = start
        else:
            self.bottom = start + entity.size
        entity.address = start
        self.entities.append(entity)
        return start

    def rest(self, align: int) -> int:
        """How many bytes an entity aligned to ``align`` can take from the bottom mark."""
        start = -(-self.bottom // max(align, 1)) * max(align, 1)
        return max(self.top - start, 0)

    def overflow(self, entity: Entity) -> PlacementError:
        there = ", ".join(f"{e.describe()} [{e.address:#x}, {e.end:#x})" for e in self.entities) \
            or "nothing"
        return PlacementError(
            f"{entity.describe()} ({entity.size:#x} bytes, aligned to {max(entity.align, 1):#x}) "
            f"does not fit region {self.name} [{self.address:#x}, {self.end:#x}): "
            f"{self.free:#x} of its {self.size:#x} bytes are free, between {self.bottom:#x} and "
            f"{self.top:#x}; already there: {there}")
