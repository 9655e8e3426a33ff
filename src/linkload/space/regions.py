"""Named regions of memory and a first-fit allocator inside them, for the spaces that own
their memory (emulated, image): a console's MEM1 and MEM2, a board's ROM and RAM."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..errors import LinkError, PlacementError
from . import Window


@dataclass(frozen=True)
class Region:
    """A named block of memory."""

    base: int
    size: int
    name: str

    @property
    def end(self) -> int:
        return self.base + self.size


class Intervals:
    """Disjoint, sorted, half-open intervals ``[lo, hi)``; touching intervals merge."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(list(zip(self.starts, self.ends, strict=True)))

    def __len__(self) -> int:
        return len(self.starts)

    def add(self, lo: int, hi: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Cover [lo, hi); returns (intervals removed, intervals added)."""
        i = bisect.bisect_left(self.ends, lo)
        j = bisect.bisect_right(self.starts, hi)
        removed = list(zip(self.starts[i:j], self.ends[i:j], strict=True))
        if removed:
            lo, hi = min(lo, removed[0][0]), max(hi, removed[-1][1])
        self.starts[i:j], self.ends[i:j] = [lo], [hi]
        return removed, [(lo, hi)]

    def remove(self, lo: int, hi: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Uncover [lo, hi); returns (intervals removed, intervals added)."""
        i = bisect.bisect_right(self.ends, lo)
        j = bisect.bisect_left(self.starts, hi)
        removed = list(zip(self.starts[i:j], self.ends[i:j], strict=True))
        added = []
        if removed and removed[0][0] < lo:
            added.append((removed[0][0], lo))
        if removed and removed[-1][1] > hi:
            added.append((hi, removed[-1][1]))
        self.starts[i:j] = [a for a, _ in added]
        self.ends[i:j] = [b for _, b in added]
        return removed, added

    def covers(self, lo: int, hi: int) -> bool:
        """True if one interval contains all of [lo, hi)."""
        i = bisect.bisect_right(self.starts, lo) - 1
        return i >= 0 and self.ends[i] >= hi

    def overlaps(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_right(self.ends, lo)
        return i < len(self.starts) and self.starts[i] < hi



class RegionMemory:
    """Regions (``(base, size, name)`` triples or :class:`Region` objects, whole multiples of
    ``granule``, disjoint) and what of them is free. :meth:`reserve` is a first-fit
    allocator that honours a linker's window; :meth:`claim` takes memory for good (a static
    program's segments)."""

    def __init__(self, regions: Sequence[tuple[int, int, str] | Region], granule: int) -> None:
        self.regions = [r if isinstance(r, Region) else Region(*r) for r in regions]
        self.free = Intervals()
        self.reservations: dict[int, int] = {}  # start -> size
        ordered = sorted(self.regions, key=lambda r: r.base)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.base < a.end:
                raise LinkError(f"memory regions {a.name} and {b.name} overlap")
        for region in ordered:
            if region.base % granule or region.size % granule or region.size <= 0:
                raise LinkError(f"memory region {region.name} ({region.base:#x}, {region.size:#x}) "
                                f"is not a whole number of {granule:#x}-byte pages")
            self.free.add(region.base, region.end)

    def region(self, name: str) -> Region:
        """The region called ``name``."""
        for r in self.regions:
            if r.name == name:
                return r
        raise LinkError(f"no memory region {name!r} (there are {', '.join(r.name for r in self.regions)})")

    def region_of(self, address: int) -> Region | None:
        """The region ``address`` lies in, or None."""
        return next((r for r in self.regions if r.base <= address < r.end), None)

    def check(self, address: int, size: int) -> None:
        """[address, address+size) must lie in one region."""
        region = self.region_of(address)
        if region is None or address + size > region.end or address < 0:
            raise LinkError(f"[{address:#x}, {address + size:#x}) is not memory of this space")

    def describe(self) -> str:
        return ", ".join(f"{r.name} {r.base:#x}-{r.end:#x}" for r in self.regions)

    def reserve(self, size: int, align: int, window: Window | None = None, *,
                region: str | None = None, address: int | None = None) -> int:
        """The lowest free place of ``size`` bytes aligned to ``align`` inside ``window`` (and
        inside ``region``, if named), or exactly at ``address``; it is then reserved."""
        size = max(int(size), 1)
        align = max(int(align), 1)
        if address is not None:
            window, align = Window(address, address + size, address), 1
        start = self._first_fit(size, align, window, self.region(region) if region else None)
        if start is None:
            where = f" in {region}" if region else ""
            if window is not None:
                where += f" between {window.low:#x} and {window.high:#x}"
            raise PlacementError(f"no free {size:#x} bytes aligned to {align:#x}{where}")
        self.free.remove(start, start + size)
        self.reservations[start] = size
        return start

    def _first_fit(self, size: int, align: int, window: Window | None,
                   region: Region | None) -> int | None:
        for lo, hi in self.free:
            if region is not None:
                lo, hi = max(lo, region.base), min(hi, region.end)
            if window is not None:
                lo, hi = max(lo, window.low), min(hi, window.high)
            start = -(-lo // align) * align
            if start + size <= hi:
                return start
        return None

    def release(self, address: int) -> int:
        """Give the reservation at ``address`` back; returns its size."""
        held = self.reservations.pop(address, None)
        if held is None:
            raise LinkError(f"{address:#x} is not a reservation of this space")
        self.free.add(address, address + held)
        return held

    def claim(self, address: int, size: int, file: str) -> None:
        """Take [address, address+size) out of the free memory for good (a static program's
        segments)."""
        if size <= 0:
            return
        region = self.region_of(address)
        if region is None or address + size > region.end:
            raise LinkError(f"segment [{address:#x}, {address + size:#x}) is outside this space's "
                            f"memory ({self.describe()})", file=file)
        if not self.free.covers(address, address + size):
            raise PlacementError(f"segment [{address:#x}, {address + size:#x}) overlaps memory "
                                 "already in use", file=file)
        self.free.remove(address, address + size)

    def highest_fit(self, size: int, page_size: int, region: str | None = None) -> int:
        """The highest page-aligned free place of ``size`` bytes in ``region`` (default: the
        lowest region)."""
        first = self.region(region) if region else min(self.regions, key=lambda r: r.base)
        for lo, hi in reversed(list(self.free)):
            hi = min(hi, first.end)
            start = (hi - size) // page_size * page_size
            if start >= max(lo, first.base):
                return start
        raise PlacementError(f"no room for {size:#x} bytes at the top of {first.name}")
