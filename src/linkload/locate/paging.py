"""The page tables of a located program (``Locate PageTable``, ``Virtual`` regions).

Paging maps every physical region's pages one to one, with the protection its access gives
(:data:`ACCESS`), and each entity of a virtual region's pages to the physical pages behind it
(RTLoc's "pseudo entities to hold the physical data", :attr:`EntityKind.PAGES`), with the
entity's own access, or its physical region's where it asks for none (``Assign``). Pages of a
virtual region that no entity uses are not present, so a stray access faults.

RTLoc's access names give a page's protection. ``NoAccess``: not present. ``SysRead`` and
``System`` are for the supervisor only (user code, x86's CPL 3, cannot touch them), the others
for user code too; ``SysRead`` and ``ReadOnly`` are read-only, ``System``, ``ReadWrite`` and
``Assign`` (the default) writable. linkload runs programs as the supervisor, for whom the CPU
keeps read-only pages read-only too (i386: ``CR0.WP``).

The tables' size, unless the command gives one, is RTLoc's: a table for the root (i386: the
page directory) and one per area of the CPU's page tables (i386: 4 MiB) that a region touches,
``4 KiB × (1 + areas)``, computed from the regions before anything is placed. What the
tables need is counted again once everything is placed (areas with a present page); a size
given too small for it is an error naming the command.

How a page's entries are encoded is the CPU's (:class:`linkload.arch.Paging`); nothing here
knows a bit of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..arch import PageAccess, Paging
from ..columns import distinct
from .config import LocateCommand, MemType
from .layout import Entity, Region

_R, _W, _U = PageAccess.READ, PageAccess.WRITE, PageAccess.USER
#: A region's or an entity's RTLoc access -> the protection of its pages.
ACCESS: dict[str, PageAccess] = {"NoAccess": PageAccess.NONE, "SysRead": _R, "System": _R | _W,
                                 "ReadOnly": _R | _U, "ReadWrite": _R | _W | _U,
                                 "Assign": _R | _W | _U}


@dataclass(frozen=True)
class PageMap:
    """The page tables of a locate: at physical ``address``, ``size`` bytes (``needed`` of
    them used), mapping each page ``virtual[i]`` to ``physical[i]`` with ``access[i]`` (numpy
    int64 columns, ascending by virtual page; PageAccess values)."""

    address: int
    size: int
    needed: int
    page_size: int
    virtual: np.ndarray
    physical: np.ndarray
    access: np.ndarray

    def runs(self) -> list[tuple[int, int, int, PageAccess]]:
        """The map as runs of pages: (virtual, physical, size, access) of each run of pages
        that follow each other at both ends with one access, ascending."""
        page = self.page_size
        breaks = np.ones(len(self.virtual), bool)
        breaks[1:] = (np.diff(self.virtual) != page) | (np.diff(self.physical) != page) \
            | (self.access[1:] != self.access[:-1])
        starts = np.flatnonzero(breaks).tolist()
        ends = [*starts[1:], len(self.virtual)]
        return [(int(self.virtual[a]), int(self.physical[a]), (b - a) * page,
                 PageAccess(int(self.access[a]))) for a, b in zip(starts, ends, strict=True)]

    def translate(self, address: int) -> tuple[int, PageAccess] | None:
        """(physical address, access) of the virtual ``address`` as the tables map it, or None
        where its page is not present."""
        page = address - address % self.page_size
        i = int(np.searchsorted(self.virtual, page))
        if i == len(self.virtual) or self.virtual[i] != page or self.access[i] == PageAccess.NONE:
            return None
        return int(self.physical[i]) + address - page, PageAccess(int(self.access[i]))


def describe(access: PageAccess) -> str:
    """``read/write, user``: what a page's access allows, in words."""
    if access == PageAccess.NONE:
        return "not present"
    what = "read/write" if access & PageAccess.WRITE else "read-only"
    return f"{what}, {'user' if access & PageAccess.USER else 'supervisor'}"


def round_up(value: int, granule: int) -> int:
    return -(-value // granule) * granule


def region_pages(region: Region, page: int) -> tuple[int, int]:
    """[lo, hi) of the whole pages a region touches."""
    return region.address // page * page, round_up(region.end, page)


def default_size(paging: Paging, regions: Iterable[Region]) -> int:
    """RTLoc's size of the page tables: the root and one table per area the regions touch."""
    ranges = [region_pages(r, paging.page_size) for r in regions]
    return paging.tables_size(paging.areas(ranges))


def page_map(paging: Paging, regions: dict[str, Region], virtual: Iterable[Entity], table: Entity,
             command: LocateCommand) -> tuple[PageMap, bytes]:
    """The page tables (their map and their bytes, ``table.size`` of them) once everything is
    placed: the physical regions one to one, the ``virtual`` entities to their pages."""
    page = paging.page_size
    virtual_pages, physical_pages, access = [], [], []
    for r in regions.values():
        if r.memtype is MemType.VIRTUAL:
            continue
        lo, hi = region_pages(r, page)
        pages = np.arange(lo, hi, page, dtype=np.int64)
        virtual_pages.append(pages)
        physical_pages.append(pages)
        access.append(np.full(len(pages), int(ACCESS[r.access]), np.int64))
    for e in virtual:
        behind = e.backing
        count = round_up(e.size, page) // page
        if behind is None or not count:
            continue
        wanted = e.access if e.access != "Assign" else regions[behind.region].access
        virtual_pages.append(e.address + page * np.arange(count, dtype=np.int64))
        physical_pages.append(behind.address + page * np.arange(count, dtype=np.int64))
        access.append(np.full(count, int(ACCESS[wanted]), np.int64))
    v, p, a = _merged(np.concatenate(virtual_pages), np.concatenate(physical_pages),
                      np.concatenate(access))
    keep = a != PageAccess.NONE  # (a page with no access has no entry: not present)
    needed = paging.tables_size(len(distinct(v[keep] // paging.area_size)))
    if needed > table.size:
        raise command.where.error(
            f"page table {table.name}: {table.size:#x} bytes are too small; the root table and "
            f"the page tables of the {needed // paging.table_size - 1} areas of "
            f"{paging.area_size:#x} bytes mapped take {needed:#x}")
    data = paging.tables(table.address, v[keep], p[keep], a[keep])
    return PageMap(table.address, table.size, needed, page, v, p, a), data.ljust(table.size, b"\0")


def _merged(v: np.ndarray, p: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pages ascending, one row per virtual page: two regions that share a page (neither
    is page aligned) give it what either allows, as the page cannot be split."""
    order = np.argsort(v, kind="stable")
    v, p, a = v[order], p[order], a[order]
    first = np.ones(len(v), bool)
    first[1:] = v[1:] != v[:-1]
    starts = np.flatnonzero(first)
    if len(starts) == len(v):
        return v, p, a
    return v[starts], p[starts], np.bitwise_or.reduceat(a, starts)


__all__ = ["ACCESS", "PageMap", "default_size", "describe", "page_map", "round_up"]
