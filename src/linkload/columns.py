"""Column helpers every layer may use (numpy only).

:func:`distinct` stands in for ``np.unique(values)``: numpy 2's ``unique``, called without
``return_index``/``return_inverse``/``return_counts``, imports ``numpy.ma`` the first time a
process calls it, which costs a command like ``linkload dump`` more than all its work (tens of
milliseconds).
"""

from __future__ import annotations

import numpy as np


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a column, ascending (what ``np.unique(values)`` gives for the
    integer columns linkload keeps)."""
    ordered = np.sort(values, axis=None)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


__all__ = ["distinct"]
