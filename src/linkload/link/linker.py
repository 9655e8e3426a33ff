"""The runtime linker: the graph of linked modules, with direct references both ways.

``link`` builds a module through the passes of :mod:`.job`, plans the patches that bind other
modules' waiting references to it (:mod:`.rebind`), and only then commits: writes, protects,
patches, registers and runs the initialisers. ``unlink`` points references into the module
back at each caller's fallback (REL semantics) or refuses while the module is in use
(Linux/NuttX semantics). ``reload`` replaces a module and re-patches every caller to the new
code. A failed link, unlink or reload leaves the linker exactly as it was.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import arch as arch_registry
from ..arch import Arch
from ..errors import (
    FormatError,
    LinkError,
    ModuleStateError,
    UndefinedSymbolError,
    UnsupportedError,
)
from ..formats import FORMATS, Format, Source, guess_format, read_bytes, read_module, symtab
from ..formats.base import module_name
from ..model import (
    ABS,
    FUNC,
    GLOBAL,
    SECTION_SYMBOL,
    UNDEF,
    Module,
    SharedImage,
    merge,
    placed_apart,
    with_symbols,
)
from ..space import Announcement, Protection, Space
from ..space.emulated import EmulatedSpace
from ..space.native import NativeSpace
from ..trampoline import TrampolinePool
from .context import AUTO, STATIC_MODULE, Definition, LinkContext, LinkRequest
from .graph import ModuleGraph
from .job import Linked, link_module
from .module import UNRESOLVED, LoadedModule
from .rebind import Patch, apply_patch, plan_patch
from .select import address_limit, narrow_absolute_flags


@dataclass
class SharedCode:
    """A module's read-only part executed in place and shared by its instances (NXFLAT's
    I-space): where it lies, and the uids of the instances using it."""

    key: str
    address: int
    size: int
    users: set[int] = field(default_factory=set)


REL_POLICY = "rel"  # unlink always; references fall back to the unresolved handler
REFUSE_POLICY = "refuse"  # unlink only a module nobody refers to
UnresolvedCallback = Callable[[str, str], int]


class Linker:
    """Links modules into a space and keeps the graph of what is linked.

    Names are resolved in this order: the module's own definitions, the static module (the
    space's lookup), modules linked earlier; a name nobody defines may be called, and the call
    reaches the caller's ``_unresolved`` (or linkload's handler) until a module defining it is
    linked, which patches the call to a direct branch.
    """

    def __init__(self, space: Space, arch: Arch, *, place_near: str | int | None = AUTO,
                 on_unresolved: UnresolvedCallback | None = None,
                 unlink_policy: str = REL_POLICY) -> None:
        if unlink_policy not in (REL_POLICY, REFUSE_POLICY):
            raise LinkError(f"unlink_policy must be {REL_POLICY!r} or {REFUSE_POLICY!r}")
        self.space = space
        self.arch = arch
        self.place_near = place_near
        self.on_unresolved = on_unresolved
        self.unlink_policy = unlink_policy
        self.graph = ModuleGraph()
        self._uids = itertools.count(1)
        self._handler: int | None = None
        # a table of module names kept apart (makerel's .str) and its folder
        self.name_table: tuple[bytes, str] | None = None
        # binfmt: the formats load() recognises, tried in turn (NuttX's register_binfmt)
        self.binfmts: list[Format] = list(FORMATS)
        # the names the static module exports to programs that bind at load (None: all)
        self.exports: frozenset[str] | None = None
        self.shared: dict[str, SharedCode] = {}  # shared code by key
        self._shared_of: dict[int, str] = {}  # uid -> key of the shared code it uses
        self._callbacks: dict[int, list[int]] = {}  # uid -> its callback trampolines
        self._callback_pool: TrampolinePool | None = None

    @classmethod
    def native(cls, libraries: Iterable[str] = (), *, place_near: str | int | None = AUTO,
               on_unresolved: UnresolvedCallback | None = None,
               unlink_policy: str = REL_POLICY, debugger: bool | str = AUTO,
               perf_map: bool = False) -> Linker:
        """A linker for this process, for the CPU it runs on (x86-64 Linux today).

        ``libraries``: further shared libraries to search (``libstdc++.so.6`` for C++).
        ``place_near``: ``"auto"`` places modules within reach of their targets, ``None``
        anywhere, an address near that address. ``on_unresolved(module, symbol) -> int`` is
        called for a call to a function no module defines (default: report on stderr and
        abort). ``unlink_policy``: ``"rel"`` (references fall back to the unresolved handler)
        or ``"refuse"`` (unlinking a module in use is an error). ``debugger``: when linked
        modules are registered with GDB's JIT interface, so that gdb names their functions
        and source lines: ``"auto"`` as soon as a debugger watches it, ``True`` always (a
        debugger attached later sees them at once), ``False`` never. ``perf_map``: name
        their functions in ``/tmp/perf-<pid>.map`` for ``perf``.
        """
        arch = arch_registry.host()
        space = NativeSpace(tuple(libraries), arch, debugger=debugger, perf_map=perf_map)
        return cls(space, arch, place_near=place_near, on_unresolved=on_unresolved,
                   unlink_policy=unlink_policy)

    @classmethod
    def emulated(cls, cpu: str, *, static: Source | None = None, symbols: Source | None = None,
                 strings: str | os.PathLike | None = None,
                 place_near: str | int | None = None,
                 on_unresolved: UnresolvedCallback | None = None,
                 unlink_policy: str = REL_POLICY, exports: Source | Iterable[str] | None = None,
                 **space_options) -> Linker:
        """A linker for an emulated ``cpu`` (unicorn): ``"ppc"`` for REL modules,
        ``"cortex-m3"`` for ARM objects and NXFLAT programs.

        ``static`` is the static module (an ELF executable or a DOL) mapped at its addresses;
        ``symbols`` names its symbols when the file has none (an ``address:name`` list or a
        map). ``strings`` is a table of module names kept apart (makerel's ``.str``): as for
        the SDK's debugger, a module's name there leads to the partially linked file it was
        built from, which names its functions. ``exports``: the names the firmware exports
        to programs (NuttX's export CSV, its ELF, a symbol list, or the names): a program
        importing another name is refused at load. Python functions stand in for static
        functions with :meth:`host_function`.
        """
        space = EmulatedSpace(cpu, **space_options)
        if static is not None:
            module = read_module(static)
            if symbols is not None:
                module = _with_static_symbols(module, symbols)
            space.load_static(module)
        linker = cls(space, arch_registry.get(cpu), place_near=place_near,
                     on_unresolved=on_unresolved, unlink_policy=unlink_policy)
        if strings is not None:
            data, _file = read_bytes(strings)
            linker.name_table = (bytes(data), os.path.dirname(os.fspath(strings)))
        if exports is not None:
            linker.exports = frozenset(symtab.export_names(exports)
                                       if isinstance(exports, (str, os.PathLike)) else exports)
        return linker

    def host_function(self, name: str, function: Callable) -> int:
        """Let the Python ``function(emu, *args)`` stand in for the static module's ``name``
        (emulated spaces); returns the address calls to it reach."""
        return self.space.host_function(name, function)

    # -- queries ---------------------------------------------------------------------------
    @property
    def modules(self) -> list[LoadedModule]:
        """The linked modules, in link order."""
        return self.graph.modules

    def lookup(self, name: str) -> int | None:
        """Address of ``name`` in the static module or any linked module, or None."""
        found = self._resolve_external(name)
        return found.address if found else None

    def _resolve_external(self, name: str, hidden: frozenset[int] = frozenset()
                          ) -> Definition | None:
        """Where ``name`` is defined: in the static module, or in a linked module (not one
        of ``hidden``); None if nowhere."""
        address = self.space.lookup(name)
        if address is not None:
            return Definition(address, STATIC_MODULE)
        return self.graph.find(name, hidden)

    def dependents(self, module: LoadedModule) -> list[LoadedModule]:
        """The linked modules that refer to ``module``."""
        return self.graph.users(module)

    def dependencies(self, module: LoadedModule) -> list[LoadedModule]:
        """The linked modules ``module`` refers to."""
        return self.graph.used(module)

    # -- link ------------------------------------------------------------------------------
    def link(self, objects: Source | Module | list[Source | Module], name: str | None = None, *,
             place_near: str | int | None | object = ..., at: int | None = None,
             bss: int | None = None, fixed: bool = False,
             symbols: Source | None = None) -> LoadedModule:
        """Load one object (a path, bytes or a :class:`~linkload.model.Module`) or several
        (linked together as one module), link it against the static module and the modules
        already linked, patch the calls that were waiting for it, and run its initialisers.

        ``place_near`` overrides the linker's placement for this module; ``at`` loads it at
        that address. For a module loaded as one block (a REL): ``bss`` gives its bss address
        (default: after the module), ``fixed=True`` links as OSLinkFixed (the bss goes into
        the block's reusable tail), ``symbols`` names its functions and data (the partially
        linked file it was built from, or a ``section,offset:name`` list), for
        :meth:`LoadedModule.address` and ``call``.
        """
        module = self._read(objects, name)
        symbols = symbols if symbols is not None else self._partial_link_of(module)
        if symbols is not None:
            module = _with_module_symbols(module, symbols)
        self._check_exports(module)
        module, shared = self._share_code(module)
        try:
            waiting = self._waiting_for(module)
            near = self.place_near if place_near is ... else place_near
            if place_near is ... and module.startup is not None:
                window = self.space.preferred_window("data")  # a program's data: RAM
                near = window.low if window is not None else near
            request = LinkRequest(module, next(self._uids), _sites(waiting), near, at, bss,
                                  fixed, self._address_limit(module, waiting))
            linked = link_module(self._context(), request)
            loaded = linked.module
            try:
                patches = [self._rebind_to(loaded, m, idx) for m, idx in waiting]
            except BaseException:
                self.space.release(loaded.base, loaded.size)
                raise
        except BaseException:
            self._unshare(shared, None)
            raise
        self._commit(linked, patches)
        if shared is not None:
            shared.users.add(loaded.uid)
            self._shared_of[loaded.uid] = shared.key
        self._make_callbacks(loaded)
        return loaded

    # -- binfmt: programs ------------------------------------------------------------------
    def register_binfmt(self, fmt: Format) -> None:
        """Let :meth:`load` recognise ``fmt`` too (tried before the others), as NuttX's
        ``register_binfmt``."""
        self.binfmts.insert(0, fmt)

    def unregister_binfmt(self, name: str) -> None:
        """Stop recognising the format called ``name``."""
        self.binfmts = [f for f in self.binfmts if f.name != name]

    def load(self, source: Source, name: str | None = None, **options) -> LoadedModule:
        """NuttX's ``load_module``: recognise the file by its bytes among :attr:`binfmts`
        (ELF objects, RELs, NXFLAT programs...), read it (``options`` go to its reader:
        NXFLAT's ``abi``) and link it. A program whose code is executed in place (NXFLAT)
        shares one copy of that code, placed read-only in the space's ROM region, with every
        other instance of the same file; its data is its own, in RAM; every name it imports
        must be defined now (NuttX's ENOENT otherwise)."""
        data, file = read_bytes(source)
        fmt = guess_format(data, file, self.binfmts)
        if fmt is None:
            raise FormatError("no registered binary format recognises this file", file=file,
                              offset=0)
        return self.link(fmt.read(data, module_name(file, name), file, **options))

    def exec(self, module: LoadedModule, args: Sequence[str] = (), *,
             stack_size: int | None = None) -> int:
        """NuttX's ``exec_module``: run a program's entry with ``argc`` and ``argv``
        (``args``, ``argv[0]`` first), on a stack of its own of the size its header asks for
        (or ``stack_size``), with its PIC base register set to this instance's data; return
        its exit status (what ``main`` returns)."""
        self._check_linked(module)
        startup = module.module.startup
        if startup is None:
            raise ModuleStateError(f"module {module.name!r} is not a program (it has no entry "
                                   "point to start)", file=module.module.file)
        registers = {}
        if startup.base_register is not None:
            registers[startup.base_register] = self._row_address(module, startup.base)
        size = -(-(stack_size or startup.stack_size) // 16) * 16
        window = self.space.preferred_window("data")
        stack = self.space.reserve(size, 16, window)
        try:
            argv, block, block_size = self._argv(list(args), window)
            try:
                return self.space.start(self._row_address(module, startup.entry),
                                        [len(args), argv], registers=registers,
                                        stack=(stack, stack + size))
            finally:
                self.space.release(block, block_size)
        finally:
            self.space.release(stack, size)

    def unload(self, module: LoadedModule) -> None:
        """NuttX's ``unload_module``: unlink a program, free its data, and its shared code
        when it was the last instance using it."""
        self.unlink(module)

    def _argv(self, args: list[str], window) -> tuple[int, int, int]:
        """``argv`` in the space: the pointers (NULL-terminated), then the strings; returns
        (argv, the block, its size)."""
        width = self.arch.word_size
        order = "big" if self.arch.byteorder == ">" else "little"
        strings = [a.encode("utf-8", "surrogateescape") + b"\0" for a in args]
        table = width * (len(args) + 1)
        size = table + sum(len(t) for t in strings)
        block = self.space.reserve(size, 16, window)
        pointers, text, at = [], b"", block + table
        for t in strings:
            pointers.append(at)
            text += t
            at += len(t)
        self.space.write(block, b"".join(p.to_bytes(width, order) for p in [*pointers, 0]) + text)
        return block, block, size

    def _row_address(self, module: LoadedModule, row: int) -> int:
        """The run-time address of symbol ``row`` of a linked module."""
        symbol = module.module.symbols[row]
        section = int(symbol["section"])
        if section == ABS:
            return int(symbol["value"])
        address = module.section_addresses[section] if section >= 0 else None
        if address is None:
            raise LinkError(f"symbol row {row} of module {module.name!r} has no address")
        return address + int(symbol["value"])

    def _check_exports(self, module: Module) -> None:
        """A program binding at load may import only what the firmware exports, when the
        linker was given its export table."""
        if self.exports is None or not module.binds_now:
            return
        s = module.symbols
        rows = np.flatnonzero((s["section"] == UNDEF) & (s["name"] != 0))
        missing = sorted(set(module.symbol_names(rows)) - self.exports)
        if missing:
            raise UndefinedSymbolError(
                f"the firmware does not export {', '.join(map(repr, missing))} (NuttX: ENOENT)",
                file=module.file, symbol=missing[0])

    def _share_code(self, module: Module) -> tuple[Module, SharedCode | None]:
        """For a module with shared code: that code, placed now (read+execute, in the
        space's ROM region, never written again) or found placed by an earlier instance,
        and the module without it (its symbols there made absolute)."""
        loading = module.loading
        if not isinstance(loading, SharedImage):
            return module, None
        shared = self.shared.get(loading.key)
        if shared is None:
            space = self.space
            size = -(-max(len(loading.image), 1) // space.page_size) * space.page_size
            address = space.reserve(size, max(loading.align, space.page_size),
                                    space.preferred_window("code"))
            space.write(address, loading.image)
            space.protect(address, size, Protection.READ_EXECUTE)
            space.flush(address, size)
            shared = self.shared[loading.key] = SharedCode(loading.key, address, size)
        addresses = {i: shared.address + sec.image_offset
                     for i, sec in enumerate(module.sections) if sec.image_offset is not None}
        try:
            return placed_apart(module, addresses), shared
        except BaseException:
            self._unshare(shared, None)
            raise

    def _unshare(self, shared: SharedCode | None, uid: int | None) -> None:
        """Instance ``uid`` no longer uses ``shared``; the last one out frees it."""
        if shared is None:
            return
        shared.users.discard(uid)
        self._shared_of.pop(uid, None)
        if not shared.users:
            self.space.release(shared.address, shared.size)
            del self.shared[shared.key]

    def _make_callbacks(self, loaded: LoadedModule) -> None:
        """Point the program's words holding its own functions' addresses at trampolines
        that set its base register first (so that callbacks from outside work)."""
        startup = loaded.module.startup
        if startup is None or not startup.callbacks or startup.base_register is None:
            return
        code = self.arch.trampolines
        if code is None or code.calls is None:
            return  # (nothing to do it with: callbacks from outside cannot work)
        if self._callback_pool is None:
            self._callback_pool = TrampolinePool(self.space, self.arch)
        pool, base = self._callback_pool, self._row_address(loaded, startup.base)
        width, order = self.arch.word_size, self.arch.byteorder
        words = base + np.array(startup.callbacks, np.int64)
        functions = self.space.read_fields(words, width, order).astype(np.int64)
        distinct, which = np.unique(functions, return_inverse=True)
        trampolines = pool.alloc_calls(distinct.tolist(), startup.base_register, base)
        self.space.write_fields(words, width, order,
                                np.array(trampolines, np.uint64)[which.reshape(-1)])
        self._callbacks[loaded.uid] = trampolines

    def _drop_program(self, module: LoadedModule) -> None:
        """Free what a program's instance had besides its memory: its callback trampolines
        and its share of the shared code."""
        trampolines = self._callbacks.pop(module.uid, [])
        if trampolines:
            self._callback_pool.free_many(trampolines)
        key = self._shared_of.get(module.uid)
        if key is not None:
            self._unshare(self.shared[key], module.uid)

    def _context(self, hidden: frozenset[int] = frozenset()) -> LinkContext:
        """The linker as one link sees it; ``hidden`` modules are ignored (the module a reload
        replaces)."""
        def group_linked(signature: str) -> bool:
            owner = self.graph.groups.get(signature)
            return owner is not None and owner.uid not in hidden

        return LinkContext(self.space, self.arch,
                           functools.partial(self._resolve_external, hidden=hidden),
                           group_linked, self._unresolved_handler)

    def _read(self, objects: Source | Module | list[Source | Module], name: str | None) -> Module:
        sources = objects if isinstance(objects, list) else [objects]
        if not sources:
            raise LinkError("nothing to link")
        named = name if len(sources) == 1 else None  # (bytes given with a name: say whose)
        parts = [s if isinstance(s, Module) else read_module(s, named) for s in sources]
        module = merge(parts, name or parts[0].name)
        arch = self.arch
        if (module.machine, module.bits, module.byteorder) != (arch.name, arch.bits, arch.byteorder):
            order = {"<": "little", ">": "big"}
            raise UnsupportedError(
                f"a {module.bits}-bit {order[module.byteorder]}-endian {module.machine} module "
                f"cannot be linked into a {arch.bits}-bit {order[arch.byteorder]}-endian "
                f"{arch.name} space", file=module.file)
        return module

    def _partial_link_of(self, module: Module) -> str | None:
        """The partially linked file a module was built from, found through its name in the
        table of module names, if that file exists."""
        if self.name_table is None or module.name_in_table is None:
            return None
        table, folder = self.name_table
        start, size = module.name_in_table
        name = table[start:start + size].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        for candidate in (name, os.path.join(folder, name)):
            if name and os.path.isfile(candidate):
                return candidate
        return None

    def _waiting_for(self, module: Module) -> list[tuple[LoadedModule, np.ndarray]]:
        """The pending references of linked modules that ``module`` would satisfy."""
        names = self.graph.waiting_names()
        if not names:
            return []
        return self.graph.waiting_for(module.definitions_of(names))

    def _address_limit(self, module: Module, waiting: list[tuple[LoadedModule, np.ndarray]]
                       ) -> int | None:
        """Where ``module`` must end so that the narrow absolute fields (-fno-pic code) that
        wait for its data hold their addresses; those waiting for its functions take a
        veneer in their own module instead."""
        narrow = narrow_absolute_flags(self.arch)
        limit = None
        for m, idx in waiting:
            refs = m.refs[idx]
            held = np.flatnonzero(narrow[refs["kind"]])
            names = m.module.symbol_names(refs["row"][held])
            for i, name in zip(held.tolist(), names, strict=True):
                if not module.defines_code(name):
                    field = self.arch.kinds[int(refs["kind"][i])].field
                    limit = min(limit or address_limit(field), address_limit(field))
        return limit

    def _commit(self, linked: Linked, patches: list[Patch],
                replacing: LoadedModule | None = None) -> None:
        """Make a built module live: write and protect it, apply the patches of its callers,
        register it, run its initialisers."""
        space, loaded = self.space, linked.module
        space.write(loaded.base, loaded.image)
        loaded.image = None
        for start, size, protection in loaded.layout.segments:
            space.protect(loaded.base + start, size, protection)
            space.flush(loaded.base + start, size)  # a REL's code sits in read+write pages
        for patch in patches:
            self._apply(patch)
        if loaded.bss_range is not None:  # zeroed last, after relocation, as OSLink does
            address, size = loaded.bss_range
            space.write(address, bytes(size))
        self.graph.add(loaded, linked.new_groups, linked.shared_groups, replacing)
        for address in linked.eh_frames:
            space.register_frames(address)
            loaded.eh_frames.append(address)
        space.announce(Announcement(loaded.uid, loaded.name, loaded.base, loaded.size,
                                    loaded.module, loaded.section_addresses,
                                    linked.symbol_addresses))
        if space.runs_code:
            for address in linked.init:
                space.call(address)

    # -- unlink and reload -------------------------------------------------------------------
    def unlink(self, module: LoadedModule) -> None:
        """Run the module's finalisers and free its memory. References of other modules into
        it fall back to their unresolved handlers (policy ``"rel"``), or the unlink is refused
        while there are any (policy ``"refuse"``)."""
        self._check_linked(module)
        self._check_comdat_users(module, "unlinked")
        users = self.dependents(module)
        if users and self.unlink_policy == REFUSE_POLICY:
            names = ", ".join(repr(m.name) for m in users)
            raise ModuleStateError(f"module {module.name!r} is still referenced by {names}")
        patches = [self._plan_patch(m, idx, np.zeros(len(idx), np.int64), UNRESOLVED)
                   for m, idx in self.graph.references_to(module)]
        self._finalise(module)
        for patch in patches:
            self._apply(patch)
        self.graph.remove(module)
        self._forget(module)

    def reload(self, module: LoadedModule, objects: Source | Module | list[Source | Module],
               name: str | None = None) -> LoadedModule:
        """Replace ``module`` by a new build of it and return the new handle.

        The new module is linked first, beside the old one; every reference to the old module
        is then re-patched to the new code (or to the unresolved handler for names the new
        module no longer defines), the old module's finalisers run, and its memory is freed.
        State in the old module's data is not carried over, and function pointers taken into
        the old module (outside linked modules' relocated fields) dangle once it is freed. If
        the new module fails to link, nothing changes.
        """
        self._check_linked(module)
        self._check_comdat_users(module, "reloaded")
        new_module = self._read(objects, name or module.name)
        if isinstance(new_module.loading, SharedImage) or module.uid in self._shared_of:
            raise ModuleStateError("a program with shared code is not reloaded: unload it and "
                                   "load the new file", file=new_module.file)
        rebound = self.graph.references_to(module)
        waiting = self._waiting_for(new_module)
        request = LinkRequest(new_module, next(self._uids), _sites(rebound + waiting),
                              self.place_near,
                              address_limit=self._address_limit(new_module, rebound + waiting))
        linked = link_module(self._context(frozenset({module.uid})), request)
        loaded = linked.module
        try:
            patches = [self._rebind_to(loaded, m, idx) for m, idx in waiting + rebound]
        except BaseException:
            self.space.release(loaded.base, loaded.size)
            raise
        self._finalise(module)
        self._commit(linked, patches, replacing=module)
        self._forget(module)
        return loaded

    def _rebind_to(self, new: LoadedModule, m: LoadedModule, idx: np.ndarray) -> Patch:
        """Rebind references ``idx`` of ``m`` to the names ``new`` defines; names it lacks
        become pending."""
        names = m.module.symbol_names(m.refs["row"][idx])
        has = np.array([n in new.exports for n in names], bool)
        targets = np.array([new.exports.get(n, 0) for n in names], np.int64)
        code = np.array([new.defines_function(n) for n in names], bool)
        bound = np.where(has, new.uid, UNRESOLVED)
        return plan_patch(self.space, self.arch, m, idx, targets, bound, code, new.name)

    def _plan_patch(self, m: LoadedModule, idx: np.ndarray, targets: np.ndarray,
                    bound: int | np.ndarray) -> Patch:
        return plan_patch(self.space, self.arch, m, idx, targets, bound)

    def _apply(self, patch: Patch) -> None:
        apply_patch(self.space, patch)
        self.graph.refresh(patch.module)

    def comdat_users(self, module: LoadedModule) -> list[LoadedModule]:
        """The linked modules that use ``module``'s copies of COMDAT groups (inline functions,
        templates, vtables, their static data) in place of their own."""
        return self.graph.comdat_users(module)

    def _check_comdat_users(self, module: LoadedModule, what: str) -> None:
        """A module whose COMDAT copies others use is not freed under them, whatever the
        unlink policy: those copies are the users' own definitions, and the users hold
        pointers to them that no relocation records (destructors registered with
        ``__cxa_atexit``, vtable pointers in their objects, their unwind tables' personality)."""
        users = self.comdat_users(module)
        if users:
            names = ", ".join(repr(m.name) for m in users)
            uses, their, them = ("uses", "its", "it") if len(users) == 1 else ("use", "their", "them")
            raise ModuleStateError(
                f"module {module.name!r} cannot be {what}: {names} {uses} its copies of COMDAT "
                f"groups (inline functions, templates, vtables) as {their} own; unlink {them} "
                "first", file=module.module.file)

    def _check_linked(self, module: LoadedModule) -> None:
        if not module.linked or module not in self.graph:
            raise ModuleStateError(f"module {module.name!r} is not linked")

    def _finalise(self, module: LoadedModule) -> None:
        """Run a module's finalisers and take its unwind tables back."""
        if self.space.runs_code:
            for address in module.fini:
                self.space.call(address)
            finalize = self.space.lookup("__cxa_finalize")
            if finalize is not None:  # the module's own __dso_handle (its exports need not exist)
                self.space.call(finalize, module.dso_handle)
        for address in module.eh_frames:
            self.space.deregister_frames(address)
        module.eh_frames.clear()

    def _forget(self, module: LoadedModule) -> None:
        """Take an unlinked module back from the space's debuggers and give its memory back
        (and a program's shared code, if it was the last instance using it)."""
        self.space.withdraw(module.uid)
        self.space.release(module.base, module.size)
        self._drop_program(module)
        module.linked = False

    # -- the unresolved handler ----------------------------------------------------------------
    def _unresolved_handler(self) -> int:
        """Address of the code every unresolved stub jumps to (created on first use)."""
        if self._handler is None:
            self._handler = self.space.host_callback(self._unresolved_call)
        return self._handler

    def _unresolved_call(self, context: int) -> int:
        uid, row = context >> 32, context & 0xFFFF_FFFF
        module = self.graph.module(uid)
        caller = module.name if module else f"module #{uid}"
        symbol = module.module.symbol_name(row) if module else f"symbol #{row}"
        if self.on_unresolved is not None:
            return int(self.on_unresolved(caller, symbol))
        sys.stderr.write(f"linkload: module {caller!r} called {symbol!r}, which no linked module "
                         f"defines; aborting\n")
        sys.stderr.flush()
        os.abort()


def _sites(groups: list[tuple[LoadedModule, np.ndarray]]) -> np.ndarray:
    if not groups:
        return np.zeros(0, np.int64)
    return np.concatenate([m.refs["site"][idx] for m, idx in groups]).astype(np.int64)


def _with_module_symbols(module: Module, source: Source) -> Module:
    """``module`` with local symbols naming its functions and data: the defined symbols of
    the partially linked file it was built from (a REL's section numbers are that file's
    ELF section numbers), or of a ``section,offset:name`` list."""
    data, _file = read_bytes(source)
    if bytes(data[:4]) == b"\x7fELF":
        plf = read_module(source)
        rows = np.flatnonzero((plf.symbols["section"] >= 0) & (plf.symbols["name"] != 0)
                              & (plf.symbols["type"] != SECTION_SYMBOL))
        elf_index = np.array([s.index for s in plf.sections], np.int64)
        sections = elf_index[plf.symbols["section"][rows]]
        names, values = plf.symbol_names(rows), plf.symbols["value"][rows].astype(np.int64)
    else:
        entries = [e for e in symtab.parse_file(source)
                   if isinstance(e.section, int) and e.module is None]
        names = [e.name for e in entries]
        sections = [e.section for e in entries]
        values = [e.offset for e in entries]
    return with_symbols(module, names, np.asarray(sections), np.asarray(values), kind=FUNC)


def _with_static_symbols(module: Module, source: Source) -> Module:
    """A static module with the symbols of an ``address:name`` list or map added
    (``section,offset`` lines are placed with the static module's sections)."""
    entries = symtab.resolve(symtab.parse_file(source), symtab.dol_sections(module),
                             str(source))
    names = [e.name for e in entries]
    addresses = np.array([e.address for e in entries], np.int64)
    return with_symbols(module, names, np.full(len(names), ABS), addresses, bind=GLOBAL,
                        kind=FUNC)
