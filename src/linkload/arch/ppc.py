"""32-bit big-endian PowerPC (Gekko/Broadway, the 750CL): relocation kinds, veneers,
trampolines, stubs, and what an emulator needs to know about the CPU.

The kinds are those of the System V PowerPC ABI that ``gcc -mcpu=750 -msdata=none -fno-pic``
and the assembler emit, and those of Nintendo's REL format (whose type numbers are the ELF
``R_PPC`` numbers). As in lld's ``ELF/Arch/PPC.cpp`` each is an expression and a field; unlike
the SDK loader, every field is checked for overflow. The encodings were checked against
``powerpc-linux-gnu-ld`` (see ``tests/test_emulated.py``, which links the same objects both
ways and compares the bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import LinkError
from .base import (
    Arch,
    CallStubs,
    Check,
    Disassembly,
    Emulation,
    Expr,
    Field,
    Kind,
    TrampolineCode,
    Veneer,
)

# -- fields ----------------------------------------------------------------------------------
# A word holding any 32-bit value (an address, or a negative number).
WORD = Field(4, 0xFFFF_FFFF, 32, Check.BITFIELD)
# A PC-relative word: the difference of two 32-bit addresses, which wraps modulo 2**32 on a
# 32-bit CPU, so any value in (-2**32, 2**32) is right and anything beyond is an error.
PCREL_WORD = Field(4, 0xFFFF_FFFF, 33, Check.SIGNED)
# The low, high and high-adjusted halves of a 32-bit value (``@l``, ``@h``, ``@ha``): any
# 32-bit value has them, so there is nothing to check beyond the value being 32-bit (@l).
# Their width is given as 32 bits, not 16, because the linker places modules with narrow
# absolute fields in low memory, and these fields are not narrow.
LOW16 = Field(2, 0xFFFF, 32, Check.BITFIELD)
HIGH16 = Field(2, 0xFFFF, 32, Check.NONE, shift=16)
HIGH_ADJUSTED16 = Field(2, 0xFFFF, 32, Check.NONE, shift=16, round_ha=True)
# A whole halfword: signed or unsigned 16-bit, as ld and lld check R_PPC_ADDR16.
HALF16 = Field(2, 0xFFFF, 16, Check.BITFIELD)
# The 16-bit signed PC-relative value of R_PPC_REL16 (addi-style immediates).
SIGNED16 = Field(2, 0xFFFF, 16, Check.SIGNED)
# b/bl/ba/bla: LI, a signed 26-bit byte displacement (or absolute address), a multiple of 4.
BRANCH24 = Field(4, 0x03FF_FFFC, 26, Check.SIGNED, align=4)
# bc/bca: BD, a signed 16-bit byte displacement (or absolute address), a multiple of 4.
BRANCH14 = Field(4, 0x0000_FFFC, 16, Check.SIGNED, align=4)

BRANCH_PREDICT_BIT = 0x0020_0000  # the "y" bit of BO


@dataclass(frozen=True)
class PredictedBranchField(Field):
    """BD of a conditional branch whose "y" bit says how the branch is predicted
    (``R_PPC_*14_BRTAKEN`` / ``_BRNTAKEN``).

    The 750 predicts a conditional branch taken when its displacement is negative (a loop)
    and not taken otherwise; y = 1 reverses that. So, as GNU ld does, y is set when the wanted
    prediction differs from the default one: ``y = taken XOR (target < place)``.

    ``encode`` sees only the field's value: for a PC-relative field that is ``target - place``
    itself. For an absolute field (``bca``) the target is the value as a 32-bit address, which
    lies below every place when it is in the low 32 KiB (value >= 0) and above every place
    when it is in the top 32 KiB (value < 0): exact unless the branch itself sits in the
    first or last 32 KiB of the address space.
    """

    taken: bool = True
    absolute: bool = False

    def encode(self, containers: np.ndarray | None, values: np.ndarray) -> np.ndarray:
        out = super().encode(containers, values)
        backward = values >= 0 if self.absolute else values < 0
        y = np.where(backward != self.taken, np.uint64(BRANCH_PREDICT_BIT), np.uint64(0))
        return (out & ~np.uint64(BRANCH_PREDICT_BIT)) | y


def _predicted(taken: bool, absolute: bool) -> PredictedBranchField:
    return PredictedBranchField(4, 0x0000_FFFC, 16, Check.SIGNED, align=4, taken=taken,
                                absolute=absolute)


# -- relocation kinds ------------------------------------------------------------------------
R_PPC_NONE, R_PPC_ADDR32, R_PPC_ADDR24, R_PPC_ADDR16 = 0, 1, 2, 3
R_PPC_ADDR16_LO, R_PPC_ADDR16_HI, R_PPC_ADDR16_HA = 4, 5, 6
R_PPC_ADDR14, R_PPC_ADDR14_BRTAKEN, R_PPC_ADDR14_BRNTAKEN = 7, 8, 9
R_PPC_REL24, R_PPC_REL14, R_PPC_REL14_BRTAKEN, R_PPC_REL14_BRNTAKEN = 10, 11, 12, 13
R_PPC_PLTREL24, R_PPC_LOCAL24PC, R_PPC_UADDR32, R_PPC_UADDR16, R_PPC_REL32 = 18, 23, 24, 25, 26
R_PPC_REL16, R_PPC_REL16_LO, R_PPC_REL16_HI, R_PPC_REL16_HA = 249, 250, 251, 252
R_PPC_GNU_VTINHERIT, R_PPC_GNU_VTENTRY = 253, 254

KINDS: dict[int, Kind] = {
    R_PPC_NONE: Kind("R_PPC_NONE", Expr.NONE, None),
    R_PPC_ADDR32: Kind("R_PPC_ADDR32", Expr.ABS, WORD),
    R_PPC_ADDR24: Kind("R_PPC_ADDR24", Expr.ABS, BRANCH24),
    R_PPC_ADDR16: Kind("R_PPC_ADDR16", Expr.ABS, HALF16),
    R_PPC_ADDR16_LO: Kind("R_PPC_ADDR16_LO", Expr.ABS, LOW16),
    R_PPC_ADDR16_HI: Kind("R_PPC_ADDR16_HI", Expr.ABS, HIGH16),
    R_PPC_ADDR16_HA: Kind("R_PPC_ADDR16_HA", Expr.ABS, HIGH_ADJUSTED16),
    R_PPC_ADDR14: Kind("R_PPC_ADDR14", Expr.ABS, BRANCH14),
    R_PPC_ADDR14_BRTAKEN: Kind("R_PPC_ADDR14_BRTAKEN", Expr.ABS, _predicted(True, True)),
    R_PPC_ADDR14_BRNTAKEN: Kind("R_PPC_ADDR14_BRNTAKEN", Expr.ABS, _predicted(False, True)),
    # Calls: a call out of reach goes through a veneer (as lld's thunks).
    R_PPC_REL24: Kind("R_PPC_REL24", Expr.BRANCH, BRANCH24),
    # Conditional branches cannot take a veneer (lld and ld give none either): out of reach
    # is an error.
    R_PPC_REL14: Kind("R_PPC_REL14", Expr.PCREL, BRANCH14),
    R_PPC_REL14_BRTAKEN: Kind("R_PPC_REL14_BRTAKEN", Expr.PCREL, _predicted(True, False)),
    R_PPC_REL14_BRNTAKEN: Kind("R_PPC_REL14_BRNTAKEN", Expr.PCREL, _predicted(False, False)),
    # `bl` to a local label (PIC code finding itself, calls into .text.unlikely).
    R_PPC_LOCAL24PC: Kind("R_PPC_LOCAL24PC", Expr.BRANCH, BRANCH24),
    # Unaligned data words (packed structures): the linker accesses fields byte-wise anyway.
    R_PPC_UADDR32: Kind("R_PPC_UADDR32", Expr.ABS, WORD),
    R_PPC_UADDR16: Kind("R_PPC_UADDR16", Expr.ABS, HALF16),
    R_PPC_REL32: Kind("R_PPC_REL32", Expr.PCREL, PCREL_WORD),  # .eh_frame
    # PC-relative halves: `addis rX,rX,sym-1b@ha` after `bcl 20,31,1f` (position-independent
    # code finding its data).
    R_PPC_REL16: Kind("R_PPC_REL16", Expr.PCREL, SIGNED16),
    R_PPC_REL16_LO: Kind("R_PPC_REL16_LO", Expr.PCREL, LOW16),
    R_PPC_REL16_HI: Kind("R_PPC_REL16_HI", Expr.PCREL, HIGH16),
    R_PPC_REL16_HA: Kind("R_PPC_REL16_HA", Expr.PCREL, HIGH_ADJUSTED16),
    # Markers for -fvtable-gc: they patch nothing.
    R_PPC_GNU_VTINHERIT: Kind("R_PPC_GNU_VTINHERIT", Expr.NONE, None),
    R_PPC_GNU_VTENTRY: Kind("R_PPC_GNU_VTENTRY", Expr.NONE, None),
}

_SDATA = "small-data addressing is not supported; compile with -msdata=none (and -G 0)"
_TLS = "thread-local storage is not supported; use a global variable"
_GOT = "GOT-relative addressing (-fpic) is not supported; compile with -fno-pic"
_DYNAMIC = "a dynamic relocation, which does not belong in an object file"
_LONGCALL = ("inline PLT call sequences are not supported; compile without -mlongcall "
             "(linkload routes calls out of reach through veneers itself)")
_EMBEDDED = "an embedded-ABI relocation that linkload does not support"

# (first number, names) of the runs of unsupported kinds, with why.
_UNSUPPORTED_RUNS: list[tuple[int, tuple[str, ...], str]] = [
    (14, ("GOT16", "GOT16_LO", "GOT16_HI", "GOT16_HA"), _GOT),
    # The 0x8000 in the addend of `bl foo@plt+32768` (-fPIC, -fPIE) names r30's place in
    # .got2 and must not reach the branch: the linker does not mask it yet.
    (18, ("PLTREL24",), "position-independent calls (bl foo@plt) are not supported; "
                        "compile with -fno-pic"),
    (19, ("COPY", "GLOB_DAT", "JMP_SLOT", "RELATIVE"), _DYNAMIC),
    (27, ("PLT32", "PLTREL32", "PLT16_LO", "PLT16_HI", "PLT16_HA"), _LONGCALL),
    (32, ("SDAREL16",), _SDATA),
    (33, ("SECTOFF", "SECTOFF_LO", "SECTOFF_HI", "SECTOFF_HA"),
     "section-relative offsets are not supported"),
    (37, ("ADDR30",), "R_PPC_ADDR30 is not supported"),
    (67, ("TLS", "DTPMOD32", "TPREL16", "TPREL16_LO", "TPREL16_HI", "TPREL16_HA", "TPREL32",
          "DTPREL16", "DTPREL16_LO", "DTPREL16_HI", "DTPREL16_HA", "DTPREL32",
          "GOT_TLSGD16", "GOT_TLSGD16_LO", "GOT_TLSGD16_HI", "GOT_TLSGD16_HA",
          "GOT_TLSLD16", "GOT_TLSLD16_LO", "GOT_TLSLD16_HI", "GOT_TLSLD16_HA",
          "GOT_TPREL16", "GOT_TPREL16_LO", "GOT_TPREL16_HI", "GOT_TPREL16_HA",
          "GOT_DTPREL16", "GOT_DTPREL16_LO", "GOT_DTPREL16_HI", "GOT_DTPREL16_HA",
          "TLSGD", "TLSLD"), _TLS),
    (101, ("EMB_NADDR32", "EMB_NADDR16", "EMB_NADDR16_LO", "EMB_NADDR16_HI",
           "EMB_NADDR16_HA"), _EMBEDDED),
    (106, ("EMB_SDAI16", "EMB_SDA2I16", "EMB_SDA2REL", "EMB_SDA21"), _SDATA),
    (110, ("EMB_MRKREF", "EMB_RELSEC16", "EMB_RELST_LO", "EMB_RELST_HI", "EMB_RELST_HA",
           "EMB_BIT_FLD"), _EMBEDDED),
    (116, ("EMB_RELSDA",), _SDATA),
    (119, ("PLTSEQ", "PLTCALL"), _LONGCALL),
    (180, ("DIAB_SDA21_LO", "DIAB_SDA21_HI", "DIAB_SDA21_HA", "DIAB_RELSDA_LO",
           "DIAB_RELSDA_HI", "DIAB_RELSDA_HA"), _SDATA),
    (246, ("REL16DX_HA",), "R_PPC_REL16DX_HA (addpcis) is a POWER9 instruction, not a 750 one"),
    (248, ("IRELATIVE",), "indirect functions (ifunc) are not supported"),
    (255, ("TOC16",), "TOC-relative addressing is not supported"),
]

UNSUPPORTED: dict[int, str] = {
    first + i: f"R_PPC_{name}: {why}"
    for first, names, why in _UNSUPPORTED_RUNS for i, name in enumerate(names)
}


def _refused_for(why: str) -> frozenset[int]:
    return frozenset(first + i for first, names, reason in _UNSUPPORTED_RUNS if reason == why
                     for i in range(len(names)))


def _refused_named(*names: str) -> frozenset[int]:
    return frozenset(k for k, text in UNSUPPORTED.items() if text.split(":")[0][len("R_PPC_"):] in names)


# Families of kinds, for tools that refuse more than the linker does (a REL expresses only
# the kinds of absolute, -fno-pic code) and say why.
SMALL_DATA_KINDS = _refused_for(_SDATA)  # r2/r13-relative: the small-data areas
TLS_KINDS = _refused_for(_TLS)
DYNAMIC_KINDS = _refused_for(_DYNAMIC)
# What -fpic/-fPIE code emits: GOT and PLT references, and the local calls and PC-relative
# halves with which it finds itself and its data.
POSITION_INDEPENDENT_KINDS = (_refused_for(_GOT) | {R_PPC_PLTREL24, R_PPC_LOCAL24PC}
                              | _refused_named("PLT32", "PLTREL32", "PLT16_LO", "PLT16_HI", "PLT16_HA")
                              | {R_PPC_REL16, R_PPC_REL16_LO, R_PPC_REL16_HI, R_PPC_REL16_HA})

# -- instructions ----------------------------------------------------------------------------
R0, R1, R3, R4, R5, R11, R12 = 0, 1, 3, 4, 5, 11, 12
TRAP = 0x7FE0_0008  # tw 31,0,0: traps always
BCTR = 0x4E80_0420
BLR = 0x4E80_0020
BCL_NEXT = 0x429F_0005  # bcl 20,31,$+4: LR = the next instruction (no link-stack push)


def _u16(value: int) -> int:
    return value & 0xFFFF


def ha(value: int) -> int:
    """``value@ha``: the high half, adjusted for the sign of the low half."""
    return _u16((value + 0x8000) >> 16)


def lo(value: int) -> int:
    """``value@l``."""
    return _u16(value)


def addis(rd: int, ra: int, imm: int) -> int:
    return 0x3C00_0000 | rd << 21 | ra << 16 | _u16(imm)


def addi(rd: int, ra: int, imm: int) -> int:
    return 0x3800_0000 | rd << 21 | ra << 16 | _u16(imm)


def ori(ra: int, rs: int, imm: int) -> int:
    return 0x6000_0000 | rs << 21 | ra << 16 | _u16(imm)


def lwz(rd: int, offset: int, ra: int) -> int:
    return 0x8000_0000 | rd << 21 | ra << 16 | _u16(offset)


def stw(rs: int, offset: int, ra: int) -> int:
    return 0x9000_0000 | rs << 21 | ra << 16 | _u16(offset)


def mflr(rd: int) -> int:
    return 0x7C08_02A6 | rd << 21


def mtlr(rs: int) -> int:
    return 0x7C08_03A6 | rs << 21


def mtctr(rs: int) -> int:
    return 0x7C09_03A6 | rs << 21


def _load_address(reg: int, value: int) -> list[int]:
    """``lis reg,value@ha; addi reg,reg,value@l``."""
    return [addis(reg, 0, ha(value)), addi(reg, reg, lo(value))]


def _load_constant(reg: int, value: int) -> list[int]:
    """``lis reg,value@h; ori reg,reg,value@l`` (any 32-bit pattern)."""
    return [addis(reg, 0, value >> 16), ori(reg, reg, value)]


def assemble(words: list[int], size: int | None = None) -> bytes:
    """Big-endian instruction words, padded with traps to ``size`` bytes."""
    if size is not None:
        words = words + [TRAP] * ((size - 4 * len(words)) // 4)
    return struct.pack(f">{len(words)}I", *words)


# -- veneers and stubs ----------------------------------------------------------------------
VENEER_SIZE = 16


def veneer(address: int, target: int) -> bytes:
    """``lis r12,target@ha; addi r12,r12,target@l; mtctr r12; bctr``: reaches anywhere and
    clobbers r12 and CTR, which the ABI lets any call clobber (LR keeps the caller's return
    address, since the veneer is entered by the caller's own ``bl``)."""
    return assemble([*_load_address(R12, target), mtctr(R12), BCTR])


UNRESOLVED_STUB_SIZE = 32


def unresolved_stub(context: int, handler: int) -> bytes:
    """Calls ``handler(context)`` in place of a missing function, whose result goes straight
    back to the caller. The 64-bit context is passed as a ``long long``: high word in r3, low
    word in r4 (the System V pairing), then ``lis r12; addi r12; mtctr r12; bctr``."""
    words = (_load_constant(R3, (context >> 32) & 0xFFFF_FFFF)
             + _load_constant(R4, context & 0xFFFF_FFFF)
             + _load_address(R12, handler) + [mtctr(R12), BCTR])
    return assemble(words, UNRESOLVED_STUB_SIZE)


ATEXIT_STUB_SIZE = 32


def atexit_stub(address: int, dso_handle: int, cxa_atexit: int) -> bytes:
    """A module's own ``atexit(f)``: ``__cxa_atexit(f, 0, &__dso_handle)`` (r3 is f already):
    ``li r4,0; lis r5; addi r5; lis r12; addi r12; mtctr r12; bctr``."""
    words = ([addi(R4, 0, 0)] + _load_address(R5, dso_handle) + _load_address(R12, cxa_atexit)
             + [mtctr(R12), BCTR])
    return assemble(words, ATEXIT_STUB_SIZE)


# -- trampolines ----------------------------------------------------------------------------
# A slot's data record, as linkload.link.trampoline.TrampolinePool writes it: 32-bit words
# packed in this order.
TRAMPOLINE_FUNCTION, TRAMPOLINE_VARIABLE, TRAMPOLINE_DATA = 0, 4, 8
TRAMPOLINE_REGISTER = "r11"  # GCC's static chain register on 32-bit System V, as ffcall's
# The code takes ten instructions (finding its own address costs four on PowerPC), so a slot
# is 48 bytes: 40 of code and a trap pad, and 48 bytes of data one block-half further on.
TRAMPOLINE_SLOT = 48
_AFTER_BCL = 8  # the address bcl leaves in LR, relative to the slot


def trampoline_code(distance: int) -> bytes:
    """One slot of trampoline code whose data record lies ``distance`` bytes after the slot.

    ::

        mflr  r0                ; the caller's return address
        bcl   20,31,$+4         ; LR = slot + 8 ...
        mflr  r12               ; ... r12 too
        mtlr  r0                ; the caller's return address back in LR
        lwz   r0,F(r12)         ; the function
        lwz   r11,D(r12)        ; the data, which stays in r11 (trampoline_r)
        lwz   r12,V(r12)        ; the variable
        mtctr r0
        stw   r11,0(r12)        ; *variable = data
        bctr                    ; on to the function, which returns to the caller

    Only r0, r11, r12 and CTR change, all of which a call may clobber. (The store goes
    through r12 because r0 as a base register means the number 0.)"""
    base = distance - _AFTER_BCL
    if base < 0 or base + TRAMPOLINE_DATA > 0x7FFF:
        raise LinkError(f"trampoline data {distance:#x} bytes away is out of reach of lwz")
    words = [mflr(R0), BCL_NEXT, mflr(R12), mtlr(R0),
             lwz(R0, base + TRAMPOLINE_FUNCTION, R12),
             lwz(R11, base + TRAMPOLINE_DATA, R12),
             lwz(R12, base + TRAMPOLINE_VARIABLE, R12),
             mtctr(R0), stw(R11, 0, R12), BCTR]
    return assemble(words, TRAMPOLINE_SLOT)


# -- cache maintenance ----------------------------------------------------------------------
CACHE_LINE = 32  # bytes per data and instruction cache block on the 750


def cache_lines(address: int, size: int) -> range:
    """The addresses of the cache blocks that [address, address+size) touches."""
    if size <= 0:
        return range(0)
    first = address - address % CACHE_LINE
    return range(first, address + size, CACHE_LINE)


def cache_maintenance(address: int, size: int) -> list[tuple[str, int]]:
    """What makes code written at [address, address+size) executable, as (instruction,
    effective address) steps: ``dcbst`` every block (write it back to memory), ``sync``,
    ``icbi`` every block (drop it from the instruction cache), ``sync``, ``isync`` (drop
    instructions already fetched). This is the SDK's DCFlushRange + ICInvalidateRange."""
    lines = cache_lines(address, size)
    return ([("dcbst", a) for a in lines] + [("sync", 0)]
            + [("icbi", a) for a in lines] + [("sync", 0), ("isync", 0)])


# -- emulation ------------------------------------------------------------------------------
def unicorn_register(name: str) -> str:
    """``"r3"`` -> ``"UC_PPC_REG_3"``, ``"lr"`` -> ``"UC_PPC_REG_LR"``, ``"f1"`` ->
    ``"UC_PPC_REG_FPR1"``."""
    name = name.lower()
    if name.startswith("r") and name[1:].isdigit():
        return f"UC_PPC_REG_{int(name[1:])}"
    if name.startswith("f") and name[1:].isdigit():
        return f"UC_PPC_REG_FPR{int(name[1:])}"
    return f"UC_PPC_REG_{name.upper()}"


MSR_FP = 0x2000  # floating point available: gcc uses FPRs even for memcpy-like moves
MiB = 1 << 20

EMULATION = Emulation(
    uc_arch="UC_ARCH_PPC",
    uc_mode=("UC_MODE_PPC32", "UC_MODE_BIG_ENDIAN"),
    uc_cpu="UC_CPU_PPC32_750CL_V2_0",
    uc_constants="unicorn.ppc_const",
    register=unicorn_register,
    arguments=tuple(f"r{i}" for i in range(3, 11)),
    result="r3",
    link_register="lr",
    stack_pointer="r1",
    stack_alignment=16,
    linkage_area=8,  # back chain at 0(r1), the callee's saved LR at 4(r1)
    stack_arguments=8,
    back_chain=True,
    wide_argument=("r3", "r4"),
    trap=struct.pack(">I", TRAP),
    instruction_size=4,
    # MSR: FP on; IP off (exceptions vector to 0x00000000, as on the console), real mode.
    initial_registers={"msr": MSR_FP},
    # The small-data base registers of the static module, for its own functions' sake.
    static_registers={"r13": "_SDA_BASE_", "r2": "_SDA2_BASE_"},
    default_memory=((0x8000_0000, 24 * MiB, "MEM1"), (0x9000_0000, 64 * MiB, "MEM2")),
    cache_line=CACHE_LINE,
    cache_maintenance=cache_maintenance,
)

ARCH = Arch(
    name="ppc",
    bits=32,
    byteorder=">",
    kinds=KINDS,
    unsupported=UNSUPPORTED,
    # R_PPC_REL16_HA/LO and R_PPC_REL32 reach the whole 32-bit space; the linker takes the
    # smaller of the two reaches for placement anyway.
    pcrel_reach=1 << 31,
    branch_reach=32 * MiB,
    veneer=Veneer(VENEER_SIZE, veneer),
    got_entry_size=4,
    pointer_kind=R_PPC_ADDR32,
    code_alignment=16,
    stubs=CallStubs(UNRESOLVED_STUB_SIZE, unresolved_stub, ATEXIT_STUB_SIZE, atexit_stub),
    trampolines=TrampolineCode(TRAMPOLINE_SLOT, trampoline_code, TRAMPOLINE_REGISTER),
    emulation=EMULATION,
    disassembly=Disassembly("CS_ARCH_PPC", ("CS_MODE_32", "CS_MODE_BIG_ENDIAN")),
)
