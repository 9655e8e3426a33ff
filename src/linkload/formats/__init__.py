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


def read_module(source: Source, name: str | None = None) -> Module:
    """Read any supported module or object file, recognised by its contents."""
    from . import elf

    data, file = read_bytes(source)
    if bytes(data[:4]) == elf.MAGIC:
        return elf.read(data, name or os.path.splitext(os.path.basename(file))[0], file)
    raise FormatError("unrecognised file format", file=file, offset=0)
