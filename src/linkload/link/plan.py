"""The *plan* pass: what the linker adds to a module and where it may go.

It decides the module's GOT slots, its veneer slots (one per outside branch target and
addend), its unresolved-call stubs, its common blocks, lays everything out (:mod:`.layout`)
and works out the window of addresses from which the module reaches what it refers to. The
*place* pass then reserves the memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arch import PC_RELATIVE, Arch
from ..columns import distinct
from ..errors import LinkError
from ..model import COMMON, WEAK, Module, OneBlock
from ..space import Window
from .context import AUTO, LinkContext, LinkRequest
from .layout import Layout, plan_image_layout, plan_layout
from .resolve import Resolution, SymbolUses, row_flags
from .select import Selection, Survey, address_limit

UNRESOLVED_SYMBOL = "_unresolved"
GUARD_MARGIN = 256  # bytes of guard beyond the largest addend: a field read at a small index


@dataclass(frozen=True)
class Plan:
    """The module's own areas and layout, and where to reserve it.

    ``got_targets``: the rows with a GOT slot, ascending; ``got_slot``: per row, its slot
    (-1: none). ``veneer_keys``: the (target row, addend) pairs with a veneer slot each.
    ``stub_rows``: the rows whose calls may reach an unresolved stub (none when the module
    has its own ``_unresolved``, at row ``unresolved_row``); ``data_rows``: the rows taken
    for data, whose references fall back to the guard area; ``code``: per row, known to be
    code (a narrow absolute field holding it may take a veneer). ``common_rows`` and
    ``common_offsets``: the common blocks, at offsets in the common area. ``window``:
    where the reservation must lie (None: anywhere), ``align`` its alignment.
    """

    layout: Layout
    got_targets: np.ndarray
    got_slot: np.ndarray
    veneer_keys: tuple[tuple[int, int], ...]
    stub_rows: np.ndarray
    data_rows: np.ndarray
    code: np.ndarray
    unresolved_row: int | None
    common_rows: np.ndarray
    common_offsets: np.ndarray
    uses_atexit: bool
    window: Window | None
    align: int


def plan(context: LinkContext, request: LinkRequest, selection: Selection, survey: Survey,
         resolution: Resolution, uses: SymbolUses) -> Plan:
    """Decide the module's areas, lay it out, and choose its placement window."""
    arch, module = context.arch, request.module
    symbols = module.symbols
    got_targets = uses.targets_of(survey.got_kinds)
    got_slot = np.full(len(symbols), -1, np.int64)
    got_slot[got_targets] = np.arange(len(got_targets))
    row = module.find_symbol(UNRESOLVED_SYMBOL)
    unresolved_row = row if row is not None and selection.placed(row, module) and \
        int(symbols["section"][row]) >= 0 else None
    code = _code_flags(context, module, survey, resolution, uses)
    function_rows, data_rows = _fallback_kinds(module, resolution, code)
    # calls to (and addresses of) functions that may come and go need stubs to fall back to
    stub_rows = function_rows if unresolved_row is None else np.zeros(0, np.int64)
    guard_bytes = _guard_bytes(module, uses, data_rows, context.space.page_size)
    common = np.flatnonzero(symbols["section"] == COMMON)
    common = common[~row_flags(len(symbols), list(resolution.aliases))[common]]
    common_rows, common_offsets, common_bytes, common_align = _commons(
        symbols, common, module.symbol_names(common))
    may_be_code = code | row_flags(len(symbols), resolution.pending)
    veneer_keys = _veneer_keys(uses, may_be_code)
    stubs = arch.stubs
    if (len(stub_rows) or resolution.uses_atexit) and stubs is None:
        raise LinkError(f"the {arch.name} CPU has no stubs for calls that wait or for atexit",
                        file=module.file)
    code_bytes = (len(veneer_keys) * arch.veneer.size
                  + (len(stub_rows) * stubs.unresolved_size if len(stub_rows) else 0)
                  + (stubs.atexit_size if resolution.uses_atexit else 0))
    got_bytes = len(got_targets) * arch.got_entry_size
    page_size = context.space.page_size
    if isinstance(module.loading, OneBlock):
        if guard_bytes:
            raise LinkError("data references of a module loaded as one block cannot wait for "
                            "a module linked later", file=module.file)
        block = module.loading
        layout = plan_image_layout(
            module.sections, len(block.image), page_size=page_size,
            bss_offset=_bss_offset(module, block, request), bss_align=block.bss_align,
            aux_bytes=code_bytes, got_bytes=got_bytes, got_align=arch.got_entry_size,
            common_bytes=common_bytes, common_align=common_align, align=block.align)
    else:
        layout = plan_layout(
            module.sections, selection.kept, page_size=page_size, veneer_bytes=code_bytes,
            got_bytes=got_bytes, got_align=arch.got_entry_size, common_bytes=common_bytes,
            common_align=common_align, code_alignment=arch.code_alignment,
            guard_bytes=guard_bytes)
    window, align = _placement(arch, request, selection, survey, resolution, uses, layout,
                               may_be_code)
    return Plan(layout, got_targets, got_slot, veneer_keys, stub_rows, data_rows, code,
                unresolved_row, common_rows, common_offsets, resolution.uses_atexit, window, align)


def _code_flags(context: LinkContext, module: Module, survey: Survey, resolution: Resolution,
                uses: SymbolUses) -> np.ndarray:
    """Per symbol row, known to be code: a name the module calls, one a linked module defines
    as code, or a static-module name held in a narrow absolute field whose address lies in
    code (the space tells)."""
    count = len(module.symbols)
    code = row_flags(count, uses.targets_of(survey.branch_kinds))
    code |= row_flags(count, [r for r, d in resolution.bound.items() if d.function])
    if survey.narrow_absolute_kinds and resolution.host:
        taken, _addends = uses.address_candidates()
        for row in set(taken.tolist()) & resolution.host.keys():
            code[row] |= bool(context.space.is_code(resolution.host[row]))
    return code


def _fallback_kinds(module: Module, resolution: Resolution,
                    code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose definer may come and go, split into functions and data: code (see
    :func:`_code_flags`) is a function, whose references fall back to a stub that reaches
    the unresolved handler; any other is taken for data, whose references fall back to the
    guard area, which faults on any access. A module whose references to data wait at 0 (a
    REL) has no data rows."""
    changeable = resolution.changeable()
    functions = changeable[code[changeable]]
    if module.lazy_data:
        return functions, np.zeros(0, np.int64)
    return functions, changeable[~code[changeable]]


def _guard_bytes(module: Module, uses: SymbolUses, data_rows: np.ndarray, page_size: int) -> int:
    """The size of the guard area the module's data references fall back to: whole pages
    covering the largest offset (addend) any of them adds to its name; none when no
    relocation refers to such a name, or every such name is weak (weak references are 0
    until defined)."""
    strong = data_rows[module.symbols["bind"][data_rows] != WEAK]
    largest = uses.max_addend(row_flags(len(module.symbols), strong)) if len(strong) else None
    if largest is None:
        return 0  # (nothing refers to them)
    reach = max(largest, 0) + GUARD_MARGIN
    return max(page_size, -(-reach // page_size) * page_size)


def _veneer_keys(uses: SymbolUses, may_be_code: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The distinct (symbol row, addend) pairs of branches to outside targets, and of narrow
    absolute fields holding outside functions (``may_be_code``: per row, code or not known
    yet): each may need a veneer of its own (REL addends select different functions of one
    target)."""
    rows, addends = uses.veneer_candidates()
    taken, taken_addends = uses.address_candidates()
    if len(taken):
        keep = may_be_code[taken]
        rows = np.concatenate([rows, taken[keep]])
        addends = np.concatenate([addends, taken_addends[keep]])
    if not len(rows):
        return ()
    low, high = int(addends.min()), int(addends.max())
    if low == high:  # one addend for all (a call's usual -4 on x86-64): distinct rows
        return tuple((row, low) for row in np.flatnonzero(
            row_flags(len(uses.outside), rows)).tolist())
    if low >= -(1 << 31) and high < 1 << 31:
        # one 64-bit key per pair: a flat unique is much faster than unique over pairs
        keys = distinct((rows << 32) | (addends & 0xFFFF_FFFF))
        rows, addends = keys >> 32, ((keys & 0xFFFF_FFFF) ^ (1 << 31)) - (1 << 31)
    else:
        pairs = np.unique(np.stack([rows, addends]), axis=1)
        rows, addends = pairs[0], pairs[1]
    return tuple(zip(rows.tolist(), addends.tolist(), strict=True))


def _commons(symbols: np.ndarray, rows: np.ndarray, names: list[str]):
    """Offsets of the common blocks in the module's common area, one block per name (the
    largest size and alignment among its copies), plus the area's size and alignment."""
    offsets = np.zeros(len(rows), np.int64)
    blocks: dict[str, int] = {}
    sizes: dict[str, int] = {}
    aligns: dict[str, int] = {}
    for name, row in zip(names, rows.tolist(), strict=True):
        sizes[name] = max(sizes.get(name, 0), int(symbols["size"][row]))
        aligns[name] = max(aligns.get(name, 1), int(symbols["value"][row]) or 1)
    cursor = 0
    for name in sizes:
        cursor = (cursor + aligns[name] - 1) // aligns[name] * aligns[name]
        blocks[name] = cursor
        cursor += sizes[name]
    for i, name in enumerate(names):
        offsets[i] = blocks[name]
    return rows.astype(np.int64), offsets, cursor, max(aligns.values(), default=1)


def _bss_offset(module: Module, block: OneBlock, request: LinkRequest) -> int | None:
    """Where the bss of a module loaded as one block goes: in the block's reusable tail
    (linked "fixed", as OSLinkFixed), at an address the caller gave (-1: outside the
    reservation), or after the block (None)."""
    if request.bss is not None:
        return -1
    if request.fixed:
        if block.reusable_tail is None:
            raise LinkError("linking fixed needs a module that marks its reusable tail (a "
                            "version 3 REL, with fixSize)", file=module.file)
        return block.reusable_tail
    return None


# -- placement ----------------------------------------------------------------------------------
def _placement(arch: Arch, request: LinkRequest, selection: Selection, survey: Survey,
               resolution: Resolution, uses: SymbolUses, layout: Layout,
               may_be_code: np.ndarray) -> tuple[Window | None, int]:
    """The window of addresses the module must be reserved in, and the alignment."""
    if request.at is not None:  # the caller chose the address, as OSLink's caller does
        loading = request.module.loading
        required = loading.align if isinstance(loading, OneBlock) else 1
        check_alignment(request.module, "module", request.at, required)
        return Window(request.at, request.at + layout.size, request.at), 1
    limit = _absolute_limit(arch, selection, survey, uses, may_be_code)
    if request.address_limit is not None:
        limit = min(limit or request.address_limit, request.address_limit)
    near = request.place_near
    window = None
    if near == AUTO:
        window = _reach_window(arch, request, survey, resolution, uses, layout, limit)
    elif isinstance(near, int):
        reach = arch.branch_reach
        window = Window(max(near - reach + layout.size, 0), near + reach, near)
    if window is None and limit is not None:
        window = Window(0, limit, limit // 2)
    return window, layout.align


def check_alignment(module: Module, what: str, address: int, align: int) -> None:
    """A block or bss address off the alignment its module asks for is refused (as OSLink
    refuses it)."""
    if align > 1 and address % align:
        raise LinkError(f"{what} address {address:#x} is not aligned to {align} bytes",
                        file=module.file)


def _absolute_limit(arch: Arch, selection: Selection, survey: Survey, uses: SymbolUses,
                    may_be_code: np.ndarray) -> int | None:
    """Highest end address allowed by absolute fields narrower than a pointer (-fno-pic
    code) that hold addresses in the module: its own, or those of the veneers standing in
    for outside functions (``may_be_code``); the module must then sit in the low 2 GiB
    (or 4 GiB) so they fit. Fields holding only outside data do not depend on where the
    module sits."""
    limit = None
    for k in survey.narrow_absolute_kinds:
        targets = uses.targets_of([k])
        outside = selection.by_name[targets]
        if outside.all() and not may_be_code[targets].any():
            continue
        limit = min(limit or (1 << 64), address_limit(arch.kinds[k].field))
    return limit


def _reach_window(arch: Arch, request: LinkRequest, survey: Survey, resolution: Resolution,
                  uses: SymbolUses, layout: Layout, limit: int | None) -> Window | None:
    """Addresses from which the module's outside PC-relative targets, and the callers
    waiting for it, are in reach."""
    fixed = {**resolution.host, **{r: d.address for r, d in resolution.bound.items()}}
    points = request.callers
    if fixed:
        rows = np.array(sorted(fixed), np.int64)
        pcrel = [k for k in survey.kinds if arch.kinds[k].expr in PC_RELATIVE]
        used = uses.of(pcrel)[rows]
        points = np.concatenate([np.array([fixed[r] for r in rows[used].tolist()], np.int64),
                                 points])
    if not len(points):
        return None if limit is None else Window(0, limit, limit // 2)
    lo, hi = int(points.min()), int(points.max())
    reach = min(arch.pcrel_reach, arch.branch_reach)
    size = layout.size
    window = Window(max(hi - reach + size, 0), lo + reach, (lo + hi) // 2)
    if limit is not None:
        window = Window(window.low, min(window.high, limit), min(window.prefer, limit // 2))
    if window.high - window.low < size:
        # No place reaches everything: go near the middle; far branches get veneers and a
        # far data reference fails with an overflow error that names it.
        middle = (lo + hi) // 2
        window = Window(max(middle - reach, 0), middle + reach, middle)
        if limit is not None:
            window = Window(0, limit, limit // 2)
    return window
