"""One link, as named passes over plain data (in the spirit of LLVM JITLink's
``JITLinkGeneric.cpp``), with one bail-out path.

::

    select   which sections are linked (COMDAT), which names are resolved   -> Selection
    survey   the relocation kinds, checked against the CPU, in chunks        -> Survey
    resolve  every name the module does not define                            -> Resolution
    plan     GOT, veneers, stubs, commons, layout, the placement window       -> Plan
    place    reserve the memory                                               -> base address
    relocate build the image in the reservation and patch every field         -> Built

Each pass takes what the earlier ones produced (frozen dataclasses, numpy tables) and returns
its own; none changes anything outside the link but *place*, whose reservation is released if
a later pass fails. The linker then commits the result (writes, protects, registers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..space import Space
from .context import LinkContext, LinkRequest
from .module import LoadedModule
from .plan import Plan, plan
from .relocate import Built, build, exports
from .resolve import SymbolUses, check_pending, resolve
from .select import Selection, select, survey


@dataclass(frozen=True)
class Linked:
    """A module built and relocated, not yet live: the linker commits it by writing its image,
    protecting it, registering ``eh_frames`` and ``new_groups``, announcing it to the space
    (with ``symbol_addresses``, the address of each symbol row) and running ``init``; it uses
    the copies of ``shared_groups`` that earlier modules linked."""

    module: LoadedModule
    new_groups: tuple[str, ...]
    shared_groups: tuple[str, ...]
    init: list[int]
    eh_frames: list[int]
    symbol_addresses: np.ndarray


def link_module(context: LinkContext, request: LinkRequest) -> Linked:
    """Run the passes of one link. On error nothing has changed."""
    prime_allocator()
    module = request.module
    selection = select(module, context.arch, context.group_linked)
    kinds = survey(selection.relocations)
    resolution = resolve(context, module, selection)
    uses = SymbolUses(context.arch, kinds, resolution.outside)
    check_pending(module, selection.relocations, kinds, uses, resolution)
    layout_plan = plan(context, request, selection, kinds, resolution, uses)
    base = place(context.space, layout_plan)
    try:
        built = build(context, request, selection, kinds, resolution, layout_plan, base)
    except BaseException:
        context.space.release(base, layout_plan.layout.size)
        raise
    return Linked(_loaded(context, request, selection, layout_plan, built), selection.new_groups,
                  selection.shared_groups, built.init, built.eh_frames, built.address)


def place(space: Space, layout_plan: Plan) -> int:
    """Reserve the module's memory inside its window."""
    return space.reserve(layout_plan.layout.size, layout_plan.align, layout_plan.window)


def _loaded(context: LinkContext, request: LinkRequest, selection: Selection, layout_plan: Plan,
            built: Built) -> LoadedModule:
    module, layout = request.module, layout_plan.layout
    dso_handle = built.image.base + layout.dso_handle_offset
    return LoadedModule(
        module.name, module, context.space, built.image.base, layout.size, layout,
        built.section_addresses, uid=request.uid, refs=built.refs,
        veneer_slots=built.veneer_slots, fallbacks=built.fallbacks, got=built.image.got_base,
        fini=built.fini, image=built.image.data, bss_range=built.bss_range,
        # built when first asked for: most modules are never asked
        export_table=functools.partial(exports, module, selection, built.address, dso_handle))


@functools.cache
def prime_allocator() -> None:
    """Free one large block, once per process. glibc's malloc serves blocks of 128 KiB or more
    with fresh mappings and gives freed heap memory beyond 128 KiB back to the kernel, until a
    large mapped block is freed: it then raises both limits to that block's size (its dynamic
    threshold). The relocation pass allocates temporaries of up to 512 KiB per chunk; before
    the limits rise, each may be mapped afresh and page-fault 4 KiB at a time, which costs
    more than the arithmetic done in it (what else the process freed decides whether they
    have risen already). Elsewhere this is one short-lived allocation."""
    block = np.empty(4 << 20, np.uint8)  # never touched: freeing it is what counts
    del block
