"""The first passes of a link: *select* what is linked, *survey* the relocation kinds.

``select`` drops the copies of COMDAT groups linked before, decides which symbols are
resolved by name and which have no address, and takes the relocations of the kept sections,
with addends stored in the fields (ELF ``REL`` tables) made explicit. ``survey`` cuts the
relocations into chunks and checks every kind against the CPU.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..arch import GOT_EXPRS, Arch, Check, Expr, Field
from ..arch.fields import stored_addends
from ..errors import FormatError, LinkError, UnsupportedError
from ..model import LOCAL, NOT_LOADED, UNDEF, Module, RelocationRun

# Relocation rows taken in one pass of column operations. Columns of this length (512 KiB of
# 64-bit words) come from memory malloc keeps for reuse (see job.prime_allocator) and mostly
# stay in the CPU's caches; columns of a whole large table would be returned to the kernel
# when freed and page-fault afresh on every link (a microsecond or more a page), which costs
# several times the arithmetic. Shorter chunks only add per-chunk overhead.
CHUNK_ROWS = 65536
# Runs shorter than this are gathered, several to a chunk (real code has many sections with
# a few relocations each: a pass per run would cost more than the rows).
GATHER_ROWS = 4096
# Expressions whose value depends on where the target is: these are rebound when it moves.
REBINDABLE = (Expr.ABS, Expr.PCREL, Expr.BRANCH, Expr.GOT_OFF)


@dataclass(frozen=True)
class Relocations:
    """The relocations of one link, as runs numbered one after the other (a row number names
    one relocation in messages)."""

    module: Module
    arch: Arch
    runs: tuple[RelocationRun, ...]
    first_rows: tuple[int, ...]  # the number of each run's first row

    @classmethod
    def of(cls, module: Module, arch: Arch, runs: list[RelocationRun]) -> Relocations:
        starts = np.cumsum([0] + [len(run) for run in runs]).tolist()
        return cls(module, arch, tuple(runs), tuple(starts[:-1]))

    def locate(self, row: int) -> tuple[RelocationRun, int]:
        """The run holding relocation ``row`` and the row's index in it."""
        k = bisect_right(self.first_rows, row) - 1
        return self.runs[k], row - self.first_rows[k]

    def error(self, cls: type[LinkError], message: str, row: int | None = None,
              symbol: str | None = None) -> LinkError:
        """A ``cls`` error naming the file, and for relocation ``row`` its section, offset,
        kind and target."""
        section = offset = kind = None
        file = self.module.file
        if row is not None:
            run, i = self.locate(row)
            sec = self.module.sections[run.section]
            section, offset, file = sec.name, int(run.offset[i]), sec.file or file
            kind = self.arch.kind_name(int(run.kind[i]))
            if symbol is None:
                symbol = self.target_name(int(run.target[i]))
        return cls(message, file=file, section=section, offset=offset, kind=kind, symbol=symbol)

    def field_outside(self, size: int, row: int) -> FormatError:
        """The error for relocation ``row``, whose ``size``-byte field overruns its section."""
        return self.error(FormatError, f"a {size}-byte field does not fit in the section", row)

    def target_name(self, row: int) -> str:
        """A symbol row's name, or its section's for a section symbol."""
        name = self.module.symbol_name(row)
        if name:
            return name
        sec = int(self.module.symbols["section"][row])
        return self.module.sections[sec].name if sec >= 0 else f"symbol #{row}"

    def chunks(self) -> Iterator[tuple[list[RelocationRun], int, int, int]]:
        """(runs, start, stop, row): the rows taken in one pass. A long run is cut into
        slices of at most CHUNK_ROWS rows ([start, stop) of its one run); consecutive short
        runs are gathered whole, up to CHUNK_ROWS rows together. ``row`` is the link's
        number of the first row."""
        gathered: list[RelocationRun] = []
        first = size = 0
        for run, row in zip(self.runs, self.first_rows, strict=True):
            if len(run) >= min(GATHER_ROWS, CHUNK_ROWS):
                if gathered:
                    yield gathered, 0, size, first
                    gathered, size = [], 0
                for start in range(0, len(run), CHUNK_ROWS):
                    yield [run], start, min(start + CHUNK_ROWS, len(run)), row + start
                continue
            if gathered and size + len(run) > CHUNK_ROWS:
                yield gathered, 0, size, first
                gathered, size = [], 0
            if not gathered:
                first = row
            gathered.append(run)
            size += len(run)
        if gathered:
            yield gathered, 0, size, first


@dataclass(frozen=True)
class Selection:
    """What is linked. ``kept``: per section, False for a COMDAT copy linked before (in this
    module or an earlier one); ``new_groups``: the groups this module brings;
    ``shared_groups``: the groups an earlier module linked, whose copies this module uses in
    place of its own; ``by_name``: per symbol row, resolved by name (undefined, or a global of
    a dropped copy); ``unplaced``: per symbol row, has no address (not loaded, or a local of a
    dropped copy)."""

    kept: np.ndarray
    new_groups: tuple[str, ...]
    shared_groups: tuple[str, ...]
    by_name: np.ndarray
    unplaced: np.ndarray
    relocations: Relocations

    def placed(self, row: int, module: Module) -> bool:
        """Symbol ``row`` has an address in the module (or is not in a section at all)."""
        section = int(module.symbols["section"][row])
        return section < 0 or bool(self.kept[section])


def select(module: Module, arch: Arch, group_linked: Callable[[str], bool]) -> Selection:
    """Drop the copies of COMDAT groups linked before; take the kept sections' relocations."""
    kept = np.ones(len(module.sections), bool)
    keeper: dict[str, int] = {}  # group signature -> the object whose copy is kept
    shared: dict[str, None] = {}  # groups linked before, by another module (in order)
    for i, sec in enumerate(module.sections):
        if sec.group is None:
            continue
        if group_linked(sec.group):
            kept[i] = False  # linked before, by another module
            shared[sec.group] = None
        elif keeper.setdefault(sec.group, sec.origin) != sec.origin:
            kept[i] = False  # a second copy within this module
    section = module.symbols["section"]
    in_dropped = np.zeros(len(section), bool)
    inside = section >= 0
    in_dropped[inside] = ~kept[section[inside]]
    # A global defined in a dropped copy is found by name in the kept copy; a local one
    # (a section symbol, for .eh_frame) has no address.
    by_name = (section == UNDEF) | (in_dropped & (module.symbols["bind"] != LOCAL))
    by_name &= module.symbols["name"] != 0  # the null symbols (one per object combined)
    unplaced = (section == NOT_LOADED) | (in_dropped & (module.symbols["bind"] == LOCAL))
    runs = [run for run in module.relocation_runs if kept[run.section]]
    relocations = Relocations.of(module, arch, runs)
    if any(run.implicit for run in runs):
        relocations = Relocations.of(module, arch, [_explicit(relocations, i) if run.implicit
                                                    else run for i, run in enumerate(runs)])
    return Selection(kept, tuple(keeper), tuple(shared), by_name, unplaced, relocations)


def _explicit(relocations: Relocations, index: int) -> RelocationRun:
    """Run ``index`` with the addends stored in its fields (ELF REL tables) moved into the
    table, so that planning (veneers are per target and addend) and relocation see them as
    they see any other."""
    run = relocations.runs[index]
    module, arch = relocations.module, relocations.arch
    data = module.sections[run.section].data
    if data is None:
        return RelocationRun(run.section, run.offset, run.kind, run.target, np.zeros(len(run), np.int64))
    kinds = run.kind.astype(np.intp)
    offsets = run.offset.astype(np.int64)
    table = arch.tables.width
    width = np.where(kinds < len(table), table[np.minimum(kinds, len(table) - 1)], 0)  # unknown: 0
    beyond = np.flatnonzero(offsets + width > len(data))
    if len(beyond):
        row = int(beyond[0])
        raise relocations.field_outside(int(width[row]), relocations.first_rows[index] + row)
    addends = stored_addends(arch, np.frombuffer(data, np.uint8), module.byteorder, kinds, offsets)
    return RelocationRun(run.section, run.offset, run.kind, run.target, addends)


# -- survey -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """Relocation rows taken in one pass of column operations: a slice of one run, or several
    short runs gathered (each column concatenated). ``row`` is the link's number of its first
    row, ``kinds`` the relocation kinds it holds, ``section`` the section each row patches
    (one number for all, or a column)."""

    row: int
    kinds: tuple[int, ...]
    section: int | np.ndarray
    offset: np.ndarray
    kind: np.ndarray
    target: np.ndarray
    addend: np.ndarray

    @classmethod
    def of(cls, runs: list[RelocationRun], start: int, stop: int, row: int,
           kinds: tuple[int, ...], kind: np.ndarray) -> Chunk:
        """The chunk of rows [start, stop) of one run, or of several runs whole; ``kind`` is
        its kind column (the survey has it already)."""
        if len(runs) == 1:
            run = runs[0]
            return cls(row, kinds, run.section, run.offset[start:stop], kind,
                       run.target[start:stop], run.addend[start:stop])
        section = np.repeat(np.array([r.section for r in runs], np.intp), [len(r) for r in runs])
        return cls(row, kinds, section, np.concatenate([r.offset for r in runs]), kind,
                   np.concatenate([r.target for r in runs]),
                   np.concatenate([r.addend for r in runs]))

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """The kind and target columns, as machine-word indices (indexing with them is several
        times faster than with the table's 32-bit columns). A chunk of one kind gets a kind
        column that costs nothing (a broadcast scalar)."""
        if len(self.kinds) == 1:  # every row the same: one element, stride 0
            kind = np.ndarray((len(self.kind),), np.intp, np.array(self.kinds, np.intp),
                              strides=(0,))
        else:
            kind = self.kind.astype(np.intp)
        return kind, self.target.astype(np.intp)

    def addends(self) -> np.ndarray:
        return self.addend

    def offsets(self) -> np.ndarray:
        return self.offset


@dataclass(frozen=True)
class Survey:
    """The relocation kinds of a link: the chunks, every kind present (ascending), and the
    families planning asks about."""

    chunks: tuple[Chunk, ...]
    kinds: tuple[int, ...]
    branch_kinds: tuple[int, ...]
    rebindable_kinds: tuple[int, ...]
    got_kinds: tuple[int, ...]
    narrow_absolute_kinds: tuple[int, ...]  # absolute fields narrower than an address
    # Kinds whose every target planning asks about: GOT kinds (each target gets a slot) and
    # absolute fields narrower than an address (do they point into the module?). For the
    # others only targets defined outside the module matter.
    fully_noted_kinds: tuple[int, ...]


def survey(relocations: Relocations) -> Survey:
    """One pass over the kind column: every kind must be known to the CPU; note which kinds
    occur, in all and per chunk."""
    arch = relocations.arch
    known = arch.tables.known
    chunks = []
    present: set[int] = set()
    for runs, start, stop, row in relocations.chunks():
        kind = runs[0].kind[start:stop] if len(runs) == 1 else np.concatenate([r.kind for r in runs])
        low, high = int(kind.min()), int(kind.max())
        if high >= len(known):  # before counting: it may be any 32-bit number
            beyond = np.flatnonzero(kind >= len(known))
            raise relocations.error(UnsupportedError, "unknown relocation type", row + int(beyond[0]))
        if low == high:
            kinds = (low,)
        else:
            kinds = tuple(np.flatnonzero(np.bincount(kind, minlength=len(known))).tolist())
        for k in kinds:
            if not known[k]:
                first = row + int(np.flatnonzero(kind == k)[0])
                raise relocations.error(UnsupportedError, arch.unsupported_reason(k), first)
        present.update(kinds)
        chunks.append(Chunk.of(runs, start, stop, row, kinds, kind))
    kinds = tuple(sorted(present))
    return Survey(tuple(chunks), kinds, *_families(arch, kinds))


@functools.lru_cache(maxsize=256)  # (a program links modules of a few sets of kinds)
def _families(arch: Arch, kinds: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The kinds among ``kinds`` that planning asks about, in the order of
    :class:`Survey`'s fields: branches, rebindable, GOT, narrow absolute, fully noted."""
    expr = {k: arch.kinds[k].expr for k in kinds}
    return (tuple(k for k in kinds if expr[k] is Expr.BRANCH),
            tuple(k for k in kinds if expr[k] in REBINDABLE),
            tuple(k for k in kinds if expr[k] in GOT_EXPRS),
            tuple(k for k in kinds if narrow_absolute(arch, k)),
            tuple(k for k in kinds if expr[k] in GOT_EXPRS or narrow_absolute(arch, k)))


def address_limit(field: Field) -> int:
    """The end of the address space whose addresses a narrow absolute field holds (2 GiB for
    a signed 32-bit field, 4 GiB for an unsigned one)."""
    return 1 << (field.bits - (1 if field.check is Check.SIGNED else 0))


@functools.cache
def narrow_absolute_flags(arch: Arch) -> np.ndarray:
    """Per kind number: an absolute field narrower than an address."""
    return np.array([narrow_absolute(arch, k) for k in range(len(arch.tables.known))], bool)


def narrow_absolute(arch: Arch, k: int) -> bool:
    """An absolute field narrower than an address (-fno-pic code's 32-bit addresses)."""
    kind = arch.kinds.get(k)
    return kind is not None and kind.expr is Expr.ABS and kind.field is not None \
        and kind.field.bits < arch.bits


def kind_flags(arch: Arch, kinds) -> np.ndarray:
    """A flag per relocation kind number: is it one of ``kinds`` (read-only)."""
    return _kind_flags(arch, tuple(kinds))


@functools.lru_cache(maxsize=256)  # (a program links modules of a few sets of kinds)
def _kind_flags(arch: Arch, kinds: tuple[int, ...]) -> np.ndarray:
    flags = np.zeros(len(arch.tables.known), bool)
    flags[list(kinds)] = True
    flags.flags.writeable = False
    return flags
