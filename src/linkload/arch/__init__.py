"""CPUs: one file per CPU, each mostly a table ``relocation kind -> (expression, field)``.

As in lld, a relocation kind is split into an *expression* (what value is computed: S+A, S+A-P,
a GOT slot, ...) and a *field* (where the value goes in the instruction or word, and which
overflow check applies). The linker evaluates expressions and encodes fields a whole numpy
column at a time; an arch file only describes them, plus its veneer and trampoline code.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


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


class Check(enum.Enum):
    NONE = "none"
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    BITFIELD = "signed or unsigned"


@dataclass(frozen=True)
class Field:
    """A field of ``size`` bytes (the container read and written) whose bits ``mask`` receive
    the value.

    The value is first adjusted: ``round_ha`` adds 0x8000 (PowerPC @ha), then it is shifted
    right by ``shift``; the adjusted value must pass ``check`` at ``bits`` bits and be a
    multiple of ``align``; then ``value & mask`` replaces the masked bits of the container.
    CPUs whose fields scatter their bits (Thumb-2 branches) subclass and override
    :meth:`encode` and :meth:`decode`.
    """

    size: int
    mask: int
    bits: int
    check: Check
    shift: int = 0
    round_ha: bool = False
    align: int = 1

    @property
    def whole(self) -> bool:
        """True if the value fills the whole container, so its old contents do not matter."""
        return self.mask == (1 << (8 * self.size)) - 1

    def adjust(self, values: np.ndarray) -> np.ndarray:
        if self.round_ha:
            values = values + np.int64(0x8000)
        if self.shift:
            values = values >> np.int64(self.shift)
        return values

    def fits(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of the adjusted values that pass the overflow and alignment checks."""
        ok = np.ones(len(values), bool)
        if self.check is not Check.NONE and self.bits < 64:
            low = -(1 << (self.bits - 1)) if self.check is not Check.UNSIGNED else 0
            high = (1 << self.bits) if self.check is not Check.SIGNED else (1 << (self.bits - 1))
            ok &= (values >= low) & (values < high)
        if self.align > 1:
            ok &= (values & np.int64(self.align - 1)) == 0
        return ok

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
    """One relocation kind of a CPU."""

    name: str
    expr: Expr
    field: Field | None
    relaxable: bool = False  # the arch may rewrite the instruction to a direct form


EXPR_CODES = {expr: i for i, expr in enumerate(Expr)}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True)
class KindTables:
    """Per-kind properties as arrays indexed by kind number, so that a whole relocation table
    is evaluated with a few column operations instead of a pass per kind."""

    known: np.ndarray  # bool
    expr: np.ndarray  # EXPR_CODES
    pcrel: np.ndarray  # bool: the value is measured from the place (S+A-P)
    width: np.ndarray  # container bytes (0: nothing written)
    low: np.ndarray  # smallest value the adjusted value may take
    high: np.ndarray  # largest
    mask: np.ndarray  # uint64 bits of the container that receive the value
    shift: np.ndarray
    round: np.ndarray  # added before the shift (0x8000 for @ha)
    align: np.ndarray
    whole: np.ndarray  # bool: the value fills the container
    plain: np.ndarray  # bool: the generic Field (no scattered bits)


def _bounds(field: Field) -> tuple[int, int]:
    if field.check is Check.NONE or field.bits >= 64:
        return INT64_MIN, INT64_MAX
    b = field.bits
    low = 0 if field.check is Check.UNSIGNED else -(1 << (b - 1))
    high = (1 << (b - 1)) - 1 if field.check is Check.SIGNED else (1 << b) - 1
    return low, high


@dataclass
class Arch:
    """Everything the linker needs to know about one CPU."""

    name: str
    bits: int
    byteorder: str
    kinds: dict[int, Kind]
    pcrel_reach: int  # a PC-relative data reference reaches [P - reach, P + reach)
    branch_reach: int  # a direct branch reaches [P - reach, P + reach)
    veneer_size: int
    veneer: Callable[[int, int], bytes]  # (veneer address, target) -> code
    got_entry_size: int
    pointer_kind: int
    # A branch field's value is measured from P + branch_bias (x86-64: the end of the rel32).
    branch_bias: int = 0  # the kind that stores a whole address (GOT slots are rebound with it)
    code_alignment: int = 16
    relax: Callable | None = None  # (kind, image, field positions, candidates) -> rewritten mask
    unsupported: dict[int, str] = field(default_factory=dict)  # kind -> why it is not supported
    unresolved_stub_size: int = 0
    unresolved_stub: Callable[[int, int], bytes] | None = None  # (context, handler) -> code
    trampoline_slot: int = 0  # bytes of code per trampoline; as many bytes of data follow
    trampoline_code: Callable[[int], bytes] | None = None  # (code-to-data distance) -> code
    trampoline_register: str = ""  # where alloc_register's data arrives
    python_bridge: Callable | None = None  # (api addresses, callable, format) -> code
    python_api: tuple[str, ...] = ()  # the CPython functions python_bridge calls
    atexit_stub_size: int = 0
    atexit_stub: Callable[[int, int, int], bytes] | None = None  # (at, dso handle, __cxa_atexit)

    @functools.cached_property
    def tables(self) -> KindTables:
        size = max(max(self.kinds), max(self.unsupported, default=0)) + 1
        t = {name: np.zeros(size, dtype) for name, dtype in (
            ("known", bool), ("expr", np.int64), ("pcrel", bool), ("width", np.int64), ("low", np.int64),
            ("high", np.int64), ("mask", np.uint64), ("shift", np.int64), ("round", np.int64),
            ("align", np.int64), ("whole", bool), ("plain", bool))}
        t["align"][:] = 1
        for number, kind in self.kinds.items():
            t["known"][number] = True
            t["expr"][number] = EXPR_CODES[kind.expr]
            t["pcrel"][number] = kind.expr in (Expr.PCREL, Expr.BRANCH)
            f = kind.field
            if f is None or kind.expr is Expr.NONE:
                t["expr"][number] = EXPR_CODES[Expr.NONE]
                continue
            t["width"][number] = f.size
            t["low"][number], t["high"][number] = _bounds(f)
            t["mask"][number] = f.mask
            t["shift"][number] = f.shift
            t["round"][number] = 0x8000 if f.round_ha else 0
            t["align"][number] = f.align
            t["whole"][number] = f.whole
            t["plain"][number] = type(f) is Field
        return KindTables(**t)

    def kind_name(self, kind: int) -> str:
        if kind in self.kinds:
            return self.kinds[kind].name
        if kind in self.unsupported:
            return self.unsupported[kind].split(":")[0]
        return f"relocation type {kind}"


_ARCH_MODULES = {"x86_64": "x86_64", "ppc": "ppc"}


def get(name: str) -> Arch:
    """The :class:`Arch` of CPU ``name`` (as a Module's ``machine`` names it)."""
    from ..errors import UnsupportedError

    module = _ARCH_MODULES.get(name)
    if module is None:
        raise UnsupportedError(f"no support for the {name} CPU yet")
    return importlib.import_module(f"{__name__}.{module}").ARCH
