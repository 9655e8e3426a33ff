"""``linkload mksymtab``: NuttX's export table in C, from its CSV (what ``tools/mksymtab``
does): the firmware compiles it in, and its loader binds a program's imports by looking names
up in it (a binary search: the table is sorted by name).

Each CSV row is ``"name","header","condition","rettype","param1",...``; a row without
parameters is a variable, whose entry takes its address. A condition wraps the entry in
``#if``. The emulated loader reads the same CSV directly (``Linker.emulated(...,
exports="exports.csv")``), or the firmware's own table from its memory.
"""

from __future__ import annotations

import os

from ..formats.symtab import ExportRow, read_exports_csv

TABLE_NAME, COUNT_NAME = "g_nxflat_exports", "g_nxflat_nexports"


def symtab_c(rows: list[ExportRow], table: str = TABLE_NAME, count: str = COUNT_NAME,
             source_name: str = "symtab.c") -> str:
    """The C file: the headers the rows name (each once, in order of first mention), then
    the table sorted by name and its count."""
    rows = sorted(rows, key=lambda r: r.name.encode())
    headers = list(dict.fromkeys(r.header for r in sorted(rows, key=lambda r: r.line) if r.header))
    lines = [f"/* {source_name}: Auto-generated symbol table.  Do not edit */", "",
             "#include <nuttx/config.h>", "#include <nuttx/compiler.h>",
             "#include <nuttx/symtab.h>", ""]
    lines += [f"#include <{h}>" for h in headers]
    lines += ["", f"const struct symtab_s {table}[] =", "{"]
    for i, row in enumerate(rows):
        address = row.name if row.is_function else f"&{row.name}"
        comma = "," if i < len(rows) - 1 else ""
        if row.condition:
            lines.append(f"#if {row.condition}")
        lines.append(f'  {{ "{row.name}", (FAR const void *){address} }}{comma}')
        if row.condition:
            lines.append("#endif")
    lines += ["};", "", f"#define NSYMBOLS (sizeof({table}) / sizeof (struct symtab_s))",
              f"int {count} = NSYMBOLS;"]
    return "\n".join(lines) + "\n"


def mksymtab(csv: str | os.PathLike, output: str | os.PathLike, *, table: str = TABLE_NAME,
             count: str = COUNT_NAME) -> list[ExportRow]:
    """Read ``csv`` and write its C table to ``output``; returns the rows."""
    rows = read_exports_csv(csv)
    text = symtab_c(rows, table, count, os.path.basename(os.fspath(output)))
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    return rows


__all__ = ["COUNT_NAME", "TABLE_NAME", "mksymtab", "symtab_c"]
