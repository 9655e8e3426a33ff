"""Fixups recomputed for where a program's sections landed, a numpy column at a time.

When every section moves by the same delta (``Locate NTSection``, or sections that happen to
keep their offsets) the program moves as a whole: a fixup that names no symbol (a PE base
relocation, an ELF ``RELATIVE`` one) moves by that delta wherever its address points, as a
loader relocating the image would. When sections move apart (``Locate Section``) each fixup
is recomputed for where its target landed: its target section is the one its symbol names,
or, for a fixup that names none, the section its address lies in (its end included, where no
other section starts); a fixup whose address lies in no section, or whose field holds half an
address, cannot be recomputed and is refused, naming the fixup (as RTLoc's manual warns, this
happens: gcc folds constant offsets into absolute operands).

The new value is S+A (S+A-P for PC-relative kinds) with S+A and P moved, written through the
one field writer (:func:`linkload.arch.fields.write_fields`), which checks range and
alignment and keeps an instruction's other bits. Only fields whose value changes are written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..arch import EXPR_CODES, Expr
from ..arch.fields import FieldBatch, kind_set, kinds_of, overflow_message, write_fields
from ..errors import FixupError, RelocationOverflowError, UnsupportedFixupError
from ..model import MOVES_CODE_TOGETHER, MOVES_NOT, MOVES_WHOLE, SectionKind
from .program import TARGET_IMAGE, TARGET_IMAGE_PART, Program

_ABS, _PCREL, _BRANCH, _NONE = (EXPR_CODES[e] for e in (Expr.ABS, Expr.PCREL, Expr.BRANCH, Expr.NONE))


@dataclass(frozen=True)
class FixupResult:
    """What was done: per fixup row its target section as resolved, its old and new value
    (S+A, or S+A-P), and whether its field was rewritten; ``whole``: the program moved as
    a whole, by ``delta``."""

    target_section: np.ndarray
    old: np.ndarray
    new: np.ndarray
    changed: np.ndarray
    whole: bool
    delta: int | None

    def per_section(self, program: Program) -> list[tuple[int, int]]:
        """(fixups, rewritten) per program section."""
        section = program.fixups.section
        count = np.bincount(section, minlength=len(program.sections))
        changed = np.bincount(section, weights=self.changed, minlength=len(program.sections))
        return list(zip(count.tolist(), changed.astype(np.int64).tolist(), strict=True))


def relocate(program: Program, new_addresses: np.ndarray, images: list[np.ndarray]) -> FixupResult:
    """Recompute every fixup of ``program`` for its sections at ``new_addresses`` (one per
    section), writing into ``images`` (each section's initialised bytes, uint8)."""
    old_addresses = np.array([s.address for s in program.sections], np.int64)
    delta = np.asarray(new_addresses, np.int64) - old_addresses
    whole = bool(len(delta) == 0 or (delta == delta[0]).all())
    _check_moves(program, delta, whole)
    fx = program.fixups
    target_section = _target_sections(program, whole)
    target_delta = np.zeros(len(fx), np.int64)
    inside = target_section >= 0
    target_delta[inside] = delta[target_section[inside]]
    if whole and len(delta):
        target_delta[(target_section == TARGET_IMAGE) | (target_section == TARGET_IMAGE_PART)] = delta[0]
    field_delta = delta[fx.section] if len(fx) else np.zeros(0, np.int64)
    t = program.arch.tables
    kind = fx.kind
    known = (kind >= 0) & (kind < len(t.known))
    known[known] = t.known[kind[known]]
    expr = np.where(known, t.expr[np.where(known, kind, 0)], -1)
    places = old_addresses[fx.section] + fx.offset if len(fx) else np.zeros(0, np.int64)
    pcrel = (expr == _PCREL) | (expr == _BRANCH)
    changed = np.where(pcrel, target_delta != field_delta, target_delta != 0) & (expr != _NONE)
    old = fx.target - np.where(pcrel, places, 0)
    new = fx.target + target_delta - np.where(pcrel, places + field_delta, 0)
    _refuse_kinds(program, changed & ~((expr == _ABS) | pcrel), kind)
    for s, rows in _by_section(fx.section, np.flatnonzero(changed)):
        _write(program, s, images[s], rows, new[rows])
    return FixupResult(target_section, old, new, changed, whole,
                       int(delta[0]) if whole and len(delta) else None)


def _by_section(section: np.ndarray, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(section, its rows among ``rows``), one pass: a program's fixups come a section at a
    time, so a stable sort is only needed when they do not."""
    if not len(rows):
        return
    ordered = section[rows]
    if (np.diff(ordered) < 0).any():
        rows = rows[np.argsort(ordered, kind="stable")]
        ordered = section[rows]
    bounds = [0, *(np.flatnonzero(np.diff(ordered)) + 1).tolist(), len(rows)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        yield int(ordered[a]), rows[a:b]


def _check_moves(program: Program, delta: np.ndarray, whole: bool) -> None:
    """The sections move as the program's fixups allow (``Program.moves``)."""
    sections = program.sections
    if program.moves == MOVES_NOT and delta.any():
        moved = sections[int(np.flatnonzero(delta)[0])]
        raise FixupError(f"the program lists no fixups (link it with -Wl,--emit-relocs, or as a "
                         f"PIE): it runs only where it was linked, and section {moved.name} would "
                         f"move from {moved.address:#x}", file=program.file)
    if program.moves == MOVES_WHOLE and not whole:
        raise FixupError("the program's fixups list only its absolute addresses, and its code "
                         "reaches its data PC-relatively: it moves only as a whole (locate it "
                         "with NTSection, or link it with -Wl,--emit-relocs)", file=program.file)
    if program.moves == MOVES_CODE_TOGETHER:
        code = [s for s in sections if s.kind is SectionKind.TEXT]
        apart = [s for s in code if delta[s.index] != delta[code[0].index]]
        if apart:
            raise FixupError(f"code sections {code[0].name} and {apart[0].name} may call each other "
                             "without a fixup: they must keep their offsets (locate them with "
                             "NTSection, or in that order without a gap)", file=program.file)


def _target_sections(program: Program, whole: bool) -> np.ndarray:
    """Each fixup's target section: its symbol's, or for fixups naming none, the section its
    address lies in (moving as a whole: left as it is, every address moves alike)."""
    fx = program.fixups
    target = fx.target_section.copy()
    if whole:
        return target
    part = np.flatnonzero(target == TARGET_IMAGE_PART)
    if len(part):
        raise _fixup_error(program, int(part[0]), "the field holds half an address, which can "
                           "only move with the whole image: locate the program with NTSection")
    rows = np.flatnonzero(target == TARGET_IMAGE)
    if not len(rows):
        return target
    order = np.argsort([s.address for s in program.sections], kind="stable")
    starts = np.array([program.sections[i].address for i in order], np.int64)
    ends = np.array([program.sections[i].end for i in order], np.int64)
    value = fx.target[rows]
    k = np.searchsorted(starts, value, side="right") - 1
    found = (k >= 0) & (value <= ends[np.maximum(k, 0)])
    if not found.all():
        bad = int(rows[np.flatnonzero(~found)[0]])
        raise _fixup_error(program, bad, "its value lies in no section, so where it points cannot "
                           "be known when sections move apart (a compiler folds constant offsets "
                           "into absolute addresses); locate the program with NTSection")
    target[rows] = order[k]
    return target


def _refuse_kinds(program: Program, rows: np.ndarray, kind: np.ndarray) -> None:
    """Fixups that must change but whose kind the locator cannot recompute."""
    bad = np.flatnonzero(rows)
    if not len(bad):
        return
    i = int(bad[0])
    k = int(kind[i])
    arch = program.arch
    why = arch.unsupported_reason(k) if k not in arch.kinds else \
        f"{arch.kinds[k].expr.value} cannot be recomputed without the linker's tables"
    sec = program.sections[int(program.fixups.section[i])]
    raise UnsupportedFixupError(f"cannot move this fixup: {why} ({len(bad)} fixups like it)",
                           file=program.file, section=sec.name, offset=int(program.fixups.offset[i]),
                           kind=arch.kind_name(k), symbol=_symbol(program, i))


def _write(program: Program, section: int, image: np.ndarray, rows: np.ndarray,
           values: np.ndarray) -> None:
    """Write the new values of ``rows`` (fixups of one section) into its image."""
    fx, arch = program.fixups, program.arch
    kind, offset = fx.kind[rows], fx.offset[rows]
    width = arch.tables.width[kind]
    beyond = np.flatnonzero(offset + width > len(image))
    if len(beyond):
        raise _fixup_error(program, int(rows[beyond[0]]), "the field lies beyond the section's "
                           "initialised bytes")
    kinds = (int(kind[0]),) if (kind == kind[0]).all() else kinds_of(kind)  # (often one kind)
    batch = FieldBatch(kind_set(arch, kinds), kind, offset, values)
    overflow = write_fields(arch, image, program.byteorder, batch)
    if overflow is not None:
        row = int(rows[overflow.row])
        sec = program.sections[section]
        k = int(fx.kind[row])
        raise RelocationOverflowError(
            overflow_message(arch.kinds[k], overflow.value, overflow.count - 1,
                             "the target moved out of the field's reach"),
            file=program.file, section=sec.name, offset=int(fx.offset[row]),
            kind=arch.kind_name(k), symbol=_symbol(program, row))


def _symbol(program: Program, row: int) -> str | None:
    symbol = int(program.fixups.symbol[row])
    name = program.symbol_names[symbol] if 0 <= symbol < len(program.symbol_names) else ""
    return name or None


def _fixup_error(program: Program, row: int, why: str) -> FixupError:
    fx = program.fixups
    sec = program.sections[int(fx.section[row])]
    address = sec.address + int(fx.offset[row])
    return FixupError(f"fixup at {address:#x} (holding {int(fx.target[row]):#x}): {why}",
                      file=program.file, section=sec.name, offset=int(fx.offset[row]),
                      kind=program.arch.kind_name(int(fx.kind[row])))


__all__ = ["FixupResult", "relocate"]
