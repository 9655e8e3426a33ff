"""A second front end to the locator: a GNU ld linker script's ``MEMORY`` block and its
output sections' ``>REGION AT>REGION`` as the description of regions and placement.

    MEMORY {
      FLASH (rx)  : ORIGIN = 0x08000000, LENGTH = 64K
      RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 20K
    }
    SECTIONS {
      .text : { *(.text*) } > FLASH
      .data : { *(.data*) } > RAM AT> FLASH
      .bss  : { *(.bss*) } > RAM
    }

becomes, in the locator's own commands::

    Region FLASH 0x08000000 64k ROM       ; no w among the attributes: ROM
    Region RAM 0x20000000 20k RAM
    Locate Section .text FLASH            ; output sections in order, where they run
    Locate Section .data RAM
    Locate Section .bss RAM
    Locate Copy .data FLASH               ; AT>: where their bytes are stored

An output section the program lacks is skipped, as ld drops empty output sections. The
contents of output sections (input section patterns, assignments, ``. = ALIGN(n)`` inside
them) are not read: the sections of a linked program are placed whole, aligned as the
``ALIGN(n)`` before the colon and the section's own alignment say. Anything else (``INCLUDE``,
``REGION_ALIAS``, expressions beyond numbers, ``+ - *``, ``ORIGIN()`` and ``LENGTH()``) is a
:class:`~linkload.errors.ConfigError` naming the line.
"""

from __future__ import annotations

import re

from .config import Alloc, Command, LocateCommand, MemType, RegionCommand, Where

_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_MEMORY_LINE = re.compile(
    r"(?P<name>[A-Za-z_][\w.]*)\s*(\((?P<attr>[^)]*)\))?\s*:\s*"
    r"(ORIGIN|org|o)\s*=\s*(?P<origin>[^,]+?)\s*,\s*(LENGTH|len|l)\s*=\s*(?P<length>[^,;\n]+)")
_TOKEN = re.compile(r"\s*(0x[0-9a-fA-F]+[KM]?|\d+[KM]?|ORIGIN|LENGTH|[A-Za-z_][\w.]*|[-+*()])")


def is_linker_script(text: str) -> bool:
    """True if ``text`` reads as a GNU ld linker script (it has a MEMORY block)."""
    return re.search(r"\bMEMORY\s*\{", _COMMENT.sub("", text)) is not None


def _blank_comments(text: str) -> str:
    """Comments replaced by spaces (newlines kept), so that offsets still give lines."""
    return _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _block(text: str, keyword: str, file: str) -> tuple[int, int] | None:
    """(start, end) of the body of ``keyword { ... }``, braces balanced."""
    m = re.search(rf"\b{keyword}\s*\{{", text)
    if m is None:
        return None
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    if depth:
        raise Where(file, _line(text, m.start())).error(f"{keyword} {{ is never closed")
    return m.end(), i - 1


def evaluate(expression: str, regions: dict[str, RegionCommand], where: Where) -> int:
    """A MEMORY expression: numbers (``0x``, ``K``, ``M``), ``+ - *``, parentheses,
    ``ORIGIN(region)`` and ``LENGTH(region)``."""
    tokens, at = [], 0
    while at < len(expression.rstrip()):
        m = _TOKEN.match(expression, at)
        if m is None:
            raise where.error(f"expected a number in {expression.strip()!r}")
        tokens.append(m.group(1))
        at = m.end()
    position = 0

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise where.error(f"expression {expression.strip()!r} ends too soon")
        position += 1
        return tokens[position - 1]

    def atom() -> int:
        token = take()
        if token == "(":
            value = sum_()
            if take() != ")":
                raise where.error(f"expected ')' in {expression.strip()!r}")
            return value
        if token in ("ORIGIN", "LENGTH"):
            take()
            name = take()
            take()
            if name not in regions:
                raise where.error(f"no memory region {name!r} before this one")
            region = regions[name]
            return region.address if token == "ORIGIN" else region.size
        scale = {"K": 1 << 10, "M": 1 << 20}.get(token[-1], 1)
        digits = token[:-1] if scale > 1 else token
        try:
            return int(digits, 0) * scale
        except ValueError:
            raise where.error(f"expected a number, not {token!r}") from None

    def product() -> int:
        value = atom()
        while position < len(tokens) and tokens[position] == "*":
            take()
            value *= atom()
        return value

    def sum_() -> int:
        value = product()
        while position < len(tokens) and tokens[position] in "+-":
            sign = take()
            value = value + product() if sign == "+" else value - product()
        return value

    value = sum_()
    if position != len(tokens):
        raise where.error(f"unexpected {tokens[position]!r} in {expression.strip()!r}")
    return value


def parse(text: str, file: str) -> list[Command]:
    """The commands a linker script stands for (see the module docstring)."""
    text = _blank_comments(text)
    if re.search(r"\b(INCLUDE|REGION_ALIAS)\b", text):
        m = re.search(r"\b(INCLUDE|REGION_ALIAS)\b", text)
        raise Where(file, _line(text, m.start())).error(f"{m.group(1)} is not supported")
    memory = _block(text, "MEMORY", file)
    if memory is None:
        raise Where(file, 1).error("expected a MEMORY block")
    regions: dict[str, RegionCommand] = {}
    for m in _MEMORY_LINE.finditer(text, memory[0], memory[1]):
        where = Where(file, _line(text, m.start()))
        attributes = (m.group("attr") or "").split("!")[0].lower()
        memtype = MemType.RAM if "w" in attributes else MemType.ROM
        regions[m.group("name")] = RegionCommand(
            m.group("name"), evaluate(m.group("origin"), regions, where),
            evaluate(m.group("length"), regions, where), memtype, "Assign", where)
    leftover = _MEMORY_LINE.sub("", text[memory[0]:memory[1]]).strip(" \t\n,;")
    if leftover:
        raise Where(file, _line(text, memory[0] + text[memory[0]:memory[1]].find(leftover[:8]))
                    ).error(f"expected NAME (attributes) : ORIGIN = n, LENGTH = n, not {leftover[:40]!r}")
    commands: list[Command] = list(regions.values())
    sections = _block(text, "SECTIONS", file)
    if sections is not None:
        commands += _output_sections(text, sections, regions, file)
    return commands


def _output_sections(text: str, body: tuple[int, int], regions: dict[str, RegionCommand],
                     file: str) -> list[Command]:
    """Locate commands for the output sections at the top level of SECTIONS, in order; their
    copies (AT>) after them."""
    runs, copies = [], []
    header = re.compile(r"\s*(?P<name>[.\w$/-][\w.$/-]*)\s*(?P<address>[^:{};=]*?)\s*:\s*"
                        r"(?P<before>[^{};]*)\{")
    i = body[0]
    while i < body[1]:
        m = header.match(text, i)
        if m is None:  # an assignment or another statement: skip to the next ';' or '}'
            end = min((j for j in (text.find(";", i), text.find("\n", i)) if j != -1), default=body[1])
            i = max(end + 1, i + 1)
            continue
        where = Where(file, _line(text, m.start("name")))
        close, depth = m.end(), 1
        while depth and close < body[1]:
            depth += {"{": 1, "}": -1}.get(text[close], 0)
            close += 1
        tail = re.match(r"\s*(>\s*(?P<vma>\w+))?\s*(AT\s*>\s*(?P<lma>\w+))?", text[close:body[1]])
        i = close + tail.end()
        name = m.group("name")
        if name == "/DISCARD/":
            continue
        align = re.search(r"\bALIGN\s*\(\s*(\w+)\s*\)", m.group("before"))
        alignment = evaluate(align.group(1), regions, where) if align else 0
        if alignment & (alignment - 1) or alignment < 0:
            raise where.error(f"ALIGN({align.group(1)}) of output section {name}: {alignment:#x} is "
                              "not a power of two")
        vma, lma = tail.group("vma"), tail.group("lma")
        if vma is None:
            raise where.error(f"output section {name} has no >REGION: the locator places each "
                              "section in a region")
        for region in (vma, lma):
            if region is not None and region not in regions:
                raise where.error(f"no memory region {region!r} (MEMORY has {', '.join(regions)})")
        runs.append(LocateCommand("Section", name, vma, 0, alignment, "Assign", Alloc.DEFAULT,
                                  False, where, optional=True))
        if lma is not None and lma != vma:
            copies.append(LocateCommand("Copy", name, lma, 0, 0, "Assign", Alloc.DEFAULT, False,
                                        where, optional=True))
    return runs + copies
