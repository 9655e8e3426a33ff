"""The ``linkload`` command: argument parsing and printing over the Python API.

    linkload run a.o [b.o ...] --call SYMBOL [INT ...]   link into this process, call, print
    linkload dump FILE                                    sections, symbols, relocations

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
    dump.add_argument("file")
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
    from .inspect import dump

    for line in dump(ns.file):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "dump": cmd_dump}[ns.command](ns)
    except LinkError as e:
        print(f"linkload: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
