"""The ``linkload`` command: argument parsing and printing over the Python API.

    linkload run a.o [b.o ...] --call SYMBOL [INT ...]   link into this process, call, print
    linkload dump FILE [--disasm] [--plf PLF]            sections, symbols, relocations
    linkload makerel STATIC.elf a.plf [b.plf ...]         build RELs, the .str table, import.lst
    linkload nxflat a.o [b.o ...] -o prog.nxf             build an NXFLAT program (NuttX)
    linkload mksymtab exports.csv -o symtab.c             NuttX's export table in C
    linkload locate PROGRAM [CONFIG ...] [COMMAND ...] -o OUTDIR [--run]
                                                         place a program into a board's memory

Errors print as one line on stderr and exit with status 2.

Each verb imports only what it needs, when it runs (``makerel`` and ``dump`` neither the
linker, the spaces, unicorn nor ctypes; capstone only for ``--disasm``): a command's time is
mostly Python starting and importing.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Mapping, Sequence

from .errors import LinkError

#: ``--restype`` choices -> the ctypes type's name (None: void).
RESTYPES = {
    "int": "c_int",
    "uint": "c_uint",
    "long": "c_long",
    "ulong": "c_ulong",
    "double": "c_double",
    "void": None,
}


def _integer(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


DESCRIPTION = """\
linkload loads the object files ordinary compilers make into a running program and links
them there, and builds and inspects GameCube/Wii REL modules."""

EPILOG = """\
examples:
  linkload run plugin.o --call add 2 3          link into this process, call add(2, 3)
  linkload dump a.o --disasm                    sections, symbols, relocations and code
  linkload dump a.rel                           a REL's header, sections and relocations
  linkload makerel main.elf a.plf b.plf         RELs of a.plf and b.plf (Nintendo's makerel)
  linkload makerel a.plf game.lst -o a.rel      one REL, as pyelf2rel and elf2rel build it

'linkload COMMAND --help' describes a command's options. An error is one line on stderr and
the exit status 2; makerel --match exits with 1 when a REL still differs from its original."""

MAKEREL_DESCRIPTION = """\
Build REL modules from partially linked PowerPC ELF files (.plf, made with ld -r of objects
compiled with -mcpu=750 -msdata=none -fno-pic) and the static module. Each FILE is
recognised by its contents: an ELF executable or a .dol is the static module, a relocatable
ELF a plf, a file ending in .rel the output (pyelf2rel's 'plf lst [out]' order), any other
file a symbol list or map. Writes a .rel per plf, the .str module name table and import.lst
(the static-module symbols the modules use). Without a static module and without symbols,
only import.lst is written (the SDK's first pass)."""

MAKEREL_EPILOG = """\
the options of the other REL tools:
  pyelf2rel 1.0.9          plf lst [out]  --rel-id  --rel-version  --missing-mode
                           --missing-weak  --ignore-sections  --block-duplicates
  elf2rel (ttyd-tools)     -i input  -s symbol-file  -o output  --rel-id  --rel-version
  dtk rel make             -n/--names  -v (version)  -w  @response-file  (-c config: see
                           --match and --match-config)
  makerel (Revolution SDK) STATIC.elf a.plf ...

symbol lists: 'address:name', 'section,offset:name' (a static-module section),
'module,section,offset:name' (another REL module, as pyelf2rel's makelst writes), a
CodeWarrior map or a decomp-toolkit symbols.txt; '#' and '//' start comments.

@FILE reads arguments from FILE, one per line (ninja and dtk response files)."""

#: ``--missing-mode`` and ``--missing-weak`` choices (tools.makerel.MISSING_MODES and
#: WEAK_MODES; repeated here so that parsing needs no numpy).
MISSING_MODES = ("unresolved", "error", "warn", "ignore")
WEAK_MODES = ("error", "warn", "ignore")


class _Parser(argparse.ArgumentParser):
    """Response files (``@FILE``) hold one argument per line; blank lines are skipped and
    the spaces around an argument dropped."""

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        arg = arg_line.strip()
        return [arg] if arg else []


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="linkload", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    _add_run(sub)
    _add_dump(sub)
    _add_makerel(sub)
    _add_nxflat(sub)
    _add_mksymtab(sub)
    _add_locate(sub)
    return parser


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="link objects into this process and call a function",
                         description="Link object files into this process and call one of "
                                     "their functions with integer arguments; print its "
                                     "result.")
    run.add_argument("objects", nargs="+", help="object files (gcc -c, ld -r)")
    run.add_argument("--call", nargs="+", required=True, metavar="SYMBOL [INT ...]",
                     help="function to call, then its integer arguments")
    run.add_argument("--lib", action="append", default=[], metavar="LIBRARY",
                     help="a further shared library to link against (e.g. libstdc++.so.6)")
    run.add_argument("--restype", choices=sorted(RESTYPES), default="int",
                     help="the function's result type (default int)")
    run.add_argument("--name", help="module name (default: the first object's)")


def _add_dump(sub) -> None:
    dump = sub.add_parser("dump", help="show a file's sections, symbols and relocations",
                          description="Show a file's header, sections, symbols and "
                                      "relocations (for a REL, as the SDK's reldump).")
    dump.add_argument("file", help="an ELF file, a REL (.rel), a DOL (.dol), an NXFLAT "
                                   "program or a PE image (.exe)")
    dump.add_argument("--format", choices=["elf", "rel", "dol", "nxflat", "pe"],
                      help="the file's format (default: from its magic or extension)")
    dump.add_argument("--disasm", action="store_true",
                      help="disassemble the executable sections, for the file's CPU (needs capstone)")
    dump.add_argument("--plf", help="REL: the plf it was made from (section names, alignments)")


def _add_makerel(sub) -> None:
    mk = sub.add_parser("makerel", help="build REL modules (GameCube/Wii) from plf files",
                        description=MAKEREL_DESCRIPTION, epilog=MAKEREL_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        fromfile_prefix_chars="@")
    mk.add_argument("inputs", nargs="*", metavar="FILE",
                    help="the static module, plf files, symbol lists, an output .rel")
    mk.add_argument("-i", "--input-file", action="append", default=[], metavar="PLF",
                    help="a further input, as a FILE (elf2rel)")
    mk.add_argument("-s", "--symbols", "--symbol-file", action="append", default=[],
                    metavar="FILE", help="a symbol list or map (elf2rel -s; pyelf2rel's lst)")
    mk.add_argument("-o", "--output", metavar="PATH",
                    help="with one plf: the REL file (elf2rel, pyelf2rel); with several, or "
                         "an existing folder: the folder every output goes to")
    mk.add_argument("--output-dir", metavar="DIR", help="the folder every output goes to")
    mk.add_argument("--rel-id", action="append", type=_integer, metavar="ID",
                    help="module id, once per plf in order (pyelf2rel, elf2rel)")
    mk.add_argument("--base-id", type=_integer, metavar="ID",
                    help="id of the first module, the next ones counting up (default 1)")
    mk.add_argument("-v", "--version", "--rel-version", type=int, choices=[1, 2, 3],
                    default=3, dest="rel_version",
                    help="REL version (default 3; --rel-version: pyelf2rel, elf2rel; -v: dtk)")
    mk.add_argument("-n", "--name", "--names", action="append", dest="names", metavar="NAME",
                    help="module name in the .str table, once per plf in order (default: the "
                         "plf path); also the name --match-config knows it by (dtk -n)")
    mk.add_argument("--str", dest="str_name", metavar="NAME.str",
                    help="module name table (default: the static module's name + .str)")
    mk.add_argument("--no-str", action="store_true",
                    help="write no .str table; the name offset and size fields are 0 (as "
                         "elf2rel, pyelf2rel and dtk write them)")
    mk.add_argument("--import-list", default="import.lst", metavar="FILE",
                    help="where to write the static-module symbols the modules use")
    mk.add_argument("--no-import-list", action="store_true", help="write no import.lst")
    mk.add_argument("--align", type=_integer, metavar="N",
                    help="the header's align (v2+; default: the largest section alignment)")
    mk.add_argument("--bss-align", type=_integer, metavar="N",
                    help="the header's bssAlign (v2+; default: the bss section's alignment)")
    mk.add_argument("--missing-mode", choices=MISSING_MODES,
                    help="references to names defined nowhere: 'unresolved' (default, the "
                         "SDK's makerel): calls go to _unresolved, others are errors; 'error': "
                         "all are errors; 'warn', 'ignore': calls go to _unresolved, others "
                         "are 0, with a warning or without (pyelf2rel)")
    mk.add_argument("--missing-weak", choices=WEAK_MODES,
                    help="the same for weak references (default: as --missing-mode when that "
                         "is error, warn or ignore, else ignore: they are 0) (pyelf2rel)")
    mk.add_argument("--ignore-sections", action="extend", nargs="+", default=[],
                    metavar="NAME", help="sections to leave out of the RELs (pyelf2rel)")
    mk.add_argument("--block-duplicates", action="store_true",
                    help="refuse a name defined twice, used or not (pyelf2rel)")
    mk.add_argument("--match", action="append", metavar="ORIGINAL.rel",
                    help="rebuild to match an original REL, once per plf in order: its id, "
                         "version, name fields, alignments, section count, offsets and exec "
                         "bits are taken from it, and the first difference left is reported "
                         "(exit status 1) (dtk -c)")
    mk.add_argument("--match-config", metavar="FILE.json",
                    help="originals and header values for many modules, by module name "
                         "(see docs/rel.md)")
    mk.add_argument("-w", "--no-warn", action="store_true", help="print no warnings (dtk -w)")


def _add_nxflat(sub) -> None:
    nx = sub.add_parser("nxflat", help="build an NXFLAT program from ARM objects (mknxflat, "
                        "ld -r and ldnxflat in one step)")
    nx.add_argument("objects", nargs="+", help="objects built with NuttX's flags (-fpic "
                    "-msingle-pic-base -mpic-register=r10|r9 -mno-pic-data-is-text-relative)")
    nx.add_argument("-o", "--output", required=True, metavar="PROG.nxf")
    nx.add_argument("--entry", default="main", help="the entry point (default main)")
    nx.add_argument("--stack", type=_integer, default=4096, help="stack size (default 4096)")
    nx.add_argument("--abi", choices=["v1", "v2"], default="v1",
                    help="v1: PIC base r10; v2: r9, imports __nxflat_abi_v2 (default v1)")
    nx.add_argument("--imports-weak", action="store_true",
                    help="import weak undefined functions too (mknxflat -w)")
    nx.add_argument("--symbols", metavar="FILE", help="the firmware's exports (NuttX CSV, "
                    "its ELF, or a symbol list): an import missing there is an error")
    nx.add_argument("--no-callbacks", action="store_true",
                    help="leave out linkload's callback table (the NuttX tools' output)")


def _add_mksymtab(sub) -> None:
    st = sub.add_parser("mksymtab", help="NuttX's export table in C from its CSV")
    st.add_argument("csv", help="rows \"name\",\"header\",\"condition\",\"rettype\",\"param\",...")
    st.add_argument("-o", "--output", required=True, metavar="symtab.c")
    st.add_argument("--table", default="g_nxflat_exports", help="the table's name")
    st.add_argument("--count", default="g_nxflat_nexports", help="the count's name")


def _add_locate(sub) -> None:
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
                     help="boot the located program in the emulated target by its boot table "
                          "(a Cortex-M from its vector table)")
    loc.add_argument("--console", type=_integer, metavar="ADDRESS",
                     help="with --run: print the bytes the program stores to this address")
    loc.add_argument("--vectors", type=_integer, metavar="ADDRESS",
                     help="with --run, a CPU that starts from a vector table (Cortex-M): where the "
                          "table is (default: the start of the first ROM region)")
    loc.add_argument("--timeout", type=float, default=10.0, help="with --run: seconds (10)")


def cmd_run(ns: argparse.Namespace) -> int:
    import ctypes

    from .link import Linker

    symbol, *texts = ns.call
    try:
        args = [_integer(t) for t in texts]
    except argparse.ArgumentTypeError as e:
        raise LinkError(str(e)) from None
    ld = Linker.native(libraries=ns.lib)
    module = ld.link(list(ns.objects), name=ns.name)
    type_name = RESTYPES[ns.restype]
    restype = getattr(ctypes, type_name) if type_name is not None else None
    fn = module.function(symbol, restype, *([ctypes.c_long] * len(args)))
    result = fn(*args)
    sys.stdout.flush()
    if restype is not None:
        print(result)
    return 0


def cmd_dump(ns: argparse.Namespace) -> int:
    from .formats import dump

    lines = dump(ns.file, disasm=ns.disasm, format=ns.format, plf=ns.plf)
    sys.stdout.writelines(f"{line}\n" for line in lines)  # a REL's dump has a line an entry
    return 0


class _Inputs:
    """makerel's FILEs sorted by what they are."""

    def __init__(self) -> None:
        self.static: str | None = None
        self.plfs: list[str] = []
        self.symbols: list[str] = []
        self.output: str | None = None


def _sort_inputs(paths: list[str]) -> _Inputs:
    """Each FILE by its contents: a DOL or an ELF executable is the static module, an ELF
    object a plf, a name ending in .rel the output, anything else a symbol list."""
    from .formats import elf as elf_format

    out = _Inputs()
    for path in paths:
        lowered = path.lower()
        if lowered.endswith(".rel"):
            if out.output is not None:
                raise LinkError(f"two output files: {out.output} and {path}")
            out.output = path
            continue
        if lowered.endswith(".dol"):
            kind = elf_format.ET_EXEC
        else:
            with open(path, "rb") as f:
                kind = elf_format.object_type(f.read(18))
        if kind is None:
            out.symbols.append(path)
        elif kind == elf_format.ET_REL:
            out.plfs.append(path)
        elif kind in (elf_format.ET_EXEC, elf_format.ET_DYN):
            if out.static is not None:
                raise LinkError(f"two static modules: {out.static} and {path}")
            out.static = path
        else:
            raise LinkError(f"an ELF file of type {kind}: neither a plf nor an executable",
                            file=path)
    return out


def _output_places(ns: argparse.Namespace, inputs: _Inputs) -> tuple[str | None, str | None]:
    """(output folder, output file): ``-o`` names the REL when one plf is built, else a
    folder."""
    output, out_dir = inputs.output, ns.output_dir
    if ns.output is not None:
        one_file = len(inputs.plfs) == 1 and not os.path.isdir(ns.output) and \
            not ns.output.endswith(("/", os.sep))
        if one_file and output is None:
            output = ns.output
        elif out_dir is None and not one_file and not ns.output.lower().endswith(".rel"):
            out_dir = ns.output
        elif out_dir is None and not one_file:
            raise LinkError(f"-o {ns.output} names one REL, but {len(inputs.plfs)} plfs make "
                            f"{len(inputs.plfs)}: give a folder")
        else:
            raise LinkError(f"-o {ns.output}: the output is given twice")
    return out_dir, output


def _match(ns: argparse.Namespace) -> list[str] | Mapping[str, object] | None:
    """The originals to match: one per plf (--match), or by module name (--match-config)."""
    if ns.match and ns.match_config:
        raise LinkError("give --match (per plf) or --match-config, not both")
    if ns.match_config:
        from .tools.relmatch import read_config

        return read_config(ns.match_config)
    return ns.match


def cmd_makerel(ns: argparse.Namespace) -> int:
    from .tools import makerel

    inputs = _sort_inputs(list(ns.inputs) + list(ns.input_file))
    if not inputs.plfs:
        raise LinkError("makerel needs at least one plf")
    if ns.rel_id is not None and ns.base_id is not None:
        raise LinkError("give --rel-id (per plf) or --base-id, not both")
    out_dir, output = _output_places(ns, inputs)
    result = makerel(inputs.static, inputs.plfs, version=ns.rel_version,
                     base_id=1 if ns.base_id is None else ns.base_id, ids=ns.rel_id,
                     module_names=ns.names, symbols=inputs.symbols + list(ns.symbols),
                     str_name=ns.str_name, name_table=not ns.no_str,
                     import_list=None if ns.no_import_list else ns.import_list,
                     out_dir=out_dir, output=output, align=ns.align, bss_align=ns.bss_align,
                     missing=ns.missing_mode, missing_weak=ns.missing_weak,
                     ignore_sections=ns.ignore_sections,
                     block_duplicates=ns.block_duplicates, match=_match(ns))
    if not ns.no_warn:
        for warning in result.warnings:
            print(f"linkload: warning: {warning}", file=sys.stderr)
    for r in result.rels:
        matched = f"; identical to {r.original}" if r.original and not r.mismatch else ""
        print(f"{r.path}: module {r.id}, {len(r.data)} bytes, {r.relocations} relocations "
              f"({r.resolved_in_file} resolved in the file){matched}")
    if result.str_path:
        print(f"{result.str_path}: {len(result.rels)} module names")
    if result.import_path:
        print(f"{result.import_path}: {len(result.imports)} static-module symbols")
    differ = [r for r in result.rels if r.mismatch]
    for r in differ:
        print(f"linkload: {r.path} differs from {r.original}: {r.mismatch}", file=sys.stderr)
    return 1 if differ else 0


def _single_threaded_blas() -> None:
    """numpy's bundled OpenBLAS starts a thread per CPU when numpy is imported, which costs a
    command more than anything it does (tens of milliseconds); linkload never calls BLAS.
    A value the user set is kept."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def cmd_nxflat(ns: argparse.Namespace) -> int:
    from .tools import nxflat

    result = nxflat.nxflat(list(ns.objects), ns.output, entry=ns.entry, stack_size=ns.stack,
                           abi=ns.abi, imports_weak=ns.imports_weak, exports=ns.symbols,
                           callbacks=not ns.no_callbacks)
    print(f"{ns.output}: {len(result.data)} bytes")
    for line in nxflat.describe(result):
        print(f"  {line}")
    return 0


def cmd_mksymtab(ns: argparse.Namespace) -> int:
    from .tools.mksymtab import mksymtab

    rows = mksymtab(ns.csv, ns.output, table=ns.table, count=ns.count)
    print(f"{ns.output}: {len(rows)} exports")
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
    if located.paging is not None:
        print(f"  paging: page tables at {located.paging.address:#x} ({located.paging.size:#x} bytes)")
    if ns.output_dir is not None:
        for path in write_outputs(located, ns.output_dir).values():
            print(f"  wrote {path}")
    if ns.run:
        sys.stdout.flush()
        result = run(located, console=ns.console, vectors=ns.vectors, timeout=ns.timeout)
        sys.stdout.write(result.output.decode("utf-8", "replace"))
        print(f"{located.program.name} returned {result.result}")
    return 0


def _printable_names() -> None:
    """Names a terminal's encoding cannot show (a symbol ``café`` on an ASCII console) are
    printed escaped, as Python prints them on stderr, rather than ending the command."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _single_threaded_blas()
    _printable_names()
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "dump": cmd_dump, "makerel": cmd_makerel, "nxflat": cmd_nxflat,
                "mksymtab": cmd_mksymtab, "locate": cmd_locate}[ns.command](ns)
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
