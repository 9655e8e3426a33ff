"""The native space: module memory mapped in this process, host symbols from the dynamic linker.

Memory is mapped read+write and private; once a module is written its text pages become
read+execute and its read-only pages read-only. A later write into a protected page (patching
a call site) flips just those pages to read+write and back, so no page is ever writable and
executable at once. Placement near a target uses ``/proc/self/maps`` to find a free gap inside
the wanted window and ``MAP_FIXED_NOREPLACE`` to claim it without disturbing any mapping.
Debuggers and profilers are told of the modules announced (:mod:`.debuggers`): GDB's JIT
interface and perf's map.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import mmap
import os
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import arch as arch_registry
from ..arch import Arch
from ..arch.fields import gather, scatter
from ..columns import distinct
from ..errors import DebuggerError, LinkError, PlacementError, UnsupportedError
from ..formats.elf_write import symbol_file
from . import Announcement, Protection, Space, Window
from .debuggers import JitEntry, JitInterface, append_perf_map, jit_interface, open_perf_map

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value
MADV_HUGEPAGE = 14
HUGE_PAGE = 2 << 20
# Reservations this large are made of whole, aligned 2 MiB pages and marked for transparent
# huge pages: the kernel then fills them with one fault a huge page instead of one per 4 KiB
# page (which costs more than relocating the page's fields).
HUGE_RESERVATION = 1 << 20
RTLD_DEFAULT = None
LOWEST_ADDRESS = 1 << 16  # below vm.mmap_min_addr nothing can be mapped
AUTO = "auto"  # modules go to a debugger when one watches GDB's JIT interface

_PROT_BITS = {
    Protection.NONE: PROT_NONE,
    Protection.READ: PROT_READ,
    Protection.READ_WRITE: PROT_READ | PROT_WRITE,
    Protection.READ_EXECUTE: PROT_READ | PROT_EXEC,
}

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                  ctypes.c_long]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_mprotect = _libc.mprotect
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_dlsym = _libc.dlsym
_dlsym.restype = ctypes.c_void_p
_dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


def mapped_ranges() -> list[tuple[int, int]]:
    """The (start, end) of every mapping of this process, sorted."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = line.split(" ", 1)[0].split("-")
            out.append((int(lo, 16), int(hi, 16)))
    out.sort()
    return out


def free_gaps(ranges: list[tuple[int, int]], highest: int) -> list[tuple[int, int]]:
    """The unmapped (start, end) gaps of the user address space, which ends at ``highest``."""
    gaps, cursor = [], LOWEST_ADDRESS
    for lo, hi in ranges:
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < highest:
        gaps.append((cursor, highest))
    return gaps


def choose_address(gaps: list[tuple[int, int]], size: int, align: int, window: Window) -> int | None:
    """The aligned start closest to ``window.prefer`` of a free block of ``size`` bytes inside
    ``window`` (leaving one guard page between the block and its neighbours), or None."""
    guard = mmap.PAGESIZE
    best = None
    for g0, g1 in gaps:
        lo = max(g0 + guard, window.low)
        hi = min(g1 - guard, window.high) - size
        lo = (lo + align - 1) // align * align
        hi = hi // align * align
        if hi < lo:
            continue
        want = window.prefer - size // 2
        start = min(max(want // align * align, lo), hi)
        if best is None or abs(start - want) < abs(best - want):
            best = start
    return best


@dataclass
class _Mapping:
    address: int
    size: int
    pages: dict[int, Protection] = field(default_factory=dict)  # protections set since mapping


class NativeSpace(Space):
    """This process as a space (Linux), for ``arch`` (default: the CPU it runs on), which must
    offer a :class:`~linkload.arch.NativeHost` part. ``libraries``: further shared libraries
    whose symbols :meth:`lookup` finds.

    ``debugger``: when modules are registered with GDB's JIT interface (their symbol files
    built): ``"auto"`` once a debugger watches the interface (at the next link or unlink,
    for every module linked until then), ``True`` always, ``False`` never. ``perf_map``:
    name each module's functions in ``/tmp/perf-<pid>.map``."""

    def __init__(self, libraries: list[str] | tuple[str, ...] = (), arch: Arch | None = None, *,
                 debugger: bool | str = AUTO, perf_map: bool = False) -> None:
        self.arch = arch if arch is not None else arch_registry.host()
        if self.arch.native is None:
            raise UnsupportedError(f"the {self.arch.name} CPU cannot run linked code in this process")
        self.host = self.arch.native
        self.page_size = mmap.PAGESIZE
        self.libraries = []
        for lib in libraries:
            path = lib if os.sep in lib else (ctypes.util.find_library(_short(lib)) or lib)
            try:
                self.libraries.append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
            except OSError as e:
                raise LinkError(f"cannot load library: {e}", file=lib) from None
        self._mappings: dict[int, _Mapping] = {}
        self._starts: list[int] = []
        self._recent: list[int] = []  # starts of reservations released lately
        self._callbacks: list = []
        if debugger not in (True, False, AUTO):
            raise LinkError(f"debugger must be True, False or {AUTO!r}, not {debugger!r}")
        self.debugger = debugger if debugger == AUTO else bool(debugger)
        self._jit = self._jit_interface()
        self._unregistered: dict[int, Announcement] = {}  # modules the debugger was not told of
        self._registered: dict[int, list[JitEntry]] = {}
        self.perf_map = perf_map
        if perf_map:
            os.close(open_perf_map())  # (fails here, not in the middle of a link)

    # -- symbols ---------------------------------------------------------------------------
    def lookup(self, name: str) -> int | None:
        key = name.encode("utf-8", "surrogateescape")
        address = _dlsym(RTLD_DEFAULT, key)
        if address:
            return address
        for lib in self.libraries:
            address = _dlsym(lib._handle, key)
            if address:
                return address
        return None

    def is_code(self, address: int) -> bool | None:
        """Whether ``address`` lies in executable memory of this process (a function's
        address always does, data's never), or None if nothing is mapped there."""
        with open("/proc/self/maps") as f:
            for line in f:
                span, perms = line.split(" ", 2)[:2]
                lo, hi = span.split("-")
                if int(lo, 16) <= address < int(hi, 16):
                    return "x" in perms
        return None

    # -- memory ----------------------------------------------------------------------------
    def reserve(self, size: int, align: int, window: Window | None = None) -> int:
        size = _round_up(size, self.page_size)
        align = max(align, self.page_size)
        highest = self.host.highest_address
        if size > highest or align > highest:  # (ctypes would cut the length to 64 bits)
            raise PlacementError(f"{size:#x} bytes aligned to {align:#x} do not fit below "
                                 f"{highest:#x}, the top of the address space")
        huge = _round_up(size, HUGE_PAGE)
        if size >= HUGE_RESERVATION and (window is None
                                         or window.high - window.low >= huge + HUGE_PAGE):
            try:
                address = self._reserve(huge, max(align, HUGE_PAGE), window)
            except PlacementError:
                pass  # no room for whole huge pages: small pages will do
            else:
                _madvise(address, huge, MADV_HUGEPAGE)  # a hint, ignored where THP is off
                return address
        return self._reserve(size, align, window)

    def _reserve(self, size: int, align: int, window: Window | None) -> int:
        if window is None:
            return self._map_anywhere(size, align)
        near = self._map_beside_earlier(size, align, window)
        if near is not None:
            return near
        for _attempt in range(8):  # another thread may take the gap between scan and map
            start = choose_address(free_gaps(mapped_ranges(), self.host.highest_address), size,
                                   align, window)
            if start is None:
                break
            if self._map_exactly(start, size):
                return start
        raise PlacementError(
            f"no free {size:#x} bytes between {window.low:#x} and {window.high:#x}")

    def _map_beside_earlier(self, size: int, align: int, window: Window) -> int | None:
        """Try the places of reservations released lately, and just below and just above the
        current ones: modules end up side by side, and the common case needs no scan of
        /proc/self/maps."""
        guard = self.page_size
        candidates = [_round_up(a, align) for a in self._recent]  # places freed lately
        if self._starts:
            low = self._starts[0]
            last = self._mappings[self._starts[-1]]  # (mappings do not overlap)
            high = last.address + last.size
            candidates += [(low - guard - size) // align * align, _round_up(high + guard, align)]
        for start in candidates:
            if not (window.low <= start and start + size <= window.high) or start <= 0:
                continue
            if self._map_exactly(start, size):
                return start
        return None

    def _map_exactly(self, start: int, size: int) -> bool:
        """Map [start, start+size) if, and only if, nothing is there yet."""
        address = _mmap(start, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
        if address == start:
            self._remember(address, size)
            return True
        if address not in (None, MAP_FAILED):  # an old kernel took it as a mere hint
            _munmap(address, size)
        return False

    def _map_anywhere(self, size: int, align: int) -> int:
        extra = align - self.page_size
        address = _mmap(None, size + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0)
        if address in (None, MAP_FAILED):
            raise PlacementError(f"cannot map {size:#x} bytes: {_errno_text()}")
        start = _round_up(address, align)
        if start > address:
            _munmap(address, start - address)
        tail = address + size + extra - (start + size)
        if tail:
            _munmap(start + size, tail)
        self._remember(start, size)
        return start

    def _remember(self, address: int, size: int) -> None:
        self._mappings[address] = _Mapping(address, size)
        bisect.insort(self._starts, address)

    def _mapping_of(self, address: int, size: int) -> _Mapping:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            m = self._mappings[self._starts[i]]
            if address + size <= m.address + m.size:
                return m
        raise LinkError(f"[{address:#x}, {address + size:#x}) is not memory of this space")

    def release(self, address: int, size: int) -> None:
        mapping = self._mappings.pop(address, None)
        if mapping is None:
            raise LinkError(f"{address:#x} is not a reservation of this space")
        self._starts.remove(address)
        _munmap(address, mapping.size)
        self._recent = [address, *self._recent[:3]]

    def owns(self, address: int) -> bool:
        i = bisect.bisect_right(self._starts, address) - 1
        return i >= 0 and address < self._starts[i] + self._mappings[self._starts[i]].size

    def protect(self, address: int, size: int, protection: Protection) -> None:
        if size <= 0:
            return
        mapping = self._mapping_of(address, size)
        start = address - address % self.page_size
        end = _round_up(address + size, self.page_size)
        if _mprotect(start, end - start, _PROT_BITS[protection]) != 0:
            raise LinkError(f"mprotect({start:#x}, {end - start:#x}) failed: {_errno_text()}")
        for page in range(start, end, self.page_size):
            mapping.pages[page] = protection

    def flush(self, address: int, size: int) -> None:
        """Make code written at [address, address+size) visible to instruction fetch: nothing
        to do where the CPU keeps its caches coherent (x86), libgcc's ``__clear_cache``
        elsewhere."""
        if self.host.coherent_instruction_cache or size <= 0:
            return
        clear_cache = _libgcc().get("__clear_cache")
        if clear_cache is None:
            raise UnsupportedError("libgcc_s exports no __clear_cache to flush the instruction cache")
        clear_cache(address, address + size)

    def protection(self, address: int) -> Protection:
        page = address - address % self.page_size
        return self._mapping_of(page, 1).pages.get(page, Protection.READ_WRITE)

    def staging(self, address: int, size: int) -> np.ndarray:
        """The reserved memory itself, while it is fresh (read+write, zero, and reachable by
        no one until the linker commits the module): building the image there saves a copy."""
        mapping = self._mapping_of(address, size)
        if mapping.pages:  # protections set: not a fresh reservation
            return super().staging(address, size)
        start = address - mapping.address
        return self._view(mapping)[start:start + size]

    def write(self, address: int, data) -> None:
        """Copy ``data`` to ``address``; pages that are not writable are made read+write for the
        copy and then get their protection back (never writable and executable at once)."""
        buf = np.ascontiguousarray(np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray)
                                   else data.view(np.uint8))
        size = len(buf)
        if not size or buf.ctypes.data == address:  # a staging buffer is already in place
            return
        mapping = self._mapping_of(address, size)
        first = address - address % self.page_size
        locked = [(p, mapping.pages[p]) for p in range(first, address + size, self.page_size)
                  if mapping.pages.get(p, Protection.READ_WRITE) is not Protection.READ_WRITE]
        for page, _ in locked:
            self.protect(page, self.page_size, Protection.READ_WRITE)
        try:
            ctypes.memmove(address, buf.ctypes.data, size)
        finally:
            for page, old in locked:
                self.protect(page, self.page_size, old)

    def _view(self, mapping: _Mapping) -> np.ndarray:
        raw = (ctypes.c_uint8 * mapping.size).from_address(mapping.address)
        return np.frombuffer(raw, np.uint8)

    def _group(self, addresses: np.ndarray, size: int):
        """(mapping, positions in it, indices into addresses) per mapping touched."""
        addresses = np.asarray(addresses, np.int64)
        starts = np.array(self._starts, np.int64)
        which = np.searchsorted(starts, addresses, side="right") - 1
        for w in distinct(which):
            idx = np.flatnonzero(which == w)
            mapping = self._mapping_of(int(addresses[idx].min()), size) if w >= 0 else None
            if mapping is None or int(addresses[idx].max()) + size > mapping.address + mapping.size:
                raise LinkError(f"field at {int(addresses[idx][0]):#x} is not memory of this space")
            yield mapping, addresses[idx] - mapping.address, idx

    def read_fields(self, addresses: np.ndarray, size: int, byteorder: str) -> np.ndarray:
        out = np.zeros(len(addresses), np.uint64)
        for mapping, positions, idx in self._group(addresses, size):
            out[idx] = gather(self._view(mapping), positions, size, byteorder)
        return out

    def write_fields(self, addresses: np.ndarray, size: int, byteorder: str,
                     values: np.ndarray) -> None:
        for mapping, positions, idx in self._group(addresses, size):
            pages = distinct(np.concatenate([positions, positions + size - 1]) // self.page_size)
            locked = []
            for page in (mapping.address + pages * self.page_size).tolist():
                old = mapping.pages.get(page, Protection.READ_WRITE)
                if old is not Protection.READ_WRITE:
                    locked.append((page, old))
                    self.protect(page, self.page_size, Protection.READ_WRITE)
            try:
                scatter(self._view(mapping), positions, size, byteorder, values[idx])
            finally:
                for page, old in locked:
                    self.protect(page, self.page_size, old)

    def host_callback(self, function: Callable[[int], int]) -> int:
        """Address of native code ``long f(long)`` that runs the Python ``function``.

        The code is generated into this space's own read+execute memory and enters Python
        through the CPython API; ctypes callbacks are avoided because libffi backs them with
        a writable and executable page. ``function`` must return an int and must not raise
        (exceptions are printed and the call returns 0)."""

        def guarded(context: int) -> int:
            try:
                return _signed64(int(function(context)))
            except BaseException:  # noqa: BLE001 - nothing may unwind into machine code
                traceback.print_exc()
                return 0

        api = {name: self.lookup(name) for name in self.host.python_api}
        if not all(api.values()):
            raise LinkError("the CPython API is not visible to the dynamic linker")
        page = self.reserve(self.page_size, self.page_size)
        format_address = page + self.page_size - 16
        self._callbacks.append(guarded)  # the code holds a borrowed reference
        code = self.host.python_bridge(api, id(guarded), format_address)
        self.write(page, code)
        self.write(format_address, b"l\0")
        self.protect(page, self.page_size, Protection.READ_EXECUTE)
        self.flush(page, len(code))
        return page

    def read(self, address: int, size: int) -> bytes:
        self._mapping_of(address, size)
        return ctypes.string_at(address, size)

    # -- code ------------------------------------------------------------------------------
    def function(self, address: int, restype=ctypes.c_long, *argtypes):
        """A ctypes callable for the function at ``address``."""
        return ctypes.CFUNCTYPE(restype, *argtypes)(address)

    def call(self, address: int, *args: int, restype=ctypes.c_long) -> int:
        """Call the function at ``address`` with C ``long`` arguments."""
        fn = self.function(address, restype, *([ctypes.c_long] * len(args)))
        return fn(*args)

    def register_frames(self, address: int) -> None:
        """Hand an ``.eh_frame`` (ending in a zero terminator) to the host's unwinder."""
        _libgcc()["__register_frame"](address)

    def deregister_frames(self, address: int) -> None:
        _libgcc()["__deregister_frame"](address)

    # -- debuggers and profilers -----------------------------------------------------------
    def _jit_interface(self) -> JitInterface | None:
        """GDB's JIT interface, unless debuggers are not wanted; where it cannot be loaded,
        an error if they are (``debugger=True``), else a warning."""
        if not self.debugger:
            return None
        try:
            return jit_interface(self.arch, self.page_size)
        except DebuggerError as e:
            if self.debugger is True:
                raise
            warnings.warn(f"linkload: debuggers will not see linked modules: {e}", stacklevel=4)
            return None

    def announce(self, module: Announcement) -> None:
        """Name the module's functions in perf's map, and register it with GDB's JIT
        interface (with ``debugger="auto"``, once a debugger watches it)."""
        if self.perf_map:
            try:
                append_perf_map(module)
            except DebuggerError as e:
                warnings.warn(f"linkload: {e}", stacklevel=3)
        if self._jit is not None:
            self._unregistered[module.uid] = module
            self._register_if_watched()

    def withdraw(self, uid: int) -> None:
        """Unregister module ``uid`` from GDB's JIT interface."""
        if self._jit is None:
            return
        self._unregistered.pop(uid, None)
        self._jit.unregister(self._registered.pop(uid, []))
        self._register_if_watched()

    def _register_if_watched(self) -> None:
        """Register the modules not registered yet, if a debugger could read them."""
        if not self._unregistered or not (self.debugger is True or self._jit.watched()):
            return
        while self._unregistered:
            uid, module = self._unregistered.popitem()
            self._registered[uid] = [self._jit.register(f) for f in self._symbol_files(module)]

    def _symbol_files(self, module: Announcement) -> list[bytes]:
        """One symbol file per object of the module (a module's debug sections that cannot
        be read are left out, with a warning)."""
        origins = sorted({sec.origin for sec, address
                          in zip(module.module.sections, module.section_addresses, strict=True)
                          if address is not None})
        files = []
        for origin in origins:
            parts = (self.arch, module.module, origin, module.section_addresses,
                     module.symbol_addresses, self.read)
            try:
                files.append(symbol_file(*parts))
            except LinkError as e:
                warnings.warn(f"linkload: module {module.name!r}: its debug information is left "
                              f"out: {e}", stacklevel=5)
                files.append(symbol_file(*parts, debug=False))
        return files


_LIBGCC: dict[str, ctypes._CFuncPtr] = {}
_LIBGCC_FUNCTIONS = {  # name -> argument count (each a pointer)
    "__register_frame": 1,  # the unwinder C++ exceptions go through
    "__deregister_frame": 1,
    "__clear_cache": 2,  # instruction-cache maintenance of a range, on CPUs that need it
}


def _libgcc() -> dict[str, ctypes._CFuncPtr]:
    """The libgcc functions linkload calls (loaded on first use)."""
    if not _LIBGCC:
        lib = ctypes.CDLL(ctypes.util.find_library("gcc_s") or "libgcc_s.so.1",
                          mode=ctypes.RTLD_GLOBAL)
        for name, count in _LIBGCC_FUNCTIONS.items():
            fn = getattr(lib, name, None)
            if fn is None:
                continue  # __clear_cache is only exported where it does something
            fn.argtypes = [ctypes.c_void_p] * count
            fn.restype = None
            _LIBGCC[name] = fn
    return _LIBGCC


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def _short(lib: str) -> str:
    """'libstdc++.so.6' -> 'stdc++', the form find_library wants; other names unchanged."""
    if lib.startswith("lib") and ".so" in lib:
        return lib[3:lib.index(".so")]
    return lib


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align
