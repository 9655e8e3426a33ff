"""The module graph: the linked modules, and what refers to what, indexed.

Every question the linker asks of the graph (who defines this name, who refers to that
module, who waits for these names, which module links this COMDAT group) is answered from an
index, so that linking or unlinking the thousandth module costs what the tenth does. The
indexes follow the modules' ``refs`` tables: the linker calls :meth:`ModuleGraph.refresh` for
each module whose references it re-patched.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..columns import distinct
from .context import Definition
from .module import UNRESOLVED, LoadedModule


class ModuleGraph:
    """The linked modules in link order (``modules``), and the indexes over them."""

    def __init__(self) -> None:
        self.modules: list[LoadedModule] = []
        self.groups: dict[str, LoadedModule] = {}  # COMDAT signature -> the module linking it
        self._by_uid: dict[int, LoadedModule] = {}
        self._position: dict[int, int] = {}  # uid -> place in link order (a reload keeps it)
        self._next_position = 0
        self._groups_of: dict[int, list[str]] = {}
        # names -> modules defining them, for the modules indexed so far (a module's exports
        # are computed when a name is first looked for among the modules, not at its link)
        self._definers: dict[str, list[LoadedModule]] = {}
        self._unindexed: list[LoadedModule] = []
        self._users: dict[int, set[int]] = {}  # uid -> uids of the modules bound to it
        self._uses: dict[int, set[int]] = {}  # uid -> uids it is bound to
        self._waiting: dict[str, set[int]] = {}  # pending name -> uids waiting for it
        self._waits_for: dict[int, set[str]] = {}  # uid -> names it waits for
        self._comdat_users: dict[int, set[int]] = {}  # uid -> uids using its COMDAT copies
        self._comdat_owners: dict[int, set[int]] = {}  # uid -> uids whose copies it uses

    # -- changes -------------------------------------------------------------------------------
    def add(self, module: LoadedModule, groups: Iterable[str], shared_groups: Iterable[str] = (),
            replacing: LoadedModule | None = None) -> None:
        """A module is linked (in place of ``replacing``, which keeps its place in order): it
        brings the COMDAT ``groups``, and uses earlier modules' copies of ``shared_groups``."""
        if replacing is not None:
            self.modules[self.modules.index(replacing)] = module
            self._position[module.uid] = self._position.pop(replacing.uid)
            self.remove(replacing, from_order=False)
        else:
            self.modules.append(module)
            self._position[module.uid] = self._next_position
            self._next_position += 1
        self._by_uid[module.uid] = module
        owners = {self.groups[s].uid for s in shared_groups if s in self.groups}
        self._comdat_owners[module.uid] = owners
        for uid in owners:
            self._comdat_users.setdefault(uid, set()).add(module.uid)
        mine = [s for s in groups if s not in self.groups]
        for signature in mine:
            self.groups[signature] = module
        self._groups_of[module.uid] = mine
        self._unindexed.append(module)
        self.refresh(module)

    def remove(self, module: LoadedModule, from_order: bool = True) -> None:
        """A module is unlinked (its users were re-pointed before)."""
        if from_order:
            self.modules.remove(module)
            self._position.pop(module.uid, None)
        for signature in self._groups_of.pop(module.uid, ()):
            if self.groups.get(signature) is module:
                del self.groups[signature]
        self._by_uid.pop(module.uid, None)
        if module in self._unindexed:
            self._unindexed.remove(module)
        else:
            for name in module.exports:
                definers = self._definers.get(name)
                if definers is not None and module in definers:
                    definers.remove(module)
        self._forget_references(module)
        self._users.pop(module.uid, None)
        for uid in self._comdat_owners.pop(module.uid, ()):
            self._comdat_users.get(uid, set()).discard(module.uid)
        self._comdat_users.pop(module.uid, None)

    def refresh(self, module: LoadedModule) -> None:
        """Index ``module``'s references anew (after they were linked or re-patched)."""
        self._forget_references(module)
        if not len(module.refs):  # (most small modules: bound to nothing, waiting for nothing)
            self._uses[module.uid], self._waits_for[module.uid] = set(), set()
            return
        bound = module.refs["bound"]
        owners = set(distinct(bound).tolist()) - {UNRESOLVED, module.uid}
        self._uses[module.uid] = owners
        for uid in owners:
            self._users.setdefault(uid, set()).add(module.uid)
        rows = distinct(module.refs["row"][bound == UNRESOLVED])
        names = set(module.module.symbol_names(rows)) if len(rows) else set()
        self._waits_for[module.uid] = names
        for name in names:
            self._waiting.setdefault(name, set()).add(module.uid)

    def _forget_references(self, module: LoadedModule) -> None:
        for uid in self._uses.pop(module.uid, ()):
            self._users.get(uid, set()).discard(module.uid)
        for name in self._waits_for.pop(module.uid, ()):
            waiting = self._waiting.get(name)
            if waiting is not None:
                waiting.discard(module.uid)
                if not waiting:
                    del self._waiting[name]

    # -- questions -----------------------------------------------------------------------------
    def module(self, uid: int) -> LoadedModule | None:
        return self._by_uid.get(uid)

    def __contains__(self, module: LoadedModule) -> bool:
        return self._by_uid.get(module.uid) is module

    def find(self, name: str, hidden: frozenset[int] = frozenset()) -> Definition | None:
        """The definition of ``name`` in the first module (in link order) that defines it and
        is not ``hidden``, or None."""
        self._index()
        best = None
        for m in self._definers.get(name, ()):
            if m.uid not in hidden and (best is None or self._position[m.uid] < self._position[best.uid]):
                best = m
        if best is None:
            return None
        return Definition(best.exports[name], best.uid, best.defines_function(name), best.name)

    def _index(self) -> None:
        for m in self._unindexed:
            for name in m.exports:
                self._definers.setdefault(name, []).append(m)
        self._unindexed.clear()

    def users(self, module: LoadedModule) -> list[LoadedModule]:
        """The modules with references into ``module``, in link order."""
        return self._in_order(self._users.get(module.uid, ()))

    def comdat_users(self, module: LoadedModule) -> list[LoadedModule]:
        """The modules that use ``module``'s copies of COMDAT groups, in link order."""
        return self._in_order(self._comdat_users.get(module.uid, ()))

    def used(self, module: LoadedModule) -> list[LoadedModule]:
        """The modules ``module`` has references into, in link order."""
        return self._in_order(self._uses.get(module.uid, ()))

    def waiting_names(self) -> list[str]:
        """Every name some module waits for."""
        return sorted(self._waiting)

    def references(self, uids: Iterable[int], owner: int, names: set[str] | None = None
                   ) -> list[tuple[LoadedModule, np.ndarray]]:
        """(module, reference indices) of modules ``uids``' references bound to ``owner`` (a
        uid, or UNRESOLVED), limited to ``names`` if given."""
        out = []
        for m in self._in_order(uids):
            candidates = np.flatnonzero(m.refs["bound"] == owner)
            if names is not None and len(candidates):
                found = m.module.symbol_names(m.refs["row"][candidates])
                candidates = candidates[np.array([n in names for n in found], bool)]
            if len(candidates):
                out.append((m, candidates))
        return out

    def waiting_for(self, names: Iterable[str]) -> list[tuple[LoadedModule, np.ndarray]]:
        """(module, reference indices) of the pending references to ``names``."""
        names = set(names)
        uids = set().union(*(self._waiting.get(n, set()) for n in names)) if names else set()
        return self.references(uids, UNRESOLVED, names)

    def references_to(self, module: LoadedModule) -> list[tuple[LoadedModule, np.ndarray]]:
        """(module, reference indices) of every reference into ``module``."""
        return self.references(self._users.get(module.uid, ()), module.uid)

    def _in_order(self, uids: Iterable[int]) -> list[LoadedModule]:
        found = [self._by_uid[u] for u in uids if u in self._by_uid]
        return sorted(found, key=lambda m: self._position[m.uid])
