"""What a locate writes into its output folder.

=====================  ==========================================================================
``PROGRAM.elf``        an ELF executable: sections at their run addresses, ``PT_LOAD`` program
                       headers with run (``p_vaddr``) and load (``p_paddr``) addresses (a
                       section of a virtual region: loaded into the pages behind it), the
                       boot table, the page tables and compressed copies as sections of
                       their own, the symbols moved (:mod:`linkload.formats.elf_image`)
``PROGRAM.hex``        Intel HEX of every byte stored at load time, with the entry point
``REGION.bin``         per ROM region: its bytes from its start to its last stored byte,
                       unused bytes 0xff (erased flash)
``map.txt``            the text map (:mod:`.report`)
``layout.json``        the layout, for tools and for ``Reserve``
``map.html``           the picture of the memory map (:mod:`.html`)
=====================  ==========================================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..formats import elf_image, ihex
from ..model import FILE_SYMBOL, SECTION_SYMBOL, UNDEF, SectionKind
from .config import MemType
from .html import page
from .layout import EntityKind
from .locator import Located
from .report import layout, map_lines

ERASED = 0xFF


def elf_bytes(located: Located) -> bytes:
    """The located program as an ELF executable."""
    p = located.program
    compressed = {e.section for e in located.entities if e.kind is EntityKind.COPY and e.compressed}
    sections = []
    for s in p.sections:
        image = located.images[s.index].tobytes()
        has_bytes = s.kind is not SectionKind.BSS and s.index not in compressed
        sections.append(elf_image.ImageSection(
            s.name, int(located.section_addresses[s.index]), s.size,
            image.ljust(s.size, b"\0") if has_bytes else None,
            located.load_address(s.index) if has_bytes else None, s.align,
            s.kind is SectionKind.TEXT, s.writable))
    for i, e in enumerate(located.entities):
        if e.kind is EntityKind.COPY and e.compressed:
            sections.append(elf_image.ImageSection(f".linkload.copy{e.name}", e.address, e.stored,
                                                   located.stored[i], e.address))
    if located.paging is not None:
        tables = located.page_table
        sections.append(elf_image.ImageSection(".linkload.pagetable", tables.address, tables.size,
                                               located.image.read(tables.address, tables.size),
                                               tables.address, tables.align))
    if located.header is not None:
        table = located.boot.pack()
        sections.append(elf_image.ImageSection(".linkload.boot", located.header.address,
                                               len(table), table, located.header.address,
                                               located.header.align))
    return elf_image.write(p.arch.name, p.arch.bits, p.byteorder, located.entry, sections,
                           _symbols(located))


def _symbols(located: Located) -> list[elf_image.ImageSymbol]:
    p = located.program
    rows = p.symbols
    out = []
    for i, (name, where) in enumerate(zip(p.symbol_names, p.symbol_sections.tolist(), strict=True)):
        kind = int(rows["type"][i])
        if not name or kind in (FILE_SYMBOL, SECTION_SYMBOL) or where < -1 or rows["section"][i] == UNDEF:
            continue
        out.append(elf_image.ImageSymbol(name, int(located.symbol_values[i]),
                                         where if where >= 0 else None, int(rows["size"][i]),
                                         min(int(rows["bind"][i]), 2), kind))
    return out


def rom_images(located: Located) -> dict[str, bytes]:
    """Per ROM region that holds anything: its bytes from its start to its last stored byte,
    unused bytes erased (0xff)."""
    out = {}
    chunks = located.loaded_chunks()
    for r in located.regions:
        if r.memtype is not MemType.ROM:
            continue
        mine = [(a, d) for a, d in chunks if r.address <= a < r.end]
        if not mine:
            continue
        end = max(a + len(d) for a, d in mine)
        image = bytearray([ERASED]) * (end - r.address)
        for a, d in mine:
            image[a - r.address:a - r.address + len(d)] = d
        out[r.name] = bytes(image)
    return out


def write_outputs(located: Located, outdir: str | os.PathLike) -> dict[str, Path]:
    """Write every output of ``located`` into ``outdir`` (made if missing); the files
    written, by what they are."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    name = located.program.name
    written = {
        "elf": _write(out / f"{name}.elf", elf_bytes(located)),
        "hex": _write(out / f"{name}.hex", ihex.write(located.loaded_chunks(), located.entry).encode()),
        "map": _write(out / "map.txt", ("\n".join(map_lines(located)) + "\n").encode()),
        "layout": _write(out / "layout.json", json.dumps(layout(located), indent=1).encode()),
        "html": _write(out / "map.html", page(located).encode()),
    }
    for region, data in rom_images(located).items():
        written[f"bin:{region}"] = _write(out / f"{region}.bin", data)
    return written


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


__all__ = ["elf_bytes", "rom_images", "write_outputs"]
