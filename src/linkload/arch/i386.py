"""i386 (32-bit x86, System V psABI and the PE/COFF images of mingw-w64): relocation kinds, the
branch veneer, and what an emulator needs to know about the CPU in flat protected mode.

The address space is 32 bits wide and a ``call``/``jmp rel32`` reaches all of it: a 32-bit
field cannot overflow, it wraps as the CPU's arithmetic does, which is why the word fields
here check nothing (as BFD's ``complain_overflow_bitfield`` on a field the width of the
address space checks nothing). Like x86-64, a PC-relative field is measured from its own
end: a call's addend is -4 and ``branch_bias`` is 4.

Besides the ELF kinds, three kinds numbered above the ELF range stand for the PE base
relocations that have no ELF counterpart (``IMAGE_REL_BASED_HIGH``, ``LOW`` and ``HIGHADJ``:
16-bit halves of an address), so that a PE image's fixups are re-encoded by the same field
writer as everything else. ``HIGHLOW`` is ``R_386_32``.

The emulated CPU (unicorn ``UC_MODE_32``) starts in protected mode with flat segments. Calls
follow cdecl: every argument on the stack, the result in ``eax``; a ``call`` pushes its return
address, so :class:`~linkload.arch.base.Emulation` declares no link register.

Paging (:data:`PAGING`, the locator's ``Locate PageTable``) is 32-bit paging with 4 KiB pages
(Intel SDM vol. 3, "32-Bit Paging"): ``CR3`` holds the page directory's physical address; a
linear address's bits 31:22 index the directory's 1024 entries (each maps a 4 MiB area through
a page table), bits 21:12 the page table's 1024 entries, bits 11:0 the byte in the page. An
entry (PDE or PTE) holds a 4 KiB-aligned physical address in bits 31:12 and its flags below:
bit 0 present, 1 writable, 2 user, 5 accessed, 6 dirty (PTE), 7 page size (PDE: 0, a page
table follows). A page is writable only where both its PDE and its PTE say so, and open to
user code (CPL 3) only where both say so; the directory entries written here allow both, so
that the page table entries alone decide. ``CR0.PG`` (bit 31) turns paging on; ``CR0.WP``
(bit 16) makes read-only pages read-only for the supervisor too (without it, CPL 0 code, as
linkload runs programs, could write any present page). A page fault is exception 14, with the
faulting linear address in ``CR2``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from ..columns import distinct
from .base import Arch, Check, Disassembly, Emulation, Expr, Field, Kind, PageAccess, Paging, Veneer

# A 32-bit field on a 32-bit CPU: any value wraps to a valid address or displacement.
WORD32 = Field(4, 0xFFFF_FFFF, 32, Check.NONE)
BITFIELD16 = Field(2, 0xFFFF, 16, Check.BITFIELD)
SIGNED16 = Field(2, 0xFFFF, 16, Check.SIGNED)
BITFIELD8 = Field(1, 0xFF, 8, Check.BITFIELD)
SIGNED8 = Field(1, 0xFF, 8, Check.SIGNED)
# The halves of an address, as PE base relocations patch them: no range check (a half of
# any address is a valid half); HIGHADJ rounds like PowerPC's @ha, since its low half is
# added as a signed number.
HIGH16 = Field(2, 0xFFFF, 16, Check.NONE, shift=16)
LOW16 = Field(2, 0xFFFF, 16, Check.NONE)
HIGH16_ADJUSTED = Field(2, 0xFFFF, 16, Check.NONE, shift=16, round_ha=True)

R_386_NONE, R_386_32, R_386_PC32, R_386_PLT32, R_386_RELATIVE = 0, 1, 2, 4, 8
# PE base relocations without an ELF kind (numbered past every ELF kind).
R_386_PE_HIGH, R_386_PE_LOW, R_386_PE_HIGHADJ = 0x100, 0x101, 0x102

KINDS: dict[int, Kind] = {
    R_386_NONE: Kind("R_386_NONE", Expr.NONE, None),
    R_386_32: Kind("R_386_32", Expr.ABS, WORD32),
    R_386_PC32: Kind("R_386_PC32", Expr.PCREL, WORD32),
    3: Kind("R_386_GOT32", Expr.GOT_SLOT, WORD32),
    R_386_PLT32: Kind("R_386_PLT32", Expr.BRANCH, WORD32),
    9: Kind("R_386_GOTOFF", Expr.GOT_OFF, WORD32),
    10: Kind("R_386_GOTPC", Expr.GOT_PC, WORD32),
    20: Kind("R_386_16", Expr.ABS, BITFIELD16),
    21: Kind("R_386_PC16", Expr.PCREL, SIGNED16),
    22: Kind("R_386_8", Expr.ABS, BITFIELD8),
    23: Kind("R_386_PC8", Expr.PCREL, SIGNED8),
    38: Kind("R_386_SIZE32", Expr.SIZE, WORD32),
    43: Kind("R_386_GOT32X", Expr.GOT_SLOT, WORD32),
    R_386_PE_HIGH: Kind("IMAGE_REL_BASED_HIGH", Expr.ABS, HIGH16),
    R_386_PE_LOW: Kind("IMAGE_REL_BASED_LOW", Expr.ABS, LOW16),
    R_386_PE_HIGHADJ: Kind("IMAGE_REL_BASED_HIGHADJ", Expr.ABS, HIGH16_ADJUSTED),
}

_TLS = "thread-local storage is not supported; use a global variable or a thread-specific key"
_DYNAMIC = "a dynamic relocation, which does not belong in an object file"
UNSUPPORTED = {
    5: f"R_386_COPY: {_DYNAMIC}",
    6: f"R_386_GLOB_DAT: {_DYNAMIC}",
    7: f"R_386_JMP_SLOT: {_DYNAMIC}",
    R_386_RELATIVE: f"R_386_RELATIVE: {_DYNAMIC}",
    **{k: f"{name}: {_TLS}" for k, name in (
        (14, "R_386_TLS_TPOFF"), (15, "R_386_TLS_IE"), (16, "R_386_TLS_GOTIE"),
        (17, "R_386_TLS_LE"), (18, "R_386_TLS_GD"), (19, "R_386_TLS_LDM"),
        (24, "R_386_TLS_GD_32"), (25, "R_386_TLS_GD_PUSH"), (26, "R_386_TLS_GD_CALL"),
        (27, "R_386_TLS_GD_POP"), (28, "R_386_TLS_LDM_32"), (29, "R_386_TLS_LDM_PUSH"),
        (30, "R_386_TLS_LDM_CALL"), (31, "R_386_TLS_LDM_POP"), (32, "R_386_TLS_LDO_32"),
        (33, "R_386_TLS_IE_32"), (34, "R_386_TLS_LE_32"), (35, "R_386_TLS_DTPMOD32"),
        (36, "R_386_TLS_DTPOFF32"), (37, "R_386_TLS_TPOFF32"), (39, "R_386_TLS_GOTDESC"),
        (40, "R_386_TLS_DESC_CALL"), (41, "R_386_TLS_DESC"))},
    42: "R_386_IRELATIVE: indirect functions (ifunc) are not supported",
}

VENEER_SIZE = 8


def veneer(address: int, target: int) -> bytes:
    """``jmp rel32``: on a 32-bit CPU it reaches anywhere (the displacement wraps)."""
    return b"\xe9" + struct.pack("<I", (target - (address + 5)) & 0xFFFF_FFFF) + b"\xcc" * 3


def unicorn_register(name: str) -> str:
    """``"eax"`` -> ``"UC_X86_REG_EAX"``; ``"pc"`` and ``"sp"`` name ``eip`` and ``esp``."""
    name = {"pc": "eip", "sp": "esp"}.get(name.lower(), name.lower())
    return f"UC_X86_REG_{name.upper()}"


MiB = 1 << 20
UD2 = b"\x0f\x0b"  # an undefined instruction: always faults

EMULATION = Emulation(
    uc_arch="UC_ARCH_X86",
    uc_mode=("UC_MODE_32",),
    uc_cpu=None,
    uc_constants="unicorn.x86_const",
    register=unicorn_register,
    arguments=(),  # cdecl: every argument on the stack
    result="eax",
    link_register=None,  # a call pushes its return address
    stack_pointer="esp",
    stack_alignment=16,  # what gcc's i386 psABI code assumes at a call
    linkage_area=0,
    stack_arguments=4,  # above the return address
    back_chain=False,
    wide_argument=(),  # a 64-bit argument takes two stack words, low word first
    trap=UD2,
    instruction_size=len(UD2),
    initial_registers={},
    static_registers={},
    # Low memory stays unmapped (a null pointer faults); mingw's images sit at 0x400000.
    default_memory=((0x0010_0000, 63 * MiB, "RAM"),),
    cache_line=0,  # x86 keeps its caches coherent
    program_counter="eip",
)

# -- paging (see the module docstring) -----------------------------------------------------------
PAGE_SIZE = 4096
AREA_SIZE = 1 << 22  # what one page table maps: 1024 pages
ENTRIES = 1024
PRESENT, WRITABLE, USER, ACCESSED, DIRTY = 0x01, 0x02, 0x04, 0x20, 0x40
ADDRESS = 0xFFFF_F000  # an entry's physical address
CR0_PG, CR0_WP = 1 << 31, 1 << 16
PAGE_FAULT = 14


def directory_entry(table: int) -> int:
    """The PDE of the page table at ``table``: present, writable and open to user code (the
    PTEs decide), accessed already (the CPU need not write it back: the tables may be in
    ROM)."""
    return (table & ADDRESS) | PRESENT | WRITABLE | USER | ACCESSED


def page_entries(physical: np.ndarray, access: np.ndarray) -> np.ndarray:
    """The PTEs (uint32) of pages at ``physical`` with ``access`` (PageAccess values): 0 for a
    page with no access (not present); accessed and dirty set already, so that the CPU never
    writes a table entry (the tables may be in ROM)."""
    access = np.asarray(access, np.int64)
    flags = np.where(access & PageAccess.WRITE, WRITABLE | DIRTY, 0) \
        | np.where(access & PageAccess.USER, USER, 0) | PRESENT | ACCESSED
    entries = (np.asarray(physical, np.int64) & ADDRESS) | flags
    return np.where(access == PageAccess.NONE, 0, entries).astype(np.uint32)


def page_tables(base: int, virtual: np.ndarray, physical: np.ndarray, access: np.ndarray) -> bytes:
    """The page directory at ``base`` and, after it, one page table per 4 MiB area used (in
    the order of their areas), mapping page ``virtual[i]`` to ``physical[i]``."""
    virtual = np.asarray(virtual, np.int64)
    areas = distinct(virtual >> 22)
    tables = np.zeros((1 + len(areas), ENTRIES), np.uint32)
    for k, area in enumerate(areas.tolist()):
        tables[0, area] = directory_entry(base + PAGE_SIZE * (1 + k))
    which = 1 + np.searchsorted(areas, virtual >> 22)
    tables[which, (virtual >> 12) & (ENTRIES - 1)] = page_entries(physical, access)
    return tables.astype("<u4").tobytes()


def walk(read: Callable[[int], int], root: int, virtual: int) -> tuple[int, PageAccess] | None:
    """What ``virtual`` translates to through the page directory at ``root``: (physical
    address, access), or None where its PDE or PTE is not present."""
    pde = read((root & ADDRESS) + 4 * (virtual >> 22 & (ENTRIES - 1)))
    if not pde & PRESENT:
        return None
    pte = read((pde & ADDRESS) + 4 * (virtual >> 12 & (ENTRIES - 1)))
    if not pte & PRESENT:
        return None
    access = PageAccess.READ
    if pde & pte & WRITABLE:
        access |= PageAccess.WRITE
    if pde & pte & USER:
        access |= PageAccess.USER
    return (pte & ADDRESS) | (virtual & (PAGE_SIZE - 1)), access


PAGING = Paging(
    page_size=PAGE_SIZE,
    area_size=AREA_SIZE,
    table_size=PAGE_SIZE,
    entry_size=4,
    tables=page_tables,
    walk=walk,
    root_register="cr3",
    enable=(("cr0", CR0_PG | CR0_WP),),
    fault_interrupt=PAGE_FAULT,
    fault_address="cr2",
)

ARCH = Arch(
    name="i386",
    bits=32,
    byteorder="<",
    kinds=KINDS,
    unsupported=UNSUPPORTED,
    pcrel_reach=1 << 32,
    branch_reach=1 << 32,
    veneer=Veneer(VENEER_SIZE, veneer),
    got_entry_size=4,
    pointer_kind=R_386_32,
    branch_bias=4,
    code_alignment=16,
    emulation=EMULATION,
    disassembly=Disassembly("CS_ARCH_X86", ("CS_MODE_32",)),
    paging=PAGING,
)
