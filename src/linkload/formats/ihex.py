"""Intel HEX: bytes at addresses as text records, what EPROM programmers and flash tools take.

Each line is ``:`` then, in hexadecimal, a byte count, a 16-bit address, a record type, the
data and a checksum (the two's complement of the sum of the other bytes). Types used: 00 data,
01 end of file, 04 extended linear address (the upper 16 bits of the addresses that follow)
and 05 start linear address (the entry point). Addresses are 32-bit.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import FormatError

DATA, END, EXTENDED_LINEAR, START_LINEAR = 0, 1, 4, 5
RECORD_BYTES = 16


def _record(kind: int, address: int, data: bytes) -> str:
    body = bytes([len(data), (address >> 8) & 0xFF, address & 0xFF, kind]) + data
    return f":{body.hex().upper()}{(-sum(body)) & 0xFF:02X}"


def write(chunks: Iterable[tuple[int, bytes]], entry: int | None = None) -> str:
    """The HEX text of ``chunks`` ((address, bytes) pairs) and the entry point."""
    lines = []
    upper = None
    for address, data in chunks:
        if address < 0 or address + len(data) > 1 << 32:
            raise FormatError(f"bytes at {address:#x} do not fit Intel HEX's 32-bit addresses")
        at = 0
        while at < len(data):
            here = address + at
            if here >> 16 != upper:
                upper = here >> 16
                lines.append(_record(EXTENDED_LINEAR, 0, upper.to_bytes(2, "big")))
            # a record stays within one 64 KiB page
            n = min(RECORD_BYTES, len(data) - at, 0x10000 - (here & 0xFFFF))
            lines.append(_record(DATA, here & 0xFFFF, bytes(data[at:at + n])))
            at += n
    if entry is not None:
        lines.append(_record(START_LINEAR, 0, (entry & 0xFFFF_FFFF).to_bytes(4, "big")))
    lines.append(_record(END, 0, b""))
    return "\n".join(lines) + "\n"


def read(text: str, file: str = "<hex>") -> tuple[dict[int, int], int | None]:
    """The bytes a HEX file holds (address -> byte) and its entry point, every checksum
    checked."""
    memory: dict[int, int] = {}
    upper, entry = 0, None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            raw = bytes.fromhex(line[1:]) if line.startswith(":") else b""
        except ValueError:
            raw = b""
        if len(raw) < 5 or len(raw) != 5 + raw[0] or sum(raw) & 0xFF:
            raise FormatError(f"line {number} is not a valid record", file=file)
        count, address, kind, data = raw[0], int.from_bytes(raw[1:3], "big"), raw[3], raw[4:-1]
        if kind == DATA:
            for i, byte in enumerate(data):
                memory[(upper << 16) + address + i] = byte
        elif kind == EXTENDED_LINEAR and count == 2:
            upper = int.from_bytes(data, "big")
        elif kind == START_LINEAR and count == 4:
            entry = int.from_bytes(data, "big")
        elif kind == END:
            break
        else:
            raise FormatError(f"line {number}: record type {kind} is not supported", file=file)
    return memory, entry
