"""The *resolve* pass: bind every name the module does not define itself.

A name is found, in order: in the module (a module combined from several objects defines
names for itself), among the names the linker defines for each module (``__dso_handle``,
``_GLOBAL_OFFSET_TABLE_``, ``atexit``), in the static module, in the modules linked so far;
else it is *pending*: every reference to it waits for a module that defines it (calls and
function addresses at a fallback, data at a guard area), except the few kinds whose value
could not be patched later (a symbol's size).

:class:`SymbolUses` answers planning's questions "which symbols do relocations of these kinds
refer to", noting a chunk's uses only when a question first concerns its kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arch import Arch
from ..errors import LinkError, UndefinedSymbolError
from ..model import ABS, COMMON, WEAK, Module
from .context import STATIC_MODULE, Definition, LinkContext
from .select import Chunk, Relocations, Selection, Survey, kind_flags

DSO_HANDLE = "__dso_handle"
GOT_SYMBOL = "_GLOBAL_OFFSET_TABLE_"
ATEXIT = "atexit"  # glibc keeps it out of libc.so; each module gets its own, tied to its handle
LINKER_DEFINED = (DSO_HANDLE, GOT_SYMBOL, ATEXIT)


@dataclass(frozen=True)
class Resolution:
    """Where each name the module does not define for itself goes (symbol row -> ...):
    ``aliases`` to another row of the module defining that name; ``linker_defined`` to a
    name the linker defines for the module; ``host`` to an address in the static module;
    ``bound`` to the :class:`Definition` in a linked module; ``pending`` rows nobody defines
    yet. ``outside``: per row, defined outside the module (those four, and absolute
    symbols)."""

    aliases: dict[int, int]
    linker_defined: dict[int, str]
    host: dict[int, int]
    bound: dict[int, Definition]
    pending: np.ndarray
    outside: np.ndarray

    @property
    def uses_atexit(self) -> bool:
        return ATEXIT in self.linker_defined.values()

    def changeable(self) -> np.ndarray:
        """The rows whose definer may come or go: bound to a linked module, or pending."""
        return np.array(sorted(self.bound) + self.pending.tolist(), np.int64)


def resolve(context: LinkContext, module: Module, selection: Selection) -> Resolution:
    """Bind every name of ``selection.by_name``."""
    rows = np.flatnonzero(selection.by_name)
    names = module.symbol_names(rows)
    # One object defines a global name at most once, and never a name it leaves undefined
    # (its assembler or ld -r saw to it): only combined objects define names for each other
    # (the dropped COMDAT copies included).
    several = len({s.origin for s in module.sections}) > 1
    own = module.definitions_of(names) if several else {}
    aliases = _definitions_by_name(module, selection) if several else {}
    linker_defined: dict[int, str] = {}
    host: dict[int, int] = {}
    bound: dict[int, Definition] = {}
    pending: list[int] = []
    found_before: dict[str, Definition | None] = {}
    for row, name in zip(rows.tolist(), names, strict=True):
        defining = own.get(name)
        if defining is not None and defining != row and selection.placed(defining, module):
            aliases[row] = defining
        elif name in LINKER_DEFINED:
            linker_defined[row] = name
        else:
            if name not in found_before:
                found_before[name] = context.resolve(name)
            found = found_before[name]
            if found is None:
                pending.append(row)
            elif found.owner == STATIC_MODULE:
                host[row] = found.address
            else:
                bound[row] = found
    outside = row_flags(len(module.symbols), [*host, *bound, *pending])
    outside |= module.symbols["section"] == ABS
    return Resolution(aliases, linker_defined, host, bound, np.array(pending, np.int64), outside)


def _definitions_by_name(module: Module, selection: Selection) -> dict[int, int]:
    """In a module combined from several objects every global name has one definition, as
    after a static link: a weak definition or a common block yields to a global one elsewhere
    (its references are bound to the winner's row); two global definitions of one name are
    an error."""
    own = module.exports()
    rows = module.exported()
    symbols = module.symbols
    aliases: dict[int, int] = {}
    for row, name in zip(rows.tolist(), module.symbol_names(rows), strict=True):
        winner = own[name]
        if winner == row or not selection.placed(row, module) or not selection.placed(winner, module):
            continue
        strong = [r for r in (row, winner) if symbols["bind"][r] != WEAK
                  and symbols["section"][r] != COMMON]
        if len(strong) == 2:
            files = [_origin_file(module, r) for r in (winner, row)]
            raise LinkError(f"multiple definition (in {files[0]} and {files[1]})",
                            file=module.file, symbol=name)
        aliases[row] = winner
    return aliases


def _origin_file(module: Module, row: int) -> str:
    section = int(module.symbols["section"][row])
    return module.sections[section].file if section >= 0 else module.file


def row_flags(count: int, rows) -> np.ndarray:
    """A flag per symbol row: is it one of ``rows``? (Membership tests through these flags are
    far cheaper than np.isin.)"""
    flags = np.zeros(count, bool)
    flags[np.asarray(rows, np.intp)] = True
    return flags


class SymbolUses:
    """Which symbols relocations of each kind refer to, noted chunk by chunk when a question
    first concerns the chunk's kinds: chunks of kinds planning never asks about, such as a
    table of pointers, are not looked at again until relocation.

    Complete for the fully noted kinds (GOT kinds, narrow absolute fields); for the others
    only targets defined outside the module are noted, which is all planning asks. Noting a
    chunk also collects the veneer candidates: its branches to outside targets, and its
    narrow absolute fields holding outside targets (a -fno-pic module taking the address
    of another module's function reaches it through a veneer placed as low as itself)."""

    def __init__(self, arch: Arch, survey: Survey, outside: np.ndarray) -> None:
        self.survey = survey
        self.outside = outside
        self.kind_slot = np.full(len(arch.tables.known), -1, np.intp)
        self.kind_slot[list(survey.kinds)] = np.arange(len(survey.kinds))
        self.present = frozenset(survey.kinds)
        self.any_outside = bool(outside.any())
        # [slot of a present kind, symbol row]: does a relocation of that kind refer to it?
        self.used_by = np.zeros((len(survey.kinds), len(outside)), bool)
        self.noted = np.zeros(len(survey.chunks), bool)
        self.fully_noted = kind_flags(arch, survey.fully_noted_kinds)
        self.branch = kind_flags(arch, survey.branch_kinds)
        self.narrow = kind_flags(arch, survey.narrow_absolute_kinds)
        # veneer candidates: (target rows, addends) of branches, and of narrow addresses
        self.branches: list[tuple[np.ndarray, np.ndarray]] = []
        self.addresses: list[tuple[np.ndarray, np.ndarray]] = []

    def of(self, kinds) -> np.ndarray:
        """A flag per symbol row: do relocations of ``kinds`` refer to it?"""
        present = [k for k in kinds if k in self.present]  # kinds that do not occur: none
        if not present:
            return np.zeros(len(self.outside), bool)
        wanted = set(present)
        for i, chunk in enumerate(self.survey.chunks):
            if not self.noted[i] and not wanted.isdisjoint(chunk.kinds):
                self._note(chunk)
                self.noted[i] = True
        if len(present) == 1:
            return self.used_by[self.kind_slot[present[0]]].copy()
        return self.used_by[self.kind_slot[present]].any(axis=0)

    def targets_of(self, kinds) -> np.ndarray:
        """The distinct symbol rows that relocations of ``kinds`` refer to, ascending."""
        return np.flatnonzero(self.of(kinds))

    def veneer_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """The (target row, addend) of every branch to a target defined outside the module."""
        self.of(self.survey.branch_kinds)  # notes every chunk holding branches
        return _pairs(self.branches)

    def address_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """The (target row, addend) of every narrow absolute field holding a target defined
        outside the module."""
        self.of(self.survey.narrow_absolute_kinds)
        return _pairs(self.addresses)

    def max_addend(self, wanted: np.ndarray) -> int | None:
        """The largest addend of a relocation whose target row ``wanted`` flags, or None if
        no relocation refers to them."""
        largest = None
        for chunk in self.survey.chunks:
            _kind, target = chunk.columns()
            hits = np.take(wanted, target, mode="clip")  # rows checked by the reader
            if hits.any():
                found = int(chunk.addends()[hits].max())
                largest = found if largest is None else max(largest, found)
        return largest

    def _note(self, chunk: Chunk) -> None:
        fully = self.fully_noted[list(chunk.kinds)]
        if not self.any_outside and not fully.any():
            return  # (only outside targets are noted for these kinds, and there are none)
        kind, target = chunk.columns()
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
            key = self.kind_slot[kind] * self.used_by.shape[1]
            key += target
            self.used_by.reshape(-1)[key] = True
        for flags, found in ((self.branch, self.branches), (self.narrow, self.addresses)):
            if flags[list(chunk.kinds)].any():
                picked = flags[kind] & self.outside[target]
                in_chunk = np.flatnonzero(picked) if isinstance(rows, slice) else rows[picked]
                addends = chunk.addends()[in_chunk].astype(np.int64)
                found.append((target[picked].astype(np.int64), addends))


def _pairs(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([rows for rows, _ in parts]), np.concatenate([a for _, a in parts])


def check_pending(module: Module, relocations: Relocations, survey: Survey, uses: SymbolUses,
                  resolution: Resolution) -> None:
    """A name nobody defines may be referred to by every kind whose fields are patched again
    when a module defining it comes (calls, addresses, PC-relative accesses, GOT slots) and
    by markers, which patch nothing; a kind whose value could not be patched later (a
    symbol's size) needs the name now, unless it is weak. Any such use is an error listing
    them all."""
    pending = resolution.pending
    if len(pending) and module.binds_now:  # a program binds its imports when it loads
        names = sorted(set(module.symbol_names(pending)))
        plural = "s" if len(names) > 1 else ""
        raise relocations.error(
            UndefinedSymbolError, f"undefined symbol{plural}: {', '.join(names)} (the module "
            "binds every name when it loads; NuttX: ENOENT)",
            _first_use(relocations.arch, survey, list(survey.kinds),
                       row_flags(len(module.symbols), pending), default=None))
    if not len(pending) or module.lazy_data:
        return
    strong = pending[module.symbols["bind"][pending] != WEAK]
    waiting = set(survey.rebindable_kinds) | set(survey.got_kinds)
    # (markers patch nothing: R_ARM_NONE naming the unwinder's personality routine needs no
    # definition)
    fixed_kinds = [k for k in survey.kinds if k not in waiting and relocations.arch.kinds[k].writes]
    if not len(strong) or not fixed_kinds:
        return
    fixed = strong[uses.of(fixed_kinds)[strong]]
    if not len(fixed):
        return
    names = sorted(set(module.symbol_names(fixed)))
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    plural = "s" if len(names) > 1 else ""
    raise relocations.error(
        UndefinedSymbolError, f"undefined symbol{plural}: {listed} (a reference of this kind "
        f"cannot wait for a module linked later)",
        _first_use(relocations.arch, survey, fixed_kinds, row_flags(len(module.symbols), fixed)))


_NO_DEFAULT = object()


def _first_use(arch: Arch, survey: Survey, kinds: list[int], wanted: np.ndarray,
               default=_NO_DEFAULT) -> int | None:
    """The first relocation of one of ``kinds`` that refers to a symbol row ``wanted`` flags
    (``default`` if none does)."""
    of_kind = kind_flags(arch, kinds)
    for chunk in survey.chunks:
        kind, target = chunk.columns()
        hits = np.flatnonzero(of_kind[kind] & wanted[target])
        if len(hits):
            return chunk.row + int(hits[0])
    if default is not _NO_DEFAULT:
        return default
    raise AssertionError("no relocation uses them")
