"""Vectorised field access: read and write many fields of one width in a byte image at once.

Fields may be unaligned, so a column of ``n`` fields of ``size`` bytes is gathered and
scattered through an ``(n, size)`` index matrix rather than through a typed view.
"""

from __future__ import annotations

import numpy as np


def _index(positions: np.ndarray, size: int) -> np.ndarray:
    return positions.astype(np.int64)[:, None] + np.arange(size, dtype=np.int64)


def gather(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str) -> np.ndarray:
    """The ``size``-byte fields at ``positions`` of ``image`` (uint8), as uint64 values."""
    if not len(positions):
        return np.zeros(0, np.uint64)
    raw = np.ascontiguousarray(image[_index(positions, size)])
    return raw.view(f"{byteorder}u{size}").reshape(-1).astype(np.uint64)


def scatter(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str,
            values: np.ndarray) -> None:
    """Store the low ``size`` bytes of each of ``values`` at ``positions`` of ``image``."""
    if not len(positions):
        return
    mask = np.uint64((1 << (8 * size)) - 1)
    narrow = (values.astype(np.uint64) & mask).astype(f"{byteorder}u{size}")
    image[_index(positions, size)] = narrow.view(np.uint8).reshape(-1, size)
