"""32-bit little-endian ARM: Thumb-2 (Cortex-M) and A32 relocation kinds, Thumb veneers,
stubs and trampolines, and what an emulator needs to know about a Cortex-M3.

The kinds are those ``arm-none-eabi-gcc`` and ``arm-none-eabi-as`` emit for Cortex-M and ARM
objects, with and without ``-fpic`` (NuttX's NXFLAT flags included), with the formulas of the
ELF for the Arm Architecture (AAELF) and the encodings of the Armv7-M and Armv7-A manuals.
Thumb-2 immediates are scattered over both halfwords of an instruction, so those fields
subclass :class:`Field` and encode and decode their bits themselves; every encoding was
checked against ``arm-none-eabi-ld`` output (``tests/test_arm.py`` links the same objects
both ways and compares the bytes).

The Thumb bit. An ELF symbol of a Thumb function has bit 0 of its value set, so every
address linkload computes for one is odd (a pointer in data, a GOT entry, ``movw``/``movt``)
without anything else knowing about it. A call (``BL``, ``R_ARM_THM_CALL``/``R_ARM_CALL``)
reads the target's state from that bit: an odd value is a Thumb target, reached by ``BL``
from Thumb code and ``BLX`` from A32 code; an even value is A32 code, and the instruction
becomes the other one, as GNU ld makes it for typed function symbols. (A call to an untyped
label of another section, in hand-written assembly, is taken for A32 code when even: give
the label ``.type f, %function``.) Every piece of code linkload writes is Thumb code, entered
at an odd address (:attr:`Arch.code_tag`), so it runs on a Thumb-only Cortex-M.

Registers linkload's code may clobber: ``ip`` (r12) alone, which AAPCS gives veneers and
linker-made code; trampolines pass their data in it (``alloc_register``).
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
    LinkedValues,
    TrampolineCode,
    Veneer,
)

MiB = 1 << 20
THUMB_BIT = 1
A32_BIAS, THUMB_BIAS = 8, 4  # PC reads as the instruction's address plus this


def _i64(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(np.int64)


def _u64(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(np.int64).astype(np.uint64)


def _sign_extend(values: np.ndarray, bits: int) -> np.ndarray:
    values = _i64(values) & ((1 << bits) - 1)
    return np.where(values >> (bits - 1), values - (1 << bits), values)


def _halves(containers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 32-bit Thumb instruction read as one little-endian word: (first, second) halfword."""
    c = _i64(containers)
    return c & 0xFFFF, (c >> 16) & 0xFFFF


def _join(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return _u64(first | (second << 16))


# -- fields ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThumbBranch24(Field):
    """The 25-bit displacement of ``BL``, ``BLX`` and ``B.W`` (Thumb-2 T4 encoding):
    ``imm32 = S:I1:I2:imm10:imm11:0``, ``I1 = NOT(J1 XOR S)``, scattered over both halfwords.

    ``interworking`` (``BL``/``BLX``): an even value is an A32 target, reached by ``BLX``,
    which counts from the word-aligned PC (the value is rounded up to a multiple of 4, as GNU
    ld does); an odd value is a Thumb target, reached by ``BL``."""

    interworking: bool = False

    def encode(self, containers, values):
        v = _i64(values)
        first, second = _halves(containers)
        if self.interworking:
            a32 = (v & 1) == 0
            v = np.where(a32, (v + 2) & ~3, v)
            second = (second & ~0x1000) | np.where(a32, 0, 0x1000)  # bit 12: BL 1, BLX 0
        s = (v >> 24) & 1
        j1 = (~((v >> 23) & 1) ^ s) & 1
        j2 = (~((v >> 22) & 1) ^ s) & 1
        first = (first & 0xF800) | (s << 10) | ((v >> 12) & 0x3FF)
        second = (second & 0xD000) | (j1 << 13) | (j2 << 11) | ((v >> 1) & 0x7FF)
        return _join(first, second)

    def decode(self, containers):
        first, second = _halves(containers)
        s = (first >> 10) & 1
        i1 = (~((second >> 13) & 1) ^ s) & 1
        i2 = (~((second >> 11) & 1) ^ s) & 1
        raw = (s << 24) | (i1 << 23) | (i2 << 22) | ((first & 0x3FF) << 12) | ((second & 0x7FF) << 1)
        return _sign_extend(raw, 25)


@dataclass(frozen=True)
class ThumbBranch20(Field):
    """The 21-bit displacement of ``B<cond>.W`` (T3): ``imm32 = S:J2:J1:imm6:imm11:0``."""

    def encode(self, containers, values):
        v = _i64(values)
        first, second = _halves(containers)
        first = (first & 0xFBC0) | (((v >> 20) & 1) << 10) | ((v >> 12) & 0x3F)
        second = (second & 0xD000) | (((v >> 18) & 1) << 13) | (((v >> 19) & 1) << 11) \
            | ((v >> 1) & 0x7FF)
        return _join(first, second)

    def decode(self, containers):
        first, second = _halves(containers)
        raw = (((first >> 10) & 1) << 20) | (((second >> 11) & 1) << 19) \
            | (((second >> 13) & 1) << 18) | ((first & 0x3F) << 12) | ((second & 0x7FF) << 1)
        return _sign_extend(raw, 21)


@dataclass(frozen=True)
class ThumbMove16(Field):
    """The 16-bit immediate of Thumb-2 ``MOVW``/``MOVT`` (T3): ``imm4:i:imm3:imm8``. The
    addend stored in a REL object is that immediate, sign-extended, for ``MOVT`` too (the
    value is then (S+A) >> 16)."""

    def encode(self, containers, values):
        v = _i64(values) & 0xFFFF
        first, second = _halves(containers)
        first = (first & 0xFBF0) | (((v >> 11) & 1) << 10) | (v >> 12)
        second = (second & 0x8F00) | (((v >> 8) & 7) << 12) | (v & 0xFF)
        return _join(first, second)

    def decode(self, containers):
        first, second = _halves(containers)
        raw = ((first & 0xF) << 12) | (((first >> 10) & 1) << 11) | (((second >> 12) & 7) << 8) \
            | (second & 0xFF)
        return _sign_extend(raw, 16)


@dataclass(frozen=True)
class ArmMove16(Field):
    """The 16-bit immediate of A32 ``MOVW``/``MOVT``: ``imm4`` (bits 19:16) ``:imm12``;
    the stored addend is that immediate, sign-extended (as for :class:`ThumbMove16`)."""

    def encode(self, containers, values):
        v = _i64(values) & 0xFFFF
        return _u64((_i64(containers) & 0xFFF0_F000) | ((v >> 12) << 16) | (v & 0xFFF))

    def decode(self, containers):
        c = _i64(containers)
        return _sign_extend(((c >> 4) & 0xF000) | (c & 0xFFF), 16)


@dataclass(frozen=True)
class ArmCall(Field):
    """The 26-bit displacement of A32 ``BL`` and ``BLX`` (``imm24:H:0``). An odd value is a
    Thumb target: the instruction becomes ``BLX``, whose H bit holds bit 1 of the
    displacement; an even one is A32 code: ``BL`` (a ``BLX`` of the object becomes ``BL``
    with the condition ``AL``)."""

    def encode(self, containers, values):
        v = _i64(values)
        c = _i64(containers)
        imm24 = (v >> 2) & 0xFF_FFFF
        thumb = (v & 1) == 1
        blx = 0xFA00_0000 | (((v >> 1) & 1) << 24) | imm24
        was_blx = (c >> 28) == 0xF
        bl = np.where(was_blx, 0xEB00_0000, c & 0xFF00_0000) | imm24
        return _u64(np.where(thumb, blx, bl))

    def decode(self, containers):
        c = _i64(containers)
        h = np.where((c >> 28) == 0xF, ((c >> 24) & 1) << 1, 0)
        return (_sign_extend(c & 0xFF_FFFF, 24) << 2) | h


@dataclass(frozen=True)
class ThumbLiteral12(Field):
    """``LDR<size>.W Rt, [PC, #+/-imm12]`` (``R_ARM_THM_PC12``): the magnitude in imm12 of
    the second halfword, the sign in the U bit (bit 7 of the first); measured from the place
    rounded down to a word."""

    @property
    def bounds(self) -> tuple[int, int]:
        return -0xFFF, 0xFFF

    def encode(self, containers, values):
        v = _i64(values)
        first, second = _halves(containers)
        first = (first & ~0x80) | np.where(v >= 0, 0x80, 0)
        second = (second & 0xF000) | (np.abs(v) & 0xFFF)
        return _join(first, second)

    def decode(self, containers):
        first, second = _halves(containers)
        return np.where(first & 0x80, second & 0xFFF, -(second & 0xFFF))


@dataclass(frozen=True)
class ThumbLiteral8(Field):
    """``LDR Rt, [PC, #imm8*4]`` and ``ADR`` (16-bit, ``R_ARM_THM_PC8``): a word offset from
    the place rounded down to a word. The stored addend is decoded as GNU ld decodes it,
    ``((imm8 << 2) + 4 & 0x3ff) - 4`` (the usual -4 of PC being 4 ahead)."""

    def encode(self, containers, values):
        return _u64((_i64(containers) & 0xFF00) | ((_i64(values) >> 2) & 0xFF))

    def decode(self, containers):
        return ((((_i64(containers) & 0xFF) << 2) + 4) & 0x3FF) - 4


# A word holding any 32-bit value (an address, an offset from the GOT).
WORD = Field(4, 0xFFFF_FFFF, 32, Check.BITFIELD)
# The difference of two 32-bit addresses wraps modulo 2**32, so any value in (-2**32, 2**32)
# is right; anything beyond is an error.
PCREL_WORD = Field(4, 0xFFFF_FFFF, 33, Check.SIGNED)
PREL31 = Field(4, 0x7FFF_FFFF, 31, Check.SIGNED)  # .ARM.exidx: bit 31 is the entry's own
THUMB_CALL = ThumbBranch24(4, 0x3FFF_07FF, 25, Check.SIGNED, interworking=True)
THUMB_JUMP24 = ThumbBranch24(4, 0x2FFF_07FF, 25, Check.SIGNED)
THUMB_JUMP19 = ThumbBranch20(4, 0x2FFF_043F, 21, Check.SIGNED)
THUMB_JUMP11 = Field(2, 0x07FF, 11, Check.SIGNED, shift=1)  # B.N: +-2 KiB
THUMB_JUMP8 = Field(2, 0x00FF, 8, Check.SIGNED, shift=1)  # B<cond>.N: +-256 bytes
# movw/movt take any 32-bit value (the low half, then the high half): nothing to check.
THUMB_MOVW = ThumbMove16(4, 0x70FF_040F, 32, Check.NONE)
THUMB_MOVT = ThumbMove16(4, 0x70FF_040F, 32, Check.NONE, shift=16)
ARM_MOVW = ArmMove16(4, 0x000F_0FFF, 32, Check.NONE)
ARM_MOVT = ArmMove16(4, 0x000F_0FFF, 32, Check.NONE, shift=16)
ARM_CALL = ArmCall(4, 0x01FF_FFFF, 26, Check.SIGNED)
ARM_JUMP24 = Field(4, 0x00FF_FFFF, 24, Check.SIGNED, shift=2)  # B, BL<cond>: +-32 MiB
THUMB_PC12 = ThumbLiteral12(4, 0x0FFF_0080, 13, Check.SIGNED, place_align=4)
THUMB_PC8 = ThumbLiteral8(2, 0x00FF, 10, Check.UNSIGNED, align=4, place_align=4)

# -- relocation kinds ------------------------------------------------------------------------
R_ARM_NONE, R_ARM_PC24, R_ARM_ABS32, R_ARM_REL32 = 0, 1, 2, 3
R_ARM_THM_CALL, R_ARM_THM_PC8 = 10, 11
R_ARM_GOTOFF32, R_ARM_BASE_PREL, R_ARM_GOT_BREL, R_ARM_PLT32 = 24, 25, 26, 27
R_ARM_CALL, R_ARM_JUMP24, R_ARM_THM_JUMP24 = 28, 29, 30
R_ARM_TARGET1, R_ARM_V4BX, R_ARM_TARGET2, R_ARM_PREL31 = 38, 40, 41, 42
R_ARM_MOVW_ABS_NC, R_ARM_MOVT_ABS, R_ARM_MOVW_PREL_NC, R_ARM_MOVT_PREL = 43, 44, 45, 46
R_ARM_THM_MOVW_ABS_NC, R_ARM_THM_MOVT_ABS = 47, 48
R_ARM_THM_MOVW_PREL_NC, R_ARM_THM_MOVT_PREL = 49, 50
R_ARM_THM_JUMP19, R_ARM_THM_PC12 = 51, 54
R_ARM_GOT_PREL = 96
R_ARM_GNU_VTENTRY, R_ARM_GNU_VTINHERIT = 100, 101
R_ARM_THM_JUMP11, R_ARM_THM_JUMP8 = 102, 103


def _thumb(name: str, expr: Expr, field: Field) -> Kind:
    return Kind(name, expr, field, branch_bias=THUMB_BIAS)


def _a32(name: str, expr: Expr, field: Field) -> Kind:
    return Kind(name, expr, field, branch_bias=A32_BIAS)


KINDS: dict[int, Kind] = {
    R_ARM_NONE: Kind("R_ARM_NONE", Expr.NONE, None),
    R_ARM_ABS32: Kind("R_ARM_ABS32", Expr.ABS, WORD),
    # .init_array entries: an absolute word on bare-metal targets (ld's --target1-abs).
    R_ARM_TARGET1: Kind("R_ARM_TARGET1", Expr.ABS, WORD),
    R_ARM_REL32: Kind("R_ARM_REL32", Expr.PCREL, PCREL_WORD),
    # Exception tables' type references: a PC-relative word on bare-metal targets (ld's
    # default --target2=rel for arm-none-eabi).
    R_ARM_TARGET2: Kind("R_ARM_TARGET2", Expr.PCREL, PCREL_WORD),
    R_ARM_PREL31: Kind("R_ARM_PREL31", Expr.PCREL, PREL31),
    # -fpic: the GOT. GOT_BREL and GOTOFF32 count from the GOT (the PIC base register, with
    # -msingle-pic-base), GOT_PREL and BASE_PREL from the place.
    R_ARM_GOT_BREL: Kind("R_ARM_GOT_BREL", Expr.GOT_SLOT, WORD),
    R_ARM_GOT_PREL: Kind("R_ARM_GOT_PREL", Expr.GOT_PCREL, PCREL_WORD),
    R_ARM_GOTOFF32: Kind("R_ARM_GOTOFF32", Expr.GOT_OFF, WORD),
    R_ARM_BASE_PREL: Kind("R_ARM_BASE_PREL", Expr.GOT_PC, PCREL_WORD),
    # Thumb branches. Calls and B.W (and B<cond>.W, +-1 MiB) out of reach go through a
    # veneer; the 16-bit branches stay within a section in practice, and are checked.
    R_ARM_THM_CALL: _thumb("R_ARM_THM_CALL", Expr.BRANCH, THUMB_CALL),
    R_ARM_THM_JUMP24: _thumb("R_ARM_THM_JUMP24", Expr.BRANCH, THUMB_JUMP24),
    R_ARM_THM_JUMP19: _thumb("R_ARM_THM_JUMP19", Expr.BRANCH, THUMB_JUMP19),
    R_ARM_THM_JUMP11: _thumb("R_ARM_THM_JUMP11", Expr.PCREL, THUMB_JUMP11),
    R_ARM_THM_JUMP8: _thumb("R_ARM_THM_JUMP8", Expr.PCREL, THUMB_JUMP8),
    R_ARM_THM_MOVW_ABS_NC: Kind("R_ARM_THM_MOVW_ABS_NC", Expr.ABS, THUMB_MOVW),
    R_ARM_THM_MOVT_ABS: Kind("R_ARM_THM_MOVT_ABS", Expr.ABS, THUMB_MOVT),
    R_ARM_THM_MOVW_PREL_NC: Kind("R_ARM_THM_MOVW_PREL_NC", Expr.PCREL, THUMB_MOVW),
    R_ARM_THM_MOVT_PREL: Kind("R_ARM_THM_MOVT_PREL", Expr.PCREL, THUMB_MOVT),
    R_ARM_THM_PC8: _thumb("R_ARM_THM_PC8", Expr.PCREL, THUMB_PC8),
    R_ARM_THM_PC12: _thumb("R_ARM_THM_PC12", Expr.PCREL, THUMB_PC12),
    # A32. A call out of reach goes through a (Thumb) veneer, by BLX; B and BL<cond> cannot
    # change state, so they have no veneer: out of reach is an error.
    R_ARM_CALL: _a32("R_ARM_CALL", Expr.BRANCH, ARM_CALL),
    R_ARM_PLT32: _a32("R_ARM_PLT32", Expr.BRANCH, ARM_CALL),  # the old ABI's `bl f(PLT)`
    R_ARM_JUMP24: _a32("R_ARM_JUMP24", Expr.PCREL, ARM_JUMP24),
    R_ARM_PC24: _a32("R_ARM_PC24", Expr.PCREL, ARM_JUMP24),  # the old ABI's branches
    R_ARM_MOVW_ABS_NC: Kind("R_ARM_MOVW_ABS_NC", Expr.ABS, ARM_MOVW),
    R_ARM_MOVT_ABS: Kind("R_ARM_MOVT_ABS", Expr.ABS, ARM_MOVT),
    R_ARM_MOVW_PREL_NC: Kind("R_ARM_MOVW_PREL_NC", Expr.PCREL, ARM_MOVW),
    R_ARM_MOVT_PREL: Kind("R_ARM_MOVT_PREL", Expr.PCREL, ARM_MOVT),
    # Markers: `bx rm` of Armv4 code (ld leaves it alone without --fix-v4bx), -fvtable-gc.
    R_ARM_V4BX: Kind("R_ARM_V4BX", Expr.NONE, None),
    R_ARM_GNU_VTENTRY: Kind("R_ARM_GNU_VTENTRY", Expr.NONE, None),
    R_ARM_GNU_VTINHERIT: Kind("R_ARM_GNU_VTINHERIT", Expr.NONE, None),
}

_TLS = "thread-local storage is not supported; use a global variable"
_DYNAMIC = "a dynamic relocation, which does not belong in an object file"
_GROUP = ("group relocations (-mpure-code and hand-written ALU sequences) are not supported; "
          "use movw/movt or a literal")
_SBREL = "static-base-relative addressing (-mrwpi) is not supported"
_SMALL = "a field gcc does not emit, which linkload does not support"

_UNSUPPORTED: dict[int, tuple[str, str]] = {
    4: ("LDR_PC_G0", _GROUP), 5: ("ABS16", _SMALL), 6: ("ABS12", _SMALL),
    7: ("THM_ABS5", _SMALL), 8: ("ABS8", _SMALL), 9: ("SBREL32", _SBREL),
    12: ("BREL_ADJ", _SMALL), 13: ("TLS_DESC", _TLS), 14: ("THM_SWI8", _SMALL),
    15: ("XPC25", _SMALL), 16: ("THM_XPC22", _SMALL), 17: ("TLS_DTPMOD32", _TLS),
    18: ("TLS_DTPOFF32", _TLS), 19: ("TLS_TPOFF32", _TLS), 20: ("COPY", _DYNAMIC),
    21: ("GLOB_DAT", _DYNAMIC), 22: ("JUMP_SLOT", _DYNAMIC), 23: ("RELATIVE", _DYNAMIC),
    31: ("BASE_ABS", _SMALL), 35: ("LDR_SBREL_11_0_NC", _SBREL),
    36: ("ALU_SBREL_19_12_NC", _SBREL), 37: ("ALU_SBREL_27_20_CK", _SBREL),
    39: ("SBREL31", _SBREL), 52: ("THM_JUMP6", "cbz/cbnz to another section is not supported"),
    53: ("THM_ALU_PREL_11_0", "adr.w to another section is not supported"),
    55: ("ABS32_NOI", _SMALL), 56: ("REL32_NOI", _SMALL), 94: ("PLT32_ABS", _SMALL),
    95: ("GOT_ABS", _SMALL), 97: ("GOT_BREL12", _SMALL), 98: ("GOTOFF12", _SMALL),
    99: ("GOTRELAX", _SMALL),
    160: ("IRELATIVE", "indirect functions (ifunc) are not supported"),
}
# (first number, names, why) of the runs of numbered kinds that carry one reason
_RUNS: list[tuple[int, tuple[str, ...], str]] = [
    (32, ("ALU_PCREL_7_0", "ALU_PCREL_15_8", "ALU_PCREL_23_15"), _GROUP),
    (57, ("ALU_PC_G0_NC", "ALU_PC_G0", "ALU_PC_G1_NC", "ALU_PC_G1", "ALU_PC_G2", "LDR_PC_G1",
          "LDR_PC_G2", "LDRS_PC_G0", "LDRS_PC_G1", "LDRS_PC_G2", "LDC_PC_G0", "LDC_PC_G1",
          "LDC_PC_G2"), _GROUP),
    (70, ("ALU_SB_G0_NC", "ALU_SB_G0", "ALU_SB_G1_NC", "ALU_SB_G1", "ALU_SB_G2", "LDR_SB_G0",
          "LDR_SB_G1", "LDR_SB_G2", "LDRS_SB_G0", "LDRS_SB_G1", "LDRS_SB_G2", "LDC_SB_G0",
          "LDC_SB_G1", "LDC_SB_G2", "MOVW_BREL_NC", "MOVT_BREL", "MOVW_BREL",
          "THM_MOVW_BREL_NC", "THM_MOVT_BREL", "THM_MOVW_BREL"), _SBREL),
    (90, ("TLS_GOTDESC", "TLS_CALL", "TLS_DESCSEQ", "THM_TLS_CALL"), _TLS),
    (104, ("TLS_GD32", "TLS_LDM32", "TLS_LDO32", "TLS_IE32", "TLS_LE32", "TLS_LDO12",
           "TLS_LE12", "TLS_IE12GP"), _TLS),
    (129, ("THM_TLS_DESCSEQ16", "THM_TLS_DESCSEQ32"), _TLS),
    (131, ("THM_GOT_BREL12",), _SMALL),
    (132, ("THM_ALU_ABS_G0_NC", "THM_ALU_ABS_G1_NC", "THM_ALU_ABS_G2_NC", "THM_ALU_ABS_G3_NC"),
     "-mpure-code address sequences are not supported; use movw/movt or a literal"),
]
for _first, _names, _why in _RUNS:
    for _i, _name in enumerate(_names):
        _UNSUPPORTED[_first + _i] = (_name, _why)

UNSUPPORTED: dict[int, str] = {n: f"R_ARM_{name}: {why}" for n, (name, why) in _UNSUPPORTED.items()}

# -- a linked program's fields (the locator) ---------------------------------------------------
# A REL table kept in a linked program (ld --emit-relocs) gives each addend only through the
# field ld wrote, S+A (S+A-P) for the symbol it names. Two kinds of field do not give it back
# on their own. A movw holds the low half of the value and a movt the high half: a high half is
# read with the low half of its pair (the movw of the same symbol into the same register,
# nearest before it: gcc may share one movw between two movts, and interleaves the pair with
# other code), which carries into it; a PC-relative pair counts each half from its own place.
# A low half alone gives the addend nearest 0 that makes it (its low 16 bits are what matters).
# A call drops the value's bit 0, the target's state, which the instruction itself tells:
# Thumb BL and A32 BLX go to Thumb code (odd), Thumb BLX and A32 BL to A32 code.
_MOVE_PAIRS = {R_ARM_THM_MOVW_ABS_NC: R_ARM_THM_MOVT_ABS, R_ARM_THM_MOVW_PREL_NC: R_ARM_THM_MOVT_PREL,
               R_ARM_MOVW_ABS_NC: R_ARM_MOVT_ABS, R_ARM_MOVW_PREL_NC: R_ARM_MOVT_PREL}
_MOVE_LOW = {high: low for low, high in _MOVE_PAIRS.items()} | {low: low for low in _MOVE_PAIRS}
_MOVE_PCREL = (R_ARM_THM_MOVW_PREL_NC, R_ARM_THM_MOVT_PREL, R_ARM_MOVW_PREL_NC, R_ARM_MOVT_PREL)
_THUMB_MOVES = (R_ARM_THM_MOVW_ABS_NC, R_ARM_THM_MOVT_ABS, R_ARM_THM_MOVW_PREL_NC,
                R_ARM_THM_MOVT_PREL)
_CALLS = (R_ARM_THM_CALL, R_ARM_CALL, R_ARM_PLT32)


def _wrap32(values: np.ndarray) -> np.ndarray:
    """A difference of 32-bit addresses as the signed 32-bit number it is modulo 2**32."""
    return ((_i64(values) + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


def linked_values(kind: np.ndarray, place: np.ndarray, symbol: np.ndarray, target: np.ndarray,
                  containers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values S+A of a linked program's movw/movt halves and calls (see above), given each
    row's kind, address, symbol row, the symbol's value and the field's container; and whether
    each was found (a high half without its low half is not)."""
    kind, place, symbol, target, c = (_i64(x) for x in (kind, place, symbol, target, containers))
    values = np.zeros(len(kind), np.int64)
    found = np.ones(len(kind), bool)
    for k in _CALLS:
        rows = np.flatnonzero(kind == k)
        if len(rows):
            thumb_target = ((c[rows] >> 28) & 1) == 1 if k == R_ARM_THM_CALL else (c[rows] >> 28) == 0xF
            values[rows] = KINDS[k].field.decode(c[rows]) + place[rows] + thumb_target
    moves = np.flatnonzero(np.isin(kind, list(_MOVE_LOW)))
    if not len(moves):
        return values, found
    k = kind[moves]
    imm = np.zeros(len(moves), np.int64)
    for one in set(k.tolist()):
        rows = np.flatnonzero(k == one)
        imm[rows] = KINDS[one].field.decode(c[moves][rows]) & 0xFFFF
    register = np.where(np.isin(k, _THUMB_MOVES), c[moves] >> 24, c[moves] >> 12) & 0xF
    family = np.array([_MOVE_LOW[x] for x in k.tolist()], np.int64)
    base = np.where(np.isin(k, _MOVE_PCREL), place[moves], 0)  # P, for PC-relative halves
    high = k != family
    # a low half alone: the addend nearest 0 that gives it
    values[moves] = target[moves] + (((imm + base - target[moves] + 0x8000) & 0xFFFF) - 0x8000)
    # each high half and the nearest low half before it of the same symbol and register
    order = np.lexsort((place[moves], register, symbol[moves], family))
    key = np.stack([family, symbol[moves], register])[:, order]
    at = np.arange(len(order))
    last_low = np.maximum.accumulate(np.where(high[order], -1, at))
    pairs = np.flatnonzero(high[order])
    low = last_low[pairs]
    ok = (low >= 0) & (key[:, np.maximum(low, 0)] == key[:, pairs]).all(axis=0)
    hi_rows, lo_rows = order[pairs[ok]], order[low[ok]]
    carried = (imm[lo_rows] - (base[hi_rows] - base[lo_rows])) & 0xFFFF  # the low half at P of the high
    whole = ((imm[hi_rows] << 16) | carried) + base[hi_rows]
    values[moves[hi_rows]] = target[moves[hi_rows]] + _wrap32(whole - target[moves[hi_rows]])
    # a low half takes the value of the first high half it pairs with
    # (high halves sharing a low half come one after another in this order)
    first = np.concatenate([[True], lo_rows[1:] != lo_rows[:-1]])[:len(lo_rows)]
    values[moves[lo_rows[first]]] = values[moves[hi_rows[first]]]
    found[moves[order[pairs[~ok]]]] = False
    return values, found


LINKED_VALUES = LinkedValues(frozenset(_MOVE_LOW) | frozenset(_CALLS), linked_values)

# -- instructions ----------------------------------------------------------------------------
UDF = 0xDE00  # udf #0: always undefined, the trap of host stubs and return addresses
NOP = 0xBF00
PC, IP, SP = 15, 12, 13
REGISTER_NUMBERS = {f"r{i}": i for i in range(16)} | {"sb": 9, "sl": 10, "fp": 11, "ip": 12}


def thumb(*halfwords: int) -> bytes:
    """Thumb code: halfwords in the order they are executed (a 32-bit instruction is given
    as its two halfwords, first one first)."""
    return struct.pack(f"<{len(halfwords)}H", *halfwords)


def words(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *(v & 0xFFFF_FFFF for v in values))


def ldr_literal(rt: int, offset: int) -> tuple[int, int]:
    """``LDR.W rt, [PC, #offset]`` (T2): from the word-aligned PC, +-4095 bytes."""
    if not -0xFFF <= offset <= 0xFFF:
        raise LinkError(f"literal {offset} bytes away is out of reach of ldr.w")
    up = 0x80 if offset >= 0 else 0
    return 0xF85F | up, (rt << 12) | abs(offset)


def ldr_immediate(rt: int, rn: int, offset: int) -> tuple[int, int]:
    """``LDR.W rt, [rn, #offset]`` (T3, 0..4095)."""
    return 0xF8D0 | rn, (rt << 12) | offset


def add_pc(rd: int) -> int:
    """``ADD rd, PC`` (T2): PC reads as this instruction's address + 4."""
    return 0x4400 | ((rd >> 3) << 7) | (PC << 3) | (rd & 7)


def mov_register(rd: int, rm: int) -> int:
    """``MOV rd, rm`` (T1, any registers)."""
    return 0x4600 | ((rd >> 3) << 7) | (rm << 3) | (rd & 7)


def push_wide(*registers: int) -> tuple[int, int]:
    """``PUSH.W {registers}`` (STMDB SP!, T2)."""
    return 0xE92D, sum(1 << r for r in registers)


def pop_wide(*registers: int) -> tuple[int, int]:
    """``POP.W {registers}`` (LDMIA SP!, T2)."""
    return 0xE8BD, sum(1 << r for r in registers)


def _literal_offset(instruction: int, literal: int) -> int:
    """The offset an ``LDR.W [PC]`` at ``instruction`` needs to read the word at ``literal``
    (both relative to a word-aligned start)."""
    return literal - ((instruction + 4) & ~3)


def pad(code: bytes, size: int) -> bytes:
    """``code`` padded with ``udf`` to ``size`` bytes."""
    return code + thumb(*[UDF] * ((size - len(code)) // 2))


# -- veneers and stubs ----------------------------------------------------------------------
VENEER_SIZE = 8


def veneer(address: int, target: int) -> bytes:
    """``ldr.w pc, [pc, #0]`` and the target: reaches anywhere in either state (the target's
    bit 0 selects it), clobbering nothing; the caller's ``BL`` already set ``lr``. The slot
    is word-aligned, so the PC the load counts from is the word after it."""
    return thumb(*ldr_literal(PC, 0)) + words(target)


UNRESOLVED_STUB_SIZE = 24


def unresolved_stub(context: int, handler: int) -> bytes:
    """Calls ``handler(context)`` in place of a missing function, whose result goes straight
    back to the caller: the 64-bit context is a ``long long`` argument (low word in r0, high
    word in r1), then ``ldr.w pc`` goes on to the handler; ``lr`` is still the caller's."""
    code = (thumb(*ldr_literal(0, _literal_offset(0, 12)), *ldr_literal(1, _literal_offset(4, 16)),
                  *ldr_literal(PC, _literal_offset(8, 20)))
            + words(context & 0xFFFF_FFFF, context >> 32, handler | THUMB_BIT))
    return code


ATEXIT_STUB_SIZE = 20


def atexit_stub(address: int, dso_handle: int, cxa_atexit: int) -> bytes:
    """A module's own ``atexit(f)``: ``__cxa_atexit(f, 0, &__dso_handle)`` (r0 is f already):
    ``mov.w r1, #0; ldr.w r2, =dso_handle; ldr.w pc, =__cxa_atexit``."""
    return (thumb(0xF04F, 0x0100, *ldr_literal(2, _literal_offset(4, 12)),
                  *ldr_literal(PC, _literal_offset(8, 16)))
            + words(dso_handle, cxa_atexit | THUMB_BIT))


# -- trampolines ----------------------------------------------------------------------------
# A slot's data record, as linkload.trampoline.TrampolinePool writes it: words in this order.
TRAMPOLINE_FUNCTION, TRAMPOLINE_VARIABLE, TRAMPOLINE_DATA = 0, 4, 8
TRAMPOLINE_REGISTER = "ip"  # r12, which AAPCS lets linker-made code clobber, as ffcall's
TRAMPOLINE_SLOT = 40
_RECORD_LITERAL = 32  # where a slot keeps the distance to its record
_ADD_PC = 6  # where the slot's `add ip, pc` is (PC reads as its address + 4)


def trampoline_code(distance: int) -> bytes:
    """One slot of trampoline code whose data record lies ``distance`` bytes after the slot.

    ::

        push  {r0, r1}
        ldr.w ip, [pc, #26]     ; distance - 10 (the word at slot + 32)
        add   ip, pc            ; ip = the record (PC reads as slot + 10 here)
        ldr.w r0, [ip, #4]      ; the variable
        ldr.w r1, [ip, #8]      ; the data
        str   r1, [r0]          ; *variable = data
        ldr.w r0, [ip]          ; the function (odd: Thumb)
        mov   ip, r1            ; the data stays in ip (trampoline_r)
        ldr   r1, [sp, #4]      ; r1 back
        str   r0, [sp, #4]      ; the function where r1 was saved
        pop   {r0, pc}          ; r0 back, and on to the function with lr untouched

    Only ip changes (the stack below sp is used for a moment, as an interrupt would), so
    the arguments in r0-r3 and on the stack arrive as the caller left them."""
    if distance < _ADD_PC + 4:
        raise LinkError(f"trampoline data {distance:#x} bytes away comes before its code")
    code = thumb(0xB403, *ldr_literal(IP, _literal_offset(2, _RECORD_LITERAL)), add_pc(IP),
                 *ldr_immediate(0, IP, TRAMPOLINE_VARIABLE), *ldr_immediate(1, IP, TRAMPOLINE_DATA),
                 0x6001, *ldr_immediate(0, IP, TRAMPOLINE_FUNCTION), mov_register(IP, 1),
                 0x9901, 0x9001, 0xBD01, NOP)
    code += words(distance - (_ADD_PC + 4))
    return pad(code, TRAMPOLINE_SLOT)


_CALL_RECORD_LITERAL = 24
_CALL_ADD_PC = 8


def calling_trampoline_code(distance: int, register: str) -> bytes:
    """One slot of a trampoline that *calls* its function with ``register`` holding the
    data, and gives the caller's value of that register back (callbacks into a PIC module
    whose base register the caller uses: an NXFLAT program's r10 or r9)::

        push.w {rB, lr}         ; the caller's base register and return address
        ldr.w  ip, [pc, #16]    ; distance - 12 (the word at slot + 24)
        add    ip, pc           ; ip = the record (PC reads as slot + 12 here)
        ldr.w  rB, [ip, #8]     ; the data: the module's base
        ldr.w  ip, [ip]         ; the function
        blx    ip
        pop.w  {rB, pc}         ; the caller's base register back, and return

    Seven instructions and 8 bytes of stack per call. The stack the function sees is 8
    bytes lower than its caller's, so a function taking arguments on the stack (a fifth
    argument word) would not find them: callbacks take at most four argument words."""
    base = REGISTER_NUMBERS[register]
    if base in (IP, SP, PC, 14) or base < 4:
        raise LinkError(f"{register} cannot be a base register a trampoline sets")
    if distance < _CALL_ADD_PC + 4:
        raise LinkError(f"trampoline data {distance:#x} bytes away comes before its code")
    code = thumb(*push_wide(base, 14), *ldr_literal(IP, _literal_offset(4, _CALL_RECORD_LITERAL)),
                 add_pc(IP), *ldr_immediate(base, IP, TRAMPOLINE_DATA),
                 *ldr_immediate(IP, IP, TRAMPOLINE_FUNCTION), 0x47E0, *pop_wide(base, PC))
    code += words(distance - (_CALL_ADD_PC + 4))
    return pad(code, TRAMPOLINE_SLOT)


# -- NXFLAT's import thunks ------------------------------------------------------------------
IMPORT_THUNK_SIZE = 16


def import_thunk(base_register: str, literal: int) -> bytes:
    """The code NXFLAT modules reach an imported function through: the function's address is
    the word at ``base + literal + 4`` (``i_funcaddress`` of its import entry in D-space)::

        ldr.w ip, [pc, #8]      ; the literal below
        add   ip, <base>        ; r10 (NXFLAT ABI v1) or r9 (v2)
        ldr.w ip, [ip, #4]
        bx    ip
        .word literal

    (16 bytes; word-aligned, so that the literal is the word the load reads)."""
    base = REGISTER_NUMBERS[base_register]
    add = 0x4400 | ((IP >> 3) << 7) | (base << 3) | (IP & 7)
    return thumb(*ldr_literal(IP, 8), add, *ldr_immediate(IP, IP, 4), 0x4760) + words(literal)


def code_padding(offset: int, align: int) -> bytes:
    """What the assembler puts between Thumb code at ``offset`` and the next ``align``
    boundary: a zero byte to reach a halfword, then ``nop``s."""
    gap = -offset % align
    return b"\0" * (gap % 2) + thumb(*[NOP] * (gap // 2))


# -- cache maintenance ----------------------------------------------------------------------
CACHE_LINE = 32  # bytes per cache line of the Armv7-M caches (Cortex-M7; the M3 has none)


def cache_lines(address: int, size: int) -> range:
    """The addresses of the cache lines that [address, address+size) touches."""
    if size <= 0:
        return range(0)
    first = address - address % CACHE_LINE
    return range(first, address + size, CACHE_LINE)


def cache_maintenance(address: int, size: int) -> list[tuple[str, int]]:
    """What makes code written at [address, address+size) executable on Armv7-M, as
    (operation, address) steps: clean each data cache line to the point of unification
    (``SCB->DCCMVAU``), ``dsb``, invalidate each instruction cache line (``SCB->ICIMVAU``),
    ``dsb``, ``isb`` (drop instructions already fetched). A core without caches (the M3)
    needs the barriers only."""
    lines = cache_lines(address, size)
    return ([("dccmvau", a) for a in lines] + [("dsb", 0)]
            + [("icimvau", a) for a in lines] + [("dsb", 0), ("isb", 0)])


# -- emulation ------------------------------------------------------------------------------
_REGISTER_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14",
                     "pc": "r15"}


def unicorn_register(name: str) -> str:
    """``"r3"`` -> ``"UC_ARM_REG_R3"``, ``"ip"`` -> ``"UC_ARM_REG_R12"``, ``"xpsr"`` ->
    ``"UC_ARM_REG_XPSR"``."""
    name = _REGISTER_ALIASES.get(name.lower(), name.lower())
    return f"UC_ARM_REG_{name.upper()}"


EMULATION = Emulation(
    uc_arch="UC_ARCH_ARM",
    uc_mode=("UC_MODE_THUMB", "UC_MODE_MCLASS"),
    uc_cpu="UC_CPU_ARM_CORTEX_M3",
    uc_constants="unicorn.arm_const",
    register=unicorn_register,
    arguments=("r0", "r1", "r2", "r3"),
    result="r0",
    link_register="lr",
    stack_pointer="sp",
    stack_alignment=8,  # AAPCS: 8 at every public interface
    linkage_area=0,
    stack_arguments=0,
    back_chain=False,
    wide_argument=("r1", "r0"),  # a long long: low word in r0
    trap=thumb(UDF),
    instruction_size=2,
    initial_registers={},
    static_registers={},
    # An STM32-like map: flash (the firmware, and NXFLAT programs executed in place) and
    # SRAM, 384 MiB apart, so that calls between them need veneers.
    default_memory=((0x0800_0000, 4 * MiB, "FLASH"), (0x2000_0000, 1 * MiB, "SRAM")),
    cache_line=CACHE_LINE,
    cache_maintenance=cache_maintenance,
    page_size=1024,  # unicorn's granule for ARM
    rom_region="FLASH",
    ram_region="SRAM",
    vector_table=True,  # a located program boots from its vector table (linkload locate --run)
)

ARCH = Arch(
    name="arm",
    bits=32,
    byteorder="<",
    kinds=KINDS,
    unsupported=UNSUPPORTED,
    linked_values=LINKED_VALUES,
    # REL32 and movw/movt reach the whole space; placement takes the branches' reach.
    pcrel_reach=1 << 31,
    branch_reach=16 * MiB,  # Thumb BL and B.W
    veneer=Veneer(VENEER_SIZE, veneer),
    got_entry_size=4,
    pointer_kind=R_ARM_ABS32,
    branch_bias=THUMB_BIAS,
    code_alignment=4,
    code_tag=THUMB_BIT,
    aliases=("cortex-m3",),
    stubs=CallStubs(UNRESOLVED_STUB_SIZE, unresolved_stub, ATEXIT_STUB_SIZE, atexit_stub),
    trampolines=TrampolineCode(TRAMPOLINE_SLOT, trampoline_code, TRAMPOLINE_REGISTER,
                               calling_trampoline_code),
    emulation=EMULATION,
    disassembly=Disassembly("CS_ARCH_ARM", ("CS_MODE_THUMB", "CS_MODE_MCLASS")),
)
