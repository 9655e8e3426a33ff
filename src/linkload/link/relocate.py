"""The *relocate* pass: build the module's image where it will live and patch every field.

The image is built in the buffer the space hands out (``Space.staging``: natively the fresh,
still private reservation itself). Symbol addresses are one column (:class:`Targets`); the
relocations are applied a chunk at a time by :func:`relocate_chunk`, a free function over
(image, targets, chunk): the common work is a few column operations, with each kind's
properties looked up in the CPU's tables (or taken once, when the chunk's kinds agree on
them); only rare kinds (GOT, size, relaxable) take a pass of their own, and every field goes
through the one field writer (:func:`linkload.arch.fields.write_fields`), which checks it
and routes far branches through veneers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..arch import GOT_EXPRS, Arch, Expr, Kind
from ..arch.fields import (
    FieldBatch,
    FieldOverflow,
    VeneerSlots,
    branch_to,
    evaluate,
    fits,
    gather,
    kind_set,
    overflow_message,
    scatter,
    write_fields,
)
from ..errors import FormatError, LinkError, RelocationOverflowError
from ..model import ABS, WEAK, Module, OneBlock, SectionKind
from .context import Definition, LinkContext, LinkRequest
from .layout import EH_FRAME, EH_FRAME_TERMINATOR
from .module import NO_REFS, REF_DTYPE, UNRESOLVED, Fallbacks
from .plan import Plan, check_alignment
from .resolve import ATEXIT, DSO_HANDLE, GOT_SYMBOL, Resolution
from .select import Chunk, Relocations, Selection, Survey, kind_flags

NEVER_REBOUND = -2  # ``Targets.bound_to`` of a row whose target never moves


@dataclass(frozen=True)
class Image:
    """The module being built: its bytes (``data``, uint8, the space's staging buffer) at
    ``base``, where each section starts in it (``section_offsets``; -1: not loaded) and at
    which address (``section_base``), and the address of its GOT."""

    # (not in the repr: after a failed link it views memory given back to the space)
    data: np.ndarray = field(repr=False)
    base: int
    section_offsets: np.ndarray
    section_base: np.ndarray
    section_sizes: np.ndarray
    got_base: int
    byteorder: str

    def write(self, address: int, code: bytes) -> None:
        """Put ``code`` at ``address`` (inside the image)."""
        offset = address - self.base
        self.data[offset:offset + len(code)] = np.frombuffer(code, np.uint8)


@dataclass(frozen=True)
class Targets:
    """What the relocations of one link refer to, per symbol row: its ``address``, where a
    call to it goes (``call``: a pending name's fallback), which module it is bound to
    (``bound_to``: a uid, UNRESOLVED, or NEVER_REBOUND), whether it is pending or has no
    address (``unplaced``), whether it is known to be code, its GOT slot and its size, and
    the definition of those bound to a linked module; and, per kind number, whether a
    reference of that kind is recorded for rebinding (``rebindable``), and whether it is a
    narrow absolute field (which may hold a veneer's address for a function's)."""

    address: np.ndarray
    call: np.ndarray
    bound_to: np.ndarray
    pending: np.ndarray
    unplaced: np.ndarray
    code: np.ndarray
    got_slot: np.ndarray
    size: np.ndarray
    definitions: dict[int, Definition]
    rebindable: np.ndarray
    narrow: np.ndarray
    veneers: VeneerSlots
    rebinds: bool  # some row may be rebound
    any_pending: bool
    any_unplaced: bool


@dataclass(frozen=True)
class Built:
    """A relocated image and what the linker commits with it: the initialisers to run, the
    unwind tables to register, the COMDAT groups it brings, the exported names (computed on
    demand)."""

    image: Image
    address: np.ndarray  # per symbol row
    refs: np.ndarray
    veneer_slots: dict[tuple[int, int], int]
    fallbacks: Fallbacks
    section_addresses: list[int | None]
    init: list[int]
    fini: list[int]
    eh_frames: list[int]
    bss_range: tuple[int, int] | None


def build(context: LinkContext, request: LinkRequest, selection: Selection, survey: Survey,
          resolution: Resolution, plan: Plan, base: int) -> Built:
    """Build and relocate the image of a module reserved at ``base``."""
    arch, module, layout = context.arch, request.module, plan.layout
    image = _image(context, module, selection, plan, base)
    bss_range = _place_bss(module, request, image)
    veneer_slots = _veneer_slots(arch, image, plan)
    stubs = _stub_slots(arch, image, plan)
    atexit = _atexit_address(arch, image, plan)
    if plan.uses_atexit:
        _write_atexit_stub(context, module, image, atexit, base + layout.dso_handle_offset)
    if stubs:
        handler = context.unresolved_handler()
        for row, address in stubs.items():
            image.write(address, arch.stubs.unresolved((request.uid << 32) | row, handler))
    # calls and pointers enter the code linkload writes at its address with the CPU's code tag
    tag = arch.code_tag
    address = _symbol_addresses(module, resolution, plan, image, atexit | tag)
    fallbacks = _fallbacks(module, plan, image, address,
                           {row: a | tag for row, a in stubs.items()} if tag else stubs)
    pending = resolution.pending
    address[pending] = fallbacks.values(pending, module.symbols["bind"][pending] == WEAK)
    targets = _targets(arch, module, selection, survey, resolution, plan, address, fallbacks,
                       VeneerSlots(veneer_slots, image.write))
    refs = relocate(arch, selection.relocations, survey, image, targets)
    _write_got(arch, image, plan, address)
    got_refs = _got_refs(arch, image, plan, targets)
    if len(got_refs):  # (joining structured tables costs more than the rows: only when needed)
        refs = np.concatenate([refs, got_refs])
    init, fini, eh_frames = _initialisers(arch, module, selection, resolution, image)
    addresses = [int(a) if a >= 0 else None for a in image.section_base]
    return Built(image, address, refs, veneer_slots, fallbacks, addresses, init, fini, eh_frames,
                 bss_range)


def _image(context: LinkContext, module: Module, selection: Selection, plan: Plan,
           base: int) -> Image:
    """The staging buffer with the module's bytes copied in."""
    layout = plan.layout
    data = context.space.staging(base, layout.size)
    offsets = layout.section_offsets
    if isinstance(module.loading, OneBlock):
        block = module.loading.image
        data[:len(block)] = np.frombuffer(block, np.uint8)
    else:
        for offset, sec in zip(offsets.tolist(), module.sections, strict=True):
            if offset >= 0 and sec.data is not None and sec.size:
                data[offset:offset + sec.size] = np.frombuffer(sec.data, np.uint8)
    section_base = np.where(offsets >= 0, offsets + base, -1).astype(np.int64)
    sizes = np.array([s.size for s in module.sections], np.int64)
    return Image(data, base, offsets, section_base, sizes, base + layout.got_offset,
                 module.byteorder)


def _place_bss(module: Module, request: LinkRequest, image: Image) -> tuple[int, int] | None:
    """The bss of a module loaded as one block: its address (given, or planned), checked
    against the alignment the module asks for; it is zeroed when the module is committed,
    after relocation, as OSLink does."""
    if not isinstance(module.loading, OneBlock):
        return None
    bss_range = None
    for i, sec in enumerate(module.sections):
        if sec.kind != SectionKind.BSS:
            continue
        if request.bss is not None:
            image.section_base[i] = request.bss
        address = int(image.section_base[i])
        check_alignment(module, "bss", address, module.loading.bss_align)
        bss_range = (address, sec.size)
    return bss_range


def _veneer_slots(arch: Arch, image: Image, plan: Plan) -> dict[tuple[int, int], int]:
    """The address of the veneer slot of every (outside branch target, addend)."""
    start = image.base + plan.layout.veneer_offset
    return {key: start + i * arch.veneer.size for i, key in enumerate(plan.veneer_keys)}


def _stub_slots(arch: Arch, image: Image, plan: Plan) -> dict[int, int]:
    """The address of the unresolved stub of every called name another module may come and
    go for (after the veneers)."""
    if not len(plan.stub_rows):
        return {}
    start = image.base + plan.layout.veneer_offset + len(plan.veneer_keys) * arch.veneer.size
    size = arch.stubs.unresolved_size
    return {row: start + i * size for i, row in enumerate(plan.stub_rows.tolist())}


def _atexit_address(arch: Arch, image: Image, plan: Plan) -> int:
    """Where the module's own ``atexit`` goes: after the veneers and stubs."""
    stubs = len(plan.stub_rows) * arch.stubs.unresolved_size if len(plan.stub_rows) else 0
    return image.base + plan.layout.veneer_offset + len(plan.veneer_keys) * arch.veneer.size + stubs


def _write_atexit_stub(context: LinkContext, module: Module, image: Image, address: int,
                       dso_handle: int) -> None:
    cxa_atexit = context.space.lookup("__cxa_atexit")
    if cxa_atexit is None:
        raise LinkError("atexit needs __cxa_atexit, which the static module lacks",
                        file=module.file, symbol=ATEXIT)
    image.write(address, context.arch.stubs.atexit(address, dso_handle, cxa_atexit))


def _fallbacks(module: Module, plan: Plan, image: Image, address: np.ndarray,
               stubs: dict[int, int]) -> Fallbacks:
    """Where the module's references to names nobody defines point (see :class:`Fallbacks`)."""
    unresolved = int(address[plan.unresolved_row]) if plan.unresolved_row is not None else None
    guard = plan.layout.guard_offset
    return Fallbacks(unresolved, stubs, image.base + guard if guard is not None else None,
                     frozenset(plan.data_rows.tolist()), zero_data=module.lazy_data)


def _symbol_addresses(module: Module, resolution: Resolution, plan: Plan, image: Image,
                      atexit: int) -> np.ndarray:
    """The address of every symbol row (0 for pending ones, for now)."""
    symbols = module.symbols
    section = symbols["section"]
    value = symbols["value"].astype(np.int64)
    address = np.zeros(len(symbols), np.int64)
    inside = section >= 0
    address[inside] = image.section_base[section[inside]] + value[inside]
    absolute = section == ABS
    address[absolute] = value[absolute]
    layout = plan.layout
    address[plan.common_rows] = image.base + layout.common_offset + plan.common_offsets
    for row, own in resolution.aliases.items():
        address[row] = address[own]
    linker_defined = {DSO_HANDLE: image.base + layout.dso_handle_offset,
                      GOT_SYMBOL: image.got_base, ATEXIT: atexit}
    for row, name in resolution.linker_defined.items():
        address[row] = linker_defined[name]
    for row, target in resolution.host.items():
        address[row] = target
    for row, definition in resolution.bound.items():
        address[row] = definition.address
    address[resolution.pending] = 0
    return address


def _targets(arch: Arch, module: Module, selection: Selection, survey: Survey,
             resolution: Resolution, plan: Plan, address: np.ndarray, fallbacks: Fallbacks,
             veneers: VeneerSlots) -> Targets:
    pending = resolution.pending
    call = address.copy()  # what a call to a pending name reaches: _unresolved or its stub
    call[pending] = fallbacks.calls(pending)
    bound_to = np.full(len(address), NEVER_REBOUND, np.int32)
    for row, definition in resolution.bound.items():
        bound_to[row] = definition.owner
    bound_to[pending] = UNRESOLVED
    pending_flag = np.zeros(len(address), bool)
    pending_flag[pending] = True
    return Targets(address, call, bound_to, pending_flag, selection.unplaced, plan.code,
                   plan.got_slot, module.symbols["size"], resolution.bound,
                   kind_flags(arch, survey.rebindable_kinds),
                   kind_flags(arch, survey.narrow_absolute_kinds), veneers,
                   rebinds=bool((bound_to != NEVER_REBOUND).any()), any_pending=bool(len(pending)),
                   any_unplaced=bool(selection.unplaced.any()))


# -- relocation ---------------------------------------------------------------------------------
def relocate(arch: Arch, relocations: Relocations, survey: Survey, image: Image,
             targets: Targets) -> np.ndarray:
    """Apply every relocation; returns the references to record for rebinding. Every chunk
    is taken even after an overflow, so that the error can count the fields like it."""
    first: tuple[int, int] | None = None
    count = 0
    refs = []
    for chunk in survey.chunks:
        chunk_refs, overflow = relocate_chunk(arch, relocations, image, targets, chunk)
        refs.append(chunk_refs)
        if overflow is not None:
            first = first or (chunk.row + overflow.row, overflow.value)
            count += overflow.count
    if first is not None:
        row, value = first
        run, i = relocations.locate(row)
        kind = arch.kinds[int(run.kind[i])]
        definition = targets.definitions.get(int(run.target[i]))
        raise relocations.error(RelocationOverflowError, overflow_message(
            kind, value, count - 1, reach_hint(kind, definition)), row)
    refs = [r for r in refs if len(r)]
    return np.concatenate(refs) if refs else NO_REFS


def reach_hint(kind: Kind, definition: Definition | None = None) -> str:
    """What usually makes a value miss a field of ``kind``, and the remedy; ``definition``:
    where the target lies, when another module defines it."""
    if definition is not None and kind.expr in (Expr.ABS, Expr.PCREL):
        owner = definition.owner_name
        return (f"the target lies in module {owner!r} at {definition.address:#x}, out of this "
                f"field's reach: link {owner!r} after this module (a module is placed where "
                f"the fields waiting for it reach it) or near it (place_near=), or compile "
                f"this module with -fPIC")
    if kind.expr in (Expr.PCREL, Expr.GOT_PC):
        return "the target is out of reach (compile with -fPIC to reach it through the GOT)"
    if kind.expr is Expr.ABS:
        return "the address does not fit (compile with -fPIC)"
    return ""


def relocate_chunk(arch: Arch, relocations: Relocations, image: Image, targets: Targets,
                   chunk: Chunk) -> tuple[np.ndarray, FieldOverflow | None]:
    """Apply one chunk's relocations; their references to record for rebinding, and what did
    not fit."""
    kinds = kind_set(arch, chunk.kinds)
    kind, target = chunk.columns()
    positions = chunk.offset.astype(np.int64)
    _check_fields(arch, relocations, image, chunk, positions, kind)
    section_offset = image.section_offsets[chunk.section]  # one number, or one per row
    positions += section_offset
    places = None  # the fields' addresses, for the kinds that need them
    if targets.rebinds or kinds.needs_places:
        places = positions + (image.section_base[chunk.section] - section_offset)
    addends = chunk.addend
    values = _values(arch, kinds, kind, target, addends, places, positions, section_offset,
                     image, targets)
    if targets.any_unplaced:
        dropped = np.take(targets.unplaced, target, mode="clip")  # rows checked by the reader
        if dropped.any():  # allowed in .eh_frame only, where the field is then 0
            _check_unplaced(relocations, chunk, dropped)
            values[dropped] = 0
    veneerable = None  # (the branches)
    if targets.narrow[list(chunk.kinds)].any():  # and narrow absolute fields holding code
        veneerable = arch.tables.branch[kind] | (targets.narrow[kind] & targets.code[target])
    batch = FieldBatch(kinds, kind, positions, values, places, target, addends, veneerable)
    overflow = write_fields(arch, image.data, image.byteorder, batch, targets.veneers)
    return _references(kind, places, target, addends, targets), overflow


def _check_fields(arch: Arch, relocations: Relocations, image: Image, chunk: Chunk,
                  offset: np.ndarray, kind: np.ndarray) -> None:
    """Every field lies inside its section."""
    width = arch.tables.width
    size = image.section_sizes[chunk.section]  # one number, or one per row
    if np.ndim(size) == 0 and int(offset.max()) + int(width[list(chunk.kinds)].max()) <= size:
        return
    bad = np.flatnonzero(offset + width[kind] > size)
    if len(bad):
        i = int(bad[0])
        raise relocations.field_outside(int(width[kind[i]]), chunk.row + i)


def _check_unplaced(relocations: Relocations, chunk: Chunk, dropped: np.ndarray) -> None:
    """Only ``.eh_frame`` may refer to code that is not loaded (a dropped COMDAT copy): the
    field is then 0, and libgcc skips an FDE whose pc_begin field is 0."""
    sections = np.broadcast_to(chunk.section, dropped.shape)[dropped]
    for i, section in zip(np.flatnonzero(dropped).tolist(), sections.tolist(), strict=True):
        if relocations.module.sections[section].name != EH_FRAME:
            raise relocations.error(LinkError, "refers to a section that is not loaded",
                                    chunk.row + i)


def _values(arch: Arch, kinds, kind: np.ndarray, T: np.ndarray, A: np.ndarray,
            P: np.ndarray | None, positions: np.ndarray, section_start: int | np.ndarray,
            image: Image, targets: Targets) -> np.ndarray:
    """Every relocation's value: S+A, minus P for PC-relative kinds; calls to pending names
    reach their fallback; GOT and size kinds are computed on their own rows (``positions``
    are the fields' places in the image, whose sections start at ``section_start``: one
    number for all rows, or one per row)."""
    t = arch.tables
    values = np.take(targets.address, T, mode="clip")  # rows checked by the reader
    values += A
    if kinds.pcrel is None:
        np.subtract(values, P, out=values, where=t.pcrel[kind])
    elif kinds.pcrel:
        values -= P
    if kinds.aligned_places:  # measured from the place rounded down (ARM's Pa)
        values += P & t.place_mask[kind]
    if targets.any_pending and kinds.branches:
        calls = np.flatnonzero(t.branch[kind] & targets.pending[T])
        values[calls] = branch_to(targets.call[T[calls]], P[calls], t.bias[kind[calls]])
    for k in kinds.specials:
        rows = np.flatnonzero(kind == k)
        starts = section_start[rows] if np.ndim(section_start) else section_start
        values[rows] = _special_values(arch, k, T[rows], A[rows], P[rows], positions[rows],
                                       starts, image, targets)
    return values


def _special_values(arch: Arch, k: int, T: np.ndarray, A: np.ndarray, P: np.ndarray,
                    positions: np.ndarray, section_start: int | np.ndarray, image: Image,
                    targets: Targets) -> np.ndarray:
    kind = arch.kinds[k]
    S = np.take(targets.address, T, mode="clip")
    slot = size = None
    if kind.expr in GOT_EXPRS:
        slot = image.got_base + targets.got_slot[T] * arch.got_entry_size
    elif kind.expr is Expr.SIZE:
        size = targets.size[T].astype(np.int64)
    values = evaluate(kind.expr, S, A, P, got=image.got_base, slot=slot, size=size)
    if kind.relaxable and arch.relax is not None:
        # GOT loads of fixed, reachable targets become direct forms (not those of other
        # modules: their GOT slot is what gets rebound)
        direct = S + A - P
        candidates = fits(kind.field, direct) & ~targets.unplaced[T]
        candidates &= targets.bound_to[T] == NEVER_REBOUND
        # the instruction must lie in the field's own section: the bytes before the section
        # are another section's (the arch rewrites nothing before section_start)
        relaxed = arch.relax(k, image.data, positions, candidates, section_start)
        values = np.where(relaxed, direct, values)
    return values


def _references(kind: np.ndarray, places: np.ndarray | None, T: np.ndarray, A: np.ndarray,
                targets: Targets) -> np.ndarray:
    """The fields that point at other modules or at nothing yet, for later rebinding."""
    if not targets.rebinds:
        return NO_REFS
    keep = targets.rebindable[kind] & (targets.bound_to[T] != NEVER_REBOUND)
    refs = np.zeros(int(keep.sum()), REF_DTYPE)
    refs["site"] = places[keep]
    refs["kind"] = kind[keep]
    refs["row"] = T[keep]
    refs["addend"] = A[keep]
    refs["bound"] = targets.bound_to[T[keep]]
    return refs


# -- the GOT and the initialisers -------------------------------------------------------------------
def _write_got(arch: Arch, image: Image, plan: Plan, address: np.ndarray) -> None:
    if not len(plan.got_targets):
        return
    entries = address[plan.got_targets]
    size = arch.got_entry_size
    positions = plan.layout.got_offset + np.arange(len(entries), dtype=np.int64) * size
    scatter(image.data, positions, size, image.byteorder, entries)


def _got_refs(arch: Arch, image: Image, plan: Plan, targets: Targets) -> np.ndarray:
    """GOT slots of rebindable names, recorded as pointer-sized absolute references."""
    if not targets.rebinds or not len(plan.got_targets):
        return NO_REFS
    rows = plan.got_targets[targets.bound_to[plan.got_targets] != NEVER_REBOUND]
    refs = np.zeros(len(rows), REF_DTYPE)
    refs["site"] = image.got_base + plan.got_slot[rows] * arch.got_entry_size
    refs["kind"] = arch.pointer_kind
    refs["row"] = rows
    refs["bound"] = targets.bound_to[rows]
    return refs


def _initialisers(arch: Arch, module: Module, selection: Selection, resolution: Resolution,
                  image: Image) -> tuple[list[int], list[int], list[int]]:
    """The initialisers and finalisers to run, in order, and the unwind tables to register."""
    arrays: dict[SectionKind, list[tuple[int, int]]] = {SectionKind.INIT: [], SectionKind.FINI: []}
    eh_frames = []
    for i, sec in enumerate(module.sections):
        if not selection.kept[i]:
            continue
        if sec.kind in arrays and sec.size:
            arrays[sec.kind].append((sec.priority, i))
        if sec.name == EH_FRAME and sec.size >= EH_FRAME_TERMINATOR:
            eh_frames.append(int(image.section_base[i]))
    if not arrays[SectionKind.INIT] and not arrays[SectionKind.FINI]:
        return [], [], eh_frames
    check = EntryCheck.of(arch, module, selection, resolution, image)
    init = _pointers(arch, module, image, sorted(arrays[SectionKind.INIT]), check)
    fini = _pointers(arch, module, image, sorted(arrays[SectionKind.FINI], reverse=True), check)
    return init, fini, eh_frames


@dataclass(frozen=True)
class EntryCheck:
    """Where the entries of initialiser and finaliser arrays may point, since they are called
    wherever they point: into the module's own code (``code_starts``/``code_ends``: its kept
    text sections), or at a name defined outside the module that a pointer-sized relocation
    of the entry names (a function of the static module or of another module, ``named``
    per symbol row)."""

    code_starts: np.ndarray  # ascending
    code_ends: np.ndarray
    named: np.ndarray
    relocations: Relocations
    pointer_kind: int
    width: int

    @classmethod
    def of(cls, arch: Arch, module: Module, selection: Selection, resolution: Resolution,
           image: Image) -> EntryCheck:
        text = [i for i, sec in enumerate(module.sections)
                if sec.kind == SectionKind.TEXT and selection.kept[i] and sec.size]
        text = np.array(text, np.intp)[np.argsort(image.section_base[text], kind="stable")]
        starts = image.section_base[text].astype(np.uint64)
        named = resolution.outside & (module.symbols["section"] != ABS)
        return cls(starts, starts + image.section_sizes[text].astype(np.uint64), named,
                   selection.relocations, arch.pointer_kind, arch.word_size)

    def __call__(self, section: int, values: np.ndarray) -> None:
        """Raise a FormatError for the first entry of array ``section`` (its ``values``, after
        relocation) that points neither into the code nor at a named outside function."""
        live = (values != 0) & (values != np.uint64((1 << (8 * self.width)) - 1))
        suspect = live
        if len(self.code_starts):
            slot = np.searchsorted(self.code_starts, values, side="right") - 1  # sections sorted
            suspect = live & ~((slot >= 0) & (values < self.code_ends[np.maximum(slot, 0)]))
        if not suspect.any():
            return
        bad = np.flatnonzero(suspect & ~self._named_entries(section, len(values)))
        if len(bad):
            k = int(bad[0])
            module = self.relocations.module
            sec = module.sections[section]
            raise FormatError(
                f"entry {k} points at {int(values[k]):#x}, outside the module's code, and is not "
                f"the address of a function defined elsewhere: it would be called there",
                file=sec.file or module.file, section=sec.name, offset=k * self.width)

    def _named_entries(self, section: int, count: int) -> np.ndarray:
        """Per entry: every relocation touching it is a pointer to a name defined outside the
        module, and there is one."""
        good = np.zeros(count, np.int64)
        other = np.zeros(count, np.int64)
        for run in self.relocations.runs:
            if run.section != section:
                continue
            offset = run.offset.astype(np.int64)
            ok = (run.kind == self.pointer_kind) & (offset % self.width == 0)
            ok &= np.take(self.named, run.target.astype(np.intp), mode="clip")
            good += self._count(offset[ok], count)
            # any other field (no wider than a word) touches the entries of its first and
            # last byte
            other += self._count(offset[~ok], count)
            other += self._count(offset[~ok] + self.width - 1, count)
        return (good > 0) & (other == 0)

    def _count(self, offsets: np.ndarray, count: int) -> np.ndarray:
        """How many of ``offsets`` fall in each of ``count`` entries."""
        entry = offsets // self.width
        return np.bincount(entry[entry < count], minlength=count)[:count]


def _pointers(arch: Arch, module: Module, image: Image, arrays: list[tuple[int, int]],
              check: EntryCheck) -> list[int]:
    out: list[int] = []
    width = arch.word_size
    for _priority, i in arrays:
        sec = module.sections[i]
        positions = image.section_offsets[i] + np.arange(sec.size // width, dtype=np.int64) * width
        values = gather(image.data, positions, width, image.byteorder)
        check(i, values)
        values = values.tolist()
        if sec.reverse:
            values.reverse()
        out.extend(v for v in values if v not in (0, (1 << (width * 8)) - 1))
    return out


def exports(module: Module, selection: Selection, address: np.ndarray,
            dso_handle: int) -> dict[str, int]:
    """The names the module defines for others, with their addresses."""
    table = module.exports()
    rows = np.fromiter(table.values(), np.int64, len(table))
    section = module.symbols["section"][rows]
    kept = (section < 0) | selection.kept[np.maximum(section, 0)]  # a dropped COMDAT copy's
    addresses = address[rows].tolist()                              # definitions live elsewhere
    out = {name: a for name, a, k in zip(table, addresses, kept.tolist(), strict=True) if k}
    out[DSO_HANDLE] = dso_handle
    return out


__all__ = ["NEVER_REBOUND", "Built", "Image", "Targets", "build", "exports",
           "reach_hint", "relocate", "relocate_chunk"]
