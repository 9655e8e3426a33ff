"""Helpers of the ELF reader and malformed-input tests: compile C at test time, rewrite ELF files
(swap their byte order, move their section header table, patch single fields), and look at this
process's memory mappings.

Everything here reads and writes ELF with :mod:`struct` and pyelftools, independently of the
code under test.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOTE, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 7, 8, 9, 11
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY, SHT_GROUP, SHT_SYMTAB_SHNDX = 14, 15, 16, 17, 18
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
EM_PPC, EM_PPC64 = 20, 21

# struct formats (without byte order) of the ELF structures, by class.
EHDR = {64: "HHIQQQIHHHHHH", 32: "HHIIIIIHHHHHH"}
EHDR_FIELDS = ("e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags",
               "e_ehsize", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx")
SHDR = {64: "IIQQQQIIQQ", 32: "IIIIIIIIII"}
SHDR_FIELDS = ("sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size", "sh_link",
               "sh_info", "sh_addralign", "sh_entsize")
SYM = {64: "IBBHQQ", 32: "IIIBBH"}
SYM_FIELDS = {64: ("st_name", "st_info", "st_other", "st_shndx", "st_value", "st_size"),
              32: ("st_name", "st_value", "st_size", "st_info", "st_other", "st_shndx")}
REL = {64: "QQ", 32: "II"}
RELA = {64: "QQq", 32: "IIi"}
RELA_FIELDS = ("r_offset", "r_info", "r_addend")
PHDR = {64: "IIQQQQQQ", 32: "IIIIIIII"}


# -- tools --------------------------------------------------------------------------------------
def need_tool(*names: str) -> None:
    """Skip the test when a tool is missing, but fail it on CI, where every tool must exist."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        message = f"needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so a missing tool is an error)")
        pytest.skip(message)


def run(args: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{result.stderr}")


def compiles(args: list[str], source: str, suffix: str, tmp: Path) -> bool:
    """Whether ``args`` (a compiler command line without input and output) works here."""
    src = tmp / f"probe{suffix}"
    src.write_text(source)
    result = subprocess.run([*args, "-c", str(src), "-o", str(tmp / "probe.o")],
                            capture_output=True)
    return result.returncode == 0


def compile_c(source: str, out: Path, flags: list[str] = (), *, cxx: bool = False,
              link: bool = False) -> Path:
    """Compile ``source`` into ``out``: an object file, or with ``link`` whatever ``flags``
    ask for (an executable, a shared object)."""
    compiler = "g++" if cxx else "gcc"
    need_tool(compiler)
    src = out.with_suffix(".cc" if cxx else ".c")
    src.write_text(source)
    run([compiler, *flags, *([] if link else ["-c"]), str(src), "-o", str(out)])
    return out


# -- reading with struct ------------------------------------------------------------------------
@dataclass
class Layout:
    """Where things are in an ELF file (as pyelftools sees it)."""

    bits: int
    order: str
    header: dict
    sections: list[dict]  # section headers, plus "name" and "index"

    def index(self, name: str) -> int:
        return next(s["index"] for s in self.sections if s["name"] == name)

    def section(self, name: str) -> dict:
        return self.sections[self.index(name)]

    def first_of_type(self, sh_type: int) -> dict:
        return next(s for s in self.sections if s["sh_type"] == sh_type)

    @property
    def shdr_size(self) -> int:
        return struct.calcsize(self.order + SHDR[self.bits])

    def shdr_offset(self, index: int) -> int:
        return self.header["e_shoff"] + index * self.shdr_size

    @property
    def sym_size(self) -> int:
        return struct.calcsize(self.order + SYM[self.bits])

    def rel_size(self, rela: bool) -> int:
        return struct.calcsize(self.order + (RELA if rela else REL)[self.bits])


def layout(data: bytes) -> Layout:
    bits = 64 if data[4] == 2 else 32
    order = "<" if data[5] == 1 else ">"
    header = dict(zip(EHDR_FIELDS, struct.unpack_from(order + EHDR[bits], data, 16), strict=True))
    ef = ELFFile(io.BytesIO(data))
    sections = []
    size = struct.calcsize(order + SHDR[bits])
    for i, sec in enumerate(ef.iter_sections()):
        raw = struct.unpack_from(order + SHDR[bits], data, header["e_shoff"] + i * size)
        entry = dict(zip(SHDR_FIELDS, raw, strict=True))
        entry.update(name=sec.name, index=i)
        sections.append(entry)
    return Layout(bits, order, header, sections)


# -- patching -----------------------------------------------------------------------------------
def patch_header(data: bytes, **fields) -> bytes:
    lay = layout(data)
    values = dict(lay.header)
    values.update(fields)
    out = bytearray(data)
    struct.pack_into(lay.order + EHDR[lay.bits], out, 16, *(values[f] for f in EHDR_FIELDS))
    return bytes(out)


def patch_section(data: bytes, name_or_index: str | int, **fields) -> bytes:
    lay = layout(data)
    index = name_or_index if isinstance(name_or_index, int) else lay.index(name_or_index)
    values = dict(lay.sections[index])
    values.update(fields)
    out = bytearray(data)
    struct.pack_into(lay.order + SHDR[lay.bits], out, lay.shdr_offset(index),
                     *(values[f] for f in SHDR_FIELDS))
    return bytes(out)


def symbol_offset(data: bytes, row: int) -> int:
    lay = layout(data)
    return lay.first_of_type(SHT_SYMTAB)["sh_offset"] + row * lay.sym_size


def patch_symbol(data: bytes, row: int, **fields) -> bytes:
    lay = layout(data)
    fmt = lay.order + SYM[lay.bits]
    at = symbol_offset(data, row)
    values = dict(zip(SYM_FIELDS[lay.bits], struct.unpack_from(fmt, data, at), strict=True))
    values.update(fields)
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *(values[f] for f in SYM_FIELDS[lay.bits]))
    return bytes(out)


def reloc_offset(data: bytes, section: str, row: int) -> int:
    lay = layout(data)
    sec = lay.section(section)
    return sec["sh_offset"] + row * lay.rel_size(sec["sh_type"] == SHT_RELA)


def read_reloc(data: bytes, section: str, row: int) -> dict:
    lay = layout(data)
    rela = lay.section(section)["sh_type"] == SHT_RELA
    fmt = lay.order + (RELA if rela else REL)[lay.bits]
    raw = struct.unpack_from(fmt, data, reloc_offset(data, section, row))
    values = dict(zip(RELA_FIELDS, raw, strict=False))
    shift, mask = (32, 0xFFFFFFFF) if lay.bits == 64 else (8, 0xFF)
    values["sym"], values["type"] = values["r_info"] >> shift, values["r_info"] & mask
    return values


def patch_reloc(data: bytes, section: str, row: int, *, sym: int | None = None,
                type: int | None = None, **fields) -> bytes:
    lay = layout(data)
    rela = lay.section(section)["sh_type"] == SHT_RELA
    fmt = lay.order + (RELA if rela else REL)[lay.bits]
    values = read_reloc(data, section, row)
    values.update(fields)
    shift = 32 if lay.bits == 64 else 8
    values["r_info"] = ((values["sym"] if sym is None else sym) << shift) | (
        values["type"] if type is None else type)
    out = bytearray(data)
    struct.pack_into(fmt, out, reloc_offset(data, section, row),
                     *(values[f] for f in RELA_FIELDS[:len(fmt) - 1]))
    return bytes(out)


def patch_bytes(data: bytes, offset: int, new: bytes) -> bytes:
    out = bytearray(data)
    out[offset:offset + len(new)] = new
    return bytes(out)


# -- whole-file rewrites ------------------------------------------------------------------------
def _swap(buf: bytearray, offset: int, fmt: str, count: int) -> None:
    size = struct.calcsize("<" + fmt)
    for i in range(count):
        at = offset + i * size
        struct.pack_into(">" + fmt, buf, at, *struct.unpack_from("<" + fmt, buf, at))


def to_big_endian(data: bytes, machine: int | None = None) -> bytes:
    """The big-endian twin of a little-endian ELF file: every header and table (section and
    program headers, symbols, relocations, groups, extended indices) re-encoded; section
    contents are left as they are. ``machine`` replaces e_machine (a big-endian CPU)."""
    lay = layout(data)
    assert lay.order == "<"
    bits = lay.bits
    out = bytearray(data)
    for sec in lay.sections:
        t, off, size = sec["sh_type"], sec["sh_offset"], sec["sh_size"]
        if t in (SHT_SYMTAB, SHT_DYNSYM):
            _swap(out, off, SYM[bits], size // struct.calcsize("<" + SYM[bits]))
        elif t in (SHT_REL, SHT_RELA):
            fmt = (RELA if t == SHT_RELA else REL)[bits]
            _swap(out, off, fmt, size // struct.calcsize("<" + fmt))
        elif t in (SHT_GROUP, SHT_SYMTAB_SHNDX):
            _swap(out, off, "I", size // 4)
    h = lay.header
    if h["e_phoff"]:
        _swap(out, h["e_phoff"], PHDR[bits], h["e_phnum"])
    _swap(out, h["e_shoff"], SHDR[bits], len(lay.sections))
    header = dict(h)
    if machine is not None:
        header["e_machine"] = machine
    out[5] = 2
    struct.pack_into(">" + EHDR[bits], out, 16, *(header[f] for f in EHDR_FIELDS))
    return bytes(out)


def headers_first(data: bytes) -> bytes:
    """The same object with its section header table right after the ELF header and the
    section contents after it, in section order: truncating the file inside a section then
    leaves the headers (and the sections before it) intact."""
    lay = layout(data)
    ehsize = lay.header["e_ehsize"]
    shsize = lay.shdr_size
    table_end = ehsize + shsize * len(lay.sections)
    cursor = table_end
    body = bytearray()
    offsets = []
    for sec in lay.sections:
        if sec["sh_type"] in (SHT_NULL, SHT_NOBITS):
            offsets.append(0 if sec["sh_type"] == SHT_NULL else cursor)
            continue
        align = max(sec["sh_addralign"], 1)
        pad = (-cursor) % align
        body += b"\0" * pad
        cursor += pad
        offsets.append(cursor)
        body += data[sec["sh_offset"]:sec["sh_offset"] + sec["sh_size"]]
        cursor += sec["sh_size"]
    out = bytearray(data[:ehsize]) + bytearray(shsize * len(lay.sections)) + body
    header = dict(lay.header, e_shoff=ehsize)
    struct.pack_into(lay.order + EHDR[lay.bits], out, 16, *(header[f] for f in EHDR_FIELDS))
    for sec, offset in zip(lay.sections, offsets, strict=True):
        values = dict(sec, sh_offset=offset)
        struct.pack_into(lay.order + SHDR[lay.bits], out, ehsize + sec["index"] * shsize,
                         *(values[f] for f in SHDR_FIELDS))
    return bytes(out)


# -- the process ---------------------------------------------------------------------------------
def anonymous_mappings() -> frozenset[str]:
    """``start-end perms`` of every anonymous mapping of this process."""
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            path = parts[5].strip() if len(parts) > 5 else ""
            if not path or path.startswith("[anon"):
                out.add(f"{parts[0]} {parts[1]}")
    return frozenset(out)


def in_child(function, timeout: float = 60):
    """``function()`` run in a forked child, so that a crash fails the test instead of ending
    the test run: its result (which must pickle), or an AssertionError saying how the child
    died. An exception in the child comes back as an AssertionError with its text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test runner
        os.close(read_end)
        try:
            payload = pickle.dumps(("ok", function()))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            payload = pickle.dumps(("error", "".join(traceback.format_exception(e))))
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while select.select([pipe], [], [], timeout)[0]:
            chunk = pipe.read1(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child gave no answer within {timeout} s")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise AssertionError(f"the child died of signal {os.WTERMSIG(status)} "
                             f"({signal.Signals(os.WTERMSIG(status)).name})")
    outcome, value = pickle.loads(b"".join(chunks))
    if outcome == "error":
        raise AssertionError(f"the child raised:\n{value}")
    return value
