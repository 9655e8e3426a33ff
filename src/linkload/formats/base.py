"""What every format file shares: where its bytes come from."""

from __future__ import annotations

import mmap
import os

from ..errors import FormatError

Source = str | os.PathLike | bytes | bytearray | memoryview
MAP_THRESHOLD = 1 << 20


def read_bytes(source: Source) -> tuple[bytes | bytearray | memoryview, str]:
    """The bytes of ``source`` (a path or the bytes themselves) and a name for messages."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:  # (the os calls, not open(): a small module's link is cheaper by 4 µs)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                if size < MAP_THRESHOLD:
                    return _read_all(fd, size), path
                # Large files are mapped, not copied: readers slice them with memoryviews.
                return memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ)), path
            finally:
                os.close(fd)
        except OSError as e:
            raise FormatError(f"cannot read: {e.strerror}", file=path) from None
    return source, "<bytes>"


def _read_all(fd: int, size: int) -> bytes:
    """The file's bytes to its end (``size``: what it held when asked, a hint)."""
    parts = []
    while part := os.read(fd, size + 1 if not parts else 1 << 20):
        parts.append(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def file_and_bytes(source: Source, file: str | None) -> tuple[bytes | bytearray | memoryview, str]:
    """The bytes of ``source`` and the name messages give it: the path, or ``file`` (default
    ``"<bytes>"``) for bytes given directly."""
    data, default_name = read_bytes(source)
    return data, default_name if isinstance(source, (str, os.PathLike)) else (file or default_name)


def module_name(file: str, name: str | None = None) -> str:
    """``name``, or the file's base name without its extension."""
    return name or os.path.splitext(os.path.basename(file))[0]
