"""The locator (``linkload locate``): places a linked program into a target's memory regions
as RTLoc does, recomputes its fixups, and writes images, a map and a picture.

    from linkload.locate import locate_program, run, write_outputs
    located = locate_program("app.exe", configs=["board.cfg"], commands=["Locate Stack S RAM 8k"])
    write_outputs(located, "out")           # ELF image, HEX, ROM binaries, map, layout, picture
    run(located, console=0xE0000000)        # boot it in the emulated target

The package knows nothing of run-time linking: it reads programs through
:func:`linkload.formats.read_program`, re-encodes fields through the CPU's arch file and
holds the load image in an offline :class:`~linkload.space.image.ImageSpace`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import ConfigError
from ..formats import read_program
from ..model import Module
from . import ldscript
from .boot import BootEntry, BootTable, Op
from .config import Command, Config, command_line, parse, read_file, read_text
from .layout import Entity, EntityKind, Region
from .locator import Located, locate
from .output import write_outputs
from .program import Program
from .run import RunResult, run, run_in_place


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """The command line's configuration files and commands: an argument naming a file is a
    configuration file, any other a command (``"Locate Stack Stack RAM 16k"``); an argument
    that looks like a file name (``*.cfg``) but names none is an error."""
    configs, commands = [], []
    for argument in arguments:
        if os.path.isfile(argument):
            configs.append(argument)
        elif argument.lower().endswith(".cfg") and not any(c.isspace() for c in argument):
            raise ConfigError("no such configuration file", file=argument)
        else:
            commands.append(argument)
    return configs, commands


def read_configuration(path: str | os.PathLike) -> list[Command]:
    """The commands of a configuration file: RTLoc's commands, or a GNU ld linker script
    (its MEMORY block and output sections' regions, :mod:`.ldscript`)."""
    text = read_text(path)
    if ldscript.is_linker_script(text):
        return ldscript.parse(text, os.fspath(path))
    return parse(text, os.fspath(path))


def configuration(program_file: str | os.PathLike | None, configs: Sequence[str | os.PathLike] = (),
                  commands: Sequence[str] = ()) -> Config:
    """The configuration of a locate: every configuration file, in order, then the commands
    of the command line; without a configuration file, the program's name with ``.cfg``
    (if there is one) after the command line, as RTLoc reads its default file."""
    parsed: list[Command] = []
    for path in configs:
        parsed += read_configuration(path)
    parsed += command_line(list(commands))
    if not configs and program_file is not None:
        default = os.path.splitext(os.fspath(program_file))[0] + ".cfg"
        if os.path.isfile(default):
            parsed += read_configuration(default)
    return Config.of(parsed)


def locate_program(program: str | os.PathLike | bytes | Module | Program,
                   configs: Sequence[str | os.PathLike] = (), commands: Sequence[str] = ()) -> Located:
    """Read ``program`` (a path, its bytes, or a Module from ``formats.read_program``) and
    locate it as the configuration files and commands say."""
    path = program if isinstance(program, (str, os.PathLike)) else None
    if isinstance(program, Program):
        prog = program
    else:
        prog = Program.of(program if isinstance(program, Module) else read_program(program))
    return locate(prog, configuration(path, configs, commands))


__all__ = ["BootEntry", "BootTable", "Command", "Config", "Entity", "EntityKind", "Located",
           "Op", "Program", "Region", "RunResult", "command_line", "configuration", "locate",
           "locate_program", "parse", "read_configuration", "read_file", "run", "run_in_place",
           "split_arguments", "write_outputs"]
