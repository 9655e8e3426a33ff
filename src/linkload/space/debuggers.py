"""What the debuggers and profilers of this process are told of the modules linked into it.

**GDB's JIT interface** (the GDB manual, "JIT Compilation Interface"; LLDB reads it too): a
debugger looks, in every object loaded in the process, for a function
``__jit_debug_register_code``, where it sets a breakpoint, and a descriptor
``__jit_debug_descriptor``: a version (1), an action, the entry it concerns and a doubly
linked list of entries, each pointing at a symbol file in memory. The Python executable
defines neither, so linkload writes a tiny shared object that does (with its own ELF writer,
:func:`linkload.formats.elf_write.jit_interface_library`: no compiler is needed) into a cache
directory and loads it once per process. linkload always uses its own descriptor, even where
another library of the process has one (LLVM's, in llvmlite): each has its own list, and a
debugger reads every one (GDB since version 10).

Registering a module: one symbol file per object of the module
(:func:`linkload.formats.elf_write.symbol_file`), an entry for each at the head of the list,
the descriptor's ``relevant_entry`` and ``action_flag`` set, ``__jit_debug_register_code``
called; unregistering takes the entries off the list the same way, then hands the debugger an
empty symbol file and takes it back: gdb leaves a breakpoint set in the code of a symbol file
it is told to forget where it was, and only re-sets its breakpoints when a symbol file comes
(the breakpoint then waits, pending, for a module that defines its function again), which
must happen while the module's memory is still mapped, to take the breakpoint out of it.

A debugger that watches the interface plants its breakpoint in ``__jit_debug_register_code``:
its code then differs from what linkload wrote. That is how the default mode (``"auto"``)
sees, for the cost of reading a few bytes, whether anyone would read the symbol files, and
builds them only then.

**perf's map** (``/tmp/perf-<pid>.map``): one ``START SIZE NAME`` line (hexadecimal) per
function of each module linked, appended when the module is linked. perf reads the file when
it reports, after the process has ended, so lines are never taken back: a module's functions
stay named after it is unlinked, and perf names an address by the line written last for it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..arch import Arch
from ..errors import DebuggerError
from ..formats.elf_write import (
    DESCRIPTOR,
    REGISTER_CODE,
    empty_symbol_file,
    jit_interface_library,
)
from ..model import FUNC, GNU_IFUNC
from . import Announcement

JIT_NOACTION, JIT_REGISTER_FN, JIT_UNREGISTER_FN = 0, 1, 2


class _Entry(ctypes.Structure):
    """``struct jit_code_entry``."""

    _fields_ = [("next_entry", ctypes.c_void_p), ("prev_entry", ctypes.c_void_p),
                ("symfile_addr", ctypes.c_void_p), ("symfile_size", ctypes.c_uint64)]


class _Descriptor(ctypes.Structure):
    """``struct jit_descriptor``."""

    _fields_ = [("version", ctypes.c_uint32), ("action_flag", ctypes.c_uint32),
                ("relevant_entry", ctypes.c_void_p), ("first_entry", ctypes.c_void_p)]


class JitEntry:
    """One symbol file handed to the debugger: its entry and its bytes, kept alive here until
    it is unregistered."""

    def __init__(self, symbol_file: bytes) -> None:
        self.buffer = ctypes.create_string_buffer(symbol_file, len(symbol_file))
        self.entry = _Entry(None, None, ctypes.addressof(self.buffer), len(symbol_file))

    @property
    def address(self) -> int:
        return ctypes.addressof(self.entry)


class JitInterface:
    """GDB's JIT interface of this process: linkload's descriptor and the function a debugger
    watches, in the shared object at ``path``."""

    def __init__(self, path: Path, return_code: bytes, empty: bytes) -> None:
        try:
            library = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        except OSError as e:
            raise DebuggerError(f"cannot load the JIT interface library: {e}",
                                file=str(path)) from None
        self.path = path
        self._library = library  # (the functions below live in it)
        self._descriptor = _Descriptor.in_dll(library, DESCRIPTOR)
        self._register_code = ctypes.CFUNCTYPE(None)((REGISTER_CODE, library))
        code = ctypes.cast(self._register_code, ctypes.c_void_p).value
        self._code = (ctypes.c_char * len(return_code)).from_address(code)  # a live view
        self._return_code = return_code
        self._empty = empty  # an empty symbol file
        self._lock = threading.Lock()

    def watched(self) -> bool:
        """Whether a debugger watches the interface: its breakpoint sits in the function."""
        return self._code.raw != self._return_code

    def entries(self) -> list[tuple[int, int]]:
        """(address, size) of every symbol file on the descriptor's list, first to last."""
        out, at = [], self._descriptor.first_entry
        while at:
            entry = _Entry.from_address(at)
            out.append((entry.symfile_addr, entry.symfile_size))
            at = entry.next_entry
        return out

    def register(self, symbol_file: bytes) -> JitEntry:
        """Put a symbol file at the head of the list and tell the debugger."""
        new = JitEntry(symbol_file)
        with self._lock:
            first = self._descriptor.first_entry
            new.entry.next_entry = first
            if first:
                _Entry.from_address(first).prev_entry = new.address
            self._descriptor.first_entry = new.address
            self._notify(JIT_REGISTER_FN, new)
        return new

    def unregister(self, old: list[JitEntry]) -> None:
        """Take symbol files off the list and tell the debugger; then, if one watches, have
        it re-set its breakpoints (see the module docstring)."""
        for entry in old:
            self._unregister(entry)
        if old and self.watched():
            self._unregister(self.register(self._empty))

    def _unregister(self, old: JitEntry) -> None:
        with self._lock:
            before, after = old.entry.prev_entry, old.entry.next_entry
            if before:
                _Entry.from_address(before).next_entry = after
            else:
                self._descriptor.first_entry = after
            if after:
                _Entry.from_address(after).prev_entry = before
            self._notify(JIT_UNREGISTER_FN, old)

    def _notify(self, action: int, entry: JitEntry) -> None:
        self._descriptor.relevant_entry = entry.address
        self._descriptor.action_flag = action
        self._register_code()  # the debugger's breakpoint: it reads the descriptor now
        self._descriptor.action_flag = JIT_NOACTION


_INTERFACE_LOCK = threading.Lock()
_INTERFACES: dict[str, JitInterface] = {}


def jit_interface(arch: Arch, page_size: int) -> JitInterface:
    """The JIT interface of this process (its library written and loaded on first use)."""
    with _INTERFACE_LOCK:
        found = _INTERFACES.get(arch.name)
        if found is None:
            code = arch.native.return_code if arch.native is not None else b""
            if not code:
                raise DebuggerError(f"no JIT interface for the {arch.name} CPU")
            data = jit_interface_library(arch.name, arch.bits, arch.byteorder, page_size, code)
            found = _INTERFACES[arch.name] = _load(data, code, empty_symbol_file(arch))
        return found


def _load(library: bytes, return_code: bytes, empty: bytes) -> JitInterface:
    """The JIT interface library written (once per machine: its name is its digest) into the
    user's cache directory, or else a private folder of the temporary one, and loaded."""
    name = f"jit-interface-{hashlib.sha256(library).hexdigest()[:16]}.so"
    errors = []
    for folder in _library_folders():
        path = folder / name
        try:
            _private_folder(folder)
            if not path.is_file() or path.read_bytes() != library:
                partial = folder / f"{name}.{os.getpid()}.part"
                partial.write_bytes(library)
                os.replace(partial, path)
            return JitInterface(path, return_code, empty)
        except (OSError, DebuggerError) as e:  # (a folder on a noexec mount: the next one)
            errors.append(f"{folder}: {e}")
    raise DebuggerError("cannot provide GDB's JIT interface: " + "; ".join(errors))


def _library_folders() -> list[Path]:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path(cache) / "linkload", Path(tempfile.gettempdir()) / f"linkload-{os.getuid()}"]


def _private_folder(folder: Path) -> None:
    """Make ``folder`` (mode 0700) if needed; refuse one that another user could write to,
    since the library in it is loaded into this process."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = folder.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o022:
        raise PermissionError(f"{folder} is not private to this user")


def perf_map_lines(module: Announcement) -> list[str]:
    """``START SIZE NAME`` (hexadecimal) for every named function of a linked module."""
    symbols = module.module.symbols
    section = symbols["section"].astype(np.int64)
    loaded = np.array([a is not None for a in module.section_addresses] + [False])
    rows = np.flatnonzero(loaded[np.where(section >= 0, section, -1)]
                          & np.isin(symbols["type"], (FUNC, GNU_IFUNC)) & (symbols["name"] != 0))
    names = module.module.symbol_names(rows)
    starts = module.symbol_addresses[rows].tolist()
    sizes = symbols["size"][rows].tolist()
    return [f"{start:x} {size:x} {name}\n"
            for start, size, name in zip(starts, sizes, names, strict=True)]


def append_perf_map(module: Announcement) -> None:
    """Append the module's functions to perf's map."""
    lines = perf_map_lines(module)
    if lines:
        with os.fdopen(open_perf_map(), "a") as f:
            f.write("".join(lines))


def open_perf_map() -> int:
    """A descriptor of ``/tmp/perf-<pid>.map`` open for appending (the file is made if it
    is missing; a symbolic link there is not followed)."""
    path = perf_map_path()
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o644)
    except OSError as e:
        raise DebuggerError(f"cannot write perf's map: {e}", file=path) from None


def perf_map_path() -> str:
    """Where perf looks for the names of this process's JIT code."""
    return f"/tmp/perf-{os.getpid()}.map"
