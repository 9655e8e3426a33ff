"""Trampolines in this process, ffcall style.

>>> from linkload import trampoline
>>> t = trampoline.alloc(function_address, variable_address, 42)   # doctest: +SKIP

``alloc(address, variable, data)`` returns a code address that stores ``data`` into
``*variable`` and jumps to ``address``: a C function that reads ``variable`` becomes a closure
over ``data``. ``alloc_register(address, data)`` passes ``data`` in a scratch register instead
(:data:`REGISTER`; on x86-64 ``r10``, the static-chain register, as in ffcall's trampoline_r).
``free`` gives a trampoline back; ``is_trampoline`` and the accessors ``address``, ``variable``
and ``data`` read it. Executable memory is never writable: see
:mod:`linkload.link.trampoline`. For other spaces, build a
:class:`~linkload.link.trampoline.TrampolinePool` on them.
"""

from __future__ import annotations

from .link.trampoline import TrampolinePool

_pool: TrampolinePool | None = None


def pool() -> TrampolinePool:
    """The process-wide pool of native trampolines."""
    global _pool
    if _pool is None:
        from .arch import get
        from .space.native import NativeSpace

        _pool = TrampolinePool(NativeSpace(), get("x86_64"))
    return _pool


def alloc(address: int, variable: int, data: int) -> int:
    """A function that stores ``data`` into ``*variable`` and jumps to ``address``."""
    return pool().alloc(address, variable, data)


def alloc_register(address: int, data: int) -> int:
    """A function that passes ``data`` in :data:`REGISTER` and jumps to ``address``."""
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


REGISTER = "r10"

__all__ = ["REGISTER", "TrampolinePool", "address", "alloc", "alloc_register", "data", "free",
           "is_trampoline", "pool", "variable"]
