"""Running a located program in an emulated target (``linkload locate --run``).

The target has the configured regions and nothing else (each rounded out to whole 4 KiB
pages, as unicorn maps memory) plus a page range of linkload's own outside them for the
return address; RAM starts out filled with a pattern (RAM holds garbage at power-up, so a
missing zero fill shows), unused ROM reads as erased flash (0xff) and cannot be written. The
load image is stored, then the boot table is followed as start-up code would follow it: read
from the target's memory where ``Locate Header`` put it, its copies made (inflated where
compressed), its zero fills done; then the entry point is called on the located stack. A CPU
that starts from a vector table (a Cortex-M: ``Emulation.vector_table``) takes its initial
stack pointer from the table's word 0 and its reset handler from word 1, the table being at
the start of the first ROM region, or at ``vectors``; the boot table's copies and zero fills
are made all the same. Bytes the program stores to the console port (``console``, an address
in a configured region) are collected as its output. A program's result is what its entry
point (or reset handler) returns.

A program with page tables (``Locate PageTable``) runs with paging on: the boot table's first
entry turns it on (:meth:`EmulatedSpace.enable_paging`: the CPU's root register loaded with
the tables' address, paging enabled, i386's ``CR3`` and ``CR0.PG``/``WP``), and the entries
after it write at run addresses, virtual ones through the tables. Virtual regions are not
memory of the target: only the pages behind them are. linkload's own pages then lie in an
area of the page tables no region touches, which the emulator maps for itself through an
unused root entry (a debug monitor's trick: the program's tables are otherwise left as they
are). A page fault (a write to a read-only page, an access to a page not present) stops the
run with an error naming the address.

:func:`run_in_place` runs a program where it was linked (its sections loaded as they are, its
bss zeroed): the output a located program must reproduce.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..errors import LinkError, UnsupportedError
from ..model import Module
from ..space import Protection
from ..space.emulated import EmulatedSpace
from .boot import BootTable, Op
from .config import MemType
from .locator import Located

PAGE = 4096
RAM_PATTERN = 0xA5  # what RAM holds before the boot table's zero fills
ERASED = 0xFF  # what unused flash reads as
RUNTIME_SIZE = 64 << 10  # linkload's own stack and return traps


@dataclass(frozen=True)
class RunResult:
    """The entry point's result and the bytes written to the console port."""

    result: int
    output: bytes


def run(located: Located, *, console: int | None = None, vectors: int | None = None,
        timeout: float = 10.0, max_instructions: int = 100_000_000) -> RunResult:
    """Boot ``located`` in an emulated target (see the module docstring)."""
    program = located.program
    cpu = program.arch.emulation
    if cpu is None:
        raise UnsupportedError(f"no emulation of the {program.arch.name} CPU yet")
    if located.header is None:
        raise LinkError("running a located program follows its boot table: add a Locate Header")
    if vectors is not None and not cpu.vector_table:
        raise LinkError(f"the {program.arch.name} CPU does not start from a vector table: it is "
                        "entered at the program's entry point")
    ranges = [(r.address, r.end, r.memtype) for r in located.regions if r.memtype is not MemType.VIRTUAL]
    # (with paging, linkload's own pages need an area of the page tables to themselves)
    areas = program.arch.paging.area_size if located.paging is not None else PAGE
    space = _target(program.arch.name, [(lo, hi) for lo, hi, _ in ranges], timeout, max_instructions,
                    avoid=[(r.address, r.end) for r in located.regions], granule=areas)
    for lo, hi, memtype in ranges:
        if memtype is MemType.ROM:
            space.write(lo, bytes([ERASED]) * (hi - lo))
    for e in located.entities:  # the RAM the program uses holds garbage until it is set
        if e.placed and e.size and located.region(e.region).memtype is MemType.RAM:
            space.write(e.address, bytes([RAM_PATTERN]) * e.size)
    for address, data in located.loaded_chunks():
        space.write(address, data)
    reset = _vectors(space, located, vectors) if cpu.vector_table else None  # (read at reset)
    boot = BootTable.unpack(space.read(located.header.address, located.header.size),
                            f"boot table at {located.header.address:#x}")
    _follow(space, boot)
    for lo, hi, memtype in ranges:
        space.flush(lo, hi - lo)  # (what start-up code does before it jumps to copied code)
        if memtype is MemType.ROM:
            space.protect(lo, hi - lo, Protection.READ_EXECUTE)
    entry, stack_top = reset or (boot.entry, boot.stack_top)
    if not stack_top:
        raise LinkError("the boot table has no stack: add a Locate Stack")
    if console is not None and not any(lo <= console < hi for lo, hi, _ in ranges):
        raise LinkError(f"the console port {console:#x} lies in no configured region (add a "
                        "Device region for it)")
    output = _console(space, console)
    result = space.start(entry, stack=(_stack_bottom(space, located, stack_top), stack_top))
    return RunResult(result, bytes(output))


def _stack_bottom(space: EmulatedSpace, located: Located, top: int) -> int:
    """The lowest address the program's stack may reach: the start of the memory its top
    lies in (a virtual region's, where the stack runs at virtual addresses)."""
    memory = space.region_of(top - 1)
    if memory is not None:
        return memory.base
    region = next((r for r in located.regions if r.address < top <= r.end), None)
    if region is None:
        raise LinkError(f"the stack's top {top:#x} lies in no configured region")
    return region.address


def _vectors(space: EmulatedSpace, located: Located, address: int | None) -> tuple[int, int]:
    """(reset handler, initial stack pointer) from the vector table at ``address`` (None: at
    the start of the first ROM region), each checked against the configured regions."""
    arch = located.program.arch
    if address is None:
        rom = next((r for r in located.regions if r.memtype is MemType.ROM), None)
        if rom is None:
            raise LinkError("no ROM region to boot from: give the vector table's address "
                            "(--vectors ADDRESS)")
        address = rom.address
    width = arch.word_size
    where = f"the vector table at {address:#x}"
    stored = [r for r in located.regions if r.memtype is not MemType.DEVICE]
    if not any(r.address <= address and address + 2 * width <= r.end for r in stored):
        raise LinkError(f"{where} lies in no configured ROM or RAM region")
    order = "little" if arch.byteorder == "<" else "big"
    sp, pc = (int.from_bytes(space.read(address + i * width, width), order) for i in (0, 1))
    if not any(r.address < sp <= r.end for r in stored if r.memtype is MemType.RAM):
        raise LinkError(f"{where} gives {sp:#x} for the initial stack pointer (word 0), which is "
                        "not in a RAM region: is the vector table there? (--vectors ADDRESS)")
    handler = pc & ~arch.code_tag
    if pc & arch.code_tag != arch.code_tag:
        why = f"the bit {arch.code_tag:#x} every address of {arch.name} code carries is clear"
    elif not any(r.address <= handler < r.end for r in stored):
        why = "it lies in no configured ROM or RAM region"
    else:
        return handler, sp
    raise LinkError(f"{where} gives {pc:#x} for the reset handler (word 1), and {why}: is the "
                    "vector table there? (--vectors ADDRESS)")


def run_in_place(module: Module, *, console: int | None = None, timeout: float = 10.0,
                 max_instructions: int = 100_000_000) -> RunResult:
    """Run a linked program where it was linked: each segment loaded at its address (bss
    zeroed), the entry point called on linkload's own stack."""
    ranges = [(seg.address, seg.address + seg.size) for seg in module.segments]
    if console is not None:
        ranges.append((console, console + 1))
    space = _target(module.machine, ranges, timeout, max_instructions)
    space.load_static(module)
    output = _console(space, console)
    result = space.call(module.entry)
    return RunResult(result, bytes(output))


def _target(arch_name: str, ranges: list[tuple[int, int]], timeout: float,
            max_instructions: int, avoid: list[tuple[int, int]] = (),
            granule: int = PAGE) -> EmulatedSpace:
    """An emulated CPU with the pages of ``ranges`` mapped, and linkload's own runtime region
    outside them, and outside the ``granule``-sized blocks that ``ranges`` and ``avoid``
    touch (with paging, the areas of the page tables: a page more then, for the emulator's own
    page table)."""
    pages = _pages(ranges)
    size = RUNTIME_SIZE + (2 if granule == PAGE else 3) * PAGE
    runtime = _free_pages(pages + list(avoid), size, granule)
    memory = [(lo, hi - lo, f"memory {lo:#x}") for lo, hi in pages]
    memory.append((runtime, size, "linkload"))
    return EmulatedSpace(arch_name, memory=memory, runtime_region="linkload",
                         stack_size=RUNTIME_SIZE, timeout=timeout,
                         max_instructions=max_instructions, enforce_protection=True)


def _pages(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges rounded out to whole pages, merged."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted((lo // PAGE * PAGE, -(-hi // PAGE) * PAGE) for lo, hi in ranges if hi > lo):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _free_pages(pages: list[tuple[int, int]], size: int, granule: int = PAGE) -> int:
    """A page-aligned place of ``size`` bytes in ``granule``-sized blocks that none of
    ``pages`` touches, in the low 2 GiB if it can."""
    taken = [(lo // granule * granule, -(-hi // granule) * granule) for lo, hi in pages]
    candidates = [0x7FF0_0000, 0x3FF0_0000, 0x0FF0_0000, PAGE] + [hi for _, hi in taken]
    for start in candidates:
        lo, hi = start // granule * granule, -(-(start + size) // granule) * granule
        if all(hi <= a or b <= lo for a, b in taken) and start + size < 1 << 32:
            return start
    raise LinkError("no room in the address space for the emulator's own pages")


def _follow(space: EmulatedSpace, boot: BootTable) -> None:
    """Do what the boot table asks, in order, as start-up code would: sources are physical
    memory, destinations run addresses (virtual ones once paging is on)."""
    for i, e in enumerate(boot.entries):
        if e.op is Op.PAGING:
            space.enable_paging(e.destination)
        elif e.op is Op.COPY:
            space.write_virtual(e.destination, space.read(e.source, e.size))
        elif e.op is Op.ZERO:
            space.write_virtual(e.destination, bytes(e.size))
        elif e.op is Op.INFLATE:
            region = space.region_of(e.source)
            if region is None:
                raise LinkError(f"boot table entry {i}: compressed bytes at {e.source:#x} are not "
                                "memory of the target")
            stream = zlib.decompressobj()
            try:
                data = stream.decompress(space.read(e.source, region.end - e.source), e.size + 1)
            except zlib.error as error:
                raise LinkError(f"boot table entry {i}: the copy at {e.source:#x} does not "
                                f"inflate: {error}") from None
            if len(data) != e.size or not stream.eof:
                raise LinkError(f"boot table entry {i}: the copy at {e.source:#x} inflates to "
                                f"{len(data):#x} bytes, not {e.size:#x}")
            space.write_virtual(e.destination, data)


def _console(space: EmulatedSpace, console: int | None) -> bytearray:
    """The bytes stored to the console port, as they come."""
    output = bytearray()
    if console is not None:
        order = "little" if space.arch.byteorder == "<" else "big"

        def store(_address: int, width: int, value: int) -> None:
            output.extend(value.to_bytes(width, order)[:1])  # the byte at the port's address

        space.watch_stores(console, 1, store)
    return output
