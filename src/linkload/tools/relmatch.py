"""Matching original RELs: which original each module that makerel rebuilds is to match.

Decompilation projects rebuild a game's RELs and need them byte identical to the originals.
A build's ``match`` (:func:`linkload.tools.build`) gives, per plf, an original REL (a path or
its bytes), a :class:`~linkload.formats.rel.RelTemplate` or None (in plf order), or maps
module names to them: what a match config file holds. Every header value and section
attribute an original fixes is taken from it (see :func:`linkload.formats.rel.template`),
and the result is compared with it.

A match config is a JSON file (JSON because the standard library reads it on every Python
linkload runs on: ``tomllib`` needs 3.11, YAML a package)::

    {
      "modules": {
        "d_a_obj_foo": {"original": "orig/files/rels/d_a_obj_foo.rel"},
        "custom": {"id": 42, "version": 3, "align": 32, "bss_align": 8,
                   "name_offset": 0, "name_size": 0}
      }
    }

A module is found by its name (``module_names``, ``linkload makerel -n``), else by its plf's
file name without the extension, else by its plf's path as given; modules the config does
not name are built as usual. ``original`` (relative to the config file's folder) is the
original REL; the other keys (:data:`VALUE_KEYS`) set values themselves, over the
original's: ``id``, ``version``, ``name_offset``, ``name_size``, ``align``, ``bss_align``,
``section_count``, ``section_offsets`` (file offsets, 0 for a section without data) and
``section_exec`` (booleans).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import FormatError, LinkError
from ..formats import rel as rel_format
from ..formats.base import Source

Original = rel_format.RelTemplate | Source
#: What ``build(match=...)`` takes.
Match = Sequence[Original | None] | Mapping[str, Original] | None

#: Keys of a module's entry in a match config that set a value (besides ``original``).
VALUE_KEYS = {"id": int, "version": int, "name_offset": int, "name_size": int, "align": int,
              "bss_align": int, "section_count": int, "section_offsets": list,
              "section_exec": list}


def _as_template(original: Original | None) -> rel_format.RelTemplate | None:
    if original is None or isinstance(original, rel_format.RelTemplate):
        return original
    return rel_format.template(original)


def _keys(path: str, name: str | None) -> list[str]:
    """The names a module is looked up by in a mapping, in order."""
    return [k for k in (name, Path(path).stem, path) if k]


def templates_for(match: Match, paths: Sequence[str], names: Sequence[str | None]
                  ) -> list[rel_format.RelTemplate | None]:
    """One template (or None) per plf, from a build's ``match``."""
    if match is None:
        return [None] * len(paths)
    if isinstance(match, Mapping):
        found = [next((match[k] for k in _keys(p, n) if k in match), None)
                 for p, n in zip(paths, names, strict=True)]
        return [_as_template(o) for o in found]
    if isinstance(match, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise LinkError("match takes one original per plf (a list), or a mapping of module "
                        "names to originals")
    if len(match) != len(paths):
        raise LinkError(f"{len(match)} originals to match for {len(paths)} plfs")
    return [_as_template(o) for o in match]


def read_config(path: str | os.PathLike) -> dict[str, rel_format.RelTemplate]:
    """The templates of a match config file (see the module docstring), by module name."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", file=file) from None
    except json.JSONDecodeError as e:
        raise FormatError(f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                          file=file) from None
    modules = config.get("modules") if isinstance(config, dict) else None
    if not isinstance(modules, dict):
        raise FormatError('a match config is an object with "modules": {name: {...}}',
                          file=file)
    folder = Path(file).parent
    return {name: _entry_template(entry, name, folder, file) for name, entry in modules.items()}


def _value(entry: dict, key: str, where: str, file: str) -> int | tuple:
    """One value of a config entry, checked: an integer, or a list of integers (of booleans
    for ``section_exec``)."""
    value = entry[key]
    item = bool if key == "section_exec" else int
    if VALUE_KEYS[key] is list:
        if not isinstance(value, list) or not all(isinstance(v, item) and
                                                  (item is bool or not isinstance(v, bool))
                                                  for v in value):
            raise FormatError(f"{where}: {key} must be a list of {item.__name__}s", file=file)
        return tuple(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{where}: {key} must be an integer", file=file)
    return value


def _entry_template(entry: object, name: str, folder: Path, file: str) -> rel_format.RelTemplate:
    where = f"module {name!r}"
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: expected an object of values", file=file)
    unknown = sorted(set(entry) - set(VALUE_KEYS) - {"original"})
    if unknown:
        raise FormatError(f"{where}: unknown key {unknown[0]!r} (known: original, "
                          f"{', '.join(VALUE_KEYS)})", file=file)
    values = {key: _value(entry, key, where, file) for key in VALUE_KEYS if key in entry}
    base = rel_format.RelTemplate()
    if "original" in entry:
        if not isinstance(entry["original"], str):
            raise FormatError(f"{where}: original must be a path", file=file)
        try:
            base = rel_format.template(folder / entry["original"])
        except LinkError as e:
            raise FormatError(f"{where}: original {e}", file=file) from None
    try:
        return dataclasses.replace(base, **values)
    except LinkError as e:
        raise FormatError(f"{where}: {e.reason}", file=file) from None


__all__ = ["VALUE_KEYS", "Match", "read_config", "templates_for"]
