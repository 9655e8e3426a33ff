"""File formats: one file per format, each turning bytes into a :class:`~linkload.model.Module`
(and, for the formats linkload writes, back)."""

from __future__ import annotations

import mmap
import os

from ..errors import FormatError
from ..model import Module

Source = str | os.PathLike | bytes | bytearray | memoryview
MAP_THRESHOLD = 1 << 20


def read_bytes(source: Source) -> tuple[bytes | bytearray | memoryview, str]:
    """The bytes of ``source`` (a path or the bytes themselves) and a name for messages."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < MAP_THRESHOLD:
                    return f.read(), path
                # Large files are mapped, not copied: readers slice them with memoryviews.
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)), path
        except OSError as e:
            raise FormatError(f"cannot read: {e.strerror}", file=path) from None
    return source, "<bytes>"


FORMATS = ("elf", "rel", "dol")


def guess_format(data: bytes | bytearray | memoryview, file: str) -> str | None:
    """``"elf"`` by the magic; ``"rel"`` / ``"dol"`` by the extension (neither has a magic);
    None otherwise."""
    from . import elf

    if bytes(data[:4]) == elf.MAGIC:
        return "elf"
    extension = os.path.splitext(file)[1].lower()
    return {".rel": "rel", ".dol": "dol"}.get(extension)


def read_module(source: Source, name: str | None = None, format: str | None = None) -> Module:
    """Read any supported module or object file: ELF recognised by its contents, REL and DOL
    by their extension or an explicit ``format`` (``"elf"``, ``"rel"``, ``"dol"``)."""
    from . import dol, elf, rel

    data, file = read_bytes(source)
    if format is not None and format not in FORMATS:
        raise FormatError(f"unknown format {format!r} (one of {', '.join(FORMATS)})", file=file)
    kind = format or guess_format(data, file)
    module_name = name or os.path.splitext(os.path.basename(file))[0]
    if kind == "elf":
        return elf.read(data, module_name, file)
    if kind == "rel":
        return rel.read(data, module_name, file)
    if kind == "dol":
        return dol.read(data, module_name, file)
    raise FormatError("unrecognised file format", file=file, offset=0)
