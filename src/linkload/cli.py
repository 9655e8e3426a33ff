"""The ``linkload`` command: argument parsing and printing over the Python API.

    linkload run a.o [b.o ...] --call SYMBOL [INT ...]   link into this process, call, print
    linkload dump FILE [--disasm] [--plf PLF]            sections, symbols, relocations
    linkload makerel STATIC.elf a.plf [b.plf ...]         build RELs, the .str table, import.lst
    linkload locate PROGRAM [CONFIG ...] [COMMAND ...] -o OUTDIR [--run]
                                                         place a program into a board's memory

Errors print as one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from collections.abc import Sequence

from .errors import LinkError

RESTYPES = {
    "int": ctypes.c_int,
    "uint": ctypes.c_uint,
    "long": ctypes.c_long,
    "ulong": ctypes.c_ulong,
    "double": ctypes.c_double,
    "void": None,
}


def _integer(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linkload", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="link objects into this process and call a function")
    run.add_argument("objects", nargs="+", help="object files (gcc -c, ld -r)")
    run.add_argument("--call", nargs="+", required=True, metavar="SYMBOL [INT ...]",
                     help="function to call, then its integer arguments")
    run.add_argument("--lib", action="append", default=[], metavar="LIBRARY",
                     help="a further shared library to link against (e.g. libstdc++.so.6)")
    run.add_argument("--restype", choices=sorted(RESTYPES), default="int",
                     help="the function's result type (default int)")
    run.add_argument("--name", help="module name (default: the first object's)")

    dump = sub.add_parser("dump", help="show a file's sections, symbols and relocations")
    dump.add_argument("file", help="an ELF file, a REL (.rel), a DOL (.dol) or a PE image (.exe)")
    dump.add_argument("--format", choices=["elf", "rel", "dol", "pe"],
                      help="the file's format (default: from its magic or extension)")
    dump.add_argument("--disasm", action="store_true",
                      help="disassemble the executable sections, for the file's CPU (needs capstone)")
    dump.add_argument("--plf", help="REL: the plf it was made from (section names, alignments)")

    mk = sub.add_parser("makerel", help="build REL modules from partially linked PowerPC ELF "
                        "files (.plf) and a static module")
    mk.add_argument("inputs", nargs="+", metavar="FILE",
                    help="STATIC.elf (or .dol) then the plf files; without a static module "
                         "(and without --symbols) only import.lst is written")
    mk.add_argument("--version", type=int, choices=[1, 2, 3], default=3, dest="rel_version",
                    help="REL version (default 3)")
    mk.add_argument("--base-id", type=_integer, default=1, help="id of the first module (1)")
    mk.add_argument("--str", dest="str_name", metavar="NAME.str",
                    help="module name table (default: the static module's name + .str)")
    mk.add_argument("--import-list", default="import.lst", metavar="FILE",
                    help="where to write the static-module symbols the modules use")
    mk.add_argument("--symbols", metavar="FILE",
                    help="static-module symbols: address:name lines, section,offset:name "
                         "lines, a CodeWarrior map or a decomp-toolkit symbols.txt")
    mk.add_argument("-o", "--output-dir", metavar="DIR", help="write every output here")

    loc = sub.add_parser("locate", help="place a linked program (PE image, ELF executable) into a "
                         "target's memory regions, as RTLoc does")
    loc.add_argument("program", help="a PE image (.exe) or an ELF executable (kept relocations: "
                                     "-Wl,--emit-relocs; or -pie)")
    loc.add_argument("arguments", nargs="*", metavar="CONFIG|COMMAND",
                     help="configuration files, then commands such as 'Locate Stack Stack RAM 16k' "
                          "(without a file: PROGRAM.cfg, if there is one, after the commands)")
    loc.add_argument("-o", "--output-dir", metavar="OUTDIR",
                     help="write the ELF image, Intel HEX, ROM binaries, map, layout and picture here")
    loc.add_argument("--run", action="store_true",
                     help="boot the located program in the emulated target by its boot table")
    loc.add_argument("--console", type=_integer, metavar="ADDRESS",
                     help="with --run: print the bytes the program stores to this address")
    loc.add_argument("--timeout", type=float, default=10.0, help="with --run: seconds (10)")
    return parser


def cmd_run(ns: argparse.Namespace) -> int:
    from .link import Linker

    symbol, *texts = ns.call
    try:
        args = [_integer(t) for t in texts]
    except argparse.ArgumentTypeError as e:
        raise LinkError(str(e)) from None
    ld = Linker.native(libraries=ns.lib)
    module = ld.link(list(ns.objects), name=ns.name)
    restype = RESTYPES[ns.restype]
    fn = module.function(symbol, restype, *([ctypes.c_long] * len(args)))
    result = fn(*args)
    sys.stdout.flush()
    if restype is not None:
        print(result)
    return 0


def cmd_dump(ns: argparse.Namespace) -> int:
    from .formats import dump

    for line in dump(ns.file, disasm=ns.disasm, format=ns.format, plf=ns.plf):
        print(line)
    return 0


def _is_static(path: str) -> bool:
    """True for a DOL or an ELF executable: the first makerel input is then the static module."""
    if path.lower().endswith(".dol"):
        return True
    from .formats import elf as elf_format
    from .formats import read_bytes

    data, file = read_bytes(path)
    return bytes(data[:4]) == elf_format.MAGIC and elf_format.ElfFile(data, file).header.type \
        in (elf_format.ET_EXEC, elf_format.ET_DYN)


def cmd_makerel(ns: argparse.Namespace) -> int:
    from .tools import makerel

    inputs = list(ns.inputs)
    static = inputs.pop(0) if _is_static(inputs[0]) else None
    if not inputs:
        raise LinkError("makerel needs at least one plf")
    result = makerel(static, inputs, version=ns.rel_version, base_id=ns.base_id,
                     str_name=ns.str_name, import_list=ns.import_list, out_dir=ns.output_dir,
                     symbols=ns.symbols)
    for r in result.rels:
        print(f"{r.path}: module {r.id}, {len(r.data)} bytes, {r.relocations} relocations "
              f"({r.resolved_in_file} resolved in the file)")
    if result.str_path:
        print(f"{result.str_path}: {len(result.rels)} module names")
    if result.import_path:
        print(f"{result.import_path}: {len(result.imports)} static-module symbols")
    return 0


def cmd_locate(ns: argparse.Namespace) -> int:
    from .locate import locate_program, run, split_arguments, write_outputs

    if ns.output_dir is None and not ns.run:
        raise LinkError("nothing to do: give -o OUTDIR, --run or both")
    configs, commands = split_arguments(ns.arguments)
    located = locate_program(ns.program, configs, commands)
    fixups = located.fixups
    how = f"moved as a whole by {fixups.delta:+#x}" if fixups.whole else "sections moved apart"
    print(f"{ns.program}: {len(located.program.sections)} sections, {len(located.program.fixups)} "
          f"fixups ({how}), entry {located.entry:#x}")
    if ns.output_dir is not None:
        for path in write_outputs(located, ns.output_dir).values():
            print(f"  wrote {path}")
    if ns.run:
        sys.stdout.flush()
        result = run(located, console=ns.console, timeout=ns.timeout)
        sys.stdout.write(result.output.decode("utf-8", "replace"))
        print(f"{located.program.name} returned {result.result}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "dump": cmd_dump, "makerel": cmd_makerel,
                "locate": cmd_locate}[ns.command](ns)
    except LinkError as e:
        print(f"linkload: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:  # a file that cannot be written, a folder that is not there
        print(f"linkload: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
