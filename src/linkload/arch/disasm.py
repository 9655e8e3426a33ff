"""Disassembly of a CPU's code with capstone, for ``linkload dump --disasm``."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Arch


def disassemble(arch: Arch, code: bytes, address: int,
                notes: dict[int, list[str]] | None = None) -> Iterator[str]:
    """Lines of disassembly of ``code`` loaded at ``address``; ``notes`` (address -> texts)
    adds text after the instruction that holds each address (its relocations)."""
    if arch.disassembly is None:
        yield f"  (no disassembler for the {arch.name} CPU)"
        return
    try:
        import capstone  # a tenth of a second to import: only --disasm pays for it
    except ImportError:
        yield "  (capstone is not installed: pip install capstone)"
        return
    spec = arch.disassembly
    mode = 0
    for name in spec.cs_mode:
        mode |= getattr(capstone, name)
    md = capstone.Cs(getattr(capstone, spec.cs_arch), mode)
    md.skipdata = True
    noted = sorted((notes or {}).items())
    k = 0
    for insn in md.disasm(code, address):
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        line = f"  {insn.address:08x}:  {insn.bytes.hex()}  {text}"
        while k < len(noted) and noted[k][0] < insn.address:
            k += 1  # a note between instructions (in skipped data): dropped
        extra = []
        while k < len(noted) and noted[k][0] < insn.address + insn.size:
            extra += noted[k][1]
            k += 1
        yield f"{line:<56} ; {'; '.join(extra)}" if extra else line
