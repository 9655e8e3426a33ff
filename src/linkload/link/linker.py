"""The runtime linker: place, resolve, relocate (a numpy column per relocation kind), protect,
initialise; and unlink.

``Linker.link`` changes no state until every relocation of the module is known to be valid:
memory is reserved first (placement needs addresses), the whole image is built and relocated
in a private numpy buffer, and only then written to the space, protected and registered. If
anything fails the reservation is released and the linker is as it was.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .. import arch as arch_registry
from ..arch import Arch, Expr
from ..errors import (
    LinkError,
    ModuleStateError,
    RelocationOverflowError,
    UndefinedSymbolError,
    UnsupportedError,
)
from ..formats import Source, read_module
from ..model import ABS, COMMON, GLOBAL, LOCAL, NOT_LOADED, UNDEF, WEAK, Module, SectionKind, merge
from ..space import Space, Window
from .layout import EH_FRAME, EH_FRAME_TERMINATOR, Layout, plan_layout
from .relocate import gather, scatter

AUTO = "auto"
DSO_HANDLE = "__dso_handle"
GOT_SYMBOL = "_GLOBAL_OFFSET_TABLE_"


@dataclass(eq=False)
class LoadedModule:
    """A module linked into a space. Returned by :meth:`Linker.link`."""

    name: str
    module: Module
    linker: Linker
    base: int
    size: int
    layout: Layout
    section_addresses: list[int | None]
    exports: dict[str, int]
    fini: list[int] = field(default_factory=list)
    eh_frames: list[int] = field(default_factory=list)
    dependencies: set[LoadedModule] = field(default_factory=set)
    linked: bool = True

    def address(self, name: str) -> int:
        """Address of the symbol ``name`` defined by this module (exported or local)."""
        if name in self.exports:
            return self.exports[name]
        row = self.module.find_symbol(name)
        if row is not None:
            sym = self.module.symbols[row]
            sec = int(sym["section"])
            if sec >= 0 and self.section_addresses[sec] is not None:
                return self.section_addresses[sec] + int(sym["value"])
            if sec == ABS:
                return int(sym["value"])
        raise UndefinedSymbolError(f"not defined in module {self.name!r}", symbol=name,
                                   file=self.module.file)

    def function(self, name_or_address: str | int, restype=ctypes.c_int, *argtypes):
        """A ctypes callable for a function of this module: ``function("add", c_int, c_int,
        c_int)`` (restype first, then the argument types)."""
        address = self._resolve(name_or_address)
        return self.linker.space.function(address, restype, *argtypes)

    def call(self, name_or_address: str | int, *args: int) -> int:
        """Call a function of this module with integer arguments; its integer result."""
        return self.linker.space.call(self._resolve(name_or_address), *args)

    def _resolve(self, name_or_address: str | int) -> int:
        if isinstance(name_or_address, int):
            return name_or_address
        return self.address(name_or_address)

    def section_address(self, name: str) -> int:
        for sec, addr in zip(self.module.sections, self.section_addresses, strict=True):
            if sec.name == name and addr is not None:
                return addr
        raise LinkError(f"module {self.name!r} has no loaded section {name}")

    def __repr__(self) -> str:
        state = "" if self.linked else ", unlinked"
        return f"<LoadedModule {self.name!r} at {self.base:#x}, {self.size:#x} bytes{state}>"


class Linker:
    """Links modules into a space and keeps the graph of what is linked.

    ``Linker.native()`` links into this process. Symbols are resolved in this order: the
    module's own definitions, the static module (the space's lookup), modules linked earlier.
    """

    def __init__(self, space: Space, arch: Arch, *, place_near: str | int | None = AUTO) -> None:
        self.space = space
        self.arch = arch
        self.place_near = place_near
        self.modules: list[LoadedModule] = []
        self._groups: dict[str, LoadedModule] = {}

    @classmethod
    def native(cls, libraries: Iterable[str] = (), *, place_near: str | int | None = AUTO) -> Linker:
        """A linker for this process (x86-64 Linux). ``libraries`` names further shared
        libraries to search (``libstdc++.so.6`` for C++ modules). ``place_near=None`` turns off
        placement near the module's targets; an integer asks for placement near that address."""
        from ..space.native import NativeSpace

        machine = os.uname().machine
        if machine != "x86_64":
            raise UnsupportedError(f"the native space runs on x86-64 Linux, not {machine}")
        return cls(NativeSpace(tuple(libraries)), arch_registry.get("x86_64"),
                   place_near=place_near)

    # -- queries ---------------------------------------------------------------------------
    def lookup(self, name: str) -> int | None:
        """Address of ``name`` in the static module or any linked module, or None."""
        address = self.space.lookup(name)
        if address is not None:
            return address
        found = self._module_export(name)
        return found[0] if found else None

    def _module_export(self, name: str) -> tuple[int, LoadedModule] | None:
        for m in self.modules:
            address = m.exports.get(name)
            if address is not None:
                return address, m
        return None

    def dependents(self, module: LoadedModule) -> list[LoadedModule]:
        """The linked modules that refer to ``module``."""
        return [m for m in self.modules if module in m.dependencies]

    def dependencies(self, module: LoadedModule) -> list[LoadedModule]:
        """The linked modules ``module`` refers to."""
        return [m for m in self.modules if m in module.dependencies]

    # -- link ------------------------------------------------------------------------------
    def link(self, objects: Source | list[Source], name: str | None = None) -> LoadedModule:
        """Load one object (a path or bytes) or several (linked together as one module), link
        it against the static module and the modules already linked, and run its
        initialisers."""
        sources = objects if isinstance(objects, list) else [objects]
        if not sources:
            raise LinkError("nothing to link")
        parts = [read_module(s) for s in sources]
        module = merge(parts, name or parts[0].name)
        if module.machine != self.arch.name:
            raise UnsupportedError(f"a {module.machine} module cannot be linked into a "
                                   f"{self.arch.name} space", file=module.file)
        job = _LinkJob(self, module)
        loaded = job.run()
        self.modules.append(loaded)
        for signature in job.new_groups:
            self._groups[signature] = loaded
        self._initialise(loaded, job)
        return loaded

    def _initialise(self, loaded: LoadedModule, job: _LinkJob) -> None:
        register = getattr(self.space, "register_frames", None)
        if register is not None:
            for address in job.eh_frames:
                register(address)
                loaded.eh_frames.append(address)
        for address in job.init:
            self.space.call(address)
        loaded.fini = job.fini

    # -- unlink ----------------------------------------------------------------------------
    def unlink(self, module: LoadedModule) -> None:
        """Run the module's finalisers and free its memory. Refused while other modules refer
        to it."""
        if not module.linked or module not in self.modules:
            raise ModuleStateError(f"module {module.name!r} is not linked")
        users = self.dependents(module)
        if users:
            names = ", ".join(repr(m.name) for m in users)
            raise ModuleStateError(f"module {module.name!r} is still referenced by {names}")
        for address in module.fini:
            self.space.call(address)
        finalize = self.space.lookup("__cxa_finalize")
        if finalize is not None and DSO_HANDLE in module.exports:
            self.space.call(finalize, module.exports[DSO_HANDLE])
        deregister = getattr(self.space, "deregister_frames", None)
        if deregister is not None:
            for address in module.eh_frames:
                deregister(address)
        self.modules.remove(module)
        for signature in [s for s, m in self._groups.items() if m is module]:
            del self._groups[signature]
        self.space.release(module.base, module.size)
        module.linked = False


class _LinkJob:
    """Everything one ``link`` computes, built aside and committed only when valid."""

    def __init__(self, linker: Linker, module: Module) -> None:
        self.linker = linker
        self.arch = linker.arch
        self.module = module
        self.symbols = module.symbols
        self.new_groups: list[str] = []
        self.eh_frames: list[int] = []
        self.init: list[int] = []
        self.fini: list[int] = []
        self.dependencies: set[LoadedModule] = set()

    # -- error helpers -----------------------------------------------------------------------
    def _error(self, cls, message: str, reloc_row: int | None = None, symbol: str | None = None):
        rel = self.relocs[reloc_row] if reloc_row is not None else None
        section = offset = kind = None
        file = self.module.file
        if rel is not None:
            sec = self.module.sections[int(rel["section"])]
            section, offset, file = sec.name, int(rel["offset"]), sec.file or file
            kind = self.arch.kind_name(int(rel["kind"]))
            if symbol is None:
                symbol = self._target_name(int(rel["target"]))
        return cls(message, file=file, section=section, offset=offset, kind=kind, symbol=symbol)

    def _target_name(self, row: int) -> str:
        name = self.module.symbol_name(row)
        if name:
            return name
        sec = int(self.symbols["section"][row])
        return self.module.sections[sec].name if sec >= 0 else f"symbol #{row}"

    # -- the steps ---------------------------------------------------------------------------
    def run(self) -> LoadedModule:
        self._select_sections()
        self._check_kinds()
        self._resolve_names()
        self._plan()
        base = self._place()
        try:
            return self._build(base)
        except BaseException:
            self.linker.space.release(base, self.layout.size)
            raise

    def _select_sections(self) -> None:
        """Drop the copies of COMDAT groups linked before (in this module or an earlier one)."""
        module = self.module
        loaded = np.ones(len(module.sections), bool)
        keeper: dict[str, str] = {}  # group signature -> the object file whose copy is kept
        for i, sec in enumerate(module.sections):
            if sec.group is None:
                continue
            if sec.group in self.linker._groups or keeper.setdefault(sec.group, sec.file) != sec.file:
                loaded[i] = False
        self.new_groups = list(keeper)
        self.loaded = loaded
        section = self.symbols["section"]
        in_dropped = np.zeros(len(section), bool)
        inside = section >= 0
        in_dropped[inside] = ~loaded[section[inside]]
        # A global defined in a dropped copy is found by name in the kept copy; a local one
        # (a section symbol, for .eh_frame) has no address.
        self.by_name = (section == UNDEF) | (in_dropped & (self.symbols["bind"] != LOCAL))
        self.by_name[0] = False
        self.unplaced = (section == NOT_LOADED) | (in_dropped & (self.symbols["bind"] == LOCAL))
        relocs = module.relocations
        self.relocs = relocs[loaded[relocs["section"]]] if len(relocs) else relocs

    def _check_kinds(self) -> None:
        kinds = np.unique(self.relocs["kind"])
        for k in kinds:
            k = int(k)
            if k not in self.arch.kinds:
                row = int(np.flatnonzero(self.relocs["kind"] == k)[0])
                why = self.arch.unsupported.get(k, "unknown relocation type")
                why = why.split(": ", 1)[-1]
                raise self._error(UnsupportedError, why, row)
        self.kinds = [int(k) for k in kinds]

    def _resolve_names(self) -> None:
        """Addresses of the names the module does not define itself (host and other modules)."""
        module = self.module
        rows = np.flatnonzero(self.by_name)
        own = module.exports()
        self.own_rows: dict[int, int] = {}  # by-name row -> defining row in this module
        self.external: dict[int, int] = {}  # by-name row -> address
        self.weak_missing: list[int] = []
        missing: list[int] = []
        names = module.symbol_names(rows)
        cache: dict[str, int | None] = {}
        for row, name in zip(rows.tolist(), names, strict=True):
            defining = own.get(name)
            if defining is not None and defining != row and self._placed(defining):
                self.own_rows[row] = defining
                continue
            if name in (DSO_HANDLE, GOT_SYMBOL):
                self.own_rows[row] = -1  # defined by the linker, placed with the module
                continue
            if name not in cache:
                cache[name] = self._lookup_external(name)
            address = cache[name]
            if address is not None:
                self.external[row] = address
            elif int(module.symbols["bind"][row]) == WEAK:
                self.weak_missing.append(row)
            else:
                missing.append(row)
        if missing:
            self._report_missing(missing)

    def _placed(self, row: int) -> bool:
        section = int(self.symbols["section"][row])
        return section < 0 or bool(self.loaded[section])

    def _lookup_external(self, name: str) -> int | None:
        address = self.linker.space.lookup(name)
        if address is not None:
            return address
        found = self.linker._module_export(name)
        if found is None:
            return None
        self.dependencies.add(found[1])
        return found[0]

    def _report_missing(self, missing: list[int]) -> None:
        missing_set = np.array(missing)
        used = np.flatnonzero(np.isin(self.relocs["target"], missing_set))
        names = sorted({self.module.symbol_name(r) for r in missing})
        if not len(used):
            return  # undefined but never referenced: harmless
        listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        first = int(used[0])
        raise self._error(UndefinedSymbolError,
                          f"undefined symbol{'s' if len(names) > 1 else ''}: {listed}", first)

    def _plan(self) -> None:
        arch, symbols, relocs = self.arch, self.symbols, self.relocs
        exprs = {k: arch.kinds[k].expr for k in self.kinds}
        got_kinds = [k for k, e in exprs.items() if e in (Expr.GOT_PCREL, Expr.GOT_SLOT)]
        got_mask = np.isin(relocs["kind"], got_kinds)
        self.got_targets = np.unique(relocs["target"][got_mask])
        branch_kinds = [k for k, e in exprs.items() if e is Expr.BRANCH]
        branch_targets = np.unique(relocs["target"][np.isin(relocs["kind"], branch_kinds)])
        external = np.array(sorted(self.external), np.int64)
        self.veneer_slots = int(np.isin(branch_targets, external).sum() + np.isin(
            branch_targets, np.array(self.weak_missing, np.int64)).sum())
        common = np.flatnonzero(symbols["section"] == COMMON)
        self.common_rows, self.common_offsets, common_bytes, common_align = _commons(symbols, common)
        space = self.linker.space
        self.layout = plan_layout(
            self.module.sections, self.loaded, page_size=space.page_size,
            veneer_bytes=self.veneer_slots * arch.veneer_size, veneer_size=arch.veneer_size,
            got_bytes=len(self.got_targets) * arch.got_entry_size, got_align=arch.got_entry_size,
            common_bytes=common_bytes, common_align=common_align,
            code_alignment=arch.code_alignment)

    def _place(self) -> int:
        """Reserve memory within reach of the module's outside targets, where possible."""
        space, arch, layout = self.linker.space, self.arch, self.layout
        near = self.linker.place_near
        window = None
        limit = self._absolute_limit()
        if near == AUTO:
            window = self._reach_window(limit)
        elif isinstance(near, int):
            reach = arch.branch_reach
            window = Window(max(near - reach + layout.size, 0), near + reach, near)
        if window is None and limit is not None:
            window = Window(0, limit, limit // 2)
        return space.reserve(layout.size, layout.align, window)

    def _absolute_limit(self) -> int | None:
        """Highest end address allowed by absolute fields narrower than a pointer (-fno-pic
        code): the module must then sit in the low 2 GiB (or 4 GiB) so its addresses fit."""
        limit = None
        internal = ~self.by_name[self.relocs["target"]]
        for k in self.kinds:
            kind = self.arch.kinds[k]
            if kind.expr is not Expr.ABS or kind.field is None or kind.field.bits >= self.arch.bits:
                continue
            if not internal[self.relocs["kind"] == k].any():
                continue
            bits = kind.field.bits - (1 if kind.field.check.value == "signed" else 0)
            limit = min(limit or (1 << 64), 1 << bits)
        return limit

    def _reach_window(self, limit: int | None) -> Window | None:
        """Addresses from which every outside target of a PC-relative field is in reach."""
        relocs = self.relocs
        external_rows = np.array(sorted(self.external), np.int64)
        if not len(external_rows):
            return None if limit is None else Window(0, limit, limit // 2)
        addresses = np.array([self.external[r] for r in external_rows.tolist()], np.int64)
        pcrel = [k for k in self.kinds if self.arch.kinds[k].expr in (Expr.PCREL, Expr.BRANCH)]
        used = np.isin(external_rows, relocs["target"][np.isin(relocs["kind"], pcrel)])
        if not used.any():
            return None if limit is None else Window(0, limit, limit // 2)
        targets = addresses[used]
        lo, hi = int(targets.min()), int(targets.max())
        reach = min(self.arch.pcrel_reach, self.arch.branch_reach)
        size = self.layout.size
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

    def _build(self, base: int) -> LoadedModule:
        module, layout, _arch = self.module, self.layout, self.arch
        image = np.zeros(layout.size, np.uint8)
        offsets = layout.section_offsets
        for i, sec in enumerate(module.sections):
            if offsets[i] >= 0 and sec.data is not None and sec.size:
                image[offsets[i]:offsets[i] + sec.size] = np.frombuffer(sec.data, np.uint8)
        self.image, self.base = image, base
        self.section_base = np.where(offsets >= 0, offsets + base, -1).astype(np.int64)
        self.got_base = base + layout.got_offset
        self._symbol_addresses()
        self._relocate()
        self._write_got()
        exports = self._exports()
        space = self.linker.space
        space.write(base, image)
        for start, size, protection in layout.segments:
            space.protect(base + start, size, protection)
        for start, size, protection in layout.segments:
            if protection.value.endswith("x"):
                space.flush(base + start, size)
        self._collect_initialisers()
        addresses = [int(a) if a >= 0 else None for a in self.section_base]
        return LoadedModule(module.name, module, self.linker, base, layout.size, layout, addresses,
                            exports, dependencies=self.dependencies)

    def _symbol_addresses(self) -> None:
        symbols = self.symbols
        section = symbols["section"]
        value = symbols["value"].astype(np.int64)
        address = np.zeros(len(symbols), np.int64)
        inside = section >= 0
        address[inside] = self.section_base[section[inside]] + value[inside]
        absolute = section == ABS
        address[absolute] = value[absolute]
        address[self.common_rows] = self.base + self.layout.common_offset + self.common_offsets
        linker_defined = {DSO_HANDLE: self.base + self.layout.dso_handle_offset,
                          GOT_SYMBOL: self.got_base}
        for row, own in self.own_rows.items():
            if own >= 0:
                address[row] = address[own]
            else:
                address[row] = linker_defined[self.module.symbol_name(row)]
        for row, target in self.external.items():
            address[row] = target
        address[self.weak_missing] = 0
        self.address = address

    def _relocate(self) -> None:
        relocs, arch, image = self.relocs, self.arch, self.image
        if not len(relocs):
            return
        order = self.module.byteorder
        sec = relocs["section"]
        offset = relocs["offset"].astype(np.int64)
        positions = self.layout.section_offsets[sec] + offset
        places = self.section_base[sec] + offset
        targets = relocs["target"].astype(np.int64)
        self._check_targets(targets)
        S = self.address[targets]
        sizes = np.array([s.size for s in self.module.sections], np.int64)[sec]
        got_slot = self.got_base + np.searchsorted(self.got_targets, targets) * arch.got_entry_size
        kind_column = relocs["kind"]
        for k in self.kinds:
            kind = arch.kinds[k]
            if kind.field is None or kind.expr is Expr.NONE:
                continue
            rows = np.flatnonzero(kind_column == k)
            width = kind.field.size
            bad = np.flatnonzero(offset[rows] + width > sizes[rows])
            if len(bad):
                raise self._error(LinkError, f"a {width}-byte field does not fit in the section",
                                  int(rows[bad[0]]))
            pos, P = positions[rows], places[rows]
            containers = gather(image, pos, width, order)
            A = relocs["addend"][rows]
            implicit = relocs["implicit"][rows].astype(bool)
            if implicit.any():
                A = np.where(implicit, kind.field.decode(containers), A)
            values = self._evaluate(kind, k, S[rows], A, P, got_slot[rows], targets[rows], pos)
            values = kind.field.adjust(values)
            ok = kind.field.fits(values)
            if kind.expr is Expr.BRANCH and not ok.all():
                values, ok = self._veneers(kind, rows, S, A, P, values, ok)
            ok |= self.unplaced[targets[rows]]  # .eh_frame entries of dropped code: see below
            if not ok.all():
                self._overflow(kind, rows, values, ok)
            scatter(image, pos, width, order, kind.field.encode(containers, values))

    def _check_targets(self, targets: np.ndarray) -> None:
        """Only ``.eh_frame`` may refer to code that is not loaded (a dropped COMDAT copy): its
        FDE then gets pc_begin 0, which the unwinder skips."""
        bad = np.flatnonzero(self.unplaced[targets])
        if not len(bad):
            return
        names = np.array([s.name for s in self.module.sections], object)
        in_eh = names[self.relocs["section"][bad]] == EH_FRAME
        if not in_eh.all():
            row = int(bad[np.flatnonzero(~in_eh)[0]])
            raise self._error(LinkError, "refers to a section that is not loaded", row)

    def _evaluate(self, kind, k, S, A, P, got_slot, targets, pos) -> np.ndarray:
        expr = kind.expr
        if expr is Expr.ABS:
            return S + A
        if expr in (Expr.PCREL, Expr.BRANCH):
            return S + A - P
        if expr is Expr.GOT_PCREL:
            values = got_slot + A - P
            if kind.relaxable and self.arch.relax is not None:
                direct = S + A - P
                candidates = kind.field.fits(direct) & ~self.unplaced[targets]
                relaxed = self.arch.relax(k, self.image, pos, candidates)
                values = np.where(relaxed, direct, values)
            return values
        if expr is Expr.GOT_OFF:
            return S + A - self.got_base
        if expr is Expr.GOT_PC:
            return self.got_base + A - P
        if expr is Expr.GOT_SLOT:
            return got_slot - self.got_base + A
        if expr is Expr.SIZE:
            return self.symbols["size"].astype(np.int64)[targets] + A
        raise UnsupportedError(f"expression {expr} is not implemented")

    def _veneers(self, kind, rows, S, A, P, values, ok):
        """Route the branches that cannot reach their target through veneers (one per target),
        placed in this module's code segment."""
        far = np.flatnonzero(~ok)
        far_targets, which = np.unique(S[rows[far]], return_inverse=True)
        if len(far_targets) > self.layout.veneer_capacity - self._veneers_used():
            self._overflow(kind, rows, values, ok)
        slots = np.array([self._veneer_for(int(t)) for t in far_targets], np.int64)
        new = kind.field.adjust(slots[which] + A[far] - P[far])
        values = values.copy()
        values[far] = new
        ok = ok.copy()
        ok[far] = kind.field.fits(new)
        return values, ok

    def _veneers_used(self) -> int:
        return len(getattr(self, "veneer_at", {}))

    def _veneer_for(self, target: int) -> int:
        if not hasattr(self, "veneer_at"):
            self.veneer_at: dict[int, int] = {}
        if target not in self.veneer_at:
            slot = len(self.veneer_at)
            offset = self.layout.veneer_offset + slot * self.arch.veneer_size
            address = self.base + offset
            code = self.arch.veneer(address, target)
            self.image[offset:offset + len(code)] = np.frombuffer(code, np.uint8)
            self.veneer_at[target] = address
        return self.veneer_at[target]

    def _overflow(self, kind, rows, values, ok) -> None:
        bad = np.flatnonzero(~ok)
        first = int(rows[bad[0]])
        value = int(values[bad[0]])
        more = f" ({len(bad) - 1} more fields like it)" if len(bad) > 1 else ""
        f = kind.field
        what = f"value {value:#x} does not fit a {f.bits}-bit {f.check.value} field"
        if f.align > 1 and value % f.align:
            what = f"value {value:#x} is not a multiple of {f.align}"
        hint = ""
        if kind.expr in (Expr.PCREL, Expr.GOT_PC):
            hint = "; the target is out of reach (compile with -fPIC to reach it through the GOT)"
        elif kind.expr is Expr.ABS:
            hint = "; the address does not fit (compile with -fPIC)"
        raise self._error(RelocationOverflowError, what + hint + more, first)

    def _write_got(self) -> None:
        if not len(self.got_targets):
            return
        entries = self.address[self.got_targets.astype(np.int64)]
        size = self.arch.got_entry_size
        positions = self.layout.got_offset + np.arange(len(entries), dtype=np.int64) * size
        scatter(self.image, positions, size, self.module.byteorder, entries)

    def _exports(self) -> dict[str, int]:
        exports = self.module.exports()
        rows = np.fromiter(exports.values(), np.int64, len(exports))
        section = self.symbols["section"][rows]
        kept = (section < 0) | self.loaded[np.maximum(section, 0)]  # a dropped COMDAT copy's
        addresses = self.address[rows].tolist()                   # definitions live elsewhere
        out = {name: a for name, a, k in zip(exports, addresses, kept.tolist(), strict=True) if k}
        out[DSO_HANDLE] = self.base + self.layout.dso_handle_offset
        return out

    def _collect_initialisers(self) -> None:
        module = self.module
        width = self.arch.bits // 8
        arrays = {SectionKind.INIT: [], SectionKind.FINI: []}
        for i, sec in enumerate(module.sections):
            if sec.kind in arrays and self.loaded[i] and sec.size:
                arrays[sec.kind].append((sec.priority, i))
            if sec.name == EH_FRAME and self.loaded[i] and sec.size >= EH_FRAME_TERMINATOR:
                self.eh_frames.append(int(self.section_base[i]))
        self.init = self._pointers(sorted(arrays[SectionKind.INIT]), width)
        self.fini = self._pointers(sorted(arrays[SectionKind.FINI], reverse=True), width)

    def _pointers(self, arrays: list[tuple[int, int]], width: int) -> list[int]:
        out: list[int] = []
        offsets = self.layout.section_offsets
        for _priority, i in arrays:
            sec = self.module.sections[i]
            count = sec.size // width
            positions = offsets[i] + np.arange(count, dtype=np.int64) * width
            values = gather(self.image, positions, width, self.module.byteorder).tolist()
            if sec.reverse:
                values.reverse()
            out.extend(v for v in values if v not in (0, (1 << (width * 8)) - 1))
        return out


def _commons(symbols: np.ndarray, rows: np.ndarray):
    """Offsets of the common blocks in the module's common area, by name (one block per name,
    the largest size and alignment wins), plus the area's size and alignment."""
    if not len(rows):
        return rows.astype(np.int64), np.zeros(0, np.int64), 0, 1
    offsets = np.zeros(len(rows), np.int64)
    by_name: dict[int, int] = {}
    cursor, max_align = 0, 1
    sizes = symbols["size"][rows].astype(np.int64)
    aligns = np.maximum(symbols["value"][rows].astype(np.int64), 1)
    names = symbols["name"][rows]
    # Largest first per name, so the block each name gets is big enough for every copy.
    for j in np.lexsort((-sizes, names)):
        name = int(names[j])
        if name not in by_name:
            align = int(aligns[names == name].max())
            cursor = (cursor + align - 1) // align * align
            by_name[name] = cursor
            cursor += int(sizes[j])
            max_align = max(max_align, align)
        offsets[j] = by_name[name]
    return rows.astype(np.int64), offsets, cursor, max_align


__all__ = ["Linker", "LoadedModule", "GLOBAL"]
