"""The one exception hierarchy of linkload.

Every failure raised by the package is a :class:`LinkError`. The message names whatever of
file, section, offset, relocation kind and symbol is known, so that one line tells a user where
to look: ``plugin.o: .text+0x1c: R_X86_64_PC32 against 'foo': value 0x1_0000_0000 does not fit``.
"""

from __future__ import annotations


class LinkError(Exception):
    """Base class of every error linkload raises.

    The context fields are kept as attributes so that tools and tests can read them without
    parsing the message.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        section: str | None = None,
        offset: int | None = None,
        kind: str | None = None,
        symbol: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.section = section
        self.offset = offset
        self.kind = kind
        self.symbol = symbol
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.section is not None or self.offset is not None:
            place = self.section or ""
            if self.offset is not None:
                place += f"+{self.offset:#x}" if place else f"offset {self.offset:#x}"
            where.append(place)
        what = []
        if self.kind:
            what.append(self.kind)
        if self.symbol:
            what.append(("against " if self.kind else "symbol ") + repr(self.symbol))
        head = ": ".join(where + ([" ".join(what)] if what else []))
        return f"{head}: {self.reason}" if head else self.reason


class FormatError(LinkError):
    """A file is malformed: truncated, bad offsets, sizes or indices, wrong magic."""


class UnsupportedError(LinkError):
    """The input is well formed but uses something linkload does not implement (a relocation
    kind, TLS, a machine)."""


class UndefinedSymbolError(LinkError):
    """A symbol that must be defined is defined nowhere the linker can see."""


class RelocationOverflowError(LinkError):
    """A relocated value does not fit its field (and no veneer can help)."""


class PlacementError(LinkError):
    """Memory could not be reserved where the module needs it."""


class DebuggerError(LinkError):
    """Debuggers cannot be told of linked modules (GDB's JIT interface could not be loaded)."""


class ModuleStateError(LinkError):
    """An operation does not fit the state of a module (unlinking twice, a module still in use)."""


class ConfigError(LinkError):
    """A locator configuration line does not parse or does not make sense: the message names
    the file, the line and what was expected there."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.line = line
        super().__init__(message, file=file)

    def _format(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file
        return f"{where}: {self.reason}" if where else self.reason


class FixupError(LinkError):
    """A fixup of a program being located cannot be recomputed for where its sections
    landed (its target is unknown, or half an address)."""


class UnsupportedFixupError(FixupError, UnsupportedError):
    """A fixup of a program being located whose kind the locator cannot recompute (GOT or TLS
    relative, dynamic, or a kind linkload does not encode), though its value would change:
    caught as either."""
