"""What a CPU file declares: relocation kinds as (expression, field), and the optional parts a
space or a tool asks for.

As in lld, a relocation kind is split into an *expression* (what value is computed: S+A, S+A-P,
a GOT slot, ...) and a *field* (where the value goes in the instruction or word, and which
overflow check applies). :class:`Arch` holds those relocation facts and the range-extension
veneer; everything else a CPU can offer is an optional part, declared as a field that is
``None`` where the CPU lacks it, and checked by whoever needs it when it is built:

* :class:`CallStubs`: the code the linker puts in a module for calls that wait for a module
  not linked yet, and a module's own ``atexit``;
* :class:`TrampolineCode`: ffcall-style closures (:mod:`linkload.trampoline`);
* :class:`NativeHost`: what running modules in this very process needs (the CPython bridge,
  instruction-cache coherence, the user address space);
* :class:`Emulation`: what an emulated space needs (unicorn's names, registers, the ABI);
* :class:`Disassembly`: capstone's names for the CPU (``linkload dump --disasm``).
* :class:`LinkedValues`: how a linked program's fields that do not decode to their value
  alone give it back (the locator reading a ``REL`` table).
* :class:`Paging`: the CPU's page tables (their entries' encoding, how a walk reads them) and
  how paging is turned on (the locator's ``Locate PageTable``, a located program's run).

This file only describes; :mod:`.fields` evaluates and encodes, a whole numpy column at a time.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class Expr(enum.Enum):
    """What a relocation computes. S: target address, A: addend, P: address of the field,
    G: address of the target's GOT slot, GOT: address of the module's GOT, Z: target size."""

    NONE = "none"  # nothing is written
    ABS = "S+A"
    PCREL = "S+A-P"
    BRANCH = "S+A-P (via a veneer when out of reach)"
    GOT_PCREL = "G+A-P"
    GOT_OFF = "S+A-GOT"
    GOT_PC = "GOT+A-P"
    GOT_SLOT = "G+A-GOT"
    SIZE = "Z+A"


EXPR_CODES = {expr: i for i, expr in enumerate(Expr)}
# Expressions that need a GOT slot for their target.
GOT_EXPRS = (Expr.GOT_PCREL, Expr.GOT_SLOT)
# Expressions measured from the place of the field.
PC_RELATIVE = (Expr.PCREL, Expr.BRANCH)


class Check(enum.Enum):
    """The overflow check of a field, on the value after its adjustment."""

    NONE = "none"
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    BITFIELD = "signed or unsigned"


@dataclass(frozen=True)
class Field:
    """A field of ``size`` bytes (the container read and written) whose bits ``mask`` receive
    the value.

    The value is first adjusted: ``round_ha`` adds 0x8000 (PowerPC @ha), then it is shifted
    right by ``shift``; the adjusted value must lie in :attr:`bounds` and be a multiple of
    ``align``; then ``value & mask`` replaces the masked bits of the container. CPUs whose
    fields scatter their bits (Thumb-2 branches) subclass and override :meth:`encode` and
    :meth:`decode`.

    ``place_align``: a PC-relative field measured from its place rounded down to a multiple
    of this (ARM's ``Pa``: literal loads in Thumb code count from the word holding them), so
    its value is S+A-(P & -place_align).
    """

    size: int
    mask: int
    bits: int
    check: Check
    shift: int = 0
    round_ha: bool = False
    align: int = 1
    place_align: int = 1

    @property
    def whole(self) -> bool:
        """True if the value fills the whole container, so its old contents do not matter."""
        return self.mask == (1 << (8 * self.size)) - 1

    @property
    def bounds(self) -> tuple[int, int]:
        """The smallest and the largest adjusted value the field takes, both inclusive (the
        one range convention of linkload)."""
        if self.check is Check.NONE or self.bits >= 64:
            return INT64_MIN, INT64_MAX
        b = self.bits
        low = 0 if self.check is Check.UNSIGNED else -(1 << (b - 1))
        high = (1 << (b - 1)) - 1 if self.check is Check.SIGNED else (1 << b) - 1
        return low, high

    def encode(self, containers: np.ndarray | None, values: np.ndarray) -> np.ndarray:
        """New container contents; ``containers`` may be None for a :attr:`whole` field."""
        if containers is None:
            return values
        mask = np.uint64(self.mask)
        return (containers & ~mask) | (values.astype(np.uint64) & mask)

    def decode(self, containers: np.ndarray) -> np.ndarray:
        """The addend stored in the field (ELF REL tables), sign-extended where signed."""
        raw = (containers & np.uint64(self.mask)).astype(np.int64)
        if self.check in (Check.SIGNED, Check.BITFIELD) and self.bits < 64:
            top = np.int64(1 << (self.bits - 1))
            raw = np.where(raw & top, raw - np.int64(1 << self.bits), raw)
        return raw << np.int64(self.shift)


@dataclass(frozen=True)
class Kind:
    """One relocation kind of a CPU: its name, what it computes and where the value goes.

    ``branch_bias``: where a branch of this kind measures from, past its place (None: the
    CPU's :attr:`Arch.branch_bias`); a CPU with two instruction sets (ARM: 8 in A32, 4 in
    Thumb) gives it per kind."""

    name: str
    expr: Expr
    field: Field | None
    relaxable: bool = False  # the arch may rewrite the instruction to a direct form
    branch_bias: int | None = None

    @property
    def writes(self) -> bool:
        """False for kinds that patch nothing (R_*_NONE, markers)."""
        return self.field is not None and self.expr is not Expr.NONE


@dataclass(frozen=True)
class KindTables:
    """Per-kind properties as arrays indexed by kind number, so that a whole relocation table
    is evaluated with a few column operations instead of a pass per kind."""

    known: np.ndarray  # bool
    expr: np.ndarray  # EXPR_CODES
    pcrel: np.ndarray  # bool: the value is measured from the place (S+A-P)
    branch: np.ndarray  # bool: a branch, which may go through a veneer
    width: np.ndarray  # container bytes (0: nothing written)
    low: np.ndarray  # smallest value the adjusted value may take
    high: np.ndarray  # largest
    mask: np.ndarray  # uint64 bits of the container that receive the value
    shift: np.ndarray
    round: np.ndarray  # added before the shift (0x8000 for @ha)
    align: np.ndarray
    whole: np.ndarray  # bool: the value fills the container
    plain: np.ndarray  # bool: the generic Field (no scattered bits)
    bias: np.ndarray  # a branch's value is measured from P + bias
    place_mask: np.ndarray  # P & place_mask is added back to a PC-relative value (Field.place_align)


# -- the optional parts -----------------------------------------------------------------------
@dataclass(frozen=True)
class Veneer:
    """A range-extension veneer: ``code(address, target)`` is ``size`` bytes that, placed at
    ``address`` and entered by a branch, go on to ``target`` from anywhere, clobbering only
    what the ABI lets a call clobber."""

    size: int
    code: Callable[[int, int], bytes]


@dataclass(frozen=True)
class CallStubs:
    """Code the linker writes into a module for its calls.

    ``unresolved(context, handler)``: calls ``handler(context)`` in place of a function no
    module defines yet, whose result goes straight back to the caller. ``atexit(address,
    dso_handle, cxa_atexit)``: a module's own ``atexit(f)``, which is
    ``__cxa_atexit(f, 0, dso_handle)``."""

    unresolved_size: int
    unresolved: Callable[[int, int], bytes]
    atexit_size: int
    atexit: Callable[[int, int, int], bytes]


@dataclass(frozen=True)
class TrampolineCode:
    """ffcall-style trampolines: ``code(distance)`` is one ``slot``-byte slot of code that
    reads its record (function, variable, data words) ``distance`` bytes further on;
    ``register`` is where the register form passes its data.

    ``calls(distance, register)`` (optional): a slot that *calls* the function with
    ``register`` holding the data and gives the caller's value of it back when the function
    returns: the way into position-independent code whose base register its callers use
    for their own ends (an NXFLAT program's r10 or r9, entered from the firmware)."""

    slot: int
    code: Callable[[int], bytes]
    register: str
    calls: Callable[[int, str], bytes] | None = None


@dataclass(frozen=True)
class NativeHost:
    """What linking into this very process needs of its CPU.

    ``machines``: what ``os.uname().machine`` says on it. ``python_bridge(api, callable,
    format)``: code for ``long f(long)`` that calls a Python callable through the CPython
    functions named in ``python_api``. ``coherent_instruction_cache``: False where code
    written must be made visible to instruction fetch (libgcc's ``__clear_cache``).
    ``highest_address``: the top of the user address space. ``return_code``: a function
    that returns at once (GDB's JIT interface wants one to set its breakpoint in)."""

    machines: tuple[str, ...]
    python_bridge: Callable[[dict[str, int], int, int], bytes]
    python_api: tuple[str, ...]
    coherent_instruction_cache: bool
    highest_address: int
    return_code: bytes = b""


@dataclass(frozen=True)
class Emulation:
    """What an emulated space needs to know about a CPU (unicorn's names as strings, so that
    an arch file does not need unicorn)."""

    uc_arch: str  # unicorn constant names
    uc_mode: tuple[str, ...]
    uc_cpu: str | None
    uc_constants: str  # module holding the register constants
    register: Callable[[str], str]  # ABI register name -> unicorn constant name
    arguments: tuple[str, ...]  # integer argument registers, in order
    result: str
    # where a call leaves its return address; None: the call pushes it, so that a callee
    # finds it at the stack pointer and returns by popping it (x86)
    link_register: str | None
    stack_pointer: str
    stack_alignment: int
    linkage_area: int  # bytes above the stack pointer a callee may use (back chain, LR save)
    # offset from the callee's stack pointer of the first argument on the stack (past the
    # return address, where a call pushes it)
    stack_arguments: int
    back_chain: bool  # the word at the stack pointer points to the caller's frame
    # a 64-bit argument's registers, most significant first; empty: it takes the first two
    # argument words on the stack, in the CPU's byte order
    wide_argument: tuple[str, ...]
    trap: bytes  # an instruction that always faults: host stubs and return addresses
    instruction_size: int
    initial_registers: dict[str, int]  # set once when the CPU is created
    static_registers: dict[str, str]  # register -> static-module symbol that sets it
    default_memory: tuple[tuple[int, int, str], ...]  # (base, size, name)
    cache_line: int  # instruction cache block; 0: the caches are coherent
    cache_maintenance: Callable[[int, int], list[tuple[str, int]]] | None = None
    program_counter: str = "pc"
    page_size: int = 4096  # unicorn's protection granule
    # Regions of default_memory where code executed in place (flash, a ROMFS) and programs'
    # data (RAM) go (None: wherever the linker places them).
    rom_region: str | None = None
    ram_region: str | None = None
    # The CPU starts from a vector table in memory: its word 0 is the initial stack pointer,
    # its word 1 the reset handler (Cortex-M). False: a program is entered at its entry point.
    vector_table: bool = False


@dataclass(frozen=True)
class LinkedValues:
    """How the fields of a linked program give back the value the linker wrote into them
    (S+A, the addend of a ``REL`` table being recovered from it), where decoding a field on
    its own does not: a field holding part of its value (ARM's ``movw``/``movt`` halves,
    found from each other) or one that drops a bit of it (the Thumb bit, which a call tells
    by being ``BL`` or ``BLX``).

    ``kinds``: the kinds concerned. ``values(kind, place, symbol, target, containers)``: for
    one section's rows of those kinds (the kind, the field's address, the symbol row named,
    that symbol's value, the field's container as read), each row's value S+A and whether it
    was found (False: the field does not give it back, such as a high half whose low half is
    nowhere to be found)."""

    kinds: frozenset[int]
    values: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                     tuple[np.ndarray, np.ndarray]]


class PageAccess(enum.IntFlag):
    """What a page lets code do. ``NONE``: nothing (the page is not present); ``READ``,
    ``WRITE``; ``USER``: code of the least privilege may too (x86's CPL 3), where without it
    only the supervisor may. Whether a page may be executed is not said: the CPUs here with
    paging cannot forbid it (i386's two-level tables have no no-execute bit)."""

    NONE = 0
    READ = 1
    WRITE = 2
    USER = 4


@dataclass(frozen=True)
class Paging:
    """A CPU's paging: page tables in memory that translate virtual addresses to physical
    ones, a page at a time.

    ``page_size``: bytes of a page; ``area_size``: the memory one page table maps (the root
    table, the page directory, holds one entry per area); ``table_size``: bytes of the root
    table and of each page table; ``entry_size``: bytes of an entry of either.

    ``tables(base, virtual, physical, access)``: the bytes of the root table at ``base`` (a
    physical address) followed by one page table per area used, mapping each page
    ``virtual[i]`` to ``physical[i]`` with ``access[i]`` (numpy columns of page addresses and
    :class:`PageAccess` values; every other page not present). An entry that is not present
    is all zeros, so an unused root entry reads as 0. ``walk(read, root, virtual)``: the
    (physical address, access) ``virtual`` translates to through the tables at ``root``
    (``read(address)`` gives the entry at a physical address), or None where a page is not
    present.

    Turning paging on (an emulated run, start-up code): ``root_register`` is loaded with the
    root table's address, then each ``(register, bits)`` of ``enable`` has those bits set. A
    page fault raises CPU exception ``fault_interrupt`` with the faulting virtual address in
    ``fault_address``.
    """

    page_size: int
    area_size: int
    table_size: int
    entry_size: int
    tables: Callable[[int, np.ndarray, np.ndarray, np.ndarray], bytes]
    walk: Callable[[Callable[[int], int], int, int], tuple[int, PageAccess] | None]
    root_register: str
    enable: tuple[tuple[str, int], ...]
    fault_interrupt: int
    fault_address: str

    def tables_size(self, areas: int) -> int:
        """Bytes of the root table and the page tables of ``areas`` areas."""
        return self.table_size * (1 + areas)

    def areas(self, ranges: list[tuple[int, int]]) -> int:
        """How many areas the address ranges ``[lo, hi)`` touch (the page tables they need)."""
        touched: set[int] = set()
        for lo, hi in ranges:
            if hi > lo:
                touched.update(range(lo // self.area_size, (hi - 1) // self.area_size + 1))
        return len(touched)


@dataclass(frozen=True)
class Disassembly:
    """capstone's names for the CPU (strings, so that an arch file does not need capstone)."""

    cs_arch: str
    cs_mode: tuple[str, ...]


# -- the CPU ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Arch:
    """Everything the linker and the tools need to know about one CPU.

    The relocation facts: ``kinds`` (number -> :class:`Kind`) and ``unsupported`` (number ->
    ``"NAME: why"``), the reach of a PC-relative data reference and of a direct branch (both
    reach ``[P - reach, P + reach)``), the kind that stores a whole address (``pointer_kind``:
    GOT slots are rebound with it) and the range-extension :class:`Veneer`. The other parts
    are optional: see the module docstring.
    """

    name: str
    bits: int
    byteorder: str
    kinds: Mapping[int, Kind]
    pcrel_reach: int
    branch_reach: int
    veneer: Veneer
    got_entry_size: int
    pointer_kind: int
    # A branch field's value is measured from P + branch_bias (x86-64: from the end of the
    # rel32, so a call's addend is -4 and a call landing exactly on X holds X - 4 - P).
    branch_bias: int = 0
    code_alignment: int = 16
    # Set in the address of code linkload writes (veneers, stubs, trampolines, an emulated
    # space's host stubs) wherever a branch, a pointer or a call leads to it: ARM's Thumb bit
    # (linkload's ARM code is Thumb code, and the address of Thumb code is odd).
    code_tag: int = 0
    # Other names the registry knows the CPU by (ARM: "cortex-m3", the CPU it is emulated as).
    aliases: tuple[str, ...] = ()
    # (kind, image, field positions, candidates, start of the fields' section in the image)
    # -> mask of the fields rewritten to a direct form (x86-64 GOTPCRELX); the caller then
    # writes S+A-P into them. Bytes before the section's start are never changed.
    relax: Callable[[int, np.ndarray, np.ndarray, np.ndarray, int | np.ndarray], np.ndarray] | None = None
    unsupported: Mapping[int, str] = field(default_factory=dict)
    # the values of a linked program's fields that do not decode to them alone (the locator)
    linked_values: LinkedValues | None = None
    stubs: CallStubs | None = None
    trampolines: TrampolineCode | None = None
    native: NativeHost | None = None
    emulation: Emulation | None = None
    disassembly: Disassembly | None = None
    paging: Paging | None = None

    @property
    def word_size(self) -> int:
        """Bytes of an address."""
        return self.bits // 8

    @functools.cached_property
    def tables(self) -> KindTables:
        """The kinds' properties as arrays indexed by kind number."""
        size = max(max(self.kinds), max(self.unsupported, default=0)) + 1
        t = {name: np.zeros(size, dtype) for name, dtype in (
            ("known", bool), ("expr", np.int64), ("pcrel", bool), ("branch", bool),
            ("width", np.int64), ("low", np.int64), ("high", np.int64), ("mask", np.uint64),
            ("shift", np.int64), ("round", np.int64), ("align", np.int64), ("whole", bool),
            ("plain", bool), ("bias", np.int64), ("place_mask", np.int64))}
        t["align"][:] = 1
        t["bias"][:] = self.branch_bias
        for number, kind in self.kinds.items():
            t["known"][number] = True
            t["expr"][number] = EXPR_CODES[kind.expr]
            t["pcrel"][number] = kind.expr in PC_RELATIVE
            t["branch"][number] = kind.expr is Expr.BRANCH
            if kind.branch_bias is not None:
                t["bias"][number] = kind.branch_bias
            f = kind.field
            if not kind.writes:
                t["expr"][number] = EXPR_CODES[Expr.NONE]
                continue
            t["width"][number] = f.size
            t["low"][number], t["high"][number] = f.bounds
            t["mask"][number] = f.mask
            t["shift"][number] = f.shift
            t["round"][number] = 0x8000 if f.round_ha else 0
            t["align"][number] = f.align
            t["whole"][number] = f.whole
            t["plain"][number] = type(f) is Field
            if kind.expr in PC_RELATIVE:
                t["place_mask"][number] = f.place_align - 1
        return KindTables(**t)

    def kind_name(self, kind: int) -> str:
        """``R_X86_64_PC32`` for 2: the name of a kind, supported or not."""
        if kind in self.kinds:
            return self.kinds[kind].name
        if kind in self.unsupported:
            return self.unsupported[kind].split(":")[0]
        return f"relocation type {kind}"

    def unsupported_reason(self, kind: int) -> str:
        """Why a kind the CPU does not link is refused."""
        return self.unsupported.get(kind, "unknown relocation type").split(": ", 1)[-1]
