"""The one field writer (``linkload.arch.fields``): adjust, check, route through veneers,
encode; the same routine links modules, re-patches callers and builds RELs."""

from __future__ import annotations

import numpy as np
import pytest

from linkload.arch import ppc, x86_64
from linkload.arch.fields import (
    FieldBatch,
    VeneerSlots,
    branch_to,
    fits,
    gather,
    kind_set,
    kinds_of,
    stored_addends,
    write_fields,
)
from linkload.columns import distinct

PPC, X86 = ppc.ARCH, x86_64.ARCH


def batch(arch, kinds, positions, values, **extra) -> FieldBatch:
    kind = np.array(kinds, np.intp)
    return FieldBatch(kind_set(arch, kinds_of(kind)), kind, np.array(positions, np.int64),
                      np.array(values, np.int64), **extra)


def test_masked_fields_keep_their_other_bits_and_halves_are_adjusted():
    image = np.frombuffer(bytes.fromhex("48000001" "3d200000" "39290000"), np.uint8).copy()
    target = 0x8123_9ABC  # @ha rounds up: the low half is negative as a signed 16-bit number
    fields = batch(PPC, [ppc.R_PPC_REL24, ppc.R_PPC_ADDR16_HA, ppc.R_PPC_ADDR16_LO],
                   [0, 6, 10], [0x100, target, target])
    assert write_fields(PPC, image, ">", fields) is None
    assert image.tobytes().hex() == "48000101" "3d208124" "39299abc"  # bl +0x100, lis, addi


def test_bounds_are_inclusive_and_overflows_are_counted():
    assert fits(x86_64.SIGNED32, np.array([-(1 << 31), (1 << 31) - 1])).all()
    assert not fits(x86_64.SIGNED32, np.array([1 << 31, -(1 << 31) - 1])).any()
    image = np.zeros(16, np.uint8)
    fields = batch(X86, [2, 2, 2, 2], [0, 4, 8, 12], [1, 1 << 31, -5, -(1 << 40)])
    overflow = write_fields(X86, image, "<", fields)
    assert (overflow.row, overflow.value, overflow.count) == (1, 1 << 31, 2)


def test_a_far_branch_goes_through_its_veneer():
    image = np.zeros(32, np.uint8)
    image[:4] = np.frombuffer(bytes.fromhex("48000001"), np.uint8)  # bl, with LK set
    base, far = 0x9000_0000, 0x8000_0100  # 256 MiB below: out of a bl's reach
    written = {}
    veneers = VeneerSlots({(7, 0): base + 16}, lambda address, code: written.update({address: code}))
    fields = batch(PPC, [ppc.R_PPC_REL24], [0], [far - base], places=np.array([base]),
                   targets=np.array([7]), addends=np.array([0]))
    assert write_fields(PPC, image, ">", fields, veneers) is None
    assert written == {base + 16: ppc.veneer(base + 16, far)}
    assert int(gather(image, np.array([0]), 4, ">")[0]) == 0x4800_0011  # bl +16, LK kept
    # without a veneer for that target the branch is an overflow, not a silent wrap
    none = VeneerSlots({}, lambda address, code: None)
    assert write_fields(PPC, np.zeros(4, np.uint8), ">", fields, none).count == 1


def test_branch_to_lands_on_the_destination():
    # x86-64 measures from the end of the rel32: a call at P landing on X holds X - 4 - P
    assert int(branch_to(np.int64(0x1000), np.int64(0x2000), X86.branch_bias)) == 0x1000 - 4 - 0x2000


@pytest.mark.parametrize("value", [-0x8000, -4, 0, 0x7FFC])
def test_stored_addends_decode_what_was_encoded(value):
    image = np.frombuffer(bytes.fromhex("4082" "0000"), np.uint8).copy()  # bne
    write_fields(PPC, image, ">", batch(PPC, [ppc.R_PPC_REL14], [0], [value]))
    decoded = stored_addends(PPC, image, ">", np.array([ppc.R_PPC_REL14]), np.array([0]))
    assert int(decoded[0]) == value


@pytest.mark.parametrize("size", [0, 1, 2, 1000])
def test_distinct_is_np_unique(size):
    """linkload's stand-in for np.unique (which imports numpy.ma) gives the same values."""
    values = np.random.default_rng(size).integers(-50, 50, size).astype(np.int64)
    assert np.array_equal(distinct(values), np.unique(values))
    assert distinct(values).dtype == values.dtype
