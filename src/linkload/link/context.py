"""What one link gets from the linker: a narrow context, and the request itself.

A link never sees the linker's private state: it asks the :class:`LinkContext` for names
(resolved against the static module and the modules linked so far, minus the one a reload
replaces), whether a COMDAT group is linked already, and the address of the unresolved
handler. The linker makes one context per link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..arch import Arch
from ..model import Module
from ..space import Space

AUTO = "auto"  # place a module within reach of what it refers to
STATIC_MODULE = -1  # the "module" a name resolved into the static module is bound to


class Definition(NamedTuple):
    """Where a name is defined: its address, the module defining it (a uid, or
    :data:`STATIC_MODULE`) and that module's name, and whether it is code (None: not known,
    as for the static module's names)."""

    address: int
    owner: int
    function: bool | None = None
    owner_name: str = "the static module"


@dataclass(frozen=True)
class LinkContext:
    """The linker as one link sees it.

    ``resolve(name)``: the :class:`Definition` of a name, or None when nobody visible
    defines it. ``group_linked(signature)``: a COMDAT group of that
    signature is linked already. ``unresolved_handler()``: the address every unresolved-call
    stub jumps to (made on first use).
    """

    space: Space
    arch: Arch
    resolve: Callable[[str], Definition | None]
    group_linked: Callable[[str], bool]
    unresolved_handler: Callable[[], int]


@dataclass(frozen=True)
class LinkRequest:
    """One module to link, and how.

    ``uid`` identifies it in the module graph. ``callers``: addresses of the fields of other
    modules that wait for it (placement keeps them in reach); ``address_limit``: where its
    memory must end at the latest, so that narrow absolute fields waiting for its data can
    hold their addresses (None: no limit). ``place_near``: :data:`AUTO`
    (within reach of its targets), None (anywhere) or an address. ``at``: exactly there.
    ``bss``: where its bss goes, for a module loaded as one block (default: after it);
    ``fixed``: the bss goes into the block's reusable tail (``OSLinkFixed``).
    """

    module: Module
    uid: int
    callers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    place_near: str | int | None = AUTO
    at: int | None = None
    bss: int | None = None
    fixed: bool = False
    address_limit: int | None = None
