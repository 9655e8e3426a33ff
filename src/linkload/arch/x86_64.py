"""x86-64 (System V psABI, Linux): relocation kinds, the branch veneer, GOT relaxation, and the
code linkload runs in this very process.

Code reaches anything within ±2 GiB of itself: a call or jump (``R_X86_64_PLT32``) and a
``%rip``-relative data access (``R_X86_64_PC32``, ``GOTPCREL``) hold a signed 32-bit
displacement measured from the end of the field, which is why a call's addend is -4 and why
this file sets ``branch_bias`` to 4. Compilers assume the small code model: a whole program
within 2 GiB. ``-fno-pic`` code also takes absolute addresses in 32-bit fields
(``R_X86_64_32``/``32S``), so a module holding them must sit in the low 2 GiB. ``-fPIC``
code reaches what lies elsewhere through GOT slots (``GOTPCRELX``), which a linker may relax
to direct ``lea``/``call`` forms when the target is within reach: the instruction keeps its
length, one or two opcode bytes change (:func:`relax`). The CPU can be emulated too (unicorn's
long mode), to run programs the locator placed.

When no placement brings a call target within reach, the call goes through a 16-byte veneer
(``jmp *0(%rip)`` and the address): it clobbers no register, so it stands between any caller
and callee. r10 (GCC's static chain register) and r11 are free at every call: the trampolines
use them. The instruction and data caches are coherent: written code needs no flush.
"""

from __future__ import annotations

import struct

import numpy as np

from .base import (
    Arch,
    CallStubs,
    Check,
    Disassembly,
    Emulation,
    Expr,
    Field,
    Kind,
    NativeHost,
    TrampolineCode,
    Veneer,
)

WORD64 = Field(8, (1 << 64) - 1, 64, Check.NONE)
SIGNED32 = Field(4, 0xFFFF_FFFF, 32, Check.SIGNED)
UNSIGNED32 = Field(4, 0xFFFF_FFFF, 32, Check.UNSIGNED)
SIGNED16 = Field(2, 0xFFFF, 16, Check.SIGNED)
BITFIELD16 = Field(2, 0xFFFF, 16, Check.BITFIELD)
SIGNED8 = Field(1, 0xFF, 8, Check.SIGNED)
BITFIELD8 = Field(1, 0xFF, 8, Check.BITFIELD)

R_X86_64_GOTPCRELX = 41
R_X86_64_REX_GOTPCRELX = 42

KINDS: dict[int, Kind] = {
    0: Kind("R_X86_64_NONE", Expr.NONE, None),
    1: Kind("R_X86_64_64", Expr.ABS, WORD64),
    2: Kind("R_X86_64_PC32", Expr.PCREL, SIGNED32),
    3: Kind("R_X86_64_GOT32", Expr.GOT_SLOT, SIGNED32),
    4: Kind("R_X86_64_PLT32", Expr.BRANCH, SIGNED32),
    9: Kind("R_X86_64_GOTPCREL", Expr.GOT_PCREL, SIGNED32),
    10: Kind("R_X86_64_32", Expr.ABS, UNSIGNED32),
    11: Kind("R_X86_64_32S", Expr.ABS, SIGNED32),
    12: Kind("R_X86_64_16", Expr.ABS, BITFIELD16),
    13: Kind("R_X86_64_PC16", Expr.PCREL, SIGNED16),
    14: Kind("R_X86_64_8", Expr.ABS, BITFIELD8),
    15: Kind("R_X86_64_PC8", Expr.PCREL, SIGNED8),
    24: Kind("R_X86_64_PC64", Expr.PCREL, WORD64),
    25: Kind("R_X86_64_GOTOFF64", Expr.GOT_OFF, WORD64),
    26: Kind("R_X86_64_GOTPC32", Expr.GOT_PC, SIGNED32),
    27: Kind("R_X86_64_GOT64", Expr.GOT_SLOT, WORD64),
    28: Kind("R_X86_64_GOTPCREL64", Expr.GOT_PCREL, WORD64),
    29: Kind("R_X86_64_GOTPC64", Expr.GOT_PC, WORD64),
    30: Kind("R_X86_64_GOTPLT64", Expr.GOT_SLOT, WORD64),
    31: Kind("R_X86_64_PLTOFF64", Expr.GOT_OFF, WORD64),
    32: Kind("R_X86_64_SIZE32", Expr.SIZE, UNSIGNED32),
    33: Kind("R_X86_64_SIZE64", Expr.SIZE, WORD64),
    R_X86_64_GOTPCRELX: Kind("R_X86_64_GOTPCRELX", Expr.GOT_PCREL, SIGNED32, relaxable=True),
    R_X86_64_REX_GOTPCRELX: Kind("R_X86_64_REX_GOTPCRELX", Expr.GOT_PCREL, SIGNED32,
                                 relaxable=True),
    43: Kind("R_X86_64_CODE_4_GOTPCRELX", Expr.GOT_PCREL, SIGNED32),
}

_TLS = "thread-local storage is not supported; use a global variable or a thread-specific key"
_DYNAMIC = "a dynamic relocation, which does not belong in an object file"
UNSUPPORTED = {
    5: f"R_X86_64_COPY: {_DYNAMIC}",
    6: f"R_X86_64_GLOB_DAT: {_DYNAMIC}",
    7: f"R_X86_64_JUMP_SLOT: {_DYNAMIC}",
    8: f"R_X86_64_RELATIVE: {_DYNAMIC}",
    16: f"R_X86_64_DTPMOD64: {_TLS}",
    17: f"R_X86_64_DTPOFF64: {_TLS}",
    18: f"R_X86_64_TPOFF64: {_TLS}",
    19: f"R_X86_64_TLSGD: {_TLS}",
    20: f"R_X86_64_TLSLD: {_TLS}",
    21: f"R_X86_64_DTPOFF32: {_TLS}",
    22: f"R_X86_64_GOTTPOFF: {_TLS}",
    23: f"R_X86_64_TPOFF32: {_TLS}",
    34: f"R_X86_64_GOTPC32_TLSDESC: {_TLS}",
    35: f"R_X86_64_TLSDESC_CALL: {_TLS}",
    36: f"R_X86_64_TLSDESC: {_TLS}",
    37: "R_X86_64_IRELATIVE: indirect functions (ifunc) are not supported",
    38: f"R_X86_64_RELATIVE64: {_DYNAMIC}",
}

_MOV, _LEA = 0x8B, 0x8D  # mov r/m64,r64 and lea: same ModRM, so one byte changes
_CALL_INDIRECT = (0xFF, 0x15)  # call *disp32(%rip)
_ADDR32_CALL = (0x67, 0xE8)  # addr32 call rel32: same length, a direct call


def relax(kind: int, image: np.ndarray, positions: np.ndarray, candidates: np.ndarray,
          section_start: int | np.ndarray) -> np.ndarray:
    """Rewrite GOT loads whose target is in reach to direct forms (psABI "GOTPCRELX").

    ``mov foo@GOTPCREL(%rip), %reg`` becomes ``lea foo(%rip), %reg`` and
    ``call *foo@GOTPCREL(%rip)`` becomes ``addr32 call foo``; the field stays at the same
    place, so the caller writes S+A-P into it. The opcode and ModRM bytes before a field must
    lie in the field's own section, which starts at ``section_start`` in ``image`` (one
    number, or one per field): the bytes before it belong to another section. Returns the
    mask of rewritten fields.
    """
    if not candidates.any():
        return np.zeros(len(positions), bool)
    pos = positions.astype(np.int64)
    safe = candidates & (pos >= section_start + 2)
    # the two bytes before each field (a field too near the image's start reads its end,
    # through numpy's negative indices: those rows are not safe and are left alone)
    opcode, modrm = image[pos - 2], image[pos - 1]
    done = safe & (opcode == _MOV) & ((modrm & 0xC7) == 0x05)  # mov from a rip-relative slot
    image[pos[done] - 2] = _LEA
    if kind == R_X86_64_GOTPCRELX:
        call = safe & (opcode == _CALL_INDIRECT[0]) & (modrm == _CALL_INDIRECT[1])
        image[pos[call] - 2] = _ADDR32_CALL[0]
        image[pos[call] - 1] = _ADDR32_CALL[1]
        done |= call
    return done


VENEER_SIZE = 16


def veneer(address: int, target: int) -> bytes:
    """``jmp *0(%rip)`` followed by the target's address: reaches anywhere, clobbers nothing."""
    return b"\xff\x25\x00\x00\x00\x00" + struct.pack("<Q", target & (1 << 64) - 1) + b"\xcc\xcc"


UNRESOLVED_STUB_SIZE = 32


def unresolved_stub(context: int, handler: int) -> bytes:
    """``movabs $context, %rdi; movabs $handler, %r11; jmp *%r11``: calls ``handler(context)``
    in place of the missing function, whose result goes straight back to the caller."""
    code = b"\x48\xbf" + struct.pack("<Q", context) + b"\x49\xbb" + struct.pack("<Q", handler)
    code += b"\x41\xff\xe3"
    return code + b"\xcc" * (UNRESOLVED_STUB_SIZE - len(code))


def python_bridge(api: dict[str, int], callable_address: int, format_address: int) -> bytes:
    """Code for ``long f(long context)`` that calls a Python callable through the CPython API:
    ``PyGILState_Ensure``, ``PyObject_CallFunction(callable, "l", context)``,
    ``PyLong_AsLong``, ``Py_DecRef``, ``PyGILState_Release``. Unlike a ctypes callback (a libffi
    closure, which maps a writable and executable page here), it lives in linkload's own
    read+execute memory. ``api`` maps those names (and ``PyErr_Print``) to addresses."""

    def movabs(reg_code: bytes, value: int) -> bytes:
        return reg_code + struct.pack("<Q", value)

    call_rax = b"\xff\xd0"
    body_ok = (b"\x48\x89\xc7"  # mov rdi, rax
               + movabs(b"\x48\xb8", api["PyLong_AsLong"]) + call_rax
               + b"\x48\x89\xc3"  # mov rbx, rax: the result
               + b"\x4c\x89\xef"  # mov rdi, r13
               + movabs(b"\x48\xb8", api["Py_DecRef"]) + call_rax)
    body_error = (movabs(b"\x48\xb8", api["PyErr_Print"]) + call_rax
                  + b"\x31\xdb")  # xor ebx, ebx: 0 when the call raised
    body_ok += b"\xeb" + bytes([len(body_error)])  # jmp over the error path
    code = (b"\x53\x41\x54\x41\x55"  # push rbx; push r12; push r13 (stack now aligned)
            + b"\x48\x89\xfb"  # mov rbx, rdi: the context
            + movabs(b"\x48\xb8", api["PyGILState_Ensure"]) + call_rax
            + b"\x41\x89\xc4"  # mov r12d, eax: the GIL state
            + movabs(b"\x48\xbf", callable_address)
            + movabs(b"\x48\xbe", format_address)
            + b"\x48\x89\xda"  # mov rdx, rbx
            + b"\x31\xc0"  # xor eax, eax: no vector registers for the varargs call
            + movabs(b"\x49\xbb", api["PyObject_CallFunction"]) + b"\x41\xff\xd3"
            + b"\x49\x89\xc5"  # mov r13, rax
            + b"\x48\x85\xc0"  # test rax, rax
            + b"\x74" + bytes([len(body_ok)])  # jz error
            + body_ok + body_error
            + b"\x44\x89\xe7"  # mov edi, r12d
            + movabs(b"\x48\xb8", api["PyGILState_Release"]) + call_rax
            + b"\x48\x89\xd8"  # mov rax, rbx
            + b"\x41\x5d\x41\x5c\x5b\xc3")  # pop r13; pop r12; pop rbx; ret
    return code


PYTHON_API = ("PyGILState_Ensure", "PyGILState_Release", "PyObject_CallFunction", "PyLong_AsLong",
              "Py_DecRef", "PyErr_Print")


ATEXIT_STUB_SIZE = 32


def atexit_stub(address: int, dso_handle: int, cxa_atexit: int) -> bytes:
    """A module's own ``atexit(f)``: ``__cxa_atexit(f, 0, &__dso_handle)``, as glibc's
    libc_nonshared.a defines it, so the handler runs when the module is unlinked."""
    code = b"\x31\xf6"  # xor esi, esi
    code += b"\x48\x8d\x15" + struct.pack("<i", dso_handle - (address + 9))  # lea rdx, [rip+]
    code += b"\x48\xb8" + struct.pack("<Q", cxa_atexit) + b"\xff\xe0"  # movabs rax; jmp rax
    return code + b"\xcc" * (ATEXIT_STUB_SIZE - len(code))


# A trampoline slot is 32 bytes of code whose 32 bytes of data sit exactly one page further on
# (function, variable, data, scratch). The code is the same in every slot, so a page of it is
# written once and never again: allocating a trampoline only writes the data page.
TRAMPOLINE_SLOT = 32
TRAMPOLINE_REGISTER = "r10"


def trampoline_code(distance: int) -> bytes:
    """One slot of trampoline code whose data lies ``distance`` bytes after the slot:
    ``mov data(%rip), %r10; mov variable(%rip), %r11; mov %r10, (%r11); jmp *function(%rip)``.
    r10 (the static chain register) and r11 are free at a call; rax is not (varargs)."""
    code = b"\x4c\x8b\x15" + struct.pack("<i", distance + 16 - 7)
    code += b"\x4c\x8b\x1d" + struct.pack("<i", distance + 8 - 14)
    code += b"\x4d\x89\x13"
    code += b"\xff\x25" + struct.pack("<i", distance + 0 - 23)
    return code + b"\xcc" * (TRAMPOLINE_SLOT - len(code))


def unicorn_register(name: str) -> str:
    """``"rdi"`` -> ``"UC_X86_REG_RDI"``; ``"pc"`` and ``"sp"`` name ``rip`` and ``rsp``."""
    name = {"pc": "rip", "sp": "rsp"}.get(name.lower(), name.lower())
    return f"UC_X86_REG_{name.upper()}"


MiB = 1 << 20
UD2 = b"\x0f\x0b"  # an undefined instruction: always faults

# An emulated x86-64 (unicorn UC_MODE_64: long mode, flat segments), for programs placed by the
# locator: System V arguments in registers, the return address pushed by the call.
EMULATION = Emulation(
    uc_arch="UC_ARCH_X86",
    uc_mode=("UC_MODE_64",),
    uc_cpu=None,
    uc_constants="unicorn.x86_const",
    register=unicorn_register,
    arguments=("rdi", "rsi", "rdx", "rcx", "r8", "r9"),
    result="rax",
    link_register=None,  # a call pushes its return address
    stack_pointer="rsp",
    stack_alignment=16,
    linkage_area=0,
    stack_arguments=8,  # above the return address
    back_chain=False,
    wide_argument=("rdi",),  # a 64-bit argument fits one register
    trap=UD2,
    instruction_size=len(UD2),
    initial_registers={},
    static_registers={},
    default_memory=((0x0010_0000, 63 * MiB, "RAM"),),  # a null pointer faults
    cache_line=0,  # coherent caches
    program_counter="rip",
)

ARCH = Arch(
    name="x86_64",
    bits=64,
    byteorder="<",
    kinds=KINDS,
    unsupported=UNSUPPORTED,
    pcrel_reach=1 << 31,
    branch_reach=1 << 31,
    veneer=Veneer(VENEER_SIZE, veneer),
    got_entry_size=8,
    pointer_kind=1,
    branch_bias=4,
    code_alignment=16,
    relax=relax,
    stubs=CallStubs(UNRESOLVED_STUB_SIZE, unresolved_stub, ATEXIT_STUB_SIZE, atexit_stub),
    trampolines=TrampolineCode(TRAMPOLINE_SLOT, trampoline_code, TRAMPOLINE_REGISTER),
    native=NativeHost(
        machines=("x86_64", "amd64"),
        python_bridge=python_bridge,
        python_api=PYTHON_API,
        coherent_instruction_cache=True,
        highest_address=(1 << 47) - (1 << 12),  # the top of the 47-bit user address space
        return_code=b"\xc3",  # ret
    ),
    emulation=EMULATION,
    disassembly=Disassembly("CS_ARCH_X86", ("CS_MODE_64",)),
)
