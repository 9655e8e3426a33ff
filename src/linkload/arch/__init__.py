"""CPUs: one file per CPU, each mostly a table ``relocation kind -> (expression, field)`` plus its
veneer and the optional parts it offers (see :mod:`.base`); this file is their registry.

A new CPU is one file here and one entry in :data:`ARCHES`.
"""

from __future__ import annotations

import os

from ..errors import UnsupportedError
from . import arm, i386, ppc, x86_64
from .base import (
    EXPR_CODES,
    GOT_EXPRS,
    INT64_MAX,
    INT64_MIN,
    PC_RELATIVE,
    Arch,
    CallStubs,
    Check,
    Disassembly,
    Emulation,
    Expr,
    Field,
    Kind,
    KindTables,
    LinkedValues,
    NativeHost,
    PageAccess,
    Paging,
    TrampolineCode,
    Veneer,
)

#: Every CPU linkload knows, by the name a Module's ``machine`` gives it.
ARCHES: dict[str, Arch] = {arch.name: arch for arch in (x86_64.ARCH, ppc.ARCH, arm.ARCH,
                                                       i386.ARCH)}


def get(name: str) -> Arch:
    """The :class:`Arch` of CPU ``name`` (as a Module's ``machine`` names it, or one of its
    aliases)."""
    arch = ARCHES.get(name) or next((a for a in ARCHES.values() if name in a.aliases), None)
    if arch is None:
        raise UnsupportedError(f"no support for the {name} CPU yet")
    return arch


def host() -> Arch:
    """The CPU this process runs on, if linkload can link modules into it."""
    machine = os.uname().machine
    for arch in ARCHES.values():
        if arch.native is not None and machine in arch.native.machines:
            return arch
    raise UnsupportedError(f"linking into this process is not supported on {machine} yet")


__all__ = ["ARCHES", "EXPR_CODES", "GOT_EXPRS", "INT64_MAX", "INT64_MIN", "PC_RELATIVE", "Arch",
           "CallStubs", "Check", "Disassembly", "Emulation", "Expr", "Field", "Kind",
           "KindTables", "LinkedValues", "NativeHost", "PageAccess", "Paging", "TrampolineCode",
           "Veneer", "get", "host"]
