"""Rebinding: re-patch the references of linked modules when the module they point into comes,
goes or is replaced.

A :class:`Patch` is planned first (every new field computed and checked through the one field
writer, on a small image gathered from the live fields) and applied only once every patch of
an operation is known to be valid, so that a failed link, unlink or reload changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..arch import PC_RELATIVE, Arch, Expr, Kind
from ..arch.fields import (
    FieldBatch,
    VeneerSlots,
    branch_to,
    evaluate,
    gather,
    kind_set,
    kinds_of,
    overflow_message,
    scatter,
    write_fields,
)
from ..columns import distinct
from ..errors import ModuleStateError, RelocationOverflowError
from ..model import WEAK
from ..space import Space
from .context import Definition
from .module import UNRESOLVED, LoadedModule
from .relocate import reach_hint
from .select import narrow_absolute_flags

FIELD_STRIDE = 8  # bytes per field in a gathered image: the widest field


@dataclass
class Patch:
    """Planned changes to references ``index`` of one module: new field contents (addresses,
    width, contents), veneer code to write first, and the new ``bound`` of each reference."""

    module: LoadedModule
    index: np.ndarray
    bound: np.ndarray
    fields: list[tuple[np.ndarray, int, np.ndarray]] = field(default_factory=list)
    code: list[tuple[int, bytes]] = field(default_factory=list)


def plan_patch(space: Space, arch: Arch, m: LoadedModule, index: np.ndarray, targets: np.ndarray,
               bound: int | np.ndarray, code: np.ndarray | None = None,
               definer: str | None = None) -> Patch:
    """New contents for references ``index`` of module ``m``: ``targets`` are the new target
    addresses, ``bound`` the new owners (``UNRESOLVED``: they point at m's fallbacks);
    ``code`` says which targets are functions (a narrow absolute field may then hold a
    veneer's address), ``definer`` names the module that defines them, for messages."""
    bound = np.broadcast_to(np.asarray(bound, np.int32), index.shape).copy()
    refs = m.refs[index]
    kind = refs["kind"].astype(np.intp)
    rows, P, A = refs["row"].astype(np.int64), refs["site"], refs["addend"]
    pending = bound == UNRESOLVED
    values = np.zeros(len(index), np.int64)
    for k in kinds_of(kind):
        sel = np.flatnonzero(kind == k)
        values[sel] = _new_values(arch, m, arch.kinds[k], rows[sel], targets[sel].astype(np.int64),
                                  A[sel], P[sel], pending[sel])
    order = m.module.byteorder
    widths = arch.tables.width[kind]
    image = np.zeros(FIELD_STRIDE * len(index), np.uint8)
    positions = np.arange(len(index), dtype=np.int64) * FIELD_STRIDE
    by_width = [(int(w), np.flatnonzero(widths == w)) for w in distinct(widths) if w]
    for w, sel in by_width:  # the fields' current contents (masked fields keep other bits)
        scatter(image, positions[sel], w, order, space.read_fields(P[sel], w, order))
    veneerable = None
    if code is not None:
        veneerable = arch.tables.branch[kind] | (narrow_absolute_flags(arch)[kind] & code)
    emitted: list[tuple[int, bytes]] = []
    batch = FieldBatch(kind_set(arch, kinds_of(kind)), kind, positions, values, P, rows, A,
                       veneerable)
    veneers = VeneerSlots(m.veneer_slots, lambda address, veneer: emitted.append((address, veneer)))
    overflow = write_fields(arch, image, order, batch, veneers)
    if overflow is not None:
        i = overflow.row
        k = arch.kinds[int(kind[i])]
        where = Definition(int(targets[i]), int(bound[i]), owner_name=definer) if definer else None
        raise RelocationOverflowError(
            overflow_message(k, overflow.value, overflow.count - 1, reach_hint(k, where)),
            kind=k.name, file=m.module.file, symbol=m.module.symbol_name(int(rows[i])),
            offset=int(P[i]) - m.base)
    fields = [(P[sel], w, gather(image, positions[sel], w, order)) for w, sel in by_width]
    return Patch(m, index, bound, fields, emitted)


def _new_values(arch: Arch, m: LoadedModule, kind: Kind, rows: np.ndarray, S: np.ndarray,
                A: np.ndarray, P: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """Values of references rebound to targets S; ``pending`` ones point at m's fallbacks:
    calls and function addresses at its unresolved stub (or ``_unresolved``), data at its
    guard area, weak references at 0 (and a REL's data references at 0, displacement 0 for
    PC-relative ones, as OSUnlink leaves them)."""
    if pending.any():
        S = S.copy()
        weak = m.module.symbols["bind"][rows[pending]] == WEAK
        if kind.expr is Expr.PCREL and weak.any() and not m.fallbacks.zero_data:
            name = m.module.symbol_name(int(rows[pending][np.flatnonzero(weak)[0]]))
            raise ModuleStateError(
                f"module {m.name!r} refers to the weak {name!r} PC-relatively: the reference "
                f"cannot become 0", kind=kind.name, symbol=name, file=m.module.file)
        S[pending] = m.fallbacks.values(rows[pending], weak)
    values = evaluate(kind.expr, S, A, P, got=m.got)
    if kind.field is not None and kind.field.place_align > 1 and kind.expr in PC_RELATIVE:
        values += P & (kind.field.place_align - 1)  # measured from the place rounded down
    if pending.any() and kind.expr is Expr.BRANCH:
        bias = arch.branch_bias if kind.branch_bias is None else kind.branch_bias
        values[pending] = branch_to(m.fallbacks.calls(rows[pending]), P[pending], bias)
    elif pending.any() and m.fallbacks.zero_data and kind.expr is not Expr.ABS:
        values[pending] = 0
    return values


def apply_patch(space: Space, patch: Patch) -> None:
    """Write a planned patch: veneer code first, then the fields, each flushed."""
    for address, code in patch.code:
        space.write(address, code)
        space.flush(address, len(code))
    order = patch.module.module.byteorder
    for addresses, size, contents in patch.fields:
        space.write_fields(addresses, size, order, contents)
        space.flush(int(addresses.min()), int(addresses.max() - addresses.min()) + size)
    patch.module.refs["bound"][patch.index] = patch.bound
