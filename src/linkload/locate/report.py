"""The text map and the JSON layout of a locate.

The **map** (``map.txt``) is for people: the regions with their high-water marks and free
space; every entity with its run address, load address, size and alignment (an entity of a
virtual region with the physical pages behind it); every section with where it was linked,
where it runs, where it is loaded and its fixups (how many, how many rewritten); the boot
table; the page tables and what they map (runs of pages: virtual, physical, access); the
symbols, moved.

The **layout** (``layout.json``) is for tools: the same facts as numbers. ``Reserve`` reads
it back (the entities' ``address`` and ``size``) to keep a later locate out of this one's
memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..model import FILE_SYMBOL, SECTION_SYMBOL, UNDEF
from .config import MemType
from .locator import Located
from .paging import describe

LAYOUT_VERSION = 1


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#010x}"


def map_lines(located: Located) -> Iterator[str]:
    """The lines of the text map."""
    p = located.program
    method = (f"the whole image moved by {located.fixups.delta:+#x}" if located.fixups.whole
              else "sections moved one by one, each fixup recomputed for its target")
    yield f"linkload locate: {p.file} ({p.arch.name}), entry {located.entry:#x}"
    yield f"fixups: {len(p.fixups)}, {int(located.fixups.changed.sum())} rewritten; {method}"
    yield ""
    yield "Regions"
    yield (f"  {'name':<12} {'type':<7} {'access':<9} {'start':>10} {'end':>10} {'size':>10} "
           f"{'used':>10} {'free':>10} {'bottom':>10} {'top':>10}")
    for r in located.regions:
        access = "-" if r.memtype is MemType.VIRTUAL else r.access  # (its entities' pages say)
        yield (f"  {r.name:<12} {r.memtype.value:<7} {access:<9} {_hex(r.address)} {_hex(r.end)} "
               f"{r.size:#10x} {r.used:#10x} {r.free:#10x} {_hex(r.bottom)} {_hex(r.top)}")
    yield ""
    yield "Entities"
    yield (f"  {'kind':<9} {'name':<24} {'region':<12} {'runs at':>10} {'loaded at':>10} "
           f"{'size':>10} {'stored':>10} {'align':>7}")
    for e in sorted(located.entities, key=lambda e: (e.address is None, e.address or 0)):
        note = " (zlib)" if e.compressed else ""
        if e.backing is not None and e.backing.placed:
            note += f" pages at {e.backing.address:#x} in {e.backing.region}"
        yield (f"  {e.kind.value:<9} {e.name[:24]:<24} {e.region:<12} {_hex(e.address)} "
               f"{_hex(e.load)} {e.size:#10x} {e.stored:#10x} {e.align:#7x}{note}")
    yield ""
    yield "Sections"
    yield (f"  {'name':<12} {'linked at':>10} {'runs at':>10} {'loaded at':>10} {'size':>10} "
           f"{'delta':>11} {'fixups':>7} {'rewritten':>9}")
    per_section = located.fixups.per_section(p)
    for s, (count, changed) in zip(p.sections, per_section, strict=True):
        new = int(located.section_addresses[s.index])
        load = located.section_entity(s.index).load
        yield (f"  {s.name:<12} {_hex(s.address)} {_hex(new)} {_hex(load)} "
               f"{s.size:#10x} {new - s.address:+#11x} {count:>7} {changed:>9}")
    yield ""
    boot = located.boot
    where = f"at {located.header.address:#x}" if located.header else "not placed (no Locate Header)"
    yield f"Boot table {where}: entry {boot.entry:#x}, stack top {boot.stack_top:#x}, heap " \
          f"{boot.heap:#x} ({boot.heap_size:#x} bytes)"
    for e in boot.entries:
        yield f"  {e.op.name:<8} {_hex(e.destination)} <- {_hex(e.source)} {e.size:#10x} bytes"
    yield from _paging_lines(located)
    yield ""
    yield "Symbols"
    yield f"  {'linked at':>10} {'runs at':>10} {'section':<12} name"
    for name, old, new, section in _symbols(located):
        yield f"  {_hex(old)} {_hex(new)} {section:<12} {name}"


def _paging_lines(located: Located) -> Iterator[str]:
    """The page tables: each physical region mapped one to one, each entity of a virtual
    region mapped to the pages behind it."""
    pages = located.paging
    if pages is None:
        return
    yield ""
    yield (f"Page tables at {pages.address:#x}: {pages.size:#x} bytes ({pages.needed:#x} used), "
           "paging turned on by the boot table's first entry")
    yield f"  {'virtual':<21}    {'physical':<21} {'access':<22} what"
    page = pages.page_size
    for r in located.regions:
        if r.memtype is not MemType.VIRTUAL:
            lo, hi = r.address // page * page, -(-r.end // page) * page
            found = pages.translate(lo)
            access = describe(found[1]) if found else "not present"
            yield f"  {_range(lo, hi)} -> {_range(lo, hi)} {access:<22} region {r.name}, one to one"
    for e in sorted((e for e in located.entities if e.backing is not None and e.placed and e.size),
                    key=lambda e: e.address):
        found = pages.translate(e.address)
        access = describe(found[1]) if found else "not present"
        size = e.backing.size
        yield (f"  {_range(e.address, e.address + size)} -> "
               f"{_range(e.backing.address, e.backing.address + size)} {access:<22} "
               f"{e.describe()} in {e.region}, its pages in {e.backing.region}")


def _range(lo: int, hi: int) -> str:
    return f"{_hex(lo)}-{_hex(hi)}"


def _symbols(located: Located) -> Iterator[tuple[str, int, int, str]]:
    p = located.program
    types, defined = p.symbols["type"].tolist(), (p.symbols["section"] != UNDEF).tolist()
    for i, (name, where) in enumerate(zip(p.symbol_names, p.symbol_sections.tolist(), strict=True)):
        if not name or types[i] in (FILE_SYMBOL, SECTION_SYMBOL) or where < -1 or not defined[i]:
            continue
        section = p.sections[where].name if where >= 0 else "(absolute)"
        yield name, int(p.symbol_values[i]), int(located.symbol_values[i]), section


def layout(located: Located) -> dict:
    """The layout as plain data (for ``layout.json``)."""
    p = located.program
    per_section = located.fixups.per_section(p)
    return {
        "version": LAYOUT_VERSION,
        "program": p.name,
        "file": p.file,
        "cpu": p.arch.name,
        "entry": located.entry,
        "fixups": {"count": len(p.fixups), "rewritten": int(located.fixups.changed.sum()),
                   "whole_image": located.fixups.whole, "delta": located.fixups.delta},
        "regions": [{"name": r.name, "address": r.address, "size": r.size,
                     "type": r.memtype.value, "access": r.access, "bottom": r.bottom,
                     "top": r.top, "free": r.free} for r in located.regions],
        "entities": [{"kind": e.kind.value, "name": e.name, "region": e.region,
                      "address": e.address, "size": e.size, "align": e.align, "load": e.load,
                      "stored": e.stored, "compressed": e.compressed,
                      "section": None if e.section is None else p.sections[e.section].name,
                      "pages": None if e.backing is None else e.backing.address}
                     for e in located.entities],
        "sections": [{"name": s.name, "linked": s.address,
                      "address": int(located.section_addresses[s.index]),
                      "load": located.section_entity(s.index).load, "size": s.size,
                      "initialised": len(s.data), "fixups": count, "rewritten": changed}
                     for s, (count, changed) in zip(p.sections, per_section, strict=True)],
        "boot": {"address": located.header.address if located.header else None,
                 "entry": located.boot.entry, "stack_top": located.boot.stack_top,
                 "heap": located.boot.heap, "heap_size": located.boot.heap_size,
                 "entries": [{"op": e.op.name, "destination": e.destination, "source": e.source,
                              "size": e.size} for e in located.boot.entries]},
        "paging": None if located.paging is None else {
            "address": located.paging.address, "size": located.paging.size,
            "needed": located.paging.needed,
            "mappings": [{"virtual": v, "physical": ph, "size": n, "access": describe(a)}
                         for v, ph, n, a in located.paging.runs()]},
        "symbols": [{"name": name, "linked": old, "address": new, "section": section}
                    for name, old, new, section in _symbols(located)],
    }


__all__ = ["LAYOUT_VERSION", "layout", "map_lines"]
