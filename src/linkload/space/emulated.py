"""The emulated space: a CPU emulated by unicorn, its memory, and Python standing in for the
static module's functions.

Everything CPU-specific (unicorn's names for the CPU and its registers, the calling
convention, the trap instruction, the cache line, the default memory map) comes from the
CPU's :class:`~linkload.arch.Emulation` part; this file is the same for every CPU.

Memory
    The regions (default for ``"ppc"``: the Wii's MEM1, 24 MiB at 0x80000000, and MEM2,
    64 MiB at 0x90000000) are mapped when the space is made. :meth:`EmulatedSpace.reserve` is
    a first-fit allocator inside them that honours the linker's window, and takes an explicit
    ``region`` or ``address`` too. :meth:`EmulatedSpace.load_static` maps an executable's
    segments at their addresses (an ELF ``main.elf``, or a DOL read into the same shape).

Protection
    :meth:`EmulatedSpace.protect` records what the linker asks for (see
    :meth:`EmulatedSpace.protection`) but by default does not make unicorn enforce it: the
    console runs with one block-address translation covering all memory read+write+execute, a
    REL's image is one block whose sections share pages, and games patch their own code. With
    ``enforce_protection=True`` the pages wholly inside a protected range get unicorn
    permissions too, so emulated code that writes its own text or runs its data faults (the
    linker's own writes, like an OS's, are not affected).

Instruction cache
    Every byte written through the space is *stale* until :meth:`EmulatedSpace.flush` covers
    it (whole cache lines, as ``dcbst``/``icbi`` do). Running a stale byte stops the call with
    :class:`StaleCodeError`: that is how tests prove the linker keeps write, flush, execute in
    order. The check costs nothing where no stale code is run: unicorn calls back only for
    instructions inside the stale ranges. Stores by emulated code are not tracked. Flushing
    also drops unicorn's translations of the range, so rewritten code is really re-read.

Host functions
    :meth:`EmulatedSpace.host_function` lets ``fn(space, *args)`` stand in for a static-module
    function: emulated code calls it with an ordinary ``bl``, which reaches a trap instruction
    in a host-stub area (or the static function's own address); a unicorn code hook limited to
    those addresses runs ``fn`` with the argument registers (as unsigned words), puts the result
    in the result register and returns to the link register. ``fn`` may call back into
    emulated code with :meth:`EmulatedSpace.call`, which nests (qsort-like callbacks work);
    an error in the nested call ends the outer call too.

Paging
    :meth:`EmulatedSpace.enable_paging` turns the CPU's paging on (a CPU with a
    :class:`~linkload.arch.Paging` part) with page tables already in memory, as start-up code
    does; emulated code then runs at virtual addresses. The space's :meth:`~EmulatedSpace.read`
    and :meth:`~EmulatedSpace.write` stay physical, as a debugger's or a loader's are;
    :meth:`~EmulatedSpace.translate`, :meth:`~EmulatedSpace.read_virtual` and
    :meth:`~EmulatedSpace.write_virtual` go through the tables, and so do the frames a call
    stores on a program's stack. A page fault stops the call with an :class:`EmulationError`
    naming the virtual address and why it faulted. The instruction-cache check compares the
    addresses code runs at with the (physical) ranges written, so code run at virtual
    addresses other than its physical ones is not checked: flush before paging is on.

Calls
    :meth:`EmulatedSpace.call` sets up a stack frame and the argument registers, points the
    link register at a trap address where emulation stops, and runs with an instruction limit
    and a timeout. A fault raises :class:`EmulationError` (a ``LinkError``) naming the address
    and the fault.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .. import arch as arch_registry
from ..arch import Arch, Emulation, PageAccess, Paging
from ..arch.fields import gather, scatter
from ..errors import LinkError, UnsupportedError
from ..model import ABS, FILE_SYMBOL, LOCAL, SECTION_SYMBOL, Module
from . import Protection, Space, Window
from .regions import Intervals, Region, RegionMemory

HostFunction = Callable[..., "int | None"]

RETURN_TRAPS = 64  # nesting depth of calls: one return address per level
NESTED_GAP = 256  # bytes left below the interrupted code's stack pointer for a nested call
STACK_FLOOR = 1024  # a call needs at least this much stack left
# A program started on its own stack sized it itself (a small board's may be 1 KiB), so a
# call there needs only room for the frames made for it.
PROGRAM_STACK_FLOOR = 256


class _Watchdog:
    """One thread for every space that stops emulations running past their deadline.

    Unicorn's own timeout starts a thread for every run, which costs several times more
    than a short call; this one sleeps until the nearest deadline. ``stop`` is called with
    the lock held, so a run that ends at its deadline is either stopped (idle: harmless) or
    disarmed first, never stopped after the next run began."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, stop: Callable[[], None]) -> int:
        with self._lock:
            token = next(self._tokens)
            self._armed[token] = (time.monotonic() + seconds, stop)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="linkload-watchdog",
                                                daemon=True)
                self._thread.start()
            self._lock.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Forget ``token``; True if its deadline had passed (and the run was stopped)."""
        with self._lock:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _watch(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for token in [t for t, (deadline, _) in self._armed.items() if deadline <= now]:
                    _deadline, stop = self._armed.pop(token)
                    self._fired.add(token)
                    with contextlib.suppress(Exception):  # an engine gone: nothing to stop
                        stop()
                nearest = min((d for d, _ in self._armed.values()), default=None)
                self._lock.wait(None if nearest is None else nearest - now)


WATCHDOG = _Watchdog()


class EmulationError(LinkError):
    """Emulated code faulted, ran too long, or could not be started."""

    def __init__(self, message: str, *, address: int | None = None, fault: str | None = None) -> None:
        self.address = address
        self.fault = fault
        super().__init__(message)


class StaleCodeError(EmulationError):
    """Emulated code reached bytes written after the last instruction-cache flush of them."""


@dataclass
class _Host:
    """A Python function standing in for emulated code."""

    name: str
    function: HostFunction
    arity: int  # how many argument words it takes
    wide: bool = False  # host_callback: one 64-bit argument in a register pair


@dataclass
class _Runtime:
    """The space's own memory: the call stack and the host-stub areas."""

    stack_low: int
    stack_high: int
    traps: list[int]  # return addresses, one per nesting level
    stubs: list[int]  # free host-stub addresses


def emulation_of(arch_name: str) -> tuple[Arch, Emulation]:
    """The CPU ``arch_name`` and its description for emulation."""
    arch = arch_registry.get(arch_name)
    if arch.emulation is None:
        raise UnsupportedError(f"no emulation of the {arch_name} CPU yet")
    return arch, arch.emulation


@functools.cache
def _unicorn() -> ModuleType:
    """unicorn, imported when the first emulated space is made: it takes a tenth of a second,
    which nothing else in linkload needs to pay."""
    try:
        return importlib.import_module("unicorn")
    except ImportError:  # pragma: no cover - unicorn is a dependency
        raise UnsupportedError("the emulated space needs unicorn (pip install unicorn)") from None


class EmulatedSpace(Space):
    """A unicorn CPU and its memory as a space (see the module docstring).

    ``memory``: ``[(base, size, name), ...]`` (default: the CPU's usual map); ``symbols``:
    extra static names (``{name: address}``); ``stack_size``: bytes of call stack;
    ``timeout`` (seconds) and ``max_instructions`` bound every :meth:`call`;
    ``enforce_protection``: make unicorn enforce :meth:`protect`; ``check_cache``: fail on
    running code written since its last flush; ``runtime_region``: the region in which the
    space keeps its own call stack and host stubs (default: the lowest), so that a program
    given the others has all of them.
    """

    def __init__(self, arch_name: str, *,
                 memory: list[tuple[int, int, str]] | tuple[tuple[int, int, str], ...] | None = None,
                 symbols: dict[str, int] | None = None, page_size: int | None = None,
                 stack_size: int = 256 << 10, timeout: float = 10.0,
                 max_instructions: int = 1_000_000_000, enforce_protection: bool = False,
                 check_cache: bool = True, runtime_region: str | None = None) -> None:
        self.arch, self.cpu = emulation_of(arch_name)
        self.page_size = page_size or self.cpu.page_size
        if enforce_protection and self.page_size % self.cpu.page_size:
            raise LinkError(f"enforce_protection needs a page size that is a multiple of "
                            f"{self.cpu.page_size:#x}")
        self.timeout = timeout
        self.max_instructions = max_instructions
        self.enforce_protection = enforce_protection
        self.check_cache = check_cache
        self.stack_size = stack_size
        self.memory = RegionMemory(memory or self.cpu.default_memory, self.cpu.page_size)
        self.runtime_region = runtime_region
        if runtime_region is not None:
            self.memory.region(runtime_region)  # (a name that is not a region fails here)
        self._mask = (1 << self.arch.bits) - 1
        self._uc, self._uc_consts = self._make_cpu()
        self._regs: dict[str, int] = {}
        for region in self.memory.regions:
            self._uc.mem_map(region.base, region.size)
        for name, value in self.cpu.initial_registers.items():
            self.set_reg(name, value)
        self._pages: dict[int, Protection] = {}
        self._stale = Intervals()
        self._stale_hooks: dict[tuple[int, int], int] = {}
        self._stale_changed = False
        self._host_hooks: dict[tuple[int, int], int] = {}
        self._hosts: dict[int, _Host] = {}
        self._host_names: dict[str, int] = {}
        self._symbols: dict[str, int] = dict(symbols or {})
        self._static_symbols: dict[str, int] = {}
        self._runtime_state: _Runtime | None = None
        self._stack: tuple[int, int] | None = None  # a program's own stack, while it runs
        self._depth = 0
        self._last_fault: tuple[str, int] | None = None
        self._paging: tuple[Paging, int] | None = None  # the CPU's paging and its root table
        self.static: Module | None = None
        self.entry: int | None = None
        self.flushes = 0  # how many flushes were made (tests look)
        self._uc.hook_add(self._const("UC_HOOK_MEM_INVALID"), self._on_bad_access)

    # -- the CPU ---------------------------------------------------------------------------------
    def _make_cpu(self):
        unicorn = _unicorn()
        consts = importlib.import_module(self.cpu.uc_constants)
        mode = 0
        for name in self.cpu.uc_mode:
            mode |= getattr(unicorn, name)
        uc = unicorn.Uc(getattr(unicorn, self.cpu.uc_arch), mode)
        if self.cpu.uc_cpu:
            uc.ctl_set_cpu_model(getattr(consts, self.cpu.uc_cpu))
        return uc, consts

    def _const(self, name: str) -> int:
        return getattr(_unicorn(), name)

    def _reg_id(self, name: str) -> int:
        rid = self._regs.get(name)
        if rid is None:
            try:
                rid = self._regs[name] = getattr(self._uc_consts, self.cpu.register(name))
            except AttributeError:
                raise LinkError(f"no register {name!r} on the {self.arch.name} CPU") from None
        return rid

    def reg(self, name: str) -> int:
        """The value of register ``name`` (``"r3"``, ``"lr"``, ``"pc"``...)."""
        return self._uc.reg_read(self._reg_id(name))

    def set_reg(self, name: str, value: int) -> None:
        """Set register ``name``."""
        self._uc.reg_write(self._reg_id(name), value & self._mask)

    # -- memory ----------------------------------------------------------------------------------
    @property
    def regions(self) -> list[Region]:
        """The memory regions, in the order given."""
        return self.memory.regions

    def region(self, name: str) -> Region:
        """The memory region called ``name``."""
        return self.memory.region(name)

    def region_of(self, address: int) -> Region | None:
        """The region ``address`` lies in, or None."""
        return self.memory.region_of(address)

    def _check_mapped(self, address: int, size: int) -> None:
        self.memory.check(address, size)

    def reserve(self, size: int, align: int, window: Window | None = None, *,
                region: str | None = None, address: int | None = None) -> int:
        """Reserve ``size`` bytes aligned to ``align``: the lowest free place inside
        ``window`` (and inside ``region``, if named), or exactly at ``address``. The memory
        reads as zeros."""
        start = self.memory.reserve(size, align, window, region=region, address=address)
        self._uc.mem_write(start, bytes(max(int(size), 1)))
        return start

    def release(self, address: int, size: int) -> None:
        """Give a reservation back."""
        held = self.memory.release(address)
        self._unprotect(address, held)
        self._drop_translations(address, address + held)

    def reservations(self) -> dict[int, int]:
        """Start -> size of every live reservation."""
        return dict(self.memory.reservations)

    def write(self, address: int, data) -> None:
        """Store ``data`` (bytes-like or a numpy array) at ``address``; the bytes are stale
        for instruction fetch until flushed."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        if not raw:
            return
        self._check_mapped(address, len(raw))
        self._uc.mem_write(address, raw)
        self._written(address, len(raw))

    def _drop_translations(self, lo: int, hi: int) -> None:
        """Make unicorn forget the code it translated from memory [lo, hi). Unicorn takes the
        range as addresses code runs at, which it translates to physical ones through the page
        tables; the space's addresses are physical. With paging on, it forgets everything
        instead: a physical range has no virtual address to give, and translating one the
        tables do not map raises a page fault that no code sees but that the CPU remembers
        (the next real one would then be taken for a double fault)."""
        if self._paging is None:
            self._uc.ctl_remove_cache(lo, hi)
        else:
            self._uc.ctl_flush_tb()

    def _written(self, address: int, size: int) -> None:
        if self.check_cache:
            self._mark_stale(address, address + size)
        # Unicorn does not re-read code it has translated: drop the translations, so that
        # a stale-code hook takes effect (or, unchecked, the new bytes run).
        self._drop_translations(address, address + size)

    def read(self, address: int, size: int) -> bytes:
        self._check_mapped(address, size)
        return bytes(self._uc.mem_read(address, size))

    def read_string(self, address: int, limit: int = 1 << 16, encoding: str = "utf-8") -> str:
        """The NUL-terminated string at ``address`` (at most ``limit`` bytes)."""
        out = bytearray()
        while len(out) < limit:
            region = self.region_of(address + len(out))
            if region is None:
                raise LinkError(f"string at {address:#x} runs out of memory")
            chunk = self.read(address + len(out), min(256, region.end - address - len(out),
                                                     limit - len(out)))
            nul = chunk.find(b"\0")
            if nul >= 0:
                return (out + chunk[:nul]).decode(encoding, "replace")
            out += chunk
        raise LinkError(f"string at {address:#x} is longer than {limit} bytes")

    def read_word(self, address: int) -> int:
        """The pointer-sized word at ``address``."""
        width = self.arch.bits // 8
        return int.from_bytes(self.read(address, width), self._order)

    def write_word(self, address: int, value: int) -> None:
        width = self.arch.bits // 8
        self.write(address, (value & self._mask).to_bytes(width, self._order))

    @property
    def _order(self) -> str:
        return "big" if self.arch.byteorder == ">" else "little"

    def read_fields(self, addresses: np.ndarray, size: int, byteorder: str) -> np.ndarray:
        out = np.zeros(len(addresses), np.uint64)
        for lo, span, idx in self._spans(addresses, size):
            image = np.frombuffer(self.read(lo, span), np.uint8)
            out[idx] = gather(image, np.asarray(addresses, np.int64)[idx] - lo, size, byteorder)
        return out

    def write_fields(self, addresses: np.ndarray, size: int, byteorder: str,
                     values: np.ndarray) -> None:
        addresses = np.asarray(addresses, np.int64)
        for lo, span, idx in self._spans(addresses, size):
            image = np.frombuffer(self.read(lo, span), np.uint8).copy()
            scatter(image, addresses[idx] - lo, size, byteorder, values[idx])
            self._uc.mem_write(lo, image.tobytes())
            self._drop_translations(lo, lo + span)
            if self.check_cache:  # only the fields are new: the bytes between them stay clean
                for start, end in _merged(addresses[idx], size):
                    self._mark_stale(start, end)

    def _spans(self, addresses: np.ndarray, size: int, limit: int = 1 << 16):
        """(start, length, indices) of runs of fields close enough to move as one block."""
        addresses = np.asarray(addresses, np.int64)
        if not len(addresses):
            return
        order = np.argsort(addresses, kind="stable")
        ordered = addresses[order]
        breaks = np.flatnonzero(np.diff(ordered) > limit) + 1
        for run in np.split(np.arange(len(order)), breaks):
            lo, hi = int(ordered[run[0]]), int(ordered[run[-1]]) + size
            yield lo, hi - lo, order[run]

    def watch_stores(self, address: int, size: int, function: Callable[[int, int, int], None]) -> None:
        """A memory-mapped device: ``function(address, size, value)`` runs for every store of
        emulated code into [address, address+size) (memory of the space), as a console
        port's bytes are printed."""
        self._check_mapped(address, size)

        def on_write(uc, access, where, width, value, _data) -> None:
            function(where, width, value & ((1 << (8 * width)) - 1))

        self._uc.hook_add(self._const("UC_HOOK_MEM_WRITE"), on_write, begin=address,
                          end=address + size - 1)

    # -- protection ------------------------------------------------------------------------------
    def protect(self, address: int, size: int, protection: Protection) -> None:
        """Record ``protection`` for the pages of [address, address+size) and, with
        ``enforce_protection``, have unicorn enforce it on the pages wholly inside."""
        if size <= 0:
            return
        self._check_mapped(address, size)
        ps = self.page_size
        for page in range(address - address % ps, address + size, ps):
            self._pages[page] = protection
        if self.enforce_protection:
            self._uc_protect(address, size, self._uc_perms(protection))

    def protection(self, address: int) -> Protection:
        """The protection recorded for the page of ``address`` (read+write if none)."""
        return self._pages.get(address - address % self.page_size, Protection.READ_WRITE)

    def _uc_perms(self, protection: Protection) -> int:
        c = self._const
        read, write, execute = c("UC_PROT_READ"), c("UC_PROT_WRITE"), c("UC_PROT_EXEC")
        return {Protection.NONE: c("UC_PROT_NONE"), Protection.READ: read,
                Protection.READ_WRITE: read | write,
                Protection.READ_EXECUTE: read | execute}[protection]

    def _uc_protect(self, address: int, size: int, perms: int) -> None:
        granule = self.cpu.page_size
        lo = -(-address // granule) * granule  # whole pages only: never a neighbour's
        hi = (address + size) // granule * granule
        if hi > lo:
            self._uc.mem_protect(lo, hi - lo, perms)

    def _unprotect(self, address: int, size: int) -> None:
        ps = self.page_size
        for page in range(address - address % ps, address + size, ps):
            self._pages.pop(page, None)
        if self.enforce_protection:
            self._uc_protect(address, size, self._const("UC_PROT_ALL"))

    # -- the instruction cache -------------------------------------------------------------------
    def flush(self, address: int, size: int) -> None:
        """Make [address, address+size) (rounded out to cache lines) safe to execute: what
        ``dcbst``, ``sync``, ``icbi``, ``isync`` over the range do on the CPU."""
        if size <= 0:
            return
        line = self.cpu.cache_line or 1
        lo = address - address % line
        hi = -(-(address + size) // line) * line
        self._check_mapped(address, size)
        self._clear_stale(lo, hi)
        self._drop_translations(lo, hi)
        self.flushes += 1

    def is_stale(self, address: int, size: int = 1) -> bool:
        """True if some byte of [address, address+size) was written since it was flushed."""
        return self._stale.overlaps(address, address + size)

    def _mark_stale(self, lo: int, hi: int) -> None:
        if not self._stale.covers(lo, hi):
            self._stale.add(lo, hi)
            self._stale_changed = True

    def _clear_stale(self, lo: int, hi: int) -> None:
        if self._stale.overlaps(lo, hi):
            self._stale.remove(lo, hi)
            self._stale_changed = True

    def _sync_stale_hooks(self) -> None:
        """One code hook per stale interval, installed just before code runs (a linker writes
        and flushes many times in between). Unicorn calls a hook only for instructions
        inside its range, so code elsewhere runs at full speed."""
        if not self._stale_changed:
            return
        wanted = set(self._stale)
        for interval in [i for i in self._stale_hooks if i not in wanted]:
            self._uc.hook_del(self._stale_hooks.pop(interval))
        code = self._const("UC_HOOK_CODE")
        for lo, hi in wanted.difference(self._stale_hooks):
            self._stale_hooks[(lo, hi)] = self._uc.hook_add(code, self._on_stale, begin=lo,
                                                            end=hi - 1)
        self._stale_changed = False

    def _on_stale(self, uc, address: int, size: int, _data) -> None:
        raise StaleCodeError(
            f"executing {address:#x}, which was written after the last instruction-cache flush "
            f"of it (the writer must flush: dcbst/sync/icbi/isync)", address=address,
            fault="stale instruction cache")

    # -- the static module -----------------------------------------------------------------------
    def load_static(self, module: Module) -> None:
        """Map an executable module (ELF executable, DOL) at its addresses: its segments are
        written (bss zeroed), its code is flushed as a boot loader would, and its symbols
        become visible to :meth:`lookup`. A module of symbols only (an ``address:name`` list
        without its DOL) just names addresses: modules link against it, and a call into it
        faults, since no code is there."""
        if (module.machine, module.bits, module.byteorder) != \
                (self.arch.name, self.arch.bits, self.arch.byteorder):
            raise UnsupportedError(f"a {module.machine} program cannot run on a {self.arch.name} CPU",
                                   file=module.file)
        loaded = [seg for seg in module.segments if seg.size]  # an empty segment loads nothing
        segments = [seg for seg in loaded if self._wanted(seg, module)]
        if not segments and loaded:
            raise LinkError("the static module has no segments in this space's memory",
                            file=module.file)
        for seg in segments:
            self.memory.claim(seg.address, seg.size, module.file)
        for seg in segments:
            data = bytes(seg.data)
            self._uc.mem_write(seg.address, data + bytes(seg.size - len(data)))
            self._drop_translations(seg.address, seg.address + seg.size)
            if self.enforce_protection:
                self._uc_protect(seg.address, seg.size, self._segment_perms(seg))
        self._static_symbols.update(_static_names(module))
        self.static = module
        self.entry = module.entry
        for register, symbol in self.cpu.static_registers.items():
            if symbol in self._static_symbols:
                self.set_reg(register, self._static_symbols[symbol])

    def _wanted(self, seg, module: Module) -> bool:
        """False for a segment outside memory that holds none of the program's sections: the
        ELF and program headers that ``ld -Ttext=`` maps on their own page elsewhere."""
        if self.region_of(seg.address) is not None:
            return True
        return any(sec.address is not None and sec.size and
                   seg.address <= sec.address < seg.address + seg.size for sec in module.sections)

    def _segment_perms(self, seg) -> int:
        c = self._const
        perms = c("UC_PROT_READ") if seg.readable else 0
        perms |= c("UC_PROT_WRITE") if seg.writable else 0
        return perms | (c("UC_PROT_EXEC") if seg.executable else 0)

    def define(self, name: str, address: int) -> None:
        """Name ``address`` for lookups, as a symbol of the static module (firmware data a
        host stands in for: NXFLAT's ``__nxflat_abi_v2`` word)."""
        self._symbols[name] = address

    def lookup(self, name: str) -> int | None:
        """Address of ``name``: a host function, an explicit symbol, or the static module's."""
        for table in (self._host_names, self._symbols, self._static_symbols):
            address = table.get(name)
            if address is not None:
                return address
        return None

    def is_code(self, address: int) -> bool | None:
        """Whether ``address`` lies in an executable segment of the static module or in a
        host-stub area (None: in neither, and not in static data either)."""
        if self._in_host_area(address):
            return True
        for seg in self.static.segments if self.static is not None else ():
            if seg.address <= address < seg.address + seg.size:
                return seg.executable
        return None

    # -- host functions --------------------------------------------------------------------------
    def host_function(self, name: str, function: HostFunction, *, address: int | None = None) -> int:
        """Let ``function(space, *args) -> int | None`` stand in for the static module's
        ``name``; returns the address emulated calls reach. A function the static module
        defines is intercepted at its own address (its callers there reach Python too);
        otherwise a stub is made. The arguments are the argument registers as unsigned words
        (as many as ``function`` takes after ``space``; all of them for ``*args``); an int
        result goes to the result register, None leaves it alone."""
        if address is None:
            address = self._host_names.get(name) or self._static_symbols.get(name)
        tag = self.arch.code_tag  # code is entered at address | tag, and runs from address
        if address is None:
            address = self._new_stub()
        elif not self._in_host_area(address & ~tag):
            address &= ~tag
            self._check_mapped(address, self.cpu.instruction_size)
            self._hook_host(address, address + self.cpu.instruction_size)
        address &= ~tag
        self._hosts[address] = _Host(name, function, _arity(function, len(self.cpu.arguments)))
        self._host_names[name] = address | tag
        return address | tag

    def host_callback(self, function: Callable[[int], int]) -> int:
        """Address of code that runs ``function(context) -> int``: the context arrives as one
        wide argument (PowerPC: a ``long long`` in r3:r4), the result leaves in the result
        register."""
        address = self._new_stub()
        self._hosts[address] = _Host(f"callback {address:#x}", lambda _space, value: function(value),
                                     1, wide=True)
        return address | self.arch.code_tag

    def _new_stub(self) -> int:
        runtime = self._runtime()
        if not runtime.stubs:
            self._host_area(runtime)
        return runtime.stubs.pop()

    def _in_host_area(self, address: int) -> bool:
        return any(lo <= address < hi for lo, hi in self._host_hooks)

    def _hook_host(self, lo: int, hi: int) -> None:
        self._host_hooks[(lo, hi)] = self._uc.hook_add(self._const("UC_HOOK_CODE"), self._on_host,
                                                       begin=lo, end=hi - 1)
        self._drop_translations(lo, hi)  # code translated before the hook must not skip it

    def _on_host(self, uc, address: int, size: int, _data) -> None:
        host = self._hosts.get(address)
        if host is None:
            runtime = self._runtime_state
            if runtime is not None and address in runtime.traps:
                raise EmulationError(f"code returned to {address:#x}, the return address of an "
                                     "outer call: the stack or link register was corrupted",
                                     address=address, fault="bad return")
            raise EmulationError(f"jumped to {address:#x}, a host stub with no function",
                                 address=address, fault="no host function")
        return_to = self._return_address()
        args = self._host_arguments(host)
        result = host.function(self, *args)
        if result is not None:
            self._set_result(host, result)
        self._sync_stale_hooks()  # the function may have written code it then returns into
        self._return(return_to)

    def _return_address(self) -> int:
        """Where the function just entered returns to: the link register, or the word at the
        stack pointer on CPUs whose calls push it."""
        if self.cpu.link_register is None:
            width = self.arch.bits // 8
            return int.from_bytes(self._stack_load(self.reg(self.cpu.stack_pointer), width), self._order)
        return self.reg(self.cpu.link_register)

    def _return(self, address: int) -> None:
        """Leave the function just entered for ``address``, popping the return address where
        the call pushed it (as ``ret`` does)."""
        if self.cpu.link_register is None:
            self.set_reg(self.cpu.stack_pointer,
                         self.reg(self.cpu.stack_pointer) + self.arch.bits // 8)
        self.set_reg(self.cpu.program_counter, address)

    def _host_arguments(self, host: _Host) -> list[int]:
        regs = self.cpu.arguments
        if host.wide:
            if not self.cpu.wide_argument:  # two stack words, in the CPU's byte order
                sp = self.reg(self.cpu.stack_pointer) + self.cpu.stack_arguments
                return [int.from_bytes(self._stack_load(sp, 2 * self.arch.bits // 8), self._order)]
            value = 0
            for name in self.cpu.wide_argument:
                value = (value << self.arch.bits) | self.reg(name)
            return [value]
        args = [self.reg(r) for r in regs[:host.arity]]
        if host.arity > len(regs):  # the rest were stored in the caller's frame
            sp = self.reg(self.cpu.stack_pointer) + self.cpu.stack_arguments
            width = self.arch.bits // 8
            args += [int.from_bytes(self._stack_load(sp + width * i, width), self._order)
                     for i in range(host.arity - len(regs))]
        return args

    def _set_result(self, host: _Host, result: int) -> None:
        result = int(result)
        bits = self.arch.bits
        if not -(1 << (bits - 1)) <= result < (1 << bits):
            raise EmulationError(f"host function {host.name!r} returned {result}, which does not "
                                 f"fit a {bits}-bit register", fault="bad result")
        self.set_reg(self.cpu.result, result)

    # -- paging ----------------------------------------------------------------------------------
    def enable_paging(self, root: int) -> None:
        """Turn the CPU's paging on with the page tables at physical address ``root``, as
        start-up code does (see the module docstring). The space's own pages (its stack, host
        stubs and return traps) must stay reachable: their region is mapped one to one through
        root entries the tables leave unused, with page tables of its own in that region; the
        program's tables using that area are an error."""
        paging = self.arch.paging
        if paging is None:
            raise UnsupportedError(f"the {self.arch.name} CPU's paging is not described")
        if self._paging is not None:
            raise EmulationError("paging is on already")
        if root % paging.table_size:
            raise EmulationError(f"page tables at {root:#x} are not aligned to {paging.table_size:#x}")
        self._check_mapped(root, paging.table_size)
        runtime = self._runtime()
        own = self.memory.region_of(runtime.stack_low)
        pages = np.arange(own.base, own.end, paging.page_size, dtype=np.int64)
        size = paging.tables_size(paging.areas([(own.base, own.end)])) - paging.table_size
        tables = self.reserve(size, paging.page_size, region=own.name)
        writable = PageAccess.READ | PageAccess.WRITE
        built = paging.tables(tables - paging.table_size, pages, pages,
                              np.full(len(pages), int(writable), np.int64))
        entry = paging.entry_size
        mine = np.frombuffer(built[:paging.table_size], f"{self.arch.byteorder}u{entry}")
        theirs = np.frombuffer(self.read(root, paging.table_size), mine.dtype)
        used = np.flatnonzero(mine)
        clash = used[theirs[used] != 0]
        if len(clash):
            area = int(clash[0]) * paging.area_size
            raise EmulationError(f"the page tables at {root:#x} map the area [{area:#x}, "
                                 f"{area + paging.area_size:#x}), where the emulator keeps its own "
                                 f"pages [{own.base:#x}, {own.end:#x})")
        for i in used.tolist():
            self._uc.mem_write(root + entry * i, mine[i:i + 1].tobytes())
        self._uc.mem_write(tables, built[paging.table_size:])
        self._uc.hook_add(self._const("UC_HOOK_INTR"), self._on_interrupt)
        self.set_reg(paging.root_register, root)
        for register, bits in paging.enable:
            self.set_reg(register, self.reg(register) | bits)
        self._paging = (paging, root)

    @property
    def paging_root(self) -> int | None:
        """The physical address of the page tables in use (None: paging is off)."""
        return None if self._paging is None else self._paging[1]

    def translate(self, address: int) -> tuple[int, PageAccess] | None:
        """(physical address, access) of the virtual ``address`` through the page tables in
        use, or None where it is not mapped; without paging, the address itself, any access."""
        if self._paging is None:
            return address, PageAccess.READ | PageAccess.WRITE | PageAccess.USER
        paging, root = self._paging
        width = paging.entry_size
        return paging.walk(lambda at: int.from_bytes(self.read(at, width), self._order), root, address)

    def _physical(self, address: int, size: int) -> list[tuple[int, int, int]]:
        """(physical address, offset, length) of each page's part of the virtual range."""
        out = []
        page = self.arch.paging.page_size if self._paging else max(size, 1)
        offset = 0
        while offset < size:
            at = address + offset
            length = min(size - offset, page - at % page)
            found = self.translate(at)
            if found is None:
                raise EmulationError(f"{at:#x} is not mapped by the page tables at "
                                     f"{self._paging[1]:#x}", address=at, fault="not mapped")
            out.append((found[0], offset, length))
            offset += length
        return out

    def read_virtual(self, address: int, size: int) -> bytes:
        """``size`` bytes at the virtual ``address`` (through the page tables in use)."""
        return b"".join(self.read(physical, length) for physical, _, length in
                        self._physical(address, size))

    def write_virtual(self, address: int, data) -> None:
        """Store ``data`` at the virtual ``address`` (through the page tables in use), as a
        loader does: the pages' access is not checked."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        for physical, offset, length in self._physical(address, len(raw)):
            self.write(physical, raw[offset:offset + length])

    def _stack_store(self, address: int, data: bytes) -> None:
        """A call's frame on the stack, where the stack pointer's address leads."""
        if self._paging is None:
            self._uc.mem_write(address, data)
            return
        for physical, offset, length in self._physical(address, len(data)):
            self._uc.mem_write(physical, data[offset:offset + length])

    def _stack_load(self, address: int, size: int) -> bytes:
        return self.read_virtual(address, size) if self._paging else self.read(address, size)

    def _on_interrupt(self, uc, number: int, _data) -> None:
        """A CPU exception while paging is on (unicorn would stop with "unhandled CPU
        exception", without the address): a page fault names the address and why."""
        pc = self.reg(self.cpu.program_counter)
        paging = self._paging[0]
        if number != paging.fault_interrupt:
            raise EmulationError(f"CPU exception {number} at {pc:#x}", address=pc,
                                 fault=f"exception {number}")
        address = self.reg(paging.fault_address)
        found = self.translate(address)
        if found is None:
            why = "its page is not present (not mapped, or a region with no access)"
        elif not found[1] & PageAccess.WRITE:
            why = "its page is read-only (a write)"
        else:
            why = "its page is for the supervisor only"
        raise EmulationError(f"page fault at {pc:#x}: access to {address:#x}, and {why}",
                             address=address, fault="page fault")


    # -- the runtime area ------------------------------------------------------------------------
    def _runtime(self) -> _Runtime:
        """The stack and the first host-stub area, made on first use (after load_static has
        had its pick of memory), at the top of the first region."""
        if self._runtime_state is None:
            size = self.stack_size + self.page_size
            top = self.memory.highest_fit(size, self.page_size, self.runtime_region)
            stack = self.reserve(self.stack_size, 16, address=top)
            self._runtime_state = _Runtime(stack, stack + self.stack_size, [], [])
            self._host_area(self._runtime_state, top + self.stack_size)
            self._runtime_state.traps = self._runtime_state.stubs[-RETURN_TRAPS:]
            del self._runtime_state.stubs[-RETURN_TRAPS:]
        return self._runtime_state

    def _host_area(self, runtime: _Runtime, address: int | None = None) -> None:
        """A page of trap instructions, one per host stub, hooked as a whole."""
        size = self.page_size
        base = self.reserve(size, size, address=address)
        trap = self.cpu.trap
        self._uc.mem_write(base, trap * (size // len(trap)))
        self._hook_host(base, base + size)
        self.protect(base, size, Protection.READ_EXECUTE)
        step = self.cpu.instruction_size
        runtime.stubs[:0] = range(base + size - step, base - step, -step)  # lowest first out

    # -- calls -----------------------------------------------------------------------------------
    def call(self, address: int, *args: int, restype=None) -> int:
        """Call the function at ``address`` with integer arguments (argument registers, then
        the stack) and return the result register as a signed integer (the calling
        convention decides: ``restype`` is not used). Re-entrant: a host function may call
        emulated code, which may call host functions... (:meth:`start` runs a program on a
        stack of its own.)"""
        runtime = self._runtime()
        depth = self._depth
        if depth >= len(runtime.traps):
            raise EmulationError(f"calls nested more than {len(runtime.traps)} deep")
        saved = self._uc.context_save() if depth else None
        self._sync_stale_hooks()
        try:
            self._enter(runtime, depth, [int(a) for a in args])
            self._depth = depth + 1
            self._run(address, runtime.traps[depth], outermost=depth == 0)
            return _signed(self.reg(self.cpu.result), self.arch.bits)
        finally:
            self._depth = depth
            if saved is not None:
                self._uc.context_restore(saved)

    def start(self, address: int, args: list[int] | tuple[int, ...] = (), *,
              registers: dict[str, int] | None = None,
              stack: tuple[int, int] | None = None) -> int:
        """Run a program from ``address`` as a binfmt's exec does: with ``registers`` set
        first (a PIC base), on its own ``stack`` ``[low, high)`` (default: the space's), and
        return its result (the exit status). Host functions it calls, and the callbacks they
        make, run on that stack too."""
        if self._depth:
            raise EmulationError("a program is started from outside emulated code")
        align = self.cpu.stack_alignment
        if stack is not None and (stack[1] - stack[0] < 2 * PROGRAM_STACK_FLOOR or stack[1] % align):
            raise EmulationError(f"a program's stack [{stack[0]:#x}, {stack[1]:#x}) is too "
                                 f"small or its top is not {align}-byte aligned")
        saved, self._stack = self._stack, stack
        try:
            for name, value in (registers or {}).items():
                self.set_reg(name, value)
            return self.call(address, *args)
        finally:
            self._stack = saved

    def preferred_window(self, purpose: str) -> Window | None:
        """Where code executed in place (``"code"``: flash, a ROMFS) or a program's data
        (``"data"``: RAM) goes, as the CPU's memory map says (None: anywhere)."""
        name = {"code": self.cpu.rom_region, "data": self.cpu.ram_region}.get(purpose)
        if name is None or name not in {r.name for r in self.regions}:
            return None
        region = self.region(name)
        return Window(region.base, region.end, region.base)

    def _enter(self, runtime: _Runtime, depth: int, args: list[int]) -> None:
        """Stack frame, arguments and return address of a call at nesting ``depth``."""
        cpu, width = self.cpu, self.arch.bits // 8
        regs = cpu.arguments
        extra = args[len(regs):]
        low, high = self._stack or (runtime.stack_low, runtime.stack_high)
        floor = STACK_FLOOR if self._stack is None else PROGRAM_STACK_FLOOR
        below = high if depth == 0 else self.reg(cpu.stack_pointer) - NESTED_GAP
        frame = -(-(cpu.linkage_area + width * len(extra)) // cpu.stack_alignment) * cpu.stack_alignment
        sp = (below - frame) // cpu.stack_alignment * cpu.stack_alignment
        pushed = cpu.link_register is None
        if pushed:  # the return address sits just below the aligned arguments
            sp -= width
        if not low + floor <= sp <= high:  # (a CPU without a linkage area starts at
            # the very top: its stack is full-descending)
            raise EmulationError(f"no stack left for a call (stack pointer {sp:#x})")
        if cpu.back_chain:
            chain = 0 if depth == 0 else self.reg(cpu.stack_pointer)
            self._stack_store(sp, (chain & self._mask).to_bytes(width, self._order))
        for i, value in enumerate(extra):
            self._stack_store(sp + cpu.stack_arguments + width * i,
                              (value & self._mask).to_bytes(width, self._order))
        self.set_reg(cpu.stack_pointer, sp)
        for name, value in zip(regs, args, strict=False):
            self.set_reg(name, value)
        return_to = runtime.traps[depth] | self.arch.code_tag
        if pushed:
            self._stack_store(sp, return_to.to_bytes(width, self._order))
        else:
            self.set_reg(cpu.link_register, return_to)

    def _run(self, address: int, until: int, *, outermost: bool) -> None:
        # The instruction limit is passed every time because unicorn counts only in code
        # translated while counting; one watchdog for the outermost call covers nested ones.
        self._last_fault = None
        token = WATCHDOG.arm(self.timeout, self._uc.emu_stop) if outermost and self.timeout else None
        try:
            # (entered in the CPU's code state: a Thumb-only CPU needs the Thumb bit)
            self._uc.emu_start(address | self.arch.code_tag, until, count=self.max_instructions)
        except LinkError:
            self._uc._hook_exception = None  # raised by a hook: the caller reports it once
            raise
        except Exception as e:
            self._uc._hook_exception = None
            if isinstance(e, _unicorn().UcError):
                raise self._fault(address, e) from None
            raise
        finally:
            timed_out = token is not None and WATCHDOG.disarm(token)
        stopped = self.reg(self.cpu.program_counter)
        if stopped != until:
            limit = f"{self.timeout} s" if timed_out else f"{self.max_instructions} instructions"
            raise EmulationError(f"the call of {address:#x} did not return within {limit} "
                                 f"(stopped at {stopped:#x})", address=stopped, fault="timeout")

    def _fault(self, called: int, error: Exception) -> EmulationError:
        pc = self.reg(self.cpu.program_counter)
        detail = str(error)
        if self._last_fault is not None:
            access, where = self._last_fault
            detail = f"{access} of {where:#x} ({error})"
            if access == "fetch":
                pc = where
        return EmulationError(f"emulation fault at {pc:#x} in the call of {called:#x}: {detail}",
                              address=pc, fault=str(error))

    def _on_bad_access(self, uc, access: int, address: int, size: int, value: int, _data) -> bool:
        names = {"UC_MEM_READ_UNMAPPED": "read", "UC_MEM_WRITE_UNMAPPED": "write",
                 "UC_MEM_FETCH_UNMAPPED": "fetch", "UC_MEM_READ_PROT": "protected read",
                 "UC_MEM_WRITE_PROT": "protected write", "UC_MEM_FETCH_PROT": "fetch"}
        kind = next((v for k, v in names.items() if self._const(k) == access), "access")
        self._last_fault = (kind, address)
        return False  # let the access fault


def _arity(function: HostFunction, registers: int) -> int:
    """How many argument words ``function(space, ...)`` takes (all registers for *args)."""
    try:
        params = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return registers
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return registers
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _merged(starts: np.ndarray, size: int) -> list[tuple[int, int]]:
    """The union of the ranges [start, start+size), as sorted disjoint ranges."""
    if not len(starts):
        return []
    starts = np.sort(starts)
    ends = starts + size
    new = np.ones(len(starts), bool)  # a run begins where a field starts past all before it
    new[1:] = starts[1:] > np.maximum.accumulate(ends)[:-1]
    firsts = np.flatnonzero(new)
    return list(zip(starts[firsts].tolist(), np.maximum.reduceat(ends, firsts).tolist(),
                    strict=True))


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _static_names(module: Module) -> dict[str, int]:
    """Name -> address of an executable's symbols (a global wins over a local of its name)."""
    s = module.symbols
    rows = np.flatnonzero((s["section"] == ABS) & (s["name"] != 0) & (s["type"] != FILE_SYMBOL)
                          & (s["type"] != SECTION_SYMBOL))
    rows = rows[np.argsort(s["bind"][rows] != LOCAL, kind="stable")]  # locals first
    values = s["value"][rows].tolist()
    return {name: int(v) for name, v in zip(module.symbol_names(rows), values, strict=True)}
