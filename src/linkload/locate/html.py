"""A picture of a locate's memory map, as one HTML page that opens in a browser from a file
(no server, no script, nothing fetched): an inline SVG drawing and a table.

Each region is a bar, its length to scale with the largest region (a region too small to see
is drawn at a minimum length and says so); its free space is pale, its high-water marks are
ticks. Each entity is a block in its region's bar at its address, coloured by its kind
(sections by what they hold: code, read-only data, data, bss); a copy is joined by an arrow to
the section it is copied to at start-up, and an entity of a virtual region by a dashed arrow to
the physical pages behind it (a virtual region is a bar like any other). Hovering over a block
shows its details (an SVG ``<title>``, which browsers show as a tooltip) and outlines it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from ..model import SectionKind
from .layout import Entity, EntityKind, Region
from .locator import Located

WIDTH = 1100  # of the drawing
LABEL = 230  # the regions' names and ranges, left of the bars
BAR = WIDTH - LABEL - 20
MIN_BAR = 60
ROW = 64  # from a bar to its zoomed bar
BAR_HEIGHT = 26

COLOURS = {
    "code": "#4e79a7", "rodata": "#76b7b2", "data": "#59a14f", "bss": "#edc948",
    EntityKind.IMAGE.value: "#bab0ac", EntityKind.COPY.value: "#f28e2b",
    EntityKind.STACK.value: "#e15759", EntityKind.HEAP.value: "#b07aa1",
    EntityKind.HEADER.value: "#9c755f", EntityKind.RESERVED.value: "#7f7f7f",
    EntityKind.FREE.value: "#c7e9c0", EntityKind.PAGE_TABLE.value: "#86bcb6",
    EntityKind.PAGES.value: "#d4a6c8",
    "copy": "#f28e2b", "paged": "#499894",
}
_SECTION_KINDS = {SectionKind.TEXT: "code", SectionKind.RODATA: "rodata", SectionKind.DATA: "data",
                  SectionKind.BSS: "bss", SectionKind.INIT: "rodata", SectionKind.FINI: "rodata"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.summary { margin: 0 0 16px; color: #555; }
svg text { font-size: 12px; font-family: ui-monospace, monospace; }
svg text.name { font-size: 13px; font-weight: bold; font-family: system-ui, sans-serif; }
rect.entity { stroke: #fff; stroke-width: 0.5; }
rect.entity:hover, path.copy:hover, path.paged:hover { stroke: #000; stroke-width: 2; }
path.copy { fill: none; stroke: #f28e2b; stroke-width: 1.6; }
path.paged { fill: none; stroke: #499894; stroke-width: 1.4; stroke-dasharray: 5,3; }
table { border-collapse: collapse; margin-top: 20px; font-size: 13px; }
td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #eee; }
td.n { font-family: ui-monospace, monospace; text-align: right; }
span.key { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 14px;
           vertical-align: -1px; }
"""


def colour_key(located: Located, entity: Entity) -> str:
    """The colour class of an entity: a section's by what it holds, the others' by kind."""
    if entity.kind is EntityKind.SECTION and entity.section is not None:
        return _SECTION_KINDS.get(located.program.sections[entity.section].kind, "data")
    return entity.kind.value


def details(located: Located, entity: Entity) -> str:
    """What the tooltip of an entity says."""
    lines = [f"{entity.kind.value} {entity.name}", f"region {entity.region}",
             f"runs at {entity.address:#x}-{entity.end:#x} ({entity.size:#x} bytes)"]
    if entity.load is not None and entity.load != entity.address:
        lines.append(f"loaded at {entity.load:#x} ({entity.stored:#x} bytes stored)")
    if entity.align > 1:
        lines.append(f"aligned to {entity.align:#x}")
    if entity.compressed:
        lines.append("zlib-compressed, inflated at start-up")
    if entity.backing is not None and entity.backing.placed:
        b = entity.backing
        lines.append(f"virtual: its pages are at {b.address:#x}-{b.end:#x} in {b.region}")
    if entity.kind is EntityKind.PAGE_TABLE and located.paging is not None:
        lines.append(f"page tables: {located.paging.needed:#x} bytes used; paging on at start-up")
    if entity.kind is EntityKind.SECTION and entity.section is not None:
        s = located.program.sections[entity.section]
        count, changed = located.fixups.per_section(located.program)[entity.section]
        lines.append(f"linked at {s.address:#x}; {count} fixups, {changed} rewritten")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Lane:
    """A bar of the drawing: addresses [lo, hi) of a region drawn from x to x + width."""

    region: Region
    y: float
    x: float
    width: float
    lo: int
    hi: int

    def at(self, address: int) -> float:
        return self.x + (min(max(address, self.lo), self.hi) - self.lo) / (self.hi - self.lo) * self.width


class _Drawing:
    """The SVG: per region a bar to scale and, where the used part is small, a zoomed bar of
    it beneath; entities as blocks in both; copies as arrows between them."""

    def __init__(self, located: Located) -> None:
        self.located = located
        self.largest = max((r.size for r in located.regions), default=1)
        self.lanes: dict[str, list[_Lane]] = {}
        self.parts: list[str] = []
        self.height = 20

    def bar_width(self, region: Region) -> float:
        return max(BAR * region.size / self.largest, MIN_BAR)

    def region(self, r: Region) -> None:
        y = self.height
        small = BAR * r.size / self.largest < MIN_BAR
        label = escape(r.name)
        lanes = [_Lane(r, y, LABEL, self.bar_width(r), r.address, r.end)]
        self.parts += [
            f'<text class="name" x="8" y="{y + 12:.1f}">{label}</text>',
            f'<text x="8" y="{y + 27:.1f}">{r.memtype.value} {r.address:#x}-{r.end:#x}</text>',
            f'<text x="8" y="{y + 41:.1f}">{r.used:#x} used, {r.free:#x} free'
            f'{" (not to scale)" if small else ""}</text>']
        placed = [e for e in self.located.entities if e.placed and e.region == r.name and e.size]
        if placed:
            lo, hi = min(e.address for e in placed), max(e.end for e in placed)
            if (hi - lo) * 3 < r.size:  # too small to read at scale: a zoomed bar too
                zoom = _Lane(r, y + ROW - 18, LABEL, BAR, lo, hi)
                lanes.append(zoom)
                full = lanes[0]
                self.parts.append(
                    f'<path d="M{full.at(lo):.1f},{y + BAR_HEIGHT:.1f} L{zoom.x:.1f},{zoom.y:.1f} '
                    f'M{full.at(hi):.1f},{y + BAR_HEIGHT:.1f} L{zoom.x + zoom.width:.1f},{zoom.y:.1f}" '
                    'fill="none" stroke="#bbb" stroke-dasharray="3,3"/>'
                    f'<text x="8" y="{zoom.y + 17:.1f}">zoom {lo:#x}-{hi:#x}</text>')
        for lane in lanes:
            self.parts.append(
                f'<rect x="{lane.x:.1f}" y="{lane.y:.1f}" width="{lane.width:.1f}" '
                f'height="{BAR_HEIGHT}" fill="#f4f4f4" stroke="#999"><title>{label}: {r.size:#x} '
                f'bytes, {r.free:#x} free between {r.bottom:#x} and {r.top:#x}</title></rect>')
            for mark in (r.bottom, r.top):
                if lane.lo <= mark <= lane.hi:
                    x = lane.at(mark)
                    self.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{lane.y - 4:.1f}" '
                                      f'y2="{lane.y + BAR_HEIGHT + 4:.1f}" stroke="#333" '
                                      'stroke-dasharray="2,2"/>')
        self.lanes[r.name] = lanes
        self.height = lanes[-1].y + BAR_HEIGHT + 28

    def entity(self, e: Entity) -> None:
        inner = e.kind is EntityKind.SECTION and self._in_block(e)
        key = colour_key(self.located, e)
        tip = escape(details(self.located, e))
        for lane in self.lanes[e.region]:
            if e.end < lane.lo or e.address > lane.hi:
                continue
            x, width = lane.at(e.address), max(lane.at(e.end) - lane.at(e.address), 1.5)
            y = lane.y + (6 if inner else 0)
            height = BAR_HEIGHT - (12 if inner else 0)
            self.parts.append(
                f'<rect class="entity {escape(key)}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{height}" fill="{COLOURS.get(key, "#999")}" stroke="#fff" '
                f'stroke-width="0.5"><title>{tip}</title></rect>')
            if width > 8 * len(e.name) + 6 and not inner:
                self.parts.append(f'<text x="{x + 3:.1f}" y="{y + 17:.1f}" fill="#fff" '
                                  f'pointer-events="none">{escape(e.name)}</text>')

    def copy(self, copy: Entity, target: Entity) -> None:
        what = "inflated" if copy.compressed else "copied"
        self._arrow(copy, target, "copy", f"{copy.name}: {what} from {copy.address:#x} to "
                    f"{target.address:#x} at start-up")

    def paged(self, entity: Entity) -> None:
        b = entity.backing
        self._arrow(entity, b, "paged", f"{entity.describe()}: runs at {entity.address:#x}-"
                    f"{entity.end:#x} in {entity.region}, its pages at {b.address:#x}-{b.end:#x} "
                    f"in {b.region}")

    def _arrow(self, source: Entity, target: Entity, kind: str, title: str) -> None:
        a, b = self.lanes[source.region][-1], self.lanes[target.region][-1]
        x1 = (a.at(source.address) + a.at(source.end)) / 2
        x2 = (b.at(target.address) + b.at(target.end)) / 2
        down = b.y >= a.y
        y1 = a.y + (BAR_HEIGHT if down else 0)
        y2 = b.y + (0 if down else BAR_HEIGHT)
        bend = (y2 - y1) / 2 or 30
        self.parts.append(
            f'<path class="{kind}" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},'
            f'{y2 - bend:.1f} {x2:.1f},{y2:.1f}" fill="none" stroke="{COLOURS[kind]}" '
            f'stroke-width="1.6" marker-end="url(#arrow)"><title>{escape(title)}</title></path>')

    def _in_block(self, e: Entity) -> bool:
        return any(b.kind is EntityKind.IMAGE and e.section in b.members for b in self.located.entities)

    def svg(self) -> str:
        located = self.located
        for r in located.regions:
            self.region(r)
        placed = [e for e in located.entities if e.placed and e.region in self.lanes]
        for e in sorted(placed, key=lambda e: e.kind is EntityKind.SECTION):  # sections on top
            self.entity(e)
        for e in placed:
            if e.kind is EntityKind.COPY and e.section is not None:
                self.copy(e, located.section_entity(e.section))
            if e.backing is not None and e.backing.placed and e.backing.region in self.lanes:
                self.paged(e)
        height = int(self.height)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
                f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">'
                '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                f'fill="{COLOURS["copy"]}"/></marker></defs>' + "".join(self.parts) + "</svg>")


def page(located: Located) -> str:
    """The HTML page (see the module docstring)."""
    p = located.program
    method = (f"moved as a whole by {located.fixups.delta:+#x}" if located.fixups.whole
              else "sections moved one by one")
    if located.paging is not None:
        method += f"; paging, page tables at {located.paging.address:#x}"
    legend = "".join(f'<span class="key" style="background:{c}"></span>{escape(k)}'
                     for k, c in COLOURS.items())
    rows = "".join(
        f"<tr><td>{escape(e.kind.value)}</td><td>{escape(e.name)}</td><td>{escape(e.region)}</td>"
        f'<td class="n">{e.address:#x}</td><td class="n">'
        f'{"-" if e.load is None else f"{e.load:#x}"}</td><td class="n">{e.size:#x}</td>'
        f'<td class="n">{e.align:#x}</td></tr>'
        for e in sorted((e for e in located.entities if e.placed), key=lambda e: e.address))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>memory map of {escape(p.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Memory map of {escape(p.name)}</h1>"
        f'<p class="summary">{escape(p.file)} ({escape(p.arch.name)}), entry {located.entry:#x}; '
        f"{len(p.fixups)} fixups, {method}. Hover over a block for its details.</p>"
        f"<div>{legend}</div>{_Drawing(located).svg()}"
        "<table><tr><th>kind</th><th>name</th><th>region</th><th>runs at</th><th>loaded at</th>"
        f"<th>size</th><th>align</th></tr>{rows}</table></body></html>\n")


__all__ = ["COLOURS", "colour_key", "details", "page"]
