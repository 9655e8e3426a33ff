"""Loading and running NXFLAT programs on an emulated Cortex-M3 (binfmt: ``Linker.load``,
``exec``, ``unload``), with firmware functions in Python (host functions) and in real code
(a firmware ELF with its export table, made by ``linkload mksymtab``, compiled in).

Every program built from C runs as the same C compiled without PIC and linked into the
firmware as a static program; the samples of the real NuttX tools run with their documented
results; two instances share one I-space, executed in place and never written; callbacks from
firmware code that uses r9 and r10 for itself work through the per-instance trampolines.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import C_DIR
from linkload import FormatError, Linker, ModuleStateError, UndefinedSymbolError
from linkload.formats import FORMATS
from linkload.formats import nxflat as nxflat_format
from linkload.space import Protection
from linkload.space.emulated import EmulatedSpace, EmulationError
from linkload.tools import nxflat
from linkload.tools.mksymtab import mksymtab

try:
    import unicorn  # noqa: F401
except ImportError:  # pragma: no cover - skipped locally, a failure under CI
    pytestmark = pytest.mark.skipif(not os.environ.get("CI"), reason="unicorn is not installed")

SAMPLES = Path(__file__).parent / "nxflat"
FIRMWARE_DIR = C_DIR / "arm" / "nx"
EXPORTS = FIRMWARE_DIR / "exports.csv"
CPU = ("-mcpu=cortex-m3", "-mthumb")
MODULE_FLAGS = ("-Os", "-fno-common", "-fomit-frame-pointer", "-mfloat-abi=soft")
FIRMWARE_LDFLAGS = (*CPU, "-static", "-nostdlib", "-e", "_start",
                    "-Wl,-Ttext=0x08000000,-Tdata=0x20000000,--build-id=none,--no-warn-rwx-segments")
PROGRAMS = {"hello": SAMPLES / "hello.c", "fnptr": SAMPLES / "fnptr.c",
            "callbacks": FIRMWARE_DIR / "callbacks.c"}

# What the samples do when run (tests/nxflat/README.md).
DOCUMENTED = {
    "hello": (43, [("module a: hello", 13), ("HELLO, NXFLAT", 49), ("HELLO, NXFLAT", 57)]),
    "fnptr": (42, [("add", 102), ("sub", 99), ("mul", 396), ("sink", 300), ("const_ops", 342)]),
}


@pytest.fixture(scope="module")
def arm_tc(toolchain):
    return toolchain("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ld",
                     common_flags=CPU)


def pic_flags(abi: str) -> tuple[str, ...]:
    return (*MODULE_FLAGS, "-fpic", "-msingle-pic-base",
            f"-mpic-register={nxflat_format.PIC_REGISTERS[abi]}", "-mno-pic-data-is-text-relative")


def firmware(tc, program: str | None = None):
    """The firmware ELF: firmware.c and its export table; with ``program``, that program's
    C compiled without PIC and linked in too (the static reference)."""
    symtab = tc.workdir / "symtab.c"
    if not symtab.exists():
        mksymtab(EXPORTS, symtab)
    objects = [tc.compile(FIRMWARE_DIR / "firmware.c", ["-O2"]),
               tc.compile(symtab, ["-O2", f"-I{FIRMWARE_DIR / 'include'}", f"-I{FIRMWARE_DIR}"])]
    if program is not None:
        objects.append(tc.compile(PROGRAMS[program], [*MODULE_FLAGS, "-fno-pic"]))
    return tc.executable(objects, ldflags=FIRMWARE_LDFLAGS, libs=["-lgcc"],
                         stem=f"firmware-{program or 'alone'}")


def program(tc, name: str, abi: str = "v1", **options) -> bytes:
    """``linkload nxflat`` of one of the programs, for ``abi``."""
    obj = tc.compile(PROGRAMS[name], pic_flags(abi))
    return nxflat.build([obj], stack_size=2048, abi=abi, exports=EXPORTS, **options).data


class Board:
    """A Cortex-M3 running the firmware, report() in Python, programs loaded from files."""

    def __init__(self, static, tmp_path: Path, **options) -> None:
        self.ld = Linker.emulated("cortex-m3", static=static, exports=EXPORTS, **options)
        self.space: EmulatedSpace = self.ld.space
        self.reports: list[tuple[str, int]] = []
        self.ld.host_function("report", self.report)
        self.tmp_path = tmp_path

    def report(self, emu: EmulatedSpace, message: int, value: int) -> None:
        self.reports.append((emu.read_string(message), value - (1 << 32) if value >> 31 else value))

    def load(self, data: bytes, name: str = "prog", **options):
        path = self.tmp_path / f"{name}.nxf"
        path.write_bytes(data)
        return self.ld.load(path, **options)

    def run(self, module, *args: str) -> tuple[int, list[tuple[str, int]]]:
        self.reports.clear()
        return self.ld.exec(module, list(args) or ["prog"]), list(self.reports)

    def run_static_main(self, *args: str) -> tuple[int, list[tuple[str, int]]]:
        """``main`` of the static reference, called with the same arguments."""
        argv, block, size = self.ld._argv(list(args) or ["prog"], None)
        self.reports.clear()
        try:
            return self.space.call(self.space.lookup("main"), len(args) or 1, argv), list(self.reports)
        finally:
            self.space.release(block, size)


def host_board() -> tuple[Linker, list]:
    """No firmware ELF: its functions are Python host functions."""
    ld = Linker.emulated("cortex-m3")
    reports: list[tuple[str, int]] = []
    ld.host_function("report", lambda emu, m, v: reports.append(
        (emu.read_string(m), v - (1 << 32) if v >> 31 else v)))
    ld.host_function("malloc", lambda emu, n: emu.reserve(n, 8))
    ld.host_function("strlen", lambda emu, s: len(emu.read_string(s).encode()))
    ld.space.define(nxflat_format.ABI_V2_MARKER, ld.space.reserve(4, 4))
    return ld, reports


# -- the samples of the real tools -------------------------------------------------------------------
@pytest.mark.parametrize("abi", ["v1", "v2"])
@pytest.mark.parametrize("name", ["hello", "fnptr"])
def test_the_samples_run_with_their_documented_results(abi, name):
    ld, reports = host_board()
    module = ld.load(SAMPLES / abi / f"{name}.nxf")
    assert ld.exec(module, ["hello"]) == DOCUMENTED[name][0]
    assert reports == DOCUMENTED[name][1]


def test_the_samples_run_on_the_firmware_too(arm_tc, tmp_path):
    board = Board(firmware(arm_tc), tmp_path)
    for abi in ("v1", "v2"):
        module = board.ld.load(SAMPLES / abi / "hello.nxf")
        assert board.run(module, "hello") == DOCUMENTED["hello"]


# -- programs built from C, against the same C without PIC -----------------------------------------
@pytest.mark.parametrize("abi", ["v1", "v2"])
@pytest.mark.parametrize("name", ["hello", "fnptr", "callbacks"])
def test_programs_run_as_the_same_c_linked_into_the_firmware(arm_tc, tmp_path, abi, name):
    reference = Board(firmware(arm_tc, name), tmp_path / "static").run_static_main("prog")
    board = Board(firmware(arm_tc), tmp_path)
    module = board.load(program(arm_tc, name, abi), name)
    assert board.run(module, "prog") == reference
    if name in DOCUMENTED:
        assert reference[0] == DOCUMENTED[name][0]


def test_callbacks_from_firmware_that_uses_the_pic_registers(arm_tc, tmp_path):
    board = Board(firmware(arm_tc), tmp_path)
    for abi in ("v1", "v2"):
        module = board.load(program(arm_tc, "callbacks", abi), f"callbacks-{abi}")
        status, reports = board.run(module, "cb")
        assert status == 13 * 10 + 9  # triple_plus(1) = 4, triple_plus(4) = 13; largest 9
        assert reports[:3] == [("call_twice", 13), ("largest", 9), ("smallest", -2)]
        assert reports[3][0] == "cb" and reports[3][1] > 2  # calls: 2 + the comparisons
        # one trampoline per function whose address the program keeps (triple_plus, descending)
        assert len(board.ld._callbacks[module.uid]) == 2


@pytest.mark.parametrize("abi", ["v1", "v2"])
def test_without_the_callback_table_a_callback_faults_as_on_nuttx(arm_tc, tmp_path, abi):
    """NXFLAT's documented limit: the firmware calls the program's function with its own r9
    and r10, and the first access to the program's data goes astray."""
    board = Board(firmware(arm_tc), tmp_path)
    module = board.load(program(arm_tc, "callbacks", abi, callbacks=False), "plain")
    with pytest.raises(EmulationError, match="read of 0x"):
        board.run(module, "cb")


# -- I-space shared, D-space per instance --------------------------------------------------------------
def test_two_instances_share_one_ispace_executed_in_place(arm_tc, tmp_path):
    board = Board(firmware(arm_tc), tmp_path, enforce_protection=True)
    data = program(arm_tc, "callbacks")
    first, second = board.load(data, "a"), board.load(data, "a")
    (shared,) = board.ld.shared.values()
    assert shared.users == {first.uid, second.uid}
    flash, sram = board.space.region("FLASH"), board.space.region("SRAM")
    assert flash.base <= shared.address < flash.end  # executed in place from flash
    assert sram.base <= first.base < sram.end and sram.base <= second.base < sram.end
    assert first.base != second.base
    assert board.space.protection(shared.address) is Protection.READ_EXECUTE
    image = board.space.read(shared.address, len(data))
    assert board.run(first, "a")[0] == 139
    assert board.run(second, "b")[0] == 139  # its own data: scale is still 3
    assert board.run(first, "a")[0] == 219  # the first instance's scale is 4 now: 21*10 + 9
    assert board.space.read(shared.address, len(data)) == image  # never written
    board.ld.unload(first)
    assert board.ld.shared and board.run(second, "b")[0] == 219
    board.ld.unload(second)
    assert not board.ld.shared
    live = board.space.reservations()
    assert not {shared.address, first.base, second.base} & set(live)  # all given back


def test_a_reloaded_program_is_a_new_instance(arm_tc, tmp_path):
    board = Board(firmware(arm_tc), tmp_path)
    data = program(arm_tc, "hello", "v2")
    module = board.load(data, "hello")
    assert board.run(module, "x")[0] == 43
    assert board.run(module, "x")[0] == 73  # this instance's ncalls is 6 now: 6 * 10 + 13
    board.ld.unload(module)
    with pytest.raises(ModuleStateError):
        board.ld.exec(module)
    assert board.run(board.load(data, "hello"), "x")[0] == 43


# -- the loader's errors -------------------------------------------------------------------------------
def test_an_import_the_firmware_lacks_is_refused_before_anything_is_placed(arm_tc, tmp_path):
    board = Board(firmware(arm_tc), tmp_path)
    before = board.space.reservations()
    stray = arm_tc.compile_text("extern int nowhere(int);\nint main(int c, char **v) "
                                "{ return nowhere(c); }\n", "stray.c", pic_flags("v1"))
    data = nxflat.build([stray]).data
    with pytest.raises(UndefinedSymbolError, match="ENOENT") as error:
        board.load(data, "stray")
    assert error.value.symbol == "nowhere"
    assert board.space.reservations() == before and not board.ld.shared
    ld = Linker.emulated("cortex-m3")  # no export table: bound against what exists
    with pytest.raises(UndefinedSymbolError, match="nowhere") as error:
        ld.load(tmp_path / "stray.nxf")
    assert error.value.section == ".dspace" and error.value.kind == "R_ARM_ABS32"
    assert not ld.space.reservations()


def test_the_export_table_may_be_the_firmwares_elf_or_a_symbol_list(arm_tc, tmp_path):
    static = firmware(arm_tc)
    listing = tmp_path / "exports.txt"
    listing.write_text("08000000:report\n08000000:strlen\n")  # (the names are what count)
    data = program(arm_tc, "hello", "v1")
    for exports, loads in [(static, True), (listing, False), (["report", "malloc", "strlen"], True)]:
        ld = Linker.emulated("cortex-m3", static=static, exports=exports)
        ld.host_function("report", lambda emu, m, v: None)
        path = tmp_path / "hello.nxf"
        path.write_bytes(data)
        if loads:
            assert ld.exec(ld.load(path), ["x"]) == 43
        else:
            with pytest.raises(UndefinedSymbolError, match="'malloc'"):
                ld.load(path)


def test_bad_files_and_abis_are_refused(tmp_path):
    ld, _reports = host_board()
    bad = tmp_path / "bad.nxf"
    bad.write_bytes(b"NxFX" + (SAMPLES / "v1/hello.nxf").read_bytes()[4:])
    with pytest.raises(FormatError, match="bad magic"):
        ld.load(bad)
    with pytest.raises(FormatError, match="no registered binary format"):
        ld.load(b"\0" * 64)
    with pytest.raises(FormatError, match="without the __nxflat_abi_v2"):
        ld.load(SAMPLES / "v1/hello.nxf", abi="v2")
    assert ld.exec(ld.load(SAMPLES / "v2/hello.nxf", abi="v2"), ["hello"]) == 43


def test_load_recognises_objects_and_formats_can_be_unregistered(arm_tc):
    ld, _reports = host_board()
    obj = arm_tc.compile(C_DIR / "ppc" / "waiting.c", ["-O2"])
    module = ld.load(obj)
    with pytest.raises(ModuleStateError, match="not a program"):
        ld.exec(module)
    ld.unregister_binfmt("nxflat")
    with pytest.raises(FormatError, match="no registered binary format"):
        ld.load(SAMPLES / "v1/hello.nxf")
    ld.register_binfmt(next(f for f in FORMATS if f.name == "nxflat"))
    assert ld.exec(ld.load(SAMPLES / "v1/hello.nxf"), ["x"]) == 43
