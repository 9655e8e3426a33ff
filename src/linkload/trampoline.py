"""Trampolines (ffcall's closures): a code address that stores a data word and jumps on.

>>> from linkload import trampoline
>>> t = trampoline.alloc(function_address, variable_address, 42)   # doctest: +SKIP

``alloc(address, variable, data)`` returns a code address that stores ``data`` into
``*variable`` and jumps to ``address``: a C function that reads ``variable`` becomes a closure
over ``data``. ``alloc_register(address, data)`` passes ``data`` in a scratch register instead
(:func:`register`; on x86-64 ``r10``, the static-chain register, as in ffcall's
trampoline_r). ``free`` gives a trampoline back; ``is_trampoline`` and the accessors
``address``, ``variable`` and ``data`` read it. These functions work in this process; for other
spaces (an emulated CPU), make a :class:`TrampolinePool` on them.

Memory: a block is ``n`` pages of code followed by ``n`` pages of data. Every code slot is the
same position-independent code reading its function, variable and data from the slot one
block-half further on, so code pages are written once, made read+execute, and never written
again; allocating or freeing a trampoline writes only the read+write data pages. No page is
ever writable and executable at once, and nothing executable changes after it is made (the
"static trampolines" of libffi >= 3.4, which also keeps them fork-safe, unlike a shared dual
mapping).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from . import arch as arch_registry
from .arch import Arch
from .errors import LinkError, UnsupportedError
from .space import Protection, Space
from .space.native import NativeSpace

_FUNCTION, _VARIABLE, _DATA, _SCRATCH = 0, 1, 2, 3  # word indices in a slot's record


@dataclass
class _Block:
    base: int
    half: int  # bytes of code; the data starts at base + half
    slots: int
    free: list[int] = field(default_factory=list)  # never-used slots
    register_form: set[int] = field(default_factory=set)
    used: set[int] = field(default_factory=set)
    calls: str | None = None  # the calling form's base register (its own blocks), or None


class TrampolinePool:
    """Trampolines in one space, for one CPU (which must offer
    :class:`~linkload.arch.TrampolineCode`)."""

    def __init__(self, space: Space, arch: Arch, pages_per_block: int = 1) -> None:
        if arch.trampolines is None:
            raise UnsupportedError(f"no trampolines for the {arch.name} CPU yet")
        self.space = space
        self.arch = arch
        self.code = arch.trampolines
        self.pages = pages_per_block
        self._blocks: list[_Block] = []  # sorted by address
        # per code form (None: ffcall's; a register: the calling form setting it), the blocks
        # with never-used slots and the freed slots
        self._fresh: dict[str | None, list[_Block]] = {}
        self._recycled: dict[str | None, list[tuple[_Block, int]]] = {}
        self._starts: list[int] = []
        self._word = struct.Struct(arch.byteorder + ("Q" if arch.bits == 64 else "I"))

    @property
    def register(self) -> str:
        """The register :meth:`alloc_register` passes its data in."""
        return self.code.register

    # -- allocation ------------------------------------------------------------------------
    def alloc(self, function: int, variable: int, data: int) -> int:
        """A trampoline that stores ``data`` into ``*variable`` and jumps to ``function``."""
        if not variable:
            raise LinkError("a trampoline needs a variable to store its data in")
        return self._alloc(function, variable, data, register_form=False)

    def alloc_register(self, function: int, data: int) -> int:
        """A trampoline that passes ``data`` in :attr:`register` and jumps to ``function``."""
        return self._alloc(function, None, data, register_form=True)

    def alloc_call(self, function: int, register: str, data: int) -> int:
        """A trampoline that calls ``function`` with ``register`` holding ``data`` and gives
        the caller's value of ``register`` back when it returns (callbacks into a
        position-independent module: ``register`` is its base register, ``data`` its
        instance's data). The CPU's :class:`~linkload.arch.TrampolineCode` says what it
        costs and what it cannot pass (ARM: arguments on the stack)."""
        if self.code.calls is None:
            raise UnsupportedError(f"no calling trampolines for the {self.arch.name} CPU yet")
        return self._alloc(function, None, data, register_form=True, calls=register)

    def alloc_calls(self, functions: list[int], register: str, data: int) -> list[int]:
        """:meth:`alloc_call` for each of ``functions`` (with the same register and data),
        the records written a block at a time."""
        if self.code.calls is None:
            raise UnsupportedError(f"no calling trampolines for the {self.arch.name} CPU yet")
        slots = [self._take(register) for _ in functions]
        scratch = 0  # the register form's own scratch word: unused by the calling form
        records = [(block, slot, (function, scratch, data, 0))
                   for (block, slot), function in zip(slots, functions, strict=True)]
        self._write_records(records)
        for block, slot, _words in records:
            block.used.add(slot)
            block.register_form.add(slot)
        return [(block.base + slot * self.code.slot) | self.arch.code_tag for block, slot in slots]

    def free_many(self, trampolines: list[int]) -> None:
        """:meth:`free` for each of ``trampolines``, the records cleared a block at a time."""
        located = [self._locate(t) for t in trampolines]
        self._write_records([(block, slot, (0, 0, 0, 0)) for block, slot in located])
        for block, slot in located:
            block.used.discard(slot)
            block.register_form.discard(slot)
            self._recycled[block.calls].append((block, slot))

    def _write_records(self, records: list[tuple[_Block, int, tuple[int, ...]]]) -> None:
        """Write slots' records: runs of consecutive slots of a block in one write."""
        records = sorted(records, key=lambda r: (r[0].base, r[1]))
        run: list[tuple[_Block, int, tuple[int, ...]]] = []
        for record in [*records, None]:
            if run and (record is None or record[0] is not run[-1][0] or record[1] != run[-1][1] + 1):
                block, first = run[0][0], run[0][1]
                blob = b"".join(self._record(words) for _b, _s, words in run)
                self.space.write(block.base + block.half + first * self.code.slot, blob)
                run = []
            if record is not None:
                run.append(record)

    def _record(self, words: tuple[int, ...]) -> bytes:
        packed = b"".join(self._word.pack(w & self._mask) for w in words)
        return packed + bytes(self.code.slot - len(packed))

    def _take(self, calls: str | None) -> tuple[_Block, int]:
        """A free slot of the code form ``calls``: a freed one first, else a fresh one."""
        recycled = self._recycled.setdefault(calls, [])
        fresh = self._fresh.setdefault(calls, [])
        if recycled:  # freed slots first, most recently freed first
            return recycled.pop()
        block = fresh[-1] if fresh else self._new_block(calls)
        slot = block.free.pop()
        if not block.free:
            fresh.pop()
        return block, slot

    def _alloc(self, function: int, variable: int | None, data: int, *, register_form: bool,
               calls: str | None = None) -> int:
        block, slot = self._take(calls)
        address = block.base + slot * self.code.slot
        record = block.base + block.half + slot * self.code.slot
        if variable is None:
            variable = record + _SCRATCH * self._word.size  # the register form's own scratch word
        words = (function, variable, data, 0)
        self.space.write(record, b"".join(self._word.pack(w & self._mask) for w in words))
        block.used.add(slot)
        if register_form:
            block.register_form.add(slot)
        return address | self.arch.code_tag  # (ARM: the code is Thumb, entered at an odd address)

    @property
    def _mask(self) -> int:
        return (1 << self.arch.bits) - 1

    def _new_block(self, calls: str | None = None) -> _Block:
        space = self.space
        half = self.pages * space.page_size
        base = space.reserve(2 * half, space.page_size)
        slots = half // self.code.slot
        slot_code = self.code.code(half) if calls is None else self.code.calls(half, calls)
        code = slot_code * slots
        space.write(base, code)
        space.protect(base, half, Protection.READ_EXECUTE)
        space.flush(base, half)
        block = _Block(base, half, slots, free=list(range(slots - 1, -1, -1)), calls=calls)
        i = bisect.bisect(self._starts, base)
        self._starts.insert(i, base)
        self._blocks.insert(i, block)
        self._fresh[calls].append(block)
        return block

    def free(self, trampoline: int) -> None:
        """Give a trampoline's slot back (the next allocation reuses it)."""
        block, slot = self._locate(trampoline)
        record = block.base + block.half + slot * self.code.slot
        self.space.write(record, bytes(self.code.slot))
        block.used.discard(slot)
        block.register_form.discard(slot)
        self._recycled[block.calls].append((block, slot))

    # -- queries ---------------------------------------------------------------------------
    def is_trampoline(self, address: int) -> bool:
        """True if ``address`` is a live trampoline of this pool."""
        try:
            self._locate(address)
        except LinkError:
            return False
        return True

    def address(self, trampoline: int) -> int:
        """The function the trampoline jumps to."""
        return self._field(trampoline, _FUNCTION)

    def variable(self, trampoline: int) -> int | None:
        """The variable the trampoline stores into (None for the register form)."""
        block, slot = self._locate(trampoline)
        if slot in block.register_form:
            return None
        return self._field(trampoline, _VARIABLE)

    def data(self, trampoline: int) -> int:
        """The data word the trampoline passes."""
        return self._field(trampoline, _DATA)

    def live(self) -> int:
        """How many trampolines are allocated."""
        return sum(len(b.used) for b in self._blocks)

    def _field(self, trampoline: int, offset: int) -> int:
        """Word ``offset`` (one of _FUNCTION, _VARIABLE, _DATA) of a trampoline's record."""
        block, slot = self._locate(trampoline)
        record = block.base + block.half + slot * self.code.slot
        size = self._word.size
        return self._word.unpack(self.space.read(record + offset * size, size))[0]

    def _locate(self, address: int) -> tuple[_Block, int]:
        tag = self.arch.code_tag
        if address & tag != tag:
            raise LinkError(f"{address:#x} is not a trampoline")
        address &= ~tag
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            block = self._blocks[i]
            offset = address - block.base
            slot, rest = divmod(offset, self.code.slot)
            if offset < block.half and not rest and slot in block.used:
                return block, slot
        raise LinkError(f"{address:#x} is not a trampoline")


# -- trampolines in this process ----------------------------------------------------------------
_pool: TrampolinePool | None = None


def pool() -> TrampolinePool:
    """The process-wide pool of native trampolines."""
    global _pool
    if _pool is None:
        host = arch_registry.host()
        _pool = TrampolinePool(NativeSpace(arch=host), host)
    return _pool


def register() -> str:
    """The register :func:`alloc_register` passes its data in, on this CPU."""
    return pool().register


def alloc(address: int, variable: int, data: int) -> int:
    """A function that stores ``data`` into ``*variable`` and jumps to ``address``."""
    return pool().alloc(address, variable, data)


def alloc_register(address: int, data: int) -> int:
    """A function that passes ``data`` in :func:`register` and jumps to ``address``."""
    return pool().alloc_register(address, data)


def free(trampoline: int) -> None:
    pool().free(trampoline)


def is_trampoline(address: int) -> bool:
    return pool().is_trampoline(address)


def address(trampoline: int) -> int:
    return pool().address(trampoline)


def variable(trampoline: int) -> int | None:
    return pool().variable(trampoline)


def data(trampoline: int) -> int:
    return pool().data(trampoline)


def _host_register() -> str:
    try:
        host = arch_registry.host()
    except UnsupportedError:
        return ""  # linkload cannot run code in this process here
    return host.trampolines.register if host.trampolines is not None else ""


REGISTER = _host_register()  # where alloc_register's data arrives on this CPU (x86-64: r10)

__all__ = ["REGISTER", "TrampolinePool", "address", "alloc", "alloc_register", "data", "free",
           "is_trampoline", "pool", "register", "variable"]
