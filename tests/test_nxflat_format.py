"""The NXFLAT format (formats/nxflat.py): the samples the real NuttX tools made
(``tests/nxflat``, with readnxflat's dumps) read exactly, written back byte for byte, dumped
without readnxflat's bugs; every malformed input is one FormatError naming the offset.

These tests need no toolchain: the samples are committed files.
"""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from linkload import FormatError, LinkError, formats, read_module
from linkload.cli import main as cli
from linkload.formats import nxflat
from linkload.model import ABS, UNDEF, SharedImage, placed_apart

SAMPLES = Path(__file__).parent / "nxflat"
NAMES = ["v1/hello", "v1/fnptr", "v2/hello", "v2/fnptr"]


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.nxf").read_bytes()


def readnxflat(name: str) -> dict[str, int | list]:
    """The values readnxflat printed for a sample (with its quirks: data end and bss end one
    low)."""
    text = (SAMPLES / f"{name}.readnxflat.txt").read_text()
    values = {key: int(re.search(rf"{label}\s+([0-9a-f]+)", text).group(1), 16)
              for key, label in [("entry", "Entry point"), ("datastart", "Data start"),
                                 ("dataend_printed", "Data end"), ("bssend_printed", "Bss end"),
                                 ("stack", "Stack size"), ("relocstart", "Reloc start"),
                                 ("imports", "Import start")]}
    values["reloccount"] = int(re.search(r"reloc count\s+(\d+)", text).group(1))
    values["relocs"] = [(int(o, 16), t) for o, t in
                        re.findall(r"^\s+\d+ ([0-9a-f]{8}) RELOC_(REL32[ID])", text, re.M)]
    values["names"] = re.findall(r"^\s+\d+ [0-9a-f]{8} UNKNOWN\s+(\S+)", text, re.M)
    return values


@pytest.mark.parametrize("name", NAMES)
def test_samples_read_as_readnxflat_shows_them(name):
    h, contents = nxflat.parse(sample(name), name)
    shown = readnxflat(name)
    assert (h.entry, h.datastart, h.stacksize, h.relocstart, h.reloccount) == (
        shown["entry"], shown["datastart"], shown["stack"], shown["relocstart"], shown["reloccount"])
    assert h.dataend == shown["dataend_printed"] + 1  # readnxflat prints them one low
    assert h.bssend == shown["bssend_printed"] + 1
    assert h.importsymbols == shown["imports"]
    relocs = [(w & 0x3FFF_FFFF, nxflat.RELOC_TYPES[w >> 30]) for w in contents.relocations.tolist()]
    assert relocs == shown["relocs"]
    assert list(contents.import_names) == shown["names"]
    assert contents.abi == name[:2]
    assert (contents.import_names[0] == nxflat.ABI_V2_MARKER) == (name[:2] == "v2")
    assert not contents.callbacks  # the NuttX tools write no callback table


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_written_back_byte_for_byte(name):
    module = read_module(SAMPLES / f"{name}.nxf")
    assert formats.guess_format(sample(name), "x").name == "nxflat"
    assert nxflat.write_module(module) == sample(name)


@pytest.mark.parametrize("name", NAMES)
def test_a_sample_read_as_a_module_describes_the_loader(name):
    data = sample(name)
    module = read_module(SAMPLES / f"{name}.nxf")
    h, contents = nxflat.parse(data)
    assert (module.machine, module.bits, module.byteorder) == ("arm", 32, "<")
    ispace, dspace, bss = module.sections
    assert isinstance(module.loading, SharedImage)
    assert bytes(module.loading.image) == data[:h.datastart] and ispace.image_offset == 0
    assert bytes(dspace.data) == data[h.datastart:h.dataend]
    assert bss.size == h.bssend - h.dataend and bss.align == 1  # right after the data
    startup = module.startup
    assert startup.stack_size == 2048
    assert startup.base_register == ("r9" if name.startswith("v2") else "r10")
    assert module.symbols["value"][startup.entry] == h.entry | 1  # entered in Thumb state
    assert module.binds_now
    undefined = np.flatnonzero(module.symbols["section"] == UNDEF)[1:]
    assert module.symbol_names(undefined) == list(contents.import_names)
    table = module.relocations
    assert (table["section"] == 1).all() and (table["kind"] == 2).all()  # R_ARM_ABS32
    imports = table[table["implicit"] == 0]
    assert imports["offset"].tolist() == [contents.import_offset + 8 * i + 4
                                          for i in range(len(contents.import_names))]
    relocated = table[table["implicit"] == 1]
    assert len(relocated) == h.reloccount
    # REL32I against I-space past the header, REL32D against the D-space base
    targets = [module.symbol_name(int(t)) for t in relocated["target"]]
    kinds = [w >> 30 for w in contents.relocations.tolist()]
    assert targets == [nxflat.ISPACE_SYMBOL if k == 0 else nxflat.DSPACE_SYMBOL for k in kinds]


def test_shared_sections_are_placed_apart():
    module = read_module(SAMPLES / "v1/hello.nxf")
    instance = placed_apart(module, {0: 0x0810_0000})
    assert [s.name for s in instance.sections] == [".dspace", ".bss"]
    entry = instance.symbols[module.startup.entry]
    assert entry["section"] == ABS and entry["value"] == 0x0810_0000 + 0x80 + 1
    assert instance.symbols[module.startup.base]["section"] == 0  # the D-space section
    assert {run.section for run in instance.relocation_runs} == {0}


def test_the_dump_has_readnxflats_facts_without_its_bugs(capsys):
    assert cli(["dump", str(SAMPLES / "v1/hello.nxf")]) == 0
    out = capsys.readouterr().out
    assert "ABI v1 (PIC register r10)" in out
    assert "D-space  0x0000015e-0x000001aa" in out  # the data end, not one low
    assert "bss      0x000001aa-0x000001be" in out
    assert "GOT (7 entries" in out and "I-space +0x11c 'module a: hello'" in out
    assert ".bss +0x0" in out  # ncalls, through the GOT (the published tool's bug, fixed here)
    assert "malloc" in out and "strlen" in out
    data_lines = [line for line in out.splitlines() if re.match(r"  0000[0-9a-f]{2}: ", line)]
    assert len(data_lines) == -(-0x4C // 16)  # GOT and .data: not the relocations after them


def test_the_dump_disassembles_thumb_and_names_the_thunks(capsys):
    assert cli(["dump", str(SAMPLES / "v2/fnptr.nxf"), "--disasm"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"00000068:  2de9f041  push.w \{r4, r5, r6, r7, r8, lr\}\s+; entry point", out)
    assert "; thunk of report" in out and "; thunk of __nxflat_abi_v2" in out
    assert "add ip, sb" in out  # r9: the v2 PIC register


# -- malformed input ---------------------------------------------------------------------------------
def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


MALFORMED = [
    ("bad magic", lambda d: b"NxFX" + d[4:], r"bad magic", 0),
    ("truncated header", lambda d: d[:20], r"truncated", 0),
    ("entry outside I-space", lambda d: patched(d, 4, ">I", 0x400), r"entry point", 4),
    ("data start after data end", lambda d: patched(d, 8, ">I", 0x1000), r"out of order", 8),
    ("relocations past the end", lambda d: patched(d, 32, ">H", 500), r"past the end", 32),
    ("relocation type 2", lambda d: patched(d, 0x1AA, "<I", 2 << 30 | 4), r"type 2", 0x1AA),
    ("relocation out of D-space", lambda d: patched(d, 0x1AA, "<I", 0x4C), r"out of D-space",
     0x1AA),
    ("import name outside I-space", lambda d: patched(d, 0x192, "<I", 0x1000), r"import 0",
     0x192),
    ("import table outside the data", lambda d: patched(d, 28, ">I", 0x1A8), r"imports", 28),
]


@pytest.mark.parametrize("what,corrupt,message,offset", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_one_format_error_naming_the_offset(what, corrupt, message, offset):
    data = corrupt(sample("v1/hello"))
    with pytest.raises(FormatError, match=message) as error:
        read_module(data, format="nxflat")
    assert error.value.offset == offset


def test_a_v2_loader_refuses_a_module_without_its_marker():
    with pytest.raises(FormatError, match="without the __nxflat_abi_v2 import"):
        read_module(SAMPLES / "v1/hello.nxf", abi="v2")
    with pytest.raises(FormatError, match="built for ABI v2"):
        read_module(SAMPLES / "v2/hello.nxf", abi="v1")
    assert read_module(SAMPLES / "v2/hello.nxf", abi="v2").startup.base_register == "r9"


def test_random_corruption_is_a_format_error_or_a_module():
    """A small fuzzer of its own, needing no toolchain (scripts/fuzz.py's nxflat format goes
    further: tests/test_fuzz.py): bytes of the header, the import table and the relocations
    flipped at random; reading either works or raises one FormatError, never another
    exception."""
    rng = random.Random(11)
    for name in NAMES:
        data = sample(name)
        h, _ = nxflat.parse(data)
        hot = list(range(36)) + list(range(h.importsymbols, h.importsymbols + 16)) + \
            list(range(h.relocstart, len(data)))
        for _ in range(300):
            corrupt = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                corrupt[rng.choice(hot)] = rng.randrange(256)
            if rng.random() < 0.1:
                corrupt = corrupt[:rng.randrange(len(corrupt))]
            try:
                module = read_module(bytes(corrupt), format="nxflat")
                list(nxflat.dump(bytes(corrupt), "fuzz", disasm=True))
                nxflat.write_module(module)
            except FormatError:
                pass
            except LinkError as e:  # pragma: no cover - the failure names the input
                pytest.fail(f"{type(e).__name__} instead of a FormatError: {e}")
