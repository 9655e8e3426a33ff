"""Vectorised field access: read and write many fields of one width in a byte image at once.

Fields may be unaligned, so a column of ``n`` fields of ``size`` bytes is gathered and
scattered through an ``(n, size)`` index matrix rather than through a typed view.
"""

from __future__ import annotations

import numpy as np


def _shifts(size: int, byteorder: str) -> np.ndarray:
    order = np.arange(size, dtype=np.uint64)
    if byteorder == ">":
        order = order[::-1].copy()
    return order * np.uint64(8)


def gather(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str) -> np.ndarray:
    """The ``size``-byte fields at ``positions`` of ``image`` (uint8), as uint64 values."""
    if not len(positions):
        return np.zeros(0, np.uint64)
    index = positions.astype(np.int64)[:, None] + np.arange(size, dtype=np.int64)
    parts = image[index].astype(np.uint64) << _shifts(size, byteorder)
    return np.bitwise_or.reduce(parts, axis=1)


def scatter(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str,
            values: np.ndarray) -> None:
    """Store the low ``size`` bytes of each of ``values`` at ``positions`` of ``image``."""
    if not len(positions):
        return
    index = positions.astype(np.int64)[:, None] + np.arange(size, dtype=np.int64)
    parts = (values.astype(np.uint64)[:, None] >> _shifts(size, byteorder)) & np.uint64(0xFF)
    image[index] = parts.astype(np.uint8)
