"""Where each section of a module goes inside the module's one reservation.

A module gets one contiguous block, cut into up to three page-aligned segments so that each
can carry its own protection:

* code (read+execute): text sections, then the veneer area;
* read-only: rodata, initialiser and finaliser arrays, ``.eh_frame`` (each followed by the
  zero terminator the unwinder wants), the GOT;
* read+write: data, a word for ``__dso_handle``, bss, common blocks;

and, for a module whose data references may wait for a module linked later, a guard area
that faults on any access (no access at all), where those references point meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlacementError
from ..model import Section, SectionKind
from ..space import Protection

EH_FRAME = ".eh_frame"
EH_FRAME_TERMINATOR = 4

_SEGMENT_OF = {
    SectionKind.TEXT: 0,
    SectionKind.RODATA: 1,
    SectionKind.INIT: 1,
    SectionKind.FINI: 1,
    SectionKind.DATA: 2,
    SectionKind.BSS: 2,
}
PROTECTIONS = (Protection.READ_EXECUTE, Protection.READ, Protection.READ_WRITE)


# Offsets in a module are signed 64-bit numbers: a layout this large fits no address space.
LAYOUT_LIMIT = 1 << 63


def align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def _check_room(section: Section, end: int) -> None:
    """A section ending at ``end`` must leave the layout below :data:`LAYOUT_LIMIT` (a module
    combined from objects that each fit may not)."""
    if end >= LAYOUT_LIMIT:
        raise PlacementError(f"the module's layout reaches {end:#x} bytes at this section: no "
                             "address space holds it", file=section.file, section=section.name)


@dataclass
class Layout:
    """Offsets (from the start of the reservation) of everything in a module."""

    section_offsets: np.ndarray  # int64 per section; -1 for a section not loaded
    segments: list[tuple[int, int, Protection]]  # (offset, size, protection), non-empty ones
    size: int
    align: int
    veneer_offset: int
    got_offset: int
    common_offset: int
    dso_handle_offset: int
    guard_offset: int | None = None  # the guard area (no access), if the module has one


def plan_layout(sections: list[Section], loaded: np.ndarray, *, page_size: int,
                veneer_bytes: int, got_bytes: int, got_align: int,
                common_bytes: int, common_align: int, code_alignment: int,
                guard_bytes: int = 0) -> Layout:
    """Lay out the ``loaded`` sections and the linker's own areas into segments; the guard
    area (``guard_bytes``, whole pages) comes last."""
    offsets = np.full(len(sections), -1, np.int64)
    by_segment: list[list[int]] = [[], [], []]
    max_align = page_size
    for i, sec in enumerate(sections):
        if loaded[i]:
            by_segment[_SEGMENT_OF[sec.kind]].append(i)
            max_align = max(max_align, sec.align)
    cursor = 0
    segments = []
    areas: dict[str, int] = {}
    for seg, members in enumerate(by_segment):
        cursor = align_up(cursor, page_size)
        start = cursor
        if seg == 2:
            # data before bss, so that the zero-filled tail is contiguous
            members = sorted(members, key=lambda i: sections[i].kind == SectionKind.BSS)
        for i in members:
            sec = sections[i]
            cursor = align_up(cursor, sec.align)
            _check_room(sec, cursor + sec.size + page_size)
            offsets[i] = cursor
            cursor += sec.size
            if sec.name == EH_FRAME:
                cursor += EH_FRAME_TERMINATOR
        if seg == 0:
            cursor = align_up(cursor, code_alignment)
            areas["veneer"] = cursor
            cursor += veneer_bytes
        elif seg == 1:
            cursor = align_up(cursor, got_align)
            areas["got"] = cursor
            cursor += got_bytes
        else:
            cursor = align_up(cursor, 16)
            areas["dso_handle"] = cursor
            cursor += 16
            cursor = align_up(cursor, common_align)
            areas["common"] = cursor
            cursor += common_bytes
        if cursor > start:
            segments.append((start, cursor - start, PROTECTIONS[seg]))
    guard = None
    if guard_bytes:
        guard = cursor = align_up(cursor, page_size)
        cursor += guard_bytes
        segments.append((guard, guard_bytes, Protection.NONE))
    size = align_up(max(cursor, 1), page_size)
    return Layout(offsets, segments, size, max_align, areas["veneer"], areas["got"],
                  areas["common"], areas["dso_handle"], guard)


def plan_image_layout(sections: list[Section], image_size: int, *, page_size: int,
                      bss_offset: int | None, bss_align: int, aux_bytes: int, got_bytes: int,
                      got_align: int, common_bytes: int, common_align: int, align: int) -> Layout:
    """Lay out a module that is loaded as one block (a REL: the whole file): its sections
    stay at their offsets in the block; the bss goes at ``bss_offset`` (inside the block's
    freed tail, for OSLinkFixed), after the block, or nowhere in it (``-1``: the caller gives
    its address); linkload's own areas (veneers and stubs, GOT, ``__dso_handle``, commons)
    follow on a page of their own."""
    offsets = np.full(len(sections), -1, np.int64)
    bss_size = 0
    for i, sec in enumerate(sections):
        if sec.kind == SectionKind.BSS:
            bss_size = sec.size
        elif sec.image_offset is not None:
            offsets[i] = sec.image_offset
    cursor = image_size
    if bss_offset is None:  # right after the image
        bss_offset = align_up(image_size, max(bss_align, 1))
    if bss_offset >= 0:
        for i, sec in enumerate(sections):
            if sec.kind == SectionKind.BSS:
                offsets[i] = bss_offset
        cursor = max(cursor, bss_offset + bss_size)
    segments = [(0, cursor, Protection.READ_WRITE)]  # a REL mixes code and data in its pages
    cursor = align_up(cursor, page_size)
    areas = {}
    start = cursor
    areas["veneer"] = cursor
    cursor += aux_bytes
    if cursor > start:
        segments.append((start, cursor - start, Protection.READ_EXECUTE))
    cursor = align_up(cursor, page_size)
    start = cursor
    areas["got"] = cursor = align_up(cursor, got_align)
    cursor += got_bytes
    areas["dso_handle"] = cursor = align_up(cursor, 16)
    cursor += 16
    areas["common"] = cursor = align_up(cursor, common_align)
    cursor += common_bytes
    segments.append((start, cursor - start, Protection.READ_WRITE))
    size = align_up(cursor, page_size)
    return Layout(offsets, segments, size, max(align, page_size), areas["veneer"],
                  areas["got"], areas["common"], areas["dso_handle"])
