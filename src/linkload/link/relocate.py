"""Vectorised field access: read and write many fields of one width in a byte image at once.

Fields may be unaligned, so a column of fields of ``size`` bytes is gathered and scattered
through a byte-strided window of the image (a word starting at every byte); when every field
of the column is aligned, through the image viewed as ``size``-byte words, several times faster.
"""

from __future__ import annotations

import numpy as np


def window(image: np.ndarray, size: int, byteorder: str) -> np.ndarray:
    """A view of ``image`` (uint8) whose element ``i`` is the ``size``-byte word starting at
    byte ``i``: unaligned fields are then read and written with one fancy index."""
    count = max(len(image) - size + 1, 0)
    return np.ndarray((count,), dtype=f"{byteorder}u{size}", buffer=image, strides=(1,))


def gather(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str) -> np.ndarray:
    """The ``size``-byte fields at ``positions`` of ``image`` (uint8), as uint64 values."""
    if not len(positions):
        return np.zeros(0, np.uint64)
    words = _aligned_words(image, positions, size, byteorder, "u")
    if words is not None:
        return words[positions >> _SHIFTS[size]].astype(np.uint64)
    return window(image, size, byteorder)[positions].astype(np.uint64)


def scatter(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str,
            values: np.ndarray) -> None:
    """Store the low ``size`` bytes of each of ``values`` at ``positions`` of ``image``
    (fields must not overlap)."""
    if not len(positions):
        return
    words = _aligned_words(image, positions, size, byteorder, values.dtype.kind)
    if words is not None:
        words[positions >> _SHIFTS[size]] = values  # wraps to the field's width
        return
    window(image, size, byteorder)[positions] = values.astype(f"{byteorder}u{size}",
                                                              casting="unsafe")


_SHIFTS = {1: 0, 2: 1, 4: 2, 8: 3}


def _aligned_words(image: np.ndarray, positions: np.ndarray, size: int, byteorder: str,
                   signedness: str) -> np.ndarray | None:
    """``image`` as an array of ``size``-byte words, if every position is a multiple of
    ``size`` (data tables of pointers usually are): numpy indexes aligned words several
    times faster than the byte-strided window."""
    if size == 1 or image.ctypes.data % size or int(positions[0]) % size:
        return None  # (the first field decides most unaligned columns without a pass)
    if int(np.bitwise_or.reduce(positions)) % size:
        return None
    signedness = "i" if signedness == "i" else "u"
    return image[:len(image) - len(image) % size].view(f"{byteorder}{signedness}{size}")


def evaluate(expr, S: np.ndarray, A: np.ndarray, P: np.ndarray, *, got: int = 0,
             slot: np.ndarray | None = None, size: np.ndarray | None = None) -> np.ndarray:
    """The value of relocation expression ``expr`` for columns S (target), A (addend) and P
    (place); ``got`` is the GOT's address, ``slot`` the address of each target's GOT slot and
    ``size`` each target's size."""
    from ..arch import Expr

    if expr is Expr.ABS:
        return S + A
    if expr in (Expr.PCREL, Expr.BRANCH):
        return S + A - P
    if expr is Expr.GOT_PCREL:
        return slot + A - P
    if expr is Expr.GOT_OFF:
        return S + A - np.int64(got)
    if expr is Expr.GOT_PC:
        return np.int64(got) + A - P
    if expr is Expr.GOT_SLOT:
        return slot - np.int64(got) + A
    if expr is Expr.SIZE:
        return size + A
    raise ValueError(f"no value for expression {expr}")
