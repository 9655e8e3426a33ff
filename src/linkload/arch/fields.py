"""Relocation fields, read, checked and written a numpy column at a time.

This is the one field writer of linkload: linking a module, re-patching the callers of a
module that comes or goes, and the build tools all hand it a :class:`FieldBatch` (where each
field is, its kind, and the value of its expression) and it adjusts, checks, routes far
branches through veneers and encodes, with one range convention (:attr:`Field.bounds`,
inclusive). It writes into a byte image: the module being built, a file being written, or a
small image gathered from live memory (see :func:`gather`).

Fields may be unaligned, so a column of fields of ``size`` bytes is gathered and scattered
through a byte-strided window of the image (a word starting at every byte); when every field
of the column is aligned, through the image viewed as ``size``-byte words, several times faster.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..columns import distinct
from .base import INT64_MAX, INT64_MIN, Arch, Expr, Field, Kind, KindTables

# -- reading and writing fields in a byte image --------------------------------------------------


def window(image: np.ndarray, size: int, byteorder: str) -> np.ndarray:
    """A view of ``image`` (uint8) whose element ``i`` is the ``size``-byte word starting at
    byte ``i``: unaligned fields are then read and written with one fancy index."""
    count = max(len(image) - size + 1, 0)
    return np.ndarray((count,), dtype=f"{byteorder}u{size}", buffer=image, strides=(1,))


def gather(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str) -> np.ndarray:
    """The ``size``-byte fields at ``positions`` of ``image`` (uint8), as uint64 values."""
    if not len(positions):
        return np.zeros(0, np.uint64)
    words = _aligned_words(image, positions, size, byteorder, "u")
    if words is not None:
        return words[positions >> _SHIFTS[size]].astype(np.uint64)
    return window(image, size, byteorder)[positions].astype(np.uint64)


def scatter(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str,
            values: np.ndarray) -> None:
    """Store the low ``size`` bytes of each of ``values`` at ``positions`` of ``image``
    (fields must not overlap)."""
    if not len(positions):
        return
    words = _aligned_words(image, positions, size, byteorder, values.dtype.kind)
    if words is not None:
        words[positions >> _SHIFTS[size]] = values  # wraps to the field's width
        return
    window(image, size, byteorder)[positions] = values.astype(f"{byteorder}u{size}",
                                                              casting="unsafe")


_SHIFTS = {1: 0, 2: 1, 4: 2, 8: 3}


def _aligned_words(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str,
                   signedness: str) -> np.ndarray | None:
    """``image`` as an array of ``size``-byte words, if every position is a multiple of
    ``size`` (data tables of pointers usually are): numpy indexes aligned words several
    times faster than the byte-strided window."""
    if size == 1 or image.ctypes.data % size or int(positions[0]) % size:
        return None  # (the first field decides most unaligned columns without a pass)
    if int(np.bitwise_or.reduce(positions)) % size:
        return None
    signedness = "i" if signedness == "i" else "u"
    return image[:len(image) - len(image) % size].view(f"{byteorder}{signedness}{size}")


# -- values -------------------------------------------------------------------------------------
def evaluate(expr: Expr, S: np.ndarray, A: np.ndarray, P: np.ndarray | None, *, got: int = 0,
             slot: np.ndarray | None = None, size: np.ndarray | None = None) -> np.ndarray:
    """The value of relocation expression ``expr`` for columns S (target), A (addend) and P
    (place); ``got`` is the GOT's address, ``slot`` the address of each target's GOT slot and
    ``size`` each target's size."""
    if expr is Expr.NONE:
        return np.zeros(len(S), np.int64)
    if expr is Expr.ABS:
        return S + A
    if expr in (Expr.PCREL, Expr.BRANCH):
        return S + A - P
    if expr is Expr.GOT_PCREL:
        return slot + A - P
    if expr is Expr.GOT_OFF:
        return S + A - np.int64(got)
    if expr is Expr.GOT_PC:
        return np.int64(got) + A - P
    if expr is Expr.GOT_SLOT:
        return slot - np.int64(got) + A
    if expr is Expr.SIZE:
        return size + A
    raise ValueError(f"no value for expression {expr}")


def branch_to(destinations: np.ndarray | int, places: np.ndarray,
              bias: int | np.ndarray) -> np.ndarray:
    """The values of branch fields at ``places`` that land exactly on ``destinations``: a
    branch's S+A-P with S+A = destination - bias (x86-64 measures from the field's end; the
    bias may be given per field, :attr:`KindTables.bias`)."""
    return destinations - np.int64(bias) - places


# -- what a set of kinds shares -------------------------------------------------------------------
def _same(column: np.ndarray, kinds: list[int]):
    """The value ``column`` (a per-kind table) holds for every one of ``kinds``, or None."""
    values = column[kinds]
    if not len(values):
        return None
    return values[0].item() if (values == values[0]).all() else None


@dataclass(frozen=True)
class KindSet:
    """Relocation kinds that occur together (in a chunk of a table, in a batch of fields), and
    what they share: a pass then takes a shared property once instead of looking it up row by
    row. Made by :func:`kind_set`, once per CPU and set of kinds."""

    kinds: tuple[int, ...]
    specials: tuple[int, ...]  # computed on their own rows (GOT, size, relaxable kinds...)
    pcrel: bool | None  # the ordinary kinds are all PC-relative, none is, or mixed (None)
    needs_places: bool  # some kind needs the fields' addresses
    branches: bool  # some kind is a branch
    adjusted: bool  # some kind rounds or shifts its value
    low: int | None  # the range all the kinds share, if they do
    high: int | None
    aligned_fields: bool  # some kind's value must be a multiple of a power of two
    unchecked: bool  # every value fits every field (64-bit fields, no alignment)
    widths: tuple[tuple[int, bool], ...]  # (container bytes, every such kind is whole), ascending
    one_width: bool  # every kind writes a field, all of one width
    aligned_places: bool  # some PC-relative kind measures from its place rounded down


@functools.lru_cache(maxsize=4096)
def kind_set(arch: Arch, kinds: tuple[int, ...]) -> KindSet:
    """What ``kinds`` (known kinds of ``arch``, ascending) share."""
    t, listed = arch.tables, list(kinds)
    ordinary = (Expr.ABS, Expr.PCREL, Expr.BRANCH)
    specials = tuple(k for k in kinds if arch.kinds[k].expr not in ordinary or arch.kinds[k].relaxable)
    # rows of special kinds are computed afresh: their own PC-relative flag does not matter
    pcrel = _same(t.pcrel, [k for k in kinds if k not in specials] or listed)
    low, high = _same(t.low, listed), _same(t.high, listed)
    aligned = bool((t.align[listed] > 1).any())
    all_widths = {int(t.width[k]) for k in kinds}
    widths = tuple((w, all(bool(t.whole[k]) for k in kinds if t.width[k] == w))
                   for w in sorted(all_widths - {0}))
    return KindSet(
        kinds=kinds, specials=specials, pcrel=None if pcrel is None else bool(pcrel),
        needs_places=bool(specials) or bool(t.pcrel[listed].any()),
        branches=bool(t.branch[listed].any()),
        adjusted=bool(t.round[listed].any() or t.shift[listed].any()), low=low, high=high,
        aligned_fields=aligned, unchecked=low == INT64_MIN and high == INT64_MAX and not aligned,
        widths=widths, one_width=len(all_widths) == 1 and 0 not in all_widths,
        aligned_places=bool(t.place_mask[listed].any()))

def kinds_of(column: np.ndarray) -> tuple[int, ...]:
    """The distinct kinds of a (small) column, ascending."""
    return tuple(distinct(column).tolist())


def fits(field: Field, values: np.ndarray) -> np.ndarray:
    """Which adjusted values ``field`` takes: inside its bounds, a multiple of its alignment."""
    low, high = field.bounds
    ok = (values >= low) & (values <= high)
    if field.align > 1:
        ok &= (values & (field.align - 1)) == 0
    return ok


def in_range(t: KindTables, kinds: KindSet, kind: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """Which adjusted values fit their fields (range and alignment); None: all do, whatever
    they are."""
    if kinds.unchecked:
        return None  # 64-bit fields: every value fits
    if kinds.low is not None and kinds.high is not None:
        ok = values >= kinds.low
        ok &= values <= kinds.high
    else:
        ok = (values >= t.low[kind]) & (values <= t.high[kind])
    if kinds.aligned_fields:
        ok &= (values & (t.align[kind] - 1)) == 0
    return ok


# -- the field writer ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldBatch:
    """Fields to write: their kinds (a :class:`KindSet` and a column of kind numbers as
    machine integers), where each starts in the image, and the value of each expression,
    before the field's own adjustment. ``places`` (each field's address), ``targets`` and
    ``addends`` are needed only where a field that does not fit may take a veneer, which is
    chosen per (target, addend); ``veneerable`` says which may (default: the branches; an
    absolute field holding a function's address may too, the veneer's address standing in
    for the function's)."""

    kinds: KindSet
    kind: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    places: np.ndarray | None = None
    targets: np.ndarray | None = None
    addends: np.ndarray | None = None
    veneerable: np.ndarray | None = None


@dataclass(frozen=True)
class VeneerSlots:
    """Where far branches may go instead: ``slots`` maps (target row, addend) to the address
    of that pair's veneer; ``emit(address, code)`` writes a veneer's code."""

    slots: Mapping[tuple[int, int], int]
    emit: Callable[[int, bytes], None]


@dataclass(frozen=True)
class FieldOverflow:
    """The fields of a batch that do not fit: the first one's row and (adjusted) value, and
    how many there are."""

    row: int
    value: int
    count: int


def write_fields(arch: Arch, image: np.ndarray, byteorder: str, batch: FieldBatch,
                 veneers: VeneerSlots | None = None) -> FieldOverflow | None:
    """Adjust, check and encode a batch of fields into ``image`` (uint8). A branch (or another
    veneerable field) that does not reach goes through its veneer, if ``veneers`` has one for
    it. Returns what does not fit, or None; the fields are written either way (a caller that
    gets an overflow drops the image)."""
    t = arch.tables
    kinds, kind, values = batch.kinds, batch.kind, batch.values
    if kinds.adjusted:
        values = (values + t.round[kind]) >> t.shift[kind]
    ok = in_range(t, kinds, kind, values)
    may_route = kinds.branches or batch.veneerable is not None
    if ok is not None and veneers is not None and may_route and not ok.all():
        values, ok = _through_veneers(arch, batch, values, ok, veneers)
    overflow = None
    if ok is not None and not ok.all():
        bad = np.flatnonzero(~ok)
        overflow = FieldOverflow(int(bad[0]), int(values[bad[0]]), len(bad))
    encode_fields(arch, image, byteorder, kinds, kind, batch.positions, values)
    return overflow


def _through_veneers(arch: Arch, batch: FieldBatch, values: np.ndarray, ok: np.ndarray,
                     veneers: VeneerSlots) -> tuple[np.ndarray, np.ndarray]:
    """Route the fields that cannot reach their target through the veneer of that (target,
    addend): the veneer's code goes on to where the field had to lead, and the field holds
    the veneer instead (a branch to it; an absolute field, its address)."""
    t = arch.tables
    veneerable = batch.veneerable if batch.veneerable is not None else t.branch[batch.kind]
    far = np.flatnonzero(~ok & veneerable)
    keys = list(zip(batch.targets[far].tolist(), batch.addends[far].tolist(), strict=True))
    slots = np.array([veneers.slots.get(key, -1) for key in keys], np.int64)
    usable = slots >= 0
    far, slots = far[usable], slots[usable]
    if not len(far):
        return values, ok
    k = batch.kind[far]
    # a PC-relative field is measured from P + its kind's bias; an absolute one from 0
    origin = np.where(t.pcrel[k], batch.places[far] + t.bias[k], 0) if batch.places is not None \
        else np.zeros(len(far), np.int64)
    destinations = batch.values[far] + origin
    for slot, destination in zip(slots.tolist(), destinations.tolist(), strict=True):
        veneers.emit(slot, arch.veneer.code(slot, destination))
    values, ok = values.copy(), ok.copy()
    entries = slots | arch.code_tag  # where a branch or a pointer enters the veneer's code
    v = (entries - origin + t.round[k]) >> t.shift[k]
    values[far] = v
    ok[far] = (v >= t.low[k]) & (v <= t.high[k]) & ((v & (t.align[k] - 1)) == 0)
    return values, ok


def encode_fields(arch: Arch, image: np.ndarray, byteorder: str, kinds: KindSet,
                  kind: np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    """Store adjusted values, one pass per field width: masked fields keep their other bits,
    scattered fields (Thumb-2 and the like) are encoded by their :class:`Field`."""
    t = arch.tables
    for w, whole in kinds.widths:
        rows = slice(None) if kinds.one_width else np.flatnonzero(t.width[kind] == w)
        pos, new = positions[rows], values[rows]
        if not whole:
            k = kind[rows]
            containers = gather(image, pos, w, byteorder)
            mask = t.mask[k]
            new = (containers & ~mask) | (new.astype(np.uint64) & mask)
            custom = ~t.plain[k]
            for c in distinct(k[custom]).tolist():
                sel = np.flatnonzero(k == c)
                new[sel] = arch.kinds[c].field.encode(containers[sel], values[rows][sel])
        scatter(image, pos, w, byteorder, new)


def stored_addends(arch: Arch, image: np.ndarray, byteorder: str, kind: np.ndarray,
                   positions: np.ndarray) -> np.ndarray:
    """The addends stored in the fields themselves (ELF REL tables), decoded by each kind's
    field; 0 for kinds that store nothing. Every field must lie inside ``image``."""
    addends = np.zeros(len(kind), np.int64)
    for k in distinct(kind).tolist():
        found = arch.kinds.get(k)
        if found is None or not found.writes:
            continue  # nothing stored (the addend is 0), or an unknown kind (refused later)
        rows = np.flatnonzero(kind == k)
        field = found.field
        addends[rows] = field.decode(gather(image, positions[rows], field.size, byteorder))
    return addends


def overflow_message(kind: Kind, value: int, more: int = 0, hint: str = "") -> str:
    """Why a value does not fit its field, as a phrase (the caller names the place);
    ``hint`` says what usually causes it."""
    f = kind.field
    what = f"value {value:#x} does not fit a {f.bits}-bit {f.check.value} field"
    if f.align > 1 and value % f.align:
        what = f"value {value:#x} is not a multiple of {f.align}"
    if hint:
        what += f"; {hint}"
    if more:
        what += f" ({more} more fields like it)"
    return what


__all__ = ["FieldBatch", "FieldOverflow", "KindSet", "VeneerSlots", "branch_to",
           "encode_fields", "evaluate", "fits", "gather", "in_range", "kind_set", "kinds_of",
           "overflow_message", "scatter", "stored_addends", "window", "write_fields"]
