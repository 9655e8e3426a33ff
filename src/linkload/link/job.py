"""One link: everything computed for one module, built aside and committed only when valid.

``LinkJob.build`` reserves memory (placement needs addresses), builds and relocates the whole
image in the buffer the space hands out for it (``Space.staging``: natively the fresh, still
private reservation itself) and records the module's references that may later be rebound
(to other modules, or pending). Nothing live changes: the linker commits the result.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..arch import EXPR_CODES, INT64_MAX, INT64_MIN, Expr
from ..errors import (
    FormatError,
    LinkError,
    RelocationOverflowError,
    UndefinedSymbolError,
    UnsupportedError,
)
from ..model import ABS, COMMON, LOCAL, NOT_LOADED, UNDEF, WEAK, Module, RelocationRun, SectionKind
from ..space import Window
from .layout import EH_FRAME, EH_FRAME_TERMINATOR, plan_image_layout, plan_layout
from .module import REF_DTYPE, UNRESOLVED, LoadedModule
from .relocate import evaluate, gather, scatter

if TYPE_CHECKING:
    from .linker import Linker

AUTO = "auto"
# Relocation rows taken in one pass of column operations. Columns of this length (512 KiB of
# 64-bit words) come from memory malloc keeps for reuse (see _prime_allocator) and mostly stay
# in the CPU's caches; columns of a whole large table would be returned to the kernel when
# freed and page-fault afresh on every link (a microsecond or more a page), which costs
# several times the arithmetic. Shorter chunks only add per-chunk overhead.
CHUNK_ROWS = 65536
DSO_HANDLE = "__dso_handle"
GOT_SYMBOL = "_GLOBAL_OFFSET_TABLE_"
UNRESOLVED_SYMBOL = "_unresolved"
ATEXIT = "atexit"  # glibc keeps it out of libc.so; each module gets its own, tied to its handle
LINKER_DEFINED = (DSO_HANDLE, GOT_SYMBOL, ATEXIT)
# Expressions that need a GOT slot for their target.
GOT_EXPRS = (Expr.GOT_PCREL, Expr.GOT_SLOT)
# Expressions whose value depends on where the target is: these are rebound when it moves.
REBINDABLE = (Expr.ABS, Expr.PCREL, Expr.BRANCH, Expr.GOT_OFF)


class LinkJob:
    """Builds one module for ``linker``. ``hidden`` modules are ignored when resolving names
    (the module a reload replaces); ``callers`` are the places in other modules that wait for
    this module's functions (placement tries to keep them in reach)."""

    def __init__(self, linker: Linker, module: Module, uid: int, *,
                 hidden: frozenset[int] = frozenset(), callers: np.ndarray | None = None,
                 place_near: str | int | None = AUTO, at: int | None = None,
                 bss: int | None = None, fixed: bool = False) -> None:
        self.linker = linker
        self.place_near = place_near
        self.at, self.bss_address, self.fixed = at, bss, fixed
        self.arch = linker.arch
        self.module = module
        self.uid = uid
        self.hidden = hidden
        self.callers = callers if callers is not None else np.zeros(0, np.int64)
        self.symbols = module.symbols
        self.new_groups: list[str] = []
        self.eh_frames: list[int] = []
        self.init: list[int] = []
        self.fini: list[int] = []
        self.outside = np.zeros(0, bool)  # flag per symbol row: defined outside the module
        self.branches: list[tuple[np.ndarray, np.ndarray]] = []  # veneer candidates

    # -- errors ------------------------------------------------------------------------------
    def _error(self, cls, message: str, reloc_row: int | None = None, symbol: str | None = None):
        section = offset = kind = None
        file = self.module.file
        if reloc_row is not None:
            run, i = self._locate(reloc_row)
            sec = self.module.sections[run.section]
            section, offset, file = sec.name, int(run.offset[i]), sec.file or file
            kind = self.arch.kind_name(int(run.kind[i]))
            if symbol is None:
                symbol = self._target_name(int(run.target[i]))
        return cls(message, file=file, section=section, offset=offset, kind=kind, symbol=symbol)

    def _locate(self, row: int) -> tuple[RelocationRun, int]:
        """The run holding relocation ``row`` (the job numbers its runs' rows one after the
        other) and the row's index in it."""
        k = bisect_right(self.run_rows, row) - 1
        return self.runs[k], row - self.run_rows[k]

    def _target_name(self, row: int) -> str:
        name = self.module.symbol_name(row)
        if name:
            return name
        sec = int(self.symbols["section"][row])
        return self.module.sections[sec].name if sec >= 0 else f"symbol #{row}"

    # -- the steps ---------------------------------------------------------------------------
    def build(self) -> LoadedModule:
        """Validate, place and relocate; returns the module, not yet written or registered.
        On error the reservation is released and nothing has changed."""
        _prime_allocator()
        self._select_sections()
        self._explicit_addends()
        self._survey()
        self._resolve_names()
        self._plan()
        self.base = self._place()
        try:
            return self._build()
        except BaseException:
            self.linker.space.release(self.base, self.layout.size)
            raise

    def _select_sections(self) -> None:
        """Drop the copies of COMDAT groups linked before (in this module or an earlier one)."""
        module = self.module
        loaded = np.ones(len(module.sections), bool)
        keeper: dict[str, int] = {}  # group signature -> the object whose copy is kept
        linked_groups = self.linker._groups
        for i, sec in enumerate(module.sections):
            if sec.group is None:
                continue
            owner = linked_groups.get(sec.group)
            if owner is not None and owner.uid not in self.hidden:
                loaded[i] = False  # linked before, by another module
            elif keeper.setdefault(sec.group, sec.origin) != sec.origin:
                loaded[i] = False  # a second copy within this module
        self.new_groups = list(keeper)
        self.loaded = loaded
        section = self.symbols["section"]
        in_dropped = np.zeros(len(section), bool)
        inside = section >= 0
        in_dropped[inside] = ~loaded[section[inside]]
        # A global defined in a dropped copy is found by name in the kept copy; a local one
        # (a section symbol, for .eh_frame) has no address.
        self.by_name = (section == UNDEF) | (in_dropped & (self.symbols["bind"] != LOCAL))
        if len(self.by_name):
            self.by_name[0] = False  # the null symbol
        self.unplaced = (section == NOT_LOADED) | (in_dropped & (self.symbols["bind"] == LOCAL))
        self._use_runs([run for run in module.relocation_runs if loaded[run.section]])

    def _use_runs(self, runs: list[RelocationRun]) -> None:
        self.runs = runs
        self.run_rows = np.cumsum([0] + [len(run) for run in runs]).tolist()

    def _explicit_addends(self) -> None:
        """Move addends stored in the fields themselves (ELF REL tables) into the table, so
        that planning (veneers are per target and addend) and relocation see them alike."""
        if not any(run.implicit for run in self.runs):
            return
        self._use_runs([self._explicit_run(i) if run.implicit else run
                        for i, run in enumerate(self.runs)])

    def _explicit_run(self, index: int) -> RelocationRun:
        run = self.runs[index]
        data = self.module.sections[run.section].data
        addend = np.zeros(len(run), np.int64)
        kinds = run.kind.astype(np.intp)
        for k in np.unique(kinds).tolist():
            kind = self.arch.kinds.get(k)
            if kind is None or kind.field is None or data is None:
                continue  # nothing stored (the addend is 0), or an unknown kind (refused later)
            rows = np.flatnonzero(kinds == k)
            offsets = run.offset[rows].astype(np.int64)
            beyond = np.flatnonzero(offsets + kind.field.size > len(data))
            if len(beyond):
                raise self._field_outside(kind.field.size, self.run_rows[index] + int(rows[beyond[0]]))
            image = np.frombuffer(data, np.uint8)
            addend[rows] = kind.field.decode(
                gather(image, offsets, kind.field.size, self.module.byteorder))
        return RelocationRun(run.section, run.offset, run.kind, run.target, addend)

    def _chunks(self) -> Iterator[_Chunk]:
        """The relocations cut into chunks: runs of at most CHUNK_ROWS rows."""
        for run, row in zip(self.runs, self.run_rows, strict=False):
            for start in range(0, len(run), CHUNK_ROWS):
                yield _Chunk(run, start, min(start + CHUNK_ROWS, len(run)), row + start)

    @staticmethod
    def _columns(chunk: _Chunk) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's kind and target columns, as machine-word indices (indexing with them
        is several times faster than with the table's 32-bit columns). A chunk of one kind
        gets a kind column that costs nothing (a broadcast scalar)."""
        run, a, b = chunk.run, chunk.start, chunk.stop
        if len(chunk.kinds) == 1:  # every row the same: one element, stride 0
            kind = np.ndarray((b - a,), np.intp, np.array(chunk.kinds, np.intp), strides=(0,))
        else:
            kind = run.kind[a:b].astype(np.intp)
        return kind, run.target[a:b].astype(np.intp)

    def _survey(self) -> None:
        """One pass over the kind column: every kind must be known to the arch; note which
        kinds occur, in all and per chunk. Which symbols each kind refers to is noted when
        planning first asks (:meth:`_uses`): chunks of kinds it never asks about, such as
        a table of pointers, are not looked at again until relocation."""
        known = self.arch.tables.known
        self.chunks = list(self._chunks())
        present_anywhere: set[int] = set()
        for chunk in self.chunks:
            kind = chunk.run.kind[chunk.start:chunk.stop]
            low, high = int(kind.min()), int(kind.max())
            if high >= len(known):  # before counting: it may be any 32-bit number
                beyond = np.flatnonzero(kind >= len(known))
                raise self._error(UnsupportedError, "unknown relocation type",
                                  chunk.row + int(beyond[0]))
            if low == high:
                chunk.kinds = [low]
            else:
                chunk.kinds = np.flatnonzero(np.bincount(kind, minlength=len(known))).tolist()
            for k in chunk.kinds:
                if not known[k]:
                    row = chunk.row + int(np.flatnonzero(kind == k)[0])
                    why = self.arch.unsupported.get(k, "unknown relocation type").split(": ", 1)[-1]
                    raise self._error(UnsupportedError, why, row)
            present_anywhere.update(chunk.kinds)
        self.kinds = sorted(present_anywhere)
        # [slot of a present kind, symbol row]: does a relocation of that kind refer to it?
        self.kind_slot = np.full(len(known), -1, np.intp)
        self.kind_slot[self.kinds] = np.arange(len(self.kinds))
        self.used_by = np.zeros((len(self.kinds), len(self.symbols)), bool)
        self.has_unplaced = bool(self.unplaced.any())
        exprs = {k: self.arch.kinds[k].expr for k in self.kinds}
        self.branch_kinds = [k for k, e in exprs.items() if e is Expr.BRANCH]
        self.rebindable_kinds = [k for k, e in exprs.items() if e in REBINDABLE]
        # Kinds whose every target planning asks about: GOT kinds (each target gets a slot)
        # and absolute fields narrower than an address (do they point into the module?).
        # For the others only targets defined outside the module matter.
        self.fully_noted = self._kind_flags([k for k in self.kinds if self._fully_noted(k)])

    def _fully_noted(self, k: int) -> bool:
        kind = self.arch.kinds[k]
        if kind.expr in GOT_EXPRS:
            return True
        return kind.expr is Expr.ABS and kind.field is not None and kind.field.bits < self.arch.bits

    def _note_uses(self, chunk: _Chunk) -> None:
        """Flag in ``used_by`` the [kind, symbol] pairs of the chunk's relocations that
        planning asks about (every pair of a fully noted kind, else those of outside
        targets), and collect its branches to outside targets (veneer candidates)."""
        kind, target = self._columns(chunk)
        fully = self.fully_noted[chunk.kinds]
        if fully.all():
            rows = slice(None)
        else:
            wanted = np.take(self.outside, target, mode="clip")  # rows checked by the reader
            if fully.any():
                wanted |= self.fully_noted[kind]
            rows = np.flatnonzero(wanted)
        kind, target = kind[rows], target[rows]
        if len(chunk.kinds) == 1:
            self.used_by[self.kind_slot[chunk.kinds[0]], target] = True
        else:  # one pass for all the kinds: flag [kind, target] through its flat index
            key = self.kind_slot[kind] * len(self.symbols)
            key += target
            self.used_by.reshape(-1)[key] = True
        branch = self._kind_flags(self.branch_kinds)
        if branch[chunk.kinds].any():
            picked = branch[kind] & self.outside[target]
            in_chunk = np.flatnonzero(picked) if isinstance(rows, slice) else rows[picked]
            addends = chunk.run.addend[chunk.start:chunk.stop][in_chunk].astype(np.int64)
            self.branches.append((target[picked].astype(np.int64), addends))
        chunk.noted = True

    def _resolve_names(self) -> None:
        """Bind every name the module does not define: the module itself, the linker's own
        symbols, the static module (host), other modules, or pending (not linked yet)."""
        module = self.module
        rows = np.flatnonzero(self.by_name)
        names = module.symbol_names(rows)
        # One object defines a global name at most once, and never a name it leaves
        # undefined (its assembler or ld -r saw to it): only combined objects can define
        # names for each other (the dropped COMDAT copies included).
        several = len({s.origin for s in module.sections}) > 1
        own = module.definitions_of(names) if several else {}
        self.own_rows: dict[int, int] = {}  # row -> defining row in this module (-1: linker's)
        self.uses_atexit = False
        self.host: dict[int, int] = {}  # row -> address in the static module
        self.bound: dict[int, tuple[int, int]] = {}  # row -> (address, module uid)
        pending: list[int] = []
        cache: dict[str, tuple[int, int] | None] = {}
        self._bind_definitions_by_name()
        for row, name in zip(rows.tolist(), names, strict=True):
            defining = own.get(name)
            if defining is not None and defining != row and self._placed(defining):
                self.own_rows[row] = defining
            elif name in LINKER_DEFINED:
                self.own_rows[row] = -1
                self.uses_atexit |= name == ATEXIT
            else:
                if name not in cache:
                    cache[name] = self.linker._resolve_external(name, self.hidden)
                found = cache[name]
                if found is None:
                    pending.append(row)
                elif found[1] < 0:
                    self.host[row] = found[0]
                else:
                    self.bound[row] = found
        self.pending = np.array(pending, np.int64)
        self.pending_flag = self._row_flags(self.pending)
        self.outside = self._row_flags([*self.host, *self.bound, *pending])
        self.outside |= self.symbols["section"] == ABS
        self._check_pending()

    def _bind_definitions_by_name(self) -> None:
        """In a module combined from several objects, every global name has one definition,
        as after a static link: a weak definition or a common block yields to a global one
        elsewhere (references to the loser are bound to the winner); two global definitions
        of one name are an error."""
        if len({s.origin for s in self.module.sections}) < 2:
            return  # one object: its names are already unique (a compiler or ld -r saw to it)
        own = self.module.exports()
        rows = self.module.exported()
        symbols = self.symbols
        for row, name in zip(rows.tolist(), self.module.symbol_names(rows), strict=True):
            winner = own[name]
            if winner == row or not self._placed(row) or not self._placed(winner):
                continue
            strong = [r for r in (row, winner) if symbols["bind"][r] != WEAK
                      and symbols["section"][r] != COMMON]
            if len(strong) == 2:
                files = [self._origin_file(r) for r in (winner, row)]
                raise LinkError(f"multiple definition (in {files[0]} and {files[1]})",
                                file=self.module.file, symbol=name)
            self.own_rows[row] = winner

    def _origin_file(self, row: int) -> str:
        section = int(self.symbols["section"][row])
        return self.module.sections[section].file if section >= 0 else self.module.file

    def _placed(self, row: int) -> bool:
        section = int(self.symbols["section"][row])
        return section < 0 or bool(self.loaded[section])

    def _check_pending(self) -> None:
        """A name nobody defines may only be called (it then reaches the unresolved handler
        until a module defines it) or be weak; any other use is an error listing them all."""
        if not len(self.pending) or self.module.lazy_data:
            self.pending_weak = self.pending if self.module.lazy_data else np.zeros(0, np.int64)
            return
        weak = self.symbols["bind"][self.pending] == WEAK
        self.pending_weak = self.pending[weak]
        strong = self.pending[~weak]
        data_kinds = [k for k in self.kinds if k not in self.branch_kinds]
        as_data = strong[self._uses(data_kinds)[strong]]
        if len(as_data):
            names = sorted(set(self.module.symbol_names(as_data)))
            listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            plural = "s" if len(names) > 1 else ""
            raise self._error(UndefinedSymbolError,
                              f"undefined symbol{plural} used as data: {listed} (only calls may wait "
                              f"for a module linked later)", self._first_use(data_kinds, as_data))

    def _first_use(self, kinds: list[int], rows: np.ndarray) -> int:
        """The first relocation of one of ``kinds`` that refers to one of symbol ``rows``."""
        wanted = self._row_flags(rows)
        of_kind = self._kind_flags(kinds)
        for chunk in self.chunks:
            kind, target = self._columns(chunk)
            hits = np.flatnonzero(of_kind[kind] & wanted[target])
            if len(hits):
                return chunk.row + int(hits[0])
        raise AssertionError("no relocation uses them")

    def _plan(self) -> None:
        arch, module = self.arch, self.module
        got_kinds = [k for k in self.kinds if arch.kinds[k].expr in GOT_EXPRS]
        self.got_targets = self._targets_of(got_kinds)
        self.got_slot = np.full(len(self.symbols), -1, np.int64)  # symbol row -> its GOT slot
        self.got_slot[self.got_targets] = np.arange(len(self.got_targets))
        called = self._targets_of(self.branch_kinds)
        changeable = np.array(sorted(self.bound) + self.pending.tolist(), np.int64)
        self.veneer_keys = self._veneer_keys()
        row = module.find_symbol(UNRESOLVED_SYMBOL)
        self.unresolved_row = row if row is not None and self._placed(row) and \
            int(self.symbols["section"][row]) >= 0 else None
        needs_stub = called[self._row_flags(changeable)[called]]
        self.stub_rows = needs_stub if self.unresolved_row is None else np.zeros(0, np.int64)
        common = np.flatnonzero(self.symbols["section"] == COMMON)
        common = common[~self._row_flags(list(self.own_rows))[common]]
        self.common_rows, self.common_offsets, common_bytes, common_align = _commons(
            self.symbols, common, module.symbol_names(common))
        code_bytes = (len(self.veneer_keys) * arch.veneer_size
                      + len(self.stub_rows) * arch.unresolved_stub_size
                      + (arch.atexit_stub_size if self.uses_atexit else 0))
        space = self.linker.space
        got_bytes = len(self.got_targets) * arch.got_entry_size
        if module.image is not None:
            self.layout = plan_image_layout(
                module.sections, len(module.image), page_size=space.page_size,
                bss_offset=self._bss_offset(), bss_align=self._rel_value("bssAlign", 1),
                aux_bytes=code_bytes, got_bytes=got_bytes, got_align=arch.got_entry_size,
                common_bytes=common_bytes, common_align=common_align,
                align=self._rel_value("align", 1))
            return
        self.layout = plan_layout(
            module.sections, self.loaded, page_size=space.page_size,
            veneer_bytes=code_bytes,
            got_bytes=got_bytes, got_align=arch.got_entry_size,
            common_bytes=common_bytes, common_align=common_align,
            code_alignment=arch.code_alignment)

    def _veneer_keys(self) -> list[tuple[int, int]]:
        """The distinct (symbol row, addend) pairs of branches to outside targets: each may
        need a veneer of its own (REL addends select different functions of one target)."""
        if not (self._uses(self.branch_kinds) & self.outside).any():
            return []  # (every chunk of a branch kind is noted now)
        rows = np.concatenate([rows for rows, _ in self.branches])
        addends = np.concatenate([addends for _, addends in self.branches])
        low, high = int(addends.min()), int(addends.max())
        if low == high:  # one addend for all (a call's usual -4 on x86-64): distinct rows
            return [(row, low) for row in np.flatnonzero(self._row_flags(rows)).tolist()]
        if low >= -(1 << 31) and high < 1 << 31:
            # one 64-bit key per pair: a flat unique is much faster than unique over pairs
            keys = _distinct((rows << 32) | (addends & 0xFFFF_FFFF))
            rows, addends = keys >> 32, ((keys & 0xFFFF_FFFF) ^ (1 << 31)) - (1 << 31)
        else:
            pairs = np.unique(np.stack([rows, addends]), axis=1)
            rows, addends = pairs[0], pairs[1]
        return list(zip(rows.tolist(), addends.tolist(), strict=True))

    def _rel_value(self, name: str, default: int) -> int:
        """A value of the module's REL header (``meta["rel"]``), or ``default``."""
        header = self.module.meta.get("rel")
        return int(getattr(header, name, default) or default) if header is not None else default

    def _bss_offset(self) -> int | None:
        """Where the bss of an image module goes: in the freed tail from fixSize on
        (OSLinkFixed), at an address the caller gave (-1: outside the reservation), or after
        the image (None)."""
        if self.bss_address is not None:
            return -1
        if self.fixed:
            fix_size = self._rel_value("fixSize", 0)
            if self._rel_value("version", 0) < 3 or not fix_size:
                raise LinkError("OSLinkFixed needs a version 3 module with fixSize",
                                file=self.module.file)
            return (fix_size + 31) // 32 * 32
        return None

    def _kind_flags(self, kinds: list[int]) -> np.ndarray:
        """A flag per relocation kind number: is it one of ``kinds``."""
        flags = np.zeros(len(self.arch.tables.known), bool)
        flags[kinds] = True
        return flags

    def _targets_of(self, kinds: list[int]) -> np.ndarray:
        """The distinct symbol rows that relocations of ``kinds`` refer to, ascending."""
        return np.flatnonzero(self._uses(kinds))

    def _uses(self, kinds: list[int]) -> np.ndarray:
        """A flag per symbol row: do relocations of ``kinds`` refer to it? Complete for the
        fully noted kinds (GOT kinds, narrow absolute fields); for the others only the
        targets defined outside the module are flagged."""
        wanted = set(kinds)
        for chunk in self.chunks:
            if not chunk.noted and not wanted.isdisjoint(chunk.kinds):
                self._note_uses(chunk)
        slots = self.kind_slot[kinds]
        return self.used_by[slots[slots >= 0]].any(axis=0)  # kinds that do not occur: none

    def _row_flags(self, rows) -> np.ndarray:
        """A flag per symbol row: is it one of ``rows``? (Membership tests through these
        flags are far cheaper than np.isin.)"""
        flags = np.zeros(len(self.symbols), bool)
        flags[np.asarray(rows, np.intp)] = True
        return flags

    def _place(self) -> int:
        """Reserve memory within reach of the module's outside targets, where possible."""
        space, layout = self.linker.space, self.layout
        near = self.place_near
        if self.at is not None:  # the caller chose the address, as OSLink's caller does
            self._check_alignment("module", self.at, self._rel_value("align", 1))
            return space.reserve(layout.size, 1, Window(self.at, self.at + layout.size, self.at))
        limit = self._absolute_limit()
        window = None
        if near == AUTO:
            window = self._reach_window(limit)
        elif isinstance(near, int):
            reach = self.arch.branch_reach
            window = Window(max(near - reach + layout.size, 0), near + reach, near)
        if window is None and limit is not None:
            window = Window(0, limit, limit // 2)
        return space.reserve(layout.size, layout.align, window)

    def _check_alignment(self, what: str, address: int, align: int) -> None:
        """OSLink of a version >= 2 module rejects a module or bss address off its alignment."""
        if self._rel_value("version", 0) >= 2 and align > 1 and address % align:
            raise LinkError(f"{what} address {address:#x} is not aligned to {align} bytes",
                            file=self.module.file)

    def _absolute_limit(self) -> int | None:
        """Highest end address allowed by absolute fields narrower than a pointer (-fno-pic
        code): the module must then sit in the low 2 GiB (or 4 GiB) so its addresses fit."""
        limit = None
        for k in self.kinds:
            kind = self.arch.kinds[k]
            if kind.expr is not Expr.ABS or kind.field is None or kind.field.bits >= self.arch.bits:
                continue
            if self.by_name[self._targets_of([k])].all():
                continue  # only outside targets: where the module sits does not matter
            bits = kind.field.bits - (1 if kind.field.check.value == "signed" else 0)
            limit = min(limit or (1 << 64), 1 << bits)
        return limit

    def _reach_window(self, limit: int | None) -> Window | None:
        """Addresses from which the module's outside PC-relative targets, and the callers
        waiting for it, are in reach."""
        fixed = {**self.host, **{r: a for r, (a, _) in self.bound.items()}}
        rows = np.array(sorted(fixed), np.int64)
        pcrel = [k for k in self.kinds if self.arch.kinds[k].expr in (Expr.PCREL, Expr.BRANCH)]
        used = self._uses(pcrel)[rows]
        points = [np.array([fixed[r] for r in rows[used].tolist()], np.int64), self.callers]
        points = np.concatenate(points)
        if not len(points):
            return None if limit is None else Window(0, limit, limit // 2)
        lo, hi = int(points.min()), int(points.max())
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

    def _build(self) -> LoadedModule:
        module, layout, base = self.module, self.layout, self.base
        image = self.linker.space.staging(base, layout.size)
        offsets = layout.section_offsets
        if module.image is not None:
            image[:len(module.image)] = np.frombuffer(module.image, np.uint8)
        else:
            for i, sec in enumerate(module.sections):
                if offsets[i] >= 0 and sec.data is not None and sec.size:
                    image[offsets[i]:offsets[i] + sec.size] = np.frombuffer(sec.data, np.uint8)
        self.image = image
        self.section_base = np.where(offsets >= 0, offsets + base, -1).astype(np.int64)
        self._place_bss()
        self.got_base = base + layout.got_offset
        self._slots()
        self._symbol_addresses()
        refs = self._relocate()
        self._write_got()
        self._collect_initialisers()
        addresses = [int(a) if a >= 0 else None for a in self.section_base]
        loaded = LoadedModule(module.name, module, self.linker, base, layout.size, layout,
                              addresses, None, uid=self.uid)
        loaded.export_table = self._exports  # built when first asked for
        loaded.refs = np.concatenate([refs, self._got_refs()])
        loaded.veneer_slots = self.veneer_slots
        loaded.stub_slots = self.stub_slots
        loaded.unresolved = (int(self.address[self.unresolved_row])
                             if self.unresolved_row is not None else None)
        loaded.got = self.got_base
        loaded.image = image
        loaded.fini = self.fini
        loaded.bss_range = self.bss_range
        return loaded

    def _place_bss(self) -> None:
        """The bss of an image module: its address, checked against bssAlign; it is zeroed
        when the module is committed, after relocation, as OSLink does."""
        self.bss_range = None
        for i, sec in enumerate(self.module.sections):
            if sec.kind != SectionKind.BSS or self.module.image is None:
                continue
            if self.bss_address is not None:
                self.section_base[i] = self.bss_address
            address = int(self.section_base[i])
            self._check_alignment("bss", address, self._rel_value("bssAlign", 1))
            self.bss_range = (address, sec.size)

    def _slots(self) -> None:
        """Addresses of the veneer slot of every called outside symbol and of the unresolved
        stub of every called symbol that another module may come and go for."""
        arch = self.arch
        start = self.base + self.layout.veneer_offset
        self.veneer_slots = {key: start + i * arch.veneer_size
                             for i, key in enumerate(self.veneer_keys)}
        start += len(self.veneer_keys) * arch.veneer_size
        self.stub_slots = {r: start + i * arch.unresolved_stub_size
                           for i, r in enumerate(self.stub_rows.tolist())}
        start += len(self.stub_rows) * arch.unresolved_stub_size
        self.atexit_address = start
        if self.uses_atexit:
            self._write_atexit_stub()
        if self.stub_slots:
            handler = self.linker._unresolved_handler()
            for row, address in self.stub_slots.items():
                code = arch.unresolved_stub((self.uid << 32) | row, handler)
                offset = address - self.base
                self.image[offset:offset + len(code)] = np.frombuffer(code, np.uint8)

    def _write_atexit_stub(self) -> None:
        cxa_atexit = self.linker.space.lookup("__cxa_atexit")
        if cxa_atexit is None or self.arch.atexit_stub is None:
            raise UndefinedSymbolError("atexit needs __cxa_atexit, which the static module lacks",
                                       file=self.module.file, symbol=ATEXIT)
        dso_handle = self.base + self.layout.dso_handle_offset
        code = self.arch.atexit_stub(self.atexit_address, dso_handle, cxa_atexit)
        offset = self.atexit_address - self.base
        self.image[offset:offset + len(code)] = np.frombuffer(code, np.uint8)

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
                          GOT_SYMBOL: self.got_base, ATEXIT: self.atexit_address}
        for row, own in self.own_rows.items():
            address[row] = address[own] if own >= 0 else linker_defined[self.module.symbol_name(row)]
        for row, target in self.host.items():
            address[row] = target
        for row, (target, _uid) in self.bound.items():
            address[row] = target
        self.address = address
        address[self.pending] = 0
        # What a call to a pending name reaches: the module's _unresolved or its stub.
        self.call_address = address.copy()
        for row in self.pending.tolist():
            self.call_address[row] = self.fallback(row)
        self.bound_to = np.full(len(symbols), -2, np.int32)  # -2: never rebound
        for row, (_target, uid) in self.bound.items():
            self.bound_to[row] = uid
        self.bound_to[self.pending] = UNRESOLVED
        self.rebinds = bool((self.bound_to != -2).any())

    def fallback(self, row: int) -> int:
        """Where a call to pending name ``row`` goes: the module's _unresolved, or its stub."""
        if self.unresolved_row is not None:
            return int(self.address[self.unresolved_row])
        return self.stub_slots.get(row, 0)  # a weak name that is never called

    def _relocate(self) -> np.ndarray:
        """Apply every relocation to the image, a chunk of rows at a time. The common work is a
        few column operations, with each kind's properties looked up in the arch's tables
        (or taken once, when the chunk's kinds agree on them); only rare kinds (GOT, size,
        relaxable, scattered fields) and far branches take a pass of their own. Returns the
        references to record for rebinding."""
        self.section_sizes = np.array([s.size for s in self.module.sections], np.int64)
        # the first field that overflows, with its value, and how many overflow in all: every
        # chunk is still taken so that the error can count them
        self.overflows: list[tuple[int, int]] = []
        self.overflow_count = 0
        refs = [self._relocate_chunk(chunk) for chunk in self.chunks]
        if self.overflows:
            row, value = self.overflows[0]
            run, i = self._locate(row)
            raise overflow_error(self, self.arch.kinds[int(run.kind[i])], row, value,
                                 self.overflow_count - 1)
        return np.concatenate(refs) if refs else np.zeros(0, REF_DTYPE)

    def _relocate_chunk(self, chunk: _Chunk) -> np.ndarray:
        """Apply the chunk's relocations; their references to record for rebinding."""
        t, run, kinds = self.arch.tables, chunk.run, self._kind_set(chunk.kinds)
        kind, targets = self._columns(chunk)
        positions = run.offset[chunk.start:chunk.stop].astype(np.int64)
        self._check_fields(chunk, positions, kind)
        section_offset = int(self.layout.section_offsets[run.section])
        positions += section_offset
        places = None  # the fields' addresses, for the kinds that need them
        if self.rebinds or kinds.needs_places:
            places = positions + (int(self.section_base[run.section]) - section_offset)
        addends = run.addend[chunk.start:chunk.stop]
        values = self._values(kinds, kind, targets, addends, places, positions)
        if kinds.adjusted:
            values = (values + t.round[kind]) >> t.shift[kind]
        ok = self._in_range(kinds, kind, values)
        if ok is not None and not ok.all():
            values, ok = self._through_veneers(kind, targets, addends, places, values, ok)
        if self.has_unplaced:
            dropped = np.take(self.unplaced, targets, mode="clip")  # rows checked by the reader
            if dropped.any():  # allowed in .eh_frame only, where the field is then 0
                self._check_targets(chunk, dropped)
                values[dropped] = 0
                if ok is not None:
                    ok |= dropped
        if ok is not None and not ok.all():
            bad = np.flatnonzero(~ok)
            self.overflows.append((chunk.row + int(bad[0]), int(values[bad[0]])))
            self.overflow_count += len(bad)
        self._write_fields(kinds.kinds, kind, positions, values)
        return self._references(kind, places, targets, addends)

    def _kind_set(self, kinds: list[int]) -> _KindSet:
        """What the relocation pass needs to know about a chunk's kinds (worked out once per
        distinct set of kinds, and kept by the linker)."""
        key = tuple(kinds)
        found = self.linker.kind_sets.get(key)
        if found is None:
            found = self.linker.kind_sets[key] = _KindSet.of(self.arch, kinds)
        return found

    def _in_range(self, kinds: _KindSet, kind: np.ndarray,
                  values: np.ndarray) -> np.ndarray | None:
        """Which values fit their fields (range and alignment); None: all do, whatever they
        are."""
        t = self.arch.tables
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

    def _check_fields(self, chunk: _Chunk, offset: np.ndarray, kind: np.ndarray) -> None:
        """Every field lies inside its section."""
        width = self.arch.tables.width
        size = int(self.section_sizes[chunk.run.section])
        if int(offset.max()) + int(width[chunk.kinds].max()) <= size:
            return
        bad = np.flatnonzero(offset + width[kind] > size)
        if len(bad):
            i = int(bad[0])
            raise self._field_outside(int(width[kind[i]]), chunk.row + i)

    def _field_outside(self, size: int, row: int) -> FormatError:
        """The error for relocation ``row``, whose ``size``-byte field overruns its section."""
        return self._error(FormatError, f"a {size}-byte field does not fit in the section", row)

    def _values(self, kinds: _KindSet, kind, targets, A, P, positions) -> np.ndarray:
        """Every relocation's value: S+A, minus P for PC-relative kinds; GOT and size kinds
        are computed on their own rows."""
        t, codes = self.arch.tables, EXPR_CODES
        values = np.take(self.address, targets, mode="clip")  # rows checked by the reader
        values += A
        if kinds.pcrel is None:
            np.subtract(values, P, out=values, where=t.pcrel[kind])
        elif kinds.pcrel:
            values -= P
        if len(self.pending) and kinds.branches:
            # calls to pending names reach a fallback
            expr = t.expr[kind]
            calls = np.flatnonzero((expr == codes[Expr.BRANCH]) & self.pending_flag[targets])
            bias = self.arch.branch_bias
            values[calls] = self.call_address[targets[calls]] - bias - P[calls]
        for k in kinds.specials:
            rows = np.flatnonzero(kind == k)
            T = targets[rows]
            values[rows] = self._special_values(k, self.arch.kinds[k], rows,
                                                np.take(self.address, T, mode="clip"),
                                                A[rows], P[rows], T, positions[rows])
        return values

    def _special_values(self, k, kind, rows, S, A, P, T, pos) -> np.ndarray:
        expr = kind.expr
        if expr is Expr.NONE:
            return np.zeros(len(rows), np.int64)
        slot = size = None
        if expr in GOT_EXPRS:
            slot = self.got_base + self.got_slot[T] * self.arch.got_entry_size
        elif expr is Expr.SIZE:
            size = self.symbols["size"][T].astype(np.int64)
        values = evaluate(expr, S, A, P, got=self.got_base, slot=slot, size=size)
        if kind.relaxable and self.arch.relax is not None:
            values = self._relax(k, kind, S, A, P, T, pos, values)
        return values

    def _write_fields(self, kinds, kind, positions, values) -> None:
        """Store the values, one pass per field width; masked fields keep their other bits,
        scattered fields (Thumb-2 and the like) are encoded by their Field."""
        t, order = self.arch.tables, self.module.byteorder
        kind_widths = {k: int(t.width[k]) for k in kinds}
        widths = sorted(set(kind_widths.values()) - {0})
        for w in widths:
            every = set(kind_widths.values()) == {w}  # one width for all: no selection
            rows = slice(None) if every else np.flatnonzero(t.width[kind] == w)
            pos, new = positions[rows], values[rows]
            if not all(t.whole[k] for k, kw in kind_widths.items() if kw == w):
                k = kind[rows]
                containers = gather(self.image, pos, w, order)
                mask = t.mask[k]
                new = (containers & ~mask) | (new.astype(np.uint64) & mask)
                custom = ~t.plain[k]
                for c in np.unique(k[custom]).tolist():
                    sel = np.flatnonzero(k == c)
                    new[sel] = self.arch.kinds[c].field.encode(containers[sel], values[rows][sel])
            scatter(self.image, pos, w, order, new)

    def _references(self, kind, places, targets, addends) -> np.ndarray:
        """The fields that point at other modules or at nothing yet, for later rebinding."""
        if not self.rebinds:
            return _NO_REFS
        keep = self._kind_flags(self.rebindable_kinds)[kind] & (self.bound_to[targets] != -2)
        refs = np.zeros(int(keep.sum()), REF_DTYPE)
        refs["site"] = places[keep]
        refs["kind"] = kind[keep]
        refs["row"] = targets[keep]
        refs["addend"] = addends[keep]
        refs["bound"] = self.bound_to[targets[keep]]
        return refs

    def _relax(self, k, kind, S, A, P, T, pos, values):
        """Rewrite GOT loads of fixed, reachable targets to direct forms (not those of other
        modules: their GOT slot is what gets rebound)."""
        direct = S + A - P
        candidates = kind.field.fits(direct) & ~self.unplaced[T] & (self.bound_to[T] == -2)
        relaxed = self.arch.relax(k, self.image, pos, candidates)
        return np.where(relaxed, direct, values)

    def _check_targets(self, chunk: _Chunk, dropped: np.ndarray) -> None:
        """Only ``.eh_frame`` may refer to code that is not loaded (a dropped COMDAT copy): the
        field is then 0, and libgcc skips an FDE whose pc_begin field is 0."""
        if self.module.sections[chunk.run.section].name != EH_FRAME:
            raise self._error(LinkError, "refers to a section that is not loaded",
                              chunk.row + int(np.flatnonzero(dropped)[0]))

    def _through_veneers(self, kind, T, A, P, values, ok):
        """Route the branches that cannot reach their target through the veneer of that
        (symbol, addend), in this module's code area."""
        t, bias = self.arch.tables, self.arch.branch_bias
        far = np.flatnonzero(~ok & (t.expr[kind] == EXPR_CODES[Expr.BRANCH]))
        keys = [(r, a) for r, a in zip(T[far].tolist(), A[far].tolist(), strict=True)]
        usable = np.array([key in self.veneer_slots for key in keys], bool)
        far, keys = far[usable], [k for k, u in zip(keys, usable.tolist(), strict=True) if u]
        if not len(far):
            return values, ok
        values, ok = values.copy(), ok.copy()
        slots = np.zeros(len(far), np.int64)
        for i, (row, addend) in enumerate(keys):
            slots[i] = slot = self.veneer_slots[(row, addend)]
            destination = int(P[far[i]]) + bias + int(values[far[i]])  # where it had to go
            code = self.arch.veneer(slot, destination)
            self.image[slot - self.base:slot - self.base + len(code)] = np.frombuffer(code, np.uint8)
        k = kind[far]
        v = ((slots - bias - P[far]) + t.round[k]) >> t.shift[k]
        values[far] = v
        ok[far] = (v >= t.low[k]) & (v <= t.high[k]) & ((v & (t.align[k] - 1)) == 0)
        return values, ok

    def _write_got(self) -> None:
        if not len(self.got_targets):
            return
        entries = self.address[self.got_targets]
        size = self.arch.got_entry_size
        positions = self.layout.got_offset + np.arange(len(entries), dtype=np.int64) * size
        scatter(self.image, positions, size, self.module.byteorder, entries)

    def _got_refs(self) -> np.ndarray:
        """GOT slots of rebindable names, recorded as pointer-sized absolute references."""
        rows = self.got_targets[self.bound_to[self.got_targets] != -2]
        refs = np.zeros(len(rows), REF_DTYPE)
        refs["site"] = self.got_base + self.got_slot[rows] * self.arch.got_entry_size
        refs["kind"] = self.arch.pointer_kind
        refs["row"] = rows
        refs["bound"] = self.bound_to[rows]
        return refs

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
            positions = offsets[i] + np.arange(sec.size // width, dtype=np.int64) * width
            values = gather(self.image, positions, width, self.module.byteorder).tolist()
            if sec.reverse:
                values.reverse()
            out.extend(v for v in values if v not in (0, (1 << (width * 8)) - 1))
        return out


def overflow_error(job_or_none, kind, reloc_row: int | None, value: int, more: int,
                   **context) -> RelocationOverflowError:
    """The error for a value that does not fit its field, with a hint at the usual cause."""
    f = kind.field
    what = f"value {value:#x} does not fit a {f.bits}-bit {f.check.value} field"
    if f.align > 1 and value % f.align:
        what = f"value {value:#x} is not a multiple of {f.align}"
    if kind.expr in (Expr.PCREL, Expr.GOT_PC):
        what += "; the target is out of reach (compile with -fPIC to reach it through the GOT)"
    elif kind.expr is Expr.ABS:
        what += "; the address does not fit (compile with -fPIC)"
    if more:
        what += f" ({more} more fields like it)"
    if job_or_none is not None:
        return job_or_none._error(RelocationOverflowError, what, reloc_row)
    return RelocationOverflowError(what, kind=kind.name, **context)


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


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, ascending (sorting beats np.unique's hash table here)."""
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


@functools.cache
def _prime_allocator() -> None:
    """Free one large block, once per process. glibc's malloc serves blocks of 128 KiB or more
    with fresh mappings and gives freed heap memory beyond 128 KiB back to the kernel, until a
    large mapped block is freed: it then raises both limits to that block's size (its dynamic
    threshold). The relocation pass allocates temporaries of up to 512 KiB per chunk; before
    the limits rise, each may be mapped afresh and page-fault 4 KiB at a time, which costs
    more than the arithmetic done in it (what else the process freed decides whether they
    have risen already). Elsewhere this is one short-lived allocation."""
    block = np.empty(4 << 20, np.uint8)  # never touched: freeing it is what counts
    del block


_NO_REFS = np.zeros(0, REF_DTYPE)


def _same(column: np.ndarray, kinds: list[int]):
    """The value ``column`` (a per-kind table) holds for every one of ``kinds``, or None."""
    values = column[kinds]
    return values[0].item() if (values == values[0]).all() else None


@dataclass(frozen=True)
class _KindSet:
    """The relocation kinds of a chunk, and what they share: the pass then takes a shared
    property once instead of looking it up row by row."""

    kinds: list[int]
    specials: list[int]  # computed on their own rows (GOT, size, relaxable kinds...)
    pcrel: bool | None  # the ordinary kinds are all PC-relative, none is, or mixed (None)
    needs_places: bool  # some kind needs the fields' addresses
    branches: bool  # some kind is a branch
    adjusted: bool  # some kind rounds or shifts its value
    low: int | None  # the range all the kinds share, if they do
    high: int | None
    aligned_fields: bool  # some kind's value must be a multiple of a power of two
    unchecked: bool  # every value fits every field (64-bit fields, no alignment)

    @classmethod
    def of(cls, arch, kinds: list[int]) -> _KindSet:
        t = arch.tables
        specials = [k for k in kinds if arch.kinds[k].expr not in (Expr.ABS, Expr.PCREL, Expr.BRANCH)
                    or arch.kinds[k].relaxable]
        # rows of special kinds are computed afresh: their own PC-relative flag does not matter
        pcrel = _same(t.pcrel, [k for k in kinds if k not in specials] or kinds)
        low, high = _same(t.low, kinds), _same(t.high, kinds)
        aligned = bool((t.align[kinds] > 1).any())
        return cls(kinds, specials, None if pcrel is None else bool(pcrel),
                   bool(specials) or bool(t.pcrel[kinds].any()),
                   any(arch.kinds[k].expr is Expr.BRANCH for k in kinds),
                   bool(t.round[kinds].any() or t.shift[kinds].any()), low, high, aligned,
                   low == INT64_MIN and high == INT64_MAX and not aligned)


class _Chunk:
    """Rows [start, stop) of one run, taken in one pass of column operations. ``row`` is the
    job's number of its first row (for messages); ``kinds`` the relocation kinds it holds
    (the survey notes them)."""

    __slots__ = ("run", "start", "stop", "row", "kinds", "noted")

    def __init__(self, run: RelocationRun, start: int, stop: int, row: int) -> None:
        self.run, self.start, self.stop, self.row = run, start, stop, row
        self.kinds: list[int] = []
        self.noted = False  # its uses are flagged in LinkJob.used_by, its branches collected
