"""Human-readable views of files (``linkload dump``): a short readelf-like listing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import arch as arch_registry
from .errors import UnsupportedError
from .formats import Source, read_bytes
from .formats import elf as elf_format

_BIND = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}
_TYPE = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS",
         10: "IFUNC"}
_ELF_TYPE = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core"}
_SPECIAL_SHNDX = {0: "UND", 0xFFF1: "ABS", 0xFFF2: "COM", 0xFF02: "LCOM"}


def dump(source: Source, *, disasm: bool = False, format: str | None = None,
         plf: Source | None = None) -> Iterator[str]:
    """Lines describing the file ``source``: ELF recognised by its contents, REL and DOL by
    their extension (``.rel``, ``.dol``) or ``format``. ``disasm`` adds a disassembly of the
    executable sections of a REL or DOL; ``plf``, the partially linked ELF a REL was made
    from, names the REL's sections and gives their alignment needs."""
    from .formats import guess_format

    data, file = read_bytes(source)
    kind = format or guess_format(data, file)
    if kind == "elf":
        yield from dump_elf(elf_format.ElfFile(data, file))
    elif kind == "rel":
        yield from dump_rel(data, file, disasm=disasm, plf=plf)
    elif kind == "dol":
        yield from dump_dol(data, file, disasm=disasm)
    else:
        from .errors import FormatError

        raise FormatError("unrecognised file format", file=file, offset=0)


def _kind_namer(machine: str):
    try:
        arch = arch_registry.get(machine)
    except UnsupportedError:
        return lambda k: f"type {k}"
    return arch.kind_name


def dump_elf(elf: elf_format.ElfFile) -> Iterator[str]:
    h = elf.header
    machine = elf_format.MACHINES.get(h.machine, f"machine {h.machine}")
    order = "little" if h.byteorder == "<" else "big"
    yield (f"{elf.file}: ELF{h.bits} {order}-endian {machine} "
           f"{_ELF_TYPE.get(h.type, f'type {h.type}')}")
    if h.type != elf_format.ET_REL:
        yield f"entry point {h.entry:#x}"
    yield ""
    yield from _sections(elf)
    yield ""
    yield from _symbols(elf)
    kind_name = _kind_namer(machine)
    for ri in elf.relocation_sections():
        offset, typ, sym, addend = elf.relocations(ri)
        target = int(elf.sections["info"][ri])
        yield ""
        yield f"Relocations of {elf.names[target]} ({len(offset)} entries, from {elf.names[ri]}):"
        yield f"  {'offset':>10}  {'kind':<26} {'symbol':<32} addend"
        for o, t, s, a in zip(offset.tolist(), typ.tolist(), sym.tolist(), addend.tolist(),
                              strict=True):
            yield f"  {o:#10x}  {kind_name(t):<26} {_symbol_label(elf, s):<32} {a:+#x}"


def _sections(elf: elf_format.ElfFile) -> Iterator[str]:
    yield f"Sections ({len(elf.sections)}):"
    yield f"  {'nr':>3} {'name':<28} {'type':<14} {'flags':<5} {'address':>10} {'size':>8} align"
    for i in range(len(elf.sections)):
        sh = elf.sections[i]
        flags = int(sh["flags"])
        flag_text = "".join(c for bit, c in ((0x2, "A"), (0x4, "X"), (0x1, "W"), (0x200, "G"),
                                              (0x400, "T")) if flags & bit)
        type_name = elf_format.SECTION_TYPE_NAMES.get(int(sh["type"]), f"{int(sh['type']):#x}")
        yield (f"  {i:>3} {elf.names[i][:28]:<28} {type_name:<14} {flag_text:<5} "
               f"{int(sh['addr']):#10x} {int(sh['size']):#8x} {int(sh['addralign'])}")


def _symbols(elf: elf_format.ElfFile) -> Iterator[str]:
    syms = elf.symbols
    yield f"Symbols ({len(syms)}):"
    yield f"  {'nr':>5} {'value':>16} {'size':>6} {'type':<7} {'bind':<6} {'section':<20} name"
    shndx = elf.symbol_shndx
    for i in range(len(syms)):
        info = int(syms["info"][i])
        yield (f"  {i:>5} {int(syms['value'][i]):16x} {int(syms['size'][i]):6} "
               f"{_TYPE.get(info & 0xF, str(info & 0xF)):<7} {_BIND.get(info >> 4, str(info >> 4)):<6} "
               f"{_section_label(elf, int(shndx[i])):<20} {elf.symbol_name(i)}")


def _section_label(elf: elf_format.ElfFile, index: int) -> str:
    if index in _SPECIAL_SHNDX:
        return _SPECIAL_SHNDX[index]
    return elf.names[index][:20] if index < len(elf.names) else str(index)


def _symbol_label(elf: elf_format.ElfFile, index: int) -> str:
    name = elf.symbol_name(index)
    if name:
        return name
    shndx = int(elf.symbol_shndx[index])
    if int(elf.symbols["info"][index]) & 0xF == 3 and shndx < len(elf.names):
        return elf.names[shndx]
    return f"#{index}"


# -- REL (reldump) -----------------------------------------------------------------------------
def dump_rel(data: bytes | memoryview, file: str, *, disasm: bool = False,
             plf: Source | None = None) -> Iterator[str]:
    """A REL: header, sections (exec, bss), alignment checks, imports, every relocation entry
    (type, target module, section and offset); ``disasm``: the executable sections' code."""
    from .formats import rel as rel_format

    rel = rel_format.RelFile(data, file)
    names, needs = _plf_sections(plf, rel.header.numSections)
    h = rel.header
    yield f"{file}: REL version {h.version}, module id {h.id}"
    yield ""
    yield from _rel_header(rel)
    yield ""
    yield from _rel_sections(rel, names)
    yield ""
    yield from _rel_checks(rel, names, needs)
    yield ""
    yield from _rel_imports(rel)
    yield from _rel_lists(rel, names)
    if disasm:
        for i in range(h.numSections):
            offset, size = int(rel.sections["offset"][i]), int(rel.sections["size"][i])
            if rel.sections["exec"][i] and offset and size:
                yield ""
                yield f"Disassembly of section {i}{_label(names, i)}:"
                notes = _notes_for(rel, i)
                yield from disassemble(bytes(rel.data[offset:offset + size]), 0, notes)


def _plf_sections(plf: Source | None, count: int) -> tuple[list[str] | None, list[int] | None]:
    if plf is None:
        return None, None
    data, file = read_bytes(plf)
    ef = elf_format.ElfFile(data, file)
    names = list(ef.names) + [""] * max(0, count - len(ef.names))
    needs = [max(int(a), 1) for a in ef.sections["addralign"]] + [1] * max(0, count - len(ef.names))
    return names, needs


def _label(names: list[str] | None, i: int) -> str:
    return f" {names[i]}" if names and i < len(names) and names[i] else ""


def _rel_header(rel) -> Iterator[str]:
    h = rel.header
    yield "Header:"
    rows = [("id", str(h.id)), ("numSections", str(h.numSections)),
            ("sectionInfoOffset", f"{h.sectionInfoOffset:#x}"),
            ("name", f"offset {h.nameOffset:#x}, size {h.nameSize} in the .str table"),
            ("version", str(h.version)), ("bssSize", f"{h.bssSize:#x}"),
            ("relOffset", f"{h.relOffset:#x}"), ("impOffset", f"{h.impOffset:#x}"),
            ("impSize", f"{h.impSize:#x} ({h.impSize // 8} imports)")]
    for what in ("prolog", "epilog", "unresolved"):
        section = getattr(h, what + "Section")
        rows.append((what, f"section {section} + {getattr(h, what):#x}" if section else "none"))
    rows.append(("bssSection", str(h.bssSection)))
    if h.version >= 2:
        rows += [("align", str(h.align)), ("bssAlign", str(h.bssAlign))]
    if h.version >= 3:
        rows.append(("fixSize", f"{h.fixSize:#x}"))
    for key, value in rows:
        yield f"  {key:<18} {value}"


def _rel_sections(rel, names: list[str] | None) -> Iterator[str]:
    t = rel.sections
    yield f"Sections ({len(t)}):"
    yield f"  {'nr':>3}  {'offset':>10}  {'size':>10}  flags"
    for i in range(len(t)):
        offset, size = int(t["offset"][i]), int(t["size"][i])
        flags = ["exec"] if t["exec"][i] else []
        if i == rel.bss_index and i:
            flags.append("bss")
        elif not offset:
            flags.append("absent")
        where = f"{offset:#10x}" if offset else f"{'-':>10}"
        flag_text = " ".join(flags) or "-"
        yield f"  {i:>3}  {where}  {size:#10x}  {flag_text:<8}{_label(names, i)}".rstrip()


def _lowbit(value: int) -> int:
    return value & -value if value else 1 << 31


def alignment_problems(rel, needs: list[int] | None = None) -> list[str]:
    """The alignment constraints a REL breaks, as sentences (empty: none).

    A section at file offset ``o`` of a module loaded at a multiple of ``align`` is aligned to
    ``min(align, lowest set bit of o)``. Without ``needs`` (the sections' own alignment, from
    the plf), only code is checked (4 bytes)."""
    h, t = rel.header, rel.sections
    out = []
    if h.version < 2:
        return out
    data_needs = [needs[i] for i in range(len(t)) if needs and i < len(needs) and t["offset"][i]]
    if h.align and data_needs and h.align < max(data_needs):
        out.append(f"module align {h.align} is below the {max(data_needs)} its sections need")
    for i in range(len(t)):
        offset = int(t["offset"][i])
        if not offset:
            continue
        need = needs[i] if needs and i < len(needs) else (4 if t["exec"][i] else 1)
        got = min(h.align or 1, _lowbit(offset))
        if got < need:
            out.append(f"section {i} at file offset {offset:#x} needs {need}-byte alignment, "
                       f"but a module aligned to {h.align or 1} only guarantees {got}")
    b = rel.bss_index
    if b and needs and b < len(needs) and (h.bssAlign or 1) < needs[b]:
        out.append(f"bss section {b} needs {needs[b]}-byte alignment, but bssAlign is "
                   f"{h.bssAlign}")
    return out


def _rel_checks(rel, names: list[str] | None, needs: list[int] | None) -> Iterator[str]:
    h = rel.header
    yield "Checks:"
    if h.version < 2:
        yield "  alignment: version 1 records none; the loader checks nothing"
    else:
        problems = alignment_problems(rel, needs)
        basis = "the plf's section alignments" if needs else "code needs 4 bytes"
        yield f"  alignment: module {h.align}, bss {h.bssAlign} ({basis}): " + \
            ("VIOLATION" if problems else "ok")
        for p in problems:
            yield f"    VIOLATION: {p}"
    if h.version >= 3:
        problems = fix_size_problems(rel)
        yield f"  fixSize {h.fixSize:#x}: " + ("VIOLATION" if problems else "ok")
        for p in problems:
            yield f"    VIOLATION: {p}"


def fix_size_problems(rel) -> list[str]:
    """What OSLinkFixed would free too early: data, the import table or the lists of other
    modules at or after ``fixSize``."""
    h, t = rel.header, rel.sections
    out = []
    ends = [int(o + s) for o, s in zip(t["offset"], t["size"], strict=True) if o]
    if ends and max(ends) > h.fixSize:
        out.append(f"section data reaches {max(ends):#x}, past fixSize")
    if h.impSize and h.impOffset + h.impSize > h.fixSize:
        out.append("the import table lies past fixSize")
    for k in rel.used_imports:
        module, offset = int(rel.imports["id"][k]), int(rel.imports["offset"][k])
        if module not in (0, h.id) and offset >= h.fixSize:
            out.append(f"the list for module {module} lies past fixSize")
    return out


def _module_label(rel, module: int) -> str:
    return "DOL" if module == 0 else "self" if module == rel.header.id else ""


def _rel_imports(rel) -> Iterator[str]:
    yield f"Imports ({len(rel.imports)}):"
    used = set(rel.used_imports)
    for k, (module, offset) in enumerate(zip(rel.imports["id"].tolist(),
                                             rel.imports["offset"].tolist(), strict=True)):
        label = _module_label(rel, module)
        note = f" ({label})" if label else ""
        unused = "" if k in used else "  (ignored: a repeated module id)"
        yield f"  module {module}{note}: list at {offset:#x}{unused}"


def _target_text(rel, entry) -> str:
    module, section, addend = int(entry["module"]), int(entry["target"]), int(entry["addend"])
    if module == 0:
        return f"DOL {addend:#010x}"
    return f"module {module} section {section} + {addend:#x}"


def _rel_lists(rel, names: list[str] | None) -> Iterator[str]:
    from .formats.rel import type_name

    entries = rel.entries
    for k in rel.used_imports:
        module = int(rel.imports["id"][k])
        mine = entries[entries["module"] == module]
        label = _module_label(rel, module)
        yield ""
        yield (f"Relocations against module {module}{f' ({label})' if label else ''}: "
               f"{len(mine)} entries")
        yield f"  {'section':<8} {'offset':>10}  {'type':<22} target"
        for e in mine:
            section = int(e["section"])
            yield (f"  {section:<8} {int(e['offset']):#10x}  {type_name(e['type']):<22} "
                   f"{_target_text(rel, e)}")


def _notes_for(rel, section: int) -> dict[int, list[str]]:
    from .formats.rel import type_name

    notes: dict[int, list[str]] = {}
    mine = rel.entries[rel.entries["section"] == section]
    for e in mine:
        at = int(e["offset"]) & ~3
        notes.setdefault(at, []).append(f"{type_name(e['type'])} {_target_text(rel, e)}")
    return notes


def disassemble(code: bytes, address: int, notes: dict[int, list[str]] | None = None
                ) -> Iterator[str]:
    """PowerPC (Broadway/Gekko, big-endian) disassembly of ``code`` loaded at ``address``;
    ``notes`` adds text after the instruction at an address (relocations)."""
    try:
        import capstone
    except ImportError:
        yield "  (capstone is not installed: pip install capstone)"
        return
    md = capstone.Cs(capstone.CS_ARCH_PPC, capstone.CS_MODE_32 | capstone.CS_MODE_BIG_ENDIAN)
    md.skipdata = True
    notes = notes or {}
    for insn in md.disasm(code, address):
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        line = f"  {insn.address:08x}:  {insn.bytes.hex()}  {text}"
        extra = notes.get(insn.address)
        yield f"{line:<56} ; {'; '.join(extra)}" if extra else line


# -- DOL --------------------------------------------------------------------------------------
def dump_dol(data: bytes | memoryview, file: str, *, disasm: bool = False) -> Iterator[str]:
    """A DOL: the 7 text and 11 data slots, the bss, the entry point."""
    from .formats import dol as dol_format

    h = dol_format.parse_header(data, file)
    yield f"{file}: DOL, entry point {h.entry:#010x}"
    yield ""
    yield f"  {'slot':<7} {'offset':>10} {'address':>10} {'size':>10}"
    for i in range(dol_format.SLOTS):
        if h.sizes[i]:
            yield (f"  {dol_format.slot_name(i):<7} {h.offsets[i]:#10x} {h.addresses[i]:#10x} "
                   f"{h.sizes[i]:#10x}")
        else:
            yield f"  {dol_format.slot_name(i):<7} {'-':>10} {'-':>10} {'unused':>10}"
    yield f"  {'bss':<7} {'-':>10} {h.bss_address:#10x} {h.bss_size:#10x}"
    if disasm:
        for i in h.used():
            if i < dol_format.TEXT_SLOTS:
                yield ""
                yield f"Disassembly of {dol_format.slot_name(i)}:"
                yield from disassemble(bytes(data[h.offsets[i]:h.offsets[i] + h.sizes[i]]),
                                       h.addresses[i])


__all__ = ["alignment_problems", "disassemble", "dump", "dump_dol", "dump_elf", "dump_rel",
           "fix_size_problems", "np"]
