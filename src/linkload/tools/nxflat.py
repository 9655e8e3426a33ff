"""``linkload nxflat``: NXFLAT programs from the objects gcc makes with NuttX's flags, in one
step and without an assembler or ``ld`` (what ``mknxflat``, assembling its thunks, ``ld -r``
with ``gnu-nxflat-pcrel.ld`` and ``ldnxflat`` do together).

The steps, as the NuttX tools take them:

1. **Imports** (mknxflat): the names the objects leave undefined, non-object, in the order
   ``ld -r`` lists them (GNU ld's hash table of 4051 buckets; ``__nxflat_abi_v2`` first for
   ABI v2); weak ones only with ``imports_weak``. Each gets a name string and a 16-byte thunk
   in I-space (written here, :func:`linkload.arch.arm.import_thunk`) and an entry
   ``{i_funcname, i_funcaddress}`` in .data.
2. **Layout** (``gnu-nxflat-pcrel.ld``): I-space from 0: ``.text`` of every object, the thunks,
   ``.text.*``, ... then (word-aligned) ``.rodata``, ``.rodata1``, ``.rodata.*``; D-space:
   ``.data`` of every object, the import table, ``.data1``, ``.data.*`` (``.data.rel.ro``
   included), ..., word-aligned; then the bss and common blocks.
3. **GOT and relocation** (ldnxflat): one GOT word per symbol a ``R_ARM_GOT_BREL`` names, in
   order of first reference; PC-relative fields inside I-space resolved, GOT_BREL literals
   ``4 * i``, GOTOFF32 ``GOT size + D offset``; every ``R_ARM_ABS32`` of D-space and every
   GOT word becomes an NXFLAT relocation (REL32I into I-space, REL32D into D-space), in that
   order. Every field goes through the one field writer.

The two bugs of the published ``ldnxflat`` (binutils >= 2.22) are not repeated: function
addresses keep their Thumb bit (from the ELF symbol), and GOT words of .bss objects point into
the bss (GOT size + aligned .data size + offset). A field the format cannot express (an
absolute address inside I-space, a PC-relative reference from I-space to D-space) is an
UnsupportedError naming file, section, offset and kind.

linkload adds one thing by default (``callbacks=False`` leaves it out, and the output is then
what the NuttX tools make): the callback table at the end of I-space, listing the D-space
words that hold pointers to the program's functions, so that linkload's loader can make
callbacks from the firmware work (see ``formats/nxflat.py`` and docs/nxflat.md).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..arch import arm
from ..arch.fields import FieldBatch, kind_set, kinds_of, overflow_message, stored_addends, write_fields
from ..errors import (
    FormatError,
    LinkError,
    RelocationOverflowError,
    UndefinedSymbolError,
    UnsupportedError,
)
from ..formats import nxflat as nxflat_format
from ..formats import read_module
from ..formats.base import Source
from ..formats.symtab import export_names
from ..model import (
    ABS,
    COMMON,
    FUNC,
    GLOBAL,
    LOCAL,
    NOT_LOADED,
    OBJECT,
    SECTION_SYMBOL,
    UNDEF,
    WEAK,
    SectionKind,
    merge,
)

ARCH = arm.ARCH
BFD_HASH_SIZE = 4051  # GNU ld's default hash table: the order ld -r writes global symbols in

# gnu-nxflat-pcrel.ld, the patterns of each output section in order (ALIGN: word-align there).
ALIGN = None
ISPACE_PATTERNS = (".text", ".text.*", ".gnu.warning", ".stub", ".glue_7", ".glue_7t", ".jcr",
                   ".gnu.linkonce.t.*", ".init", ".fini", ALIGN, ".call_table_data",
                   ".call_table_text", ".rodata", ".rodata1", ".rodata.*", ".gnu.linkonce.r*")
DATA_PATTERNS = (".data", ".data1", ".data.*", ".gnu.linkonce.d*", ".data1", ".eh_frame",
                 ".gcc_except_table", ".gnu.linkonce.s.*", "__libc_atexit", "__libc_subinit",
                 "__libc_subfreeres", ".note.ABI-tag", ".gnu.linkonce.d.*", ".ctors", ".dtors")
BSS_PATTERNS = (".dynsbss", ".sbss", ".sbss.*", ".scommon", ".dynbss", ".bss", ".bss.*", ".bss*",
                ".gnu.linkonce.b*")

# What each relocation kind becomes, by where its field lies.
R = arm
RESOLVED_IN_ISPACE = {R.R_ARM_THM_CALL, R.R_ARM_THM_JUMP24, R.R_ARM_THM_JUMP19,
                      R.R_ARM_THM_JUMP11, R.R_ARM_THM_JUMP8, R.R_ARM_CALL, R.R_ARM_JUMP24,
                      R.R_ARM_PC24, R.R_ARM_PLT32, R.R_ARM_REL32, R.R_ARM_PREL31,
                      R.R_ARM_THM_MOVW_PREL_NC, R.R_ARM_THM_MOVT_PREL, R.R_ARM_MOVW_PREL_NC,
                      R.R_ARM_MOVT_PREL, R.R_ARM_THM_PC8, R.R_ARM_THM_PC12}
CALLS = {R.R_ARM_THM_CALL, R.R_ARM_THM_JUMP24, R.R_ARM_THM_JUMP19, R.R_ARM_CALL, R.R_ARM_JUMP24,
         R.R_ARM_PC24, R.R_ARM_PLT32}
MARKERS = {R.R_ARM_NONE, R.R_ARM_V4BX, R.R_ARM_GNU_VTENTRY, R.R_ARM_GNU_VTINHERIT}
POINTERS = {R.R_ARM_ABS32, R.R_ARM_TARGET1}

I_SPACE, D_SPACE, THUNK, NOWHERE, CONSTANT = "I", "D", "thunk", "nowhere", "constant"


@dataclass(frozen=True)
class NxflatBuild:
    """What :func:`build` made: the file's bytes and contents, and what went into it."""

    data: bytes
    file: nxflat_format.NxflatFile
    imports: tuple[str, ...]
    got: tuple[str, ...]  # the symbol of each GOT word
    ispace_layout: tuple[tuple[str, str, int, int], ...]  # (file, section, I-offset, size)
    dspace_layout: tuple[tuple[str, str, int, int], ...]  # (file, section, D-offset, size)


@dataclass
class _Placed:
    """An input section in its output place: space ``I`` or ``D`` and offset (D-offsets count
    from the start of .data, before the GOT is known)."""

    origin: int  # which object (len(objects): the thunk object)
    index: int  # index in the merged module's sections (-1, -2: the thunk .text, .data)
    name: str
    size: int
    align: int
    space: str = ""
    offset: int = 0


THUNK_TEXT, THUNK_DATA = -1, -2


def build(objects: list[Source] | tuple[Source, ...], *, entry: str = "main",
          stack_size: int = nxflat_format.DEFAULT_STACK, abi: str = "v1",
          imports_weak: bool = False, exports: str | os.PathLike | Iterable[str] | None = None,
          callbacks: bool = True) -> NxflatBuild:
    """Build an NXFLAT program from ARM object files (see the module docstring).

    ``entry``: the entry point's symbol; ``stack_size``: the header's; ``abi``: ``"v1"``
    (PIC base r10) or ``"v2"`` (r9, imports ``__nxflat_abi_v2`` first); ``imports_weak``:
    weak undefined functions are imported too (mknxflat -w); ``exports``: the names the
    firmware exports (the path of a NuttX CSV, of the firmware's ELF or of a symbol list, or
    the names themselves, in any iterable): an import missing there is an error now instead
    of ENOENT at load; ``callbacks``: add linkload's callback table."""
    if abi not in nxflat_format.PIC_REGISTERS:
        raise LinkError(f"unknown NXFLAT ABI {abi!r} (v1 or v2)")
    if not objects:
        raise LinkError("nxflat needs at least one object")
    return _Builder(list(objects), entry, stack_size, abi, imports_weak, exports, callbacks).run()


def nxflat(objects: list[Source], output: str | os.PathLike, **options) -> NxflatBuild:
    """:func:`build`, and write the file to ``output``."""
    result = build(objects, **options)
    with open(output, "wb") as f:
        f.write(result.data)
    return result


def bfd_hash(name: str) -> int:
    """GNU BFD's string hash (``bfd_hash_hash``), which orders ld -r's global symbols."""
    h = 0
    data = name.encode("utf-8", "surrogateescape")
    mask = (1 << 64) - 1
    for c in data:
        h = (h + c + (c << 17)) & mask
        h ^= h >> 2
    h = (h + len(data) + (len(data) << 17)) & mask
    return h ^ (h >> 2)


def ld_global_order(names_in_order: list[str]) -> list[str]:
    """Global names in the order ``ld -r`` writes them: bucket by bucket of BFD's hash table,
    the name entered last first within a bucket (``names_in_order``: as the objects list
    them, each name once)."""
    entered = {name: i for i, name in enumerate(names_in_order)}
    return sorted(entered, key=lambda n: (bfd_hash(n) % BFD_HASH_SIZE, -entered[n]))


class _Builder:
    def __init__(self, objects: list[Source], entry: str, stack_size: int, abi: str,
                 imports_weak: bool, exports, callbacks: bool) -> None:
        self.parts = [read_module(o) for o in objects]
        for part in self.parts:
            if part.machine != "arm" or part.kind != "relocatable":
                raise UnsupportedError(f"nxflat takes ARM object files, not a {part.kind} "
                                       f"{part.machine} file", file=part.file)
        self.module = merge(self.parts, "nxflat")
        self.names = self.module.names  # every row's name, decoded once
        self.entry_name, self.stack_size, self.abi = entry, stack_size, abi
        self.imports_weak, self.callbacks = imports_weak, callbacks
        self.exports = None if exports is None else set(
            export_names(exports) if isinstance(exports, str | os.PathLike) else exports)
        self._undefined: dict[str, int] = {}  # name -> the row standing for it
        self._runs: dict[int, list] = {}
        for run in self.module.relocation_runs:
            self._runs.setdefault(run.section, []).append(run)

    # -- the steps ---------------------------------------------------------------------------
    def run(self) -> NxflatBuild:
        self.definition = self._resolve_names()
        self.imports = self._imports()
        self._imported = {name: i for i, name in enumerate(self.imports)}
        placed = self._layout()
        self.got_rows = self._got(placed)
        image, data, relocs, callback_words = self._relocate(placed)
        entry = self._entry()
        ispace = bytes(image)
        if self.callbacks and callback_words:
            ispace += nxflat_format.callback_table(sorted(callback_words))
        contents = nxflat_format.NxflatFile(
            ispace, bytes(data), self.bss_size, np.array(relocs, np.uint32), entry,
            self.stack_size, self.import_offset + self.got_size, tuple(self.imports),
            tuple(sorted(callback_words)) if self.callbacks else (), got_size=self.got_size)
        got_names = tuple(self._label(r) for r in self.got_rows)
        i_layout = tuple((self._file_of(p), p.name, p.offset, p.size) for p in placed if p.space == I_SPACE)
        d_layout = tuple((self._file_of(p), p.name, p.offset + self.got_size, p.size)
                         for p in placed if p.space == D_SPACE)
        return NxflatBuild(contents.to_bytes(), contents, tuple(self.imports), got_names,
                           i_layout, d_layout)

    def _resolve_names(self) -> np.ndarray:
        """Per symbol row, the row that defines it: itself, the definition of its name in
        another object (a global beats a weak or common one; two globals are an error), or
        -1 when no object defines it."""
        m = self.module
        symbols = m.symbols
        definition = np.arange(len(symbols), dtype=np.int64)
        exported = m.exported()
        strong: dict[str, int] = {}
        for row, name in zip(exported.tolist(), m.symbol_names(exported), strict=True):
            if symbols["bind"][row] == GLOBAL and symbols["section"][row] != COMMON:
                if name in strong:
                    raise LinkError(f"multiple definition (in {self._file_of_row(strong[name])} "
                                    f"and {self._file_of_row(row)})", file=m.file, symbol=name)
                strong[name] = row
        table = dict(m.exports())
        commons: dict[str, int] = {}
        for row in np.flatnonzero(symbols["section"] == COMMON).tolist():
            name = self.names[row]
            if name not in commons or symbols["size"][row] > symbols["size"][commons[name]]:
                commons[name] = row
        for name, row in commons.items():
            if name not in strong:
                table[name] = row
        for row in exported.tolist():  # weak and common copies yield to the winner
            definition[row] = table[self.names[row]]
        undefined = np.flatnonzero((symbols["section"] == UNDEF) & (symbols["name"] != 0))
        for row, name in zip(undefined.tolist(), m.symbol_names(undefined), strict=True):
            definition[row] = table.get(name, -1)
        if len(definition):  # (an object may have no symbols at all)
            definition[0] = -1
        return definition

    def _imports(self) -> list[str]:
        """The names to import, in ld -r's order (the v2 marker first)."""
        m = self.module
        s = m.symbols
        named = np.flatnonzero((s["name"] != 0) & (s["bind"] != LOCAL))
        seen = list(dict.fromkeys(m.symbol_names(named)))
        missing = np.flatnonzero((self.definition < 0) & (s["section"] == UNDEF) & (s["name"] != 0))
        wanted = set()
        for row, name in zip(missing.tolist(), m.symbol_names(missing), strict=True):
            if s["bind"][row] == WEAK and not self.imports_weak:
                continue  # 0 unless defined (a call to it is an error below)
            if s["type"][row] == OBJECT:  # data cannot be imported: only functions can
                raise UndefinedSymbolError("undefined data (NXFLAT imports functions only)",
                                           symbol=name, **self._first_use(name))
            wanted.add(name)
        imports = [n for n in ld_global_order(seen) if n in wanted]
        if self.abi == "v2":
            imports = [nxflat_format.ABI_V2_MARKER] + [n for n in imports
                                                       if n != nxflat_format.ABI_V2_MARKER]
        if self.exports is not None:
            unknown = [n for n in imports if n not in self.exports]
            if unknown:
                row = self._first_use(unknown[0])
                raise UndefinedSymbolError(
                    f"the firmware does not export {', '.join(map(repr, unknown))} (NuttX would "
                    "fail to load the program with ENOENT)", symbol=unknown[0], **row)
        return imports

    def _layout(self) -> list[_Placed]:
        """Input sections in their output places, as gnu-nxflat-pcrel.ld puts them."""
        m = self.module
        count = len(self.parts)
        inputs: list[_Placed] = []
        for i, sec in enumerate(m.sections):
            if sec.kind in (SectionKind.DEBUG,):
                continue
            inputs.append(_Placed(sec.origin, i, sec.name, sec.size, max(sec.align, 1)))
        thunk_text, thunk_data = self._thunk_sizes()
        if self.imports:
            inputs.append(_Placed(count, THUNK_TEXT, ".text", thunk_text, 4))
            inputs.append(_Placed(count, THUNK_DATA, ".data", thunk_data, 4))
        order = {id(p): (p.origin, m.sections[p.index].index if p.index >= 0 else -p.index)
                 for p in inputs}
        inputs.sort(key=lambda p: order[id(p)])  # by object, then section number
        taken: set[int] = set()
        out: list[_Placed] = []

        def take(patterns, space, writable_only=None):
            for pattern in patterns:
                if pattern is ALIGN:
                    out.append(_Placed(-1, 0, "ALIGN(4)", 0, 4, space))
                    continue
                for p in inputs:
                    if id(p) not in taken and fnmatch.fnmatchcase(p.name, pattern) and \
                            (writable_only is None or self._writable(p) == writable_only):
                        taken.add(id(p))
                        p.space = space
                        out.append(p)

        take(ISPACE_PATTERNS, I_SPACE, writable_only=False)
        self._orphans(inputs, taken, out, I_SPACE, lambda p: not self._writable(p))
        take(DATA_PATTERNS, D_SPACE, writable_only=True)
        self._orphans(inputs, taken, out, D_SPACE,
                      lambda p: self._writable(p) and not self._is_bss(p))
        out.append(_Placed(-1, 0, "ALIGN(4)", 0, 4, D_SPACE))  # _edata = ALIGN(4)
        bss_start = len(out)
        take(BSS_PATTERNS, "B")
        self._orphans(inputs, taken, out, "B", self._is_bss)
        for p in inputs:
            if id(p) not in taken:
                raise UnsupportedError("a section the NXFLAT layout has no place for",
                                       file=self._file_of(p), section=p.name)
        cursor = {I_SPACE: 0, D_SPACE: 0}
        for p in out[:bss_start]:
            c = -(-cursor[p.space] // p.align) * p.align
            p.offset, cursor[p.space] = c, c + p.size
        self.ispace_size, self.data_size = cursor[I_SPACE], cursor[D_SPACE]
        bss = self.data_size
        for p in out[bss_start:]:
            bss = -(-bss // p.align) * p.align
            p.offset, p.space = bss, D_SPACE
            bss += p.size
        self.common_offsets, bss = self._commons(bss)
        self.bss_size = bss - self.data_size
        end = nxflat_format.HEADER_SIZE + self.ispace_size + bss  # the header's bss end
        if end > 0xFFFF_FFFF:
            why = (f"I-space ({self.ispace_size:#x} bytes), D-space data ({self.data_size:#x}) "
                   f"and bss ({self.bss_size:#x}) end at {end:#x}, past the NXFLAT header's "
                   "32-bit fields")
            sizes = self.module.symbols["size"]
            for row, offset in self.common_offsets.items():  # (in the order they were placed)
                if nxflat_format.HEADER_SIZE + self.ispace_size + offset + int(sizes[row]) > 0xFFFF_FFFF:
                    raise UnsupportedError(f"{why} (this common symbol takes {int(sizes[row]):#x})",
                                           file=self._file_of_row(row), symbol=self.names[row])
            big = max((p for p in out if p.origin >= 0), key=lambda p: p.size)
            raise UnsupportedError(f"{why} (this section is {big.size:#x} bytes)",
                                   file=self._file_of(big), section=big.name)
        self.placed_by_index = {p.index: p for p in out if p.origin >= 0}
        thunk_data_place = self.placed_by_index.get(THUNK_DATA)
        self.import_offset = thunk_data_place.offset if thunk_data_place else 0
        return [p for p in out if p.origin >= 0]

    def _orphans(self, inputs, taken, out, space, wanted) -> None:
        """Sections no pattern names (``.ARM.exidx``, ``.init_array``...) go where ld puts
        orphans: after the sections of their kind."""
        for p in inputs:
            if id(p) not in taken and wanted(p):
                taken.add(id(p))
                p.space = space
                out.append(p)

    def _writable(self, p: _Placed) -> bool:
        if p.index < 0:
            return p.index == THUNK_DATA
        return self.module.sections[p.index].kind not in (SectionKind.TEXT, SectionKind.RODATA)

    def _is_bss(self, p: _Placed) -> bool:
        return p.index >= 0 and self.module.sections[p.index].kind == SectionKind.BSS

    def _commons(self, bss: int) -> tuple[dict[int, int], int]:
        """Common blocks after the bss sections (``*(COMMON)``), in ld's hash order."""
        s = self.module.symbols
        rows = [r for r in np.flatnonzero(s["section"] == COMMON).tolist()
                if self.definition[r] == r]
        names = self.module.symbol_names(np.array(rows, np.int64)) if rows else []
        by_name = dict(zip(names, rows, strict=True))
        offsets = {}
        for name in ld_global_order(names):
            row = by_name[name]
            align = max(int(s["value"][row]), 1)
            bss = -(-bss // align) * align
            offsets[row] = bss
            bss += int(s["size"][row])
        return offsets, bss

    def _thunk_sizes(self) -> tuple[int, int]:
        strings = sum(len(n.encode("utf-8", "surrogateescape")) + 1 for n in self.imports)
        self.strings_size = strings
        text = strings + len(arm.code_padding(strings, 4)) + arm.IMPORT_THUNK_SIZE * len(self.imports)
        return text, nxflat_format.IMPORT.size * len(self.imports)

    def _got(self, placed: list[_Placed]) -> list[int]:
        """The rows (definitions, or import names' rows) with a GOT word, in order of first
        reference: I-space relocations, then D-space ones."""
        seen: dict[int, None] = {}
        for space in (I_SPACE, D_SPACE):
            for p in placed:
                if p.space != space or p.index < 0:
                    continue
                for run in self._runs.get(p.index, ()):
                    got = np.isin(run.kind, [R.R_ARM_GOT_BREL, R.R_ARM_GOT_PREL])
                    for row in run.target[got].tolist():
                        seen.setdefault(self._key(row), None)
        self.got_size = 4 * len(seen)
        self.got_slot = {row: i for i, row in enumerate(seen)}
        return list(seen)

    def _key(self, row: int) -> int:
        """The row that stands for a symbol: its definition, or (an import, or a name nobody
        defines) the first undefined row of its name."""
        d = int(self.definition[row])
        if d >= 0:
            return d
        return self._undefined.setdefault(self.names[row], row)

    # -- where symbols are -------------------------------------------------------------------
    def _where(self, row: int) -> tuple[str, int]:
        """(space, value) of a symbol row: an I-offset (Thumb bit kept), a D-offset (GOT
        included), the thunk of an import (an I-offset, odd), 0 for a weak name nobody
        defines, or an absolute constant."""
        key = self._key(row)
        s = self.module.symbols
        section = int(s["section"][key])
        if self.definition[row] < 0:
            name = self.names[row]
            if name in self._imported:
                return THUNK, self._thunk_offset(name) | 1
            return NOWHERE, 0
        if section == COMMON:
            return D_SPACE, self.got_size + self.common_offsets[key]
        if section == ABS:
            return CONSTANT, int(s["value"][key])
        if section < 0:
            return NOWHERE, 0
        p = self.placed_by_index[section]
        value = int(s["value"][key])
        if p.space == I_SPACE:
            return I_SPACE, p.offset + value
        return D_SPACE, self.got_size + p.offset + value

    def _thunk_offset(self, name: str) -> int:
        text = self.placed_by_index[THUNK_TEXT].offset
        first = self.strings_size + len(arm.code_padding(self.strings_size, 4))
        return text + first + arm.IMPORT_THUNK_SIZE * self._imported[name]

    def _entry(self) -> int:
        row = self.module.find_symbol(self.entry_name)
        if row is None:
            raise UndefinedSymbolError("the entry point is not defined", symbol=self.entry_name,
                                       file=self.module.file)
        space, value = self._where(row)
        if space != I_SPACE:
            raise LinkError("the entry point is not code", symbol=self.entry_name,
                            file=self.module.file)
        if value & ~1 >= self.ispace_size:
            key = self._key(row)
            section = self.module.sections[int(self.module.symbols["section"][key])]
            raise FormatError(f"the entry point lies at I-space offset {value & ~1:#x}, past the "
                              f"end of I-space ({self.ispace_size:#x} bytes)",
                              file=section.file or self.module.file, section=section.name,
                              offset=int(self.module.symbols["value"][key]), symbol=self.entry_name)
        return value & ~1

    # -- relocation --------------------------------------------------------------------------
    def _relocate(self, placed: list[_Placed]):
        """The I-space image, the D-space image (GOT and .data), the NXFLAT relocation words
        and the D-offsets of words holding function pointers."""
        image = np.zeros(self.ispace_size, np.uint8)
        data = np.zeros(self.got_size + self.data_size, np.uint8)
        for p in placed:
            target = image if p.space == I_SPACE else data
            base = p.offset + (0 if p.space == I_SPACE else self.got_size)
            if p.index == THUNK_TEXT:
                target[base:base + p.size] = np.frombuffer(self._thunk_text(), np.uint8)
            elif p.index == THUNK_DATA:
                continue  # written with the relocations below
            elif p.space in (I_SPACE, D_SPACE) and not self._is_bss(p):
                sec = self.module.sections[p.index]
                if sec.data is not None and p.size:
                    target[base:base + p.size] = np.frombuffer(sec.data, np.uint8)
        relocs: list[int] = []
        callbacks: list[int] = []
        for space in (I_SPACE, D_SPACE):
            for p in placed:
                if p.space != space:
                    continue
                if p.index == THUNK_DATA:
                    self._import_table(data, p, relocs)
                    continue
                for run in self._runs.get(p.index, ()):
                    if space == I_SPACE:
                        self._ispace_fields(image, p, run)
                    else:
                        self._dspace_fields(data, p, run, relocs, callbacks)
        for i, row in enumerate(self.got_rows):  # then one relocation per GOT word
            space, value = self._where(row)
            self._put_word(data, 4 * i, value)
            if space in (I_SPACE, THUNK):
                relocs.append(nxflat_format.RELOC_REL32I << 30 | 4 * i)
                if self._is_function(row):
                    callbacks.append(4 * i)
            elif space == D_SPACE:
                relocs.append(nxflat_format.RELOC_REL32D << 30 | 4 * i)
        self._check_one_relocation_per_word(placed, relocs)
        return image, data, relocs, callbacks

    def _check_one_relocation_per_word(self, placed: list[_Placed], relocs: list[int]) -> None:
        """A D-space word is relocated once: two of the objects' pointer relocations at one
        place would be two NXFLAT relocations adding the base twice (the loader refuses)."""
        offsets = np.array(relocs, np.int64) & nxflat_format.OFFSET_MASK
        ordered = np.sort(offsets)
        twice = ordered[1:][np.diff(ordered) == 0]
        if not len(twice):
            return
        at = int(twice[0])
        p = next((p for p in placed if p.space == D_SPACE
                  and self.got_size + p.offset <= at < self.got_size + p.offset + p.size), None)
        if p is None:
            raise FormatError(f"two relocations patch the word at D-space offset {at:#x}",
                              file=self.module.file)
        raise FormatError("two relocations patch this word", file=self._file_of(p),
                          section=p.name, offset=at - self.got_size - p.offset)

    def _thunk_text(self) -> bytes:
        strings = b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in self.imports)
        code = strings + arm.code_padding(len(strings), 4)
        register = nxflat_format.PIC_REGISTERS[self.abi]
        for i in range(len(self.imports)):
            code += arm.import_thunk(register, self.got_size + self.import_offset
                                     + nxflat_format.IMPORT.size * i)
        return code

    def _import_table(self, data: np.ndarray, p: _Placed, relocs: list[int]) -> None:
        """``{i_funcname, 0}`` per import; the name's I-offset is relocated (REL32I)."""
        names_at = self.placed_by_index[THUNK_TEXT].offset
        for i, name in enumerate(self.imports):
            at = self.got_size + p.offset + nxflat_format.IMPORT.size * i
            self._put_word(data, at, names_at)
            relocs.append(nxflat_format.RELOC_REL32I << 30 | at)
            names_at += len(name.encode("utf-8", "surrogateescape")) + 1

    def _put_word(self, data: np.ndarray, at: int, value: int) -> None:
        data[at:at + 4] = np.frombuffer((value & 0xFFFF_FFFF).to_bytes(4, "little"), np.uint8)

    def _addends(self, p: _Placed, run) -> np.ndarray:
        """The run's addends; a REL table's are read from its fields, which must lie in the
        section's bytes."""
        if not run.implicit:
            return run.addend.astype(np.int64)
        image = np.frombuffer(self.module.sections[p.index].data or b"", np.uint8)
        kinds = run.kind.astype(np.intp)
        offsets = run.offset.astype(np.int64)
        beyond = np.flatnonzero(offsets + ARCH.tables.width[kinds] > len(image))
        if len(beyond):
            i = int(beyond[0])
            raise FormatError(f"the field runs past the end of the section's {len(image):#x} bytes",
                              file=self._file_of(p), section=p.name, offset=int(offsets[i]),
                              kind=ARCH.kind_name(int(kinds[i])),
                              symbol=self._label(int(run.target[i])))
        return stored_addends(ARCH, image, "<", kinds, offsets)

    def _check_kinds(self, p: _Placed, run, allowed: set[int], why: str) -> None:
        for i, k in enumerate(run.kind.tolist()):
            if k in allowed or k in MARKERS:
                continue
            name = ARCH.kind_name(k)
            reason = ARCH.unsupported_reason(k) if k not in ARCH.kinds else why
            raise UnsupportedError(reason, file=self._file_of(p), section=p.name,
                                   offset=int(run.offset[i]), kind=name,
                                   symbol=self._label(int(run.target[i])))

    def _fields(self, p: _Placed, run) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kind, offset, target row and addend of each field a run patches (its marker
        relocations, which patch nothing, left out)."""
        keep = ~np.isin(run.kind, list(MARKERS))
        return (run.kind[keep].astype(np.intp), run.offset[keep].astype(np.int64),
                run.target[keep].astype(np.int64), self._addends(p, run)[keep])

    def _ispace_fields(self, image: np.ndarray, p: _Placed, run) -> None:
        """Fields in I-space: resolved here, with I-space at 0 (it is position independent)."""
        allowed = RESOLVED_IN_ISPACE | {R.R_ARM_GOT_BREL, R.R_ARM_GOTOFF32, R.R_ARM_BASE_PREL}
        self._check_kinds(p, run, allowed, "I-space is shared and never relocated: NXFLAT "
                          "cannot express this field there (compile with NuttX's -fpic "
                          "-msingle-pic-base -mno-pic-data-is-text-relative)")
        kind, offset, target, addend = self._fields(p, run)
        if not len(kind):
            return
        places = p.offset + offset
        values = np.zeros(len(kind), np.int64)
        for i, (k, row) in enumerate(zip(kind.tolist(), target.tolist(), strict=True)):
            space, value = self._where(row)
            if k == R.R_ARM_GOT_BREL:
                values[i] = 4 * self.got_slot[self._key(row)] + addend[i]
            elif k == R.R_ARM_GOTOFF32:
                if space != D_SPACE:
                    self._cannot(p, offset[i], k, row, "GOTOFF32 of something outside D-space")
                values[i] = value + addend[i]
            elif k == R.R_ARM_BASE_PREL:
                values[i] = 0  # (as ldnxflat: the GOT is not PC-relative to I-space)
            else:
                if space not in (I_SPACE, THUNK):
                    if space == NOWHERE and k in CALLS:
                        raise UndefinedSymbolError(
                            "a call to a weak function nobody defines (import it with "
                            "--imports-weak)", file=self._file_of(p), section=p.name,
                            offset=int(offset[i]), kind=ARCH.kind_name(k), symbol=self._label(row))
                    self._cannot(p, offset[i], k, row, "a PC-relative reference from I-space to "
                                 "D-space, whose distance differs per instance")
                values[i] = value + addend[i] - places[i]
                mask = int(ARCH.tables.place_mask[k])
                values[i] += places[i] & mask  # measured from the place rounded down (Pa)
        self._write(image, p, kind, places, values, offset, target)

    def _dspace_fields(self, data: np.ndarray, p: _Placed, run, relocs: list[int],
                       callbacks: list[int]) -> None:
        """Fields in D-space: pointers, each an NXFLAT relocation (REL32I or REL32D)."""
        self._check_kinds(p, run, POINTERS, "D-space holds pointers only (R_ARM_ABS32): "
                          "NXFLAT cannot express this field there")
        kind, offset, target, addend = self._fields(p, run)
        if not len(kind):
            return
        base = self.got_size + p.offset
        values = np.zeros(len(kind), np.int64)
        for i, row in enumerate(target.tolist()):
            space, value = self._where(row)
            values[i] = value + addend[i]
            at = base + int(offset[i])
            if space in (I_SPACE, THUNK):
                relocs.append(nxflat_format.RELOC_REL32I << 30 | at)
                if self._is_function(row):
                    callbacks.append(at)
            elif space == D_SPACE:
                relocs.append(nxflat_format.RELOC_REL32D << 30 | at)
            if at % 4:
                self._cannot(p, offset[i], int(kind[i]), row, "an unaligned pointer in D-space")
        self._write(data, p, kind, base + offset, values, offset, target, base=base)

    def _write(self, image: np.ndarray, p: _Placed, kind: np.ndarray, positions: np.ndarray,
               values: np.ndarray, offsets: np.ndarray, targets: np.ndarray, base: int = 0) -> None:
        """Through the one field writer; a value that does not fit is an error naming it."""
        kinds = kinds_of(kind)
        batch = FieldBatch(kind_set(ARCH, kinds), kind, positions.astype(np.int64), values)
        overflow = write_fields(ARCH, image, "<", batch)
        if overflow is not None:
            i = overflow.row
            k = ARCH.kinds[int(kind[i])]
            raise RelocationOverflowError(overflow_message(k, overflow.value, overflow.count - 1),
                                          file=self._file_of(p), section=p.name,
                                          offset=int(offsets[i]), kind=k.name,
                                          symbol=self._label(int(targets[i])))

    def _is_function(self, row: int) -> bool:
        """A pointer to this symbol is a pointer to the program's code (a function or an
        import's thunk): the callback table lists words holding one."""
        if self.definition[row] < 0:
            return self.names[row] in self._imported
        return int(self.module.symbols["type"][self._key(row)]) == FUNC

    # -- messages ----------------------------------------------------------------------------
    def _cannot(self, p: _Placed, offset: int, kind: int, row: int, why: str) -> None:
        raise UnsupportedError(f"NXFLAT cannot express {why}", file=self._file_of(p),
                               section=p.name, offset=int(offset), kind=ARCH.kind_name(kind),
                               symbol=self._label(row))

    def _file_of(self, p: _Placed) -> str:
        if p.index < 0:
            return "(import thunks)"
        sec = self.module.sections[p.index]
        return sec.file or self.module.file

    def _file_of_row(self, row: int) -> str:
        section = int(self.module.symbols["section"][row])
        return self.module.sections[section].file if section >= 0 else self.module.file

    def _label(self, row: int) -> str:
        name = self.names[row]
        if name:
            return name
        s = self.module.symbols
        section = int(s["section"][row])
        if int(s["type"][row]) == SECTION_SYMBOL and section >= 0:
            return self.module.sections[section].name
        return "(section)" if section not in (UNDEF, NOT_LOADED) else f"symbol #{row}"

    def _first_use(self, name: str) -> dict:
        """Where the first relocation naming ``name`` lies (file, section, offset, kind)."""
        for run in self.module.relocation_runs:
            for i, row in enumerate(run.target.tolist()):
                if self.names[row] == name:
                    sec = self.module.sections[run.section]
                    return {"file": sec.file, "section": sec.name, "offset": int(run.offset[i]),
                            "kind": ARCH.kind_name(int(run.kind[i]))}
        return {"file": self.module.file}


def describe(result: NxflatBuild) -> list[str]:
    """Lines summing up a build (the CLI prints them)."""
    c = result.file
    h = c.header()
    return [f"ABI {c.abi}, entry I-space +{c.entry:#x}, stack {c.stack_size} bytes",
            f"I-space {h.datastart:#x} bytes, D-space {h.datasize:#x} bytes (GOT {len(result.got)} "
            f"words), bss {h.bsssize:#x} bytes",
            f"{len(c.relocations)} relocations, {len(result.imports)} imports"
            + (f": {', '.join(result.imports)}" if result.imports else ""),
            f"callback table: {len(c.callbacks)} word{'s' * (len(c.callbacks) != 1)} holding "
            "function pointers" if c.callbacks else "no callback table"]


__all__ = ["NxflatBuild", "bfd_hash", "build", "describe", "ld_global_order", "nxflat"]
