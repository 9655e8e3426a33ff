"""The i386 CPU file: its relocation kinds through the one field writer, and the emulated CPU
in flat protected mode, whose calls push their return address (no link register), with
cdecl's arguments on the stack."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from linkload import Linker, arch
from linkload.arch.fields import FieldBatch, kind_set, kinds_of, stored_addends, write_fields
from linkload.arch.i386 import (
    ARCH,
    R_386_32,
    R_386_PC32,
    R_386_PE_HIGH,
    R_386_PE_HIGHADJ,
    R_386_PE_LOW,
)
from linkload.space.emulated import EmulatedSpace


def write(kinds, positions, values, size=16):
    image = np.zeros(size, np.uint8)
    kind = np.array(kinds, np.int64)
    batch = FieldBatch(kind_set(ARCH, kinds_of(kind)), kind, np.array(positions, np.int64),
                       np.array(values, np.int64))
    assert write_fields(ARCH, image, "<", batch) is None
    return image.tobytes()


def test_i386_is_a_registered_cpu_with_wrapping_word_fields():
    assert arch.get("i386") is ARCH and ARCH.bits == 32 and ARCH.byteorder == "<"
    # a displacement across the whole 32-bit space wraps, as the CPU's arithmetic does
    assert write([R_386_PC32], [0], [-(3 << 30)])[:4] == struct.pack("<I", 1 << 30)
    assert write([R_386_32], [4], [0xFFFF_FFFC])[4:8] == b"\xfc\xff\xff\xff"
    assert ARCH.kind_name(8) == "R_386_RELATIVE" and "dynamic" in ARCH.unsupported_reason(8)


def test_pe_half_address_kinds_encode_and_decode_their_halves():
    image = write([R_386_PE_HIGH, R_386_PE_LOW, R_386_PE_HIGHADJ], [0, 2, 4],
                  [0x1234_F678, 0x1234_F678, 0x1234_F678])
    assert struct.unpack("<HHH", image[:6]) == (0x1234, 0xF678, 0x1235)  # HIGHADJ rounds
    held = stored_addends(ARCH, np.frombuffer(image, np.uint8), "<",
                          np.array([R_386_PE_HIGH, R_386_PE_LOW]), np.array([0, 2]))
    assert held.tolist() == [0x1234_0000, 0xF678]


@pytest.fixture
def cpu():
    return EmulatedSpace("i386")


def code(space, data: bytes) -> int:
    address = space.reserve(len(data), 16)
    space.write(address, data)
    space.flush(address, len(data))
    return address


def call_rel(site: int, target: int) -> bytes:
    return b"\xe8" + struct.pack("<i", target - (site + 5))


def test_calls_take_cdecl_arguments_on_the_stack_and_return_through_eax(cpu):
    # mov eax,[esp+4]; sub eax,[esp+8]; ret
    sub = code(cpu, b"\x8b\x44\x24\x04\x2b\x44\x24\x08\xc3")
    assert cpu.call(sub, 50, 8) == 42
    assert cpu.call(sub, 1, 3) == -2


def test_host_functions_find_their_return_address_on_the_stack(cpu):
    seen = []
    twice = cpu.host_function("twice", lambda emu, a: seen.append(a) or 2 * a)
    start = cpu.reserve(32, 16)
    # push [esp+4]; call twice; add esp,4; inc eax; ret
    body = b"\xff\x74\x24\x04" + call_rel(start + 4, twice) + b"\x83\xc4\x04\x40\xc3"
    cpu.write(start, body)
    cpu.flush(start, len(body))
    assert cpu.call(start, 20) == 41 and seen == [20]
    assert cpu.call(start, 1) == 3  # the stack is balanced: a second call works too


def test_a_wide_argument_takes_two_stack_words(cpu):
    callback = cpu.host_callback(lambda value: value >> 32)
    start = cpu.reserve(32, 16)
    # push 9; push 1; call callback; add esp,8; ret  -> the 64-bit value 0x9_00000001
    body = b"\x6a\x09\x6a\x01" + call_rel(start + 4, callback) + b"\x83\xc4\x08\xc3"
    cpu.write(start, body)
    cpu.flush(start, len(body))
    assert cpu.call(start) == 9


def test_a_program_may_run_on_a_stack_of_its_own(cpu):
    # mov eax, esp; ret: the stack pointer the callee sees
    where = code(cpu, b"\x89\xe0\xc3")
    top = 0x0080_0000
    assert cpu.start(where, stack=(top - 0x10000, top)) == top - 4  # (16-aligned, then the return address)
    assert cpu.call(where) != top - 4


def test_stores_to_a_device_are_seen(tmp_path):
    space = EmulatedSpace("i386", memory=[(0x10_0000, 0x10_0000, "RAM"),
                                          (0xE000_0000, 0x1000, "UART"),
                                          (0x20_0000, 0x2_0000, "mine")], runtime_region="mine",
                          stack_size=0x1_0000)
    out = []
    space.watch_stores(0xE000_0000, 1, lambda address, size, value: out.append(value))
    # mov byte [0xe0000000], 'h'; mov byte [0xe0000000], 'i'; ret
    store = b"\xc6\x05\x00\x00\x00\xe0"
    where = code(space, store + b"h" + store + b"i" + b"\xc3")
    space.call(where)
    assert bytes(out) == b"hi"
    assert space.reservations()  # the stack and stubs went to "mine", not to RAM
    assert all(0x20_0000 <= a < 0x22_0000 for a in space.reservations() if a != where)


def test_an_i386_object_links_into_the_emulated_cpu(toolchain, tmp_path):
    gcc = toolchain("gcc", None, "ld", ["-m32", "-O2", "-fno-pic", "-ffreestanding"])
    source = tmp_path / "sum.c"
    source.write_text("extern int twice(int);\nstatic int table[3] = {1, 2, 3};\n"
                      "int *ptr = &table[1];\n"
                      "int work(int a, int b) { return twice(a) + *ptr + table[b]; }\n")
    ld = Linker.emulated("i386")
    ld.host_function("twice", lambda emu, a: 2 * a)
    module = ld.link(gcc.compile(source))
    assert module.call("work", 5, 2) == 10 + 2 + 3
