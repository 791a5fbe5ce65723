"""Config files: reading TOML, type-checking its values, and writing a preset as documented TOML.

A config file overrides the fields of the frozen config dataclasses of
:mod:`fairrobust.studies.config`, one table per study. :func:`apply_overrides`
checks every value against the dataclass annotations and the dataclass's own
validation; every error names the file, the table and the key, e.g.
``run.toml: [rejection] sigma: expected a positive number, got -1``.

:func:`to_toml` writes configs back as a TOML file that ``--config`` accepts:
every field with its value and, as a comment above it, its meaning, taken from
the ``Attributes:`` section of the dataclass's docstring (:func:`field_docs`:
the one place the settings are documented).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import textwrap
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fairrobust.groups import parse_intersections

__all__ = ["RENAMED_FIELDS", "apply_overrides", "field_docs", "read_toml", "to_toml"]

C = TypeVar("C")

#: Field names of earlier versions -> today's name (a config file using one is refused).
RENAMED_FIELDS: Mapping[str, str] = {
    "max_test_examples": "max_examples",
    "max_test": "max_examples",
    "bootstrap": "bootstrap_resamples",
}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a TOML / JSON / CLI value to the annotated type, or raise ``ValueError``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        items = list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(items))
        if len(items) != len(args):
            raise ValueError(f"{where}: expected {len(args)} items, got {len(items)}")
        return tuple(
            _coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args, strict=True))
        )
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _prefix(source: str) -> str:
    """``"run.toml: [rejection]"`` -> ``"run.toml: [rejection] "``; ``"x"`` -> ``"x: "``."""
    return f"{source} " if source.endswith("]") else f"{source}: "


def apply_overrides(config: C, overrides: Mapping[str, Any], *, source: str = "overrides") -> C:
    """A copy of the frozen dataclass ``config`` with ``overrides`` applied and checked.

    Keys may use ``-`` or ``_``. Lists become tuples; integers are accepted for
    float fields. The dataclass's own validation runs on the result.

    Args:
      config: a config dataclass instance.
      overrides: field -> value.
      source: where the values come from, named in every error: a file and its
        table (``"run.toml: [rejection]"``), a file, or ``"command line"``.

    Raises:
      ValueError: unknown field (the message lists the valid ones), a value of the
        wrong type or an invalid value; the message starts with ``source`` and the
        key: ``run.toml: [rejection] sigma: expected a positive number, got -1``.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(f"config: expected a dataclass instance, got {type(config).__name__}")
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
    at = _prefix(source)
    changes = {}
    for key, value in overrides.items():
        name = str(key).replace("-", "_")
        if name in RENAMED_FIELDS and name not in fields:
            raise ValueError(f"{at}{key}: renamed to {RENAMED_FIELDS[name]!r}; use the new name")
        if name not in fields:
            raise ValueError(f"{at}{key}: unknown field; valid fields: {', '.join(sorted(fields))}")
        if name == "intersections":  # "a x b" / "a,b" strings or name lists, one parser
            try:
                changes[name] = parse_intersections(value)
            except ValueError as exc:
                raise ValueError(f"{at}{name}: {exc}") from None
            continue
        changes[name] = _coerce(value, hints[name], f"{at}{name}")
    try:
        return dataclasses.replace(config, **changes)  # pyright: ignore[reportArgumentType]
    except ValueError as exc:  # the dataclass's checks: "<Class>.<field>: ..." or "<field>: ..."
        message = re.sub(r"^[A-Za-z]+Config\.", "", str(exc))
        raise ValueError(f"{at}{message}") from None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed TOML file at ``path``.

    Raises:
      FileNotFoundError: no such file (the message names it).
      ValueError: not valid TOML (the message names the file and the parse error).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc


# ----------------------------------------------------------------------------- writing

_ENTRY = re.compile(r"^(\s*)([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (.*)$")


def _plain(text: str) -> str:
    """Docstring markup to plain text: ````x```` -> x, :func:`x` -> x, spaces collapsed."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return " ".join(text.replace("``", "").split())


def field_docs(cls: type) -> dict[str, str]:
    """Each field's meaning, from the ``Attributes:`` section of ``cls``'s docstring.

    An entry ``name: text`` (continued on more-indented lines) documents ``name``;
    ``a, b: text`` documents ``a`` and ``b`` alike. The first entry of a name wins.

    Returns:
      field name -> the entry's text as one line of plain text.
    """
    doc = cls.__doc__ or ""
    _, found, body = doc.partition("Attributes:")
    docs: dict[str, str] = {}
    if not found:
        return docs
    indent: int | None = None
    names: list[str] = []
    parts: list[str] = []

    def flush() -> None:
        for name in names:
            docs.setdefault(name, _plain(" ".join(parts)))

    for line in body.splitlines():
        if not line.strip():
            continue
        lead = len(line) - len(line.lstrip())
        match = _ENTRY.match(line)
        if match and (indent is None or lead == indent):
            flush()
            indent = lead
            names, parts = match.group(2).split(", "), [match.group(3)]
        elif indent is not None and lead > indent:
            parts.append(line.strip())
        elif indent is not None:
            break
    flush()
    return docs


def _first_sentence(text: str) -> str:
    """The text up to the first ``. `` that ends a sentence (not ``e.g.``)."""
    for match in re.finditer(r"\. (?=[A-Z(])", text):
        if not text[: match.start()].endswith(("e.g", "i.e", "et al")):
            return text[: match.start()]
    return text.rstrip(".")


def _toml_value(value: Any) -> str:
    """A TOML literal: bool, int, float (shortest round-trip form), string, array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"to_toml: no TOML form for {value!r}")


def to_toml(tables: Mapping[str, Any], header: str = "", width: int = 100) -> str:
    """Config dataclasses as a TOML file with one table each, every field documented.

    Args:
      tables: table name -> config dataclass instance (``{"robustness": rob, ...}``).
      header: comment lines at the top (without ``#``).
      width: comment lines are wrapped at this width.

    Returns:
      TOML text; each field is preceded by ``# <meaning>`` (:func:`field_docs`'s
      first sentence). A field whose value is None (TOML has no null) is written
      as a comment, so reading the file back leaves it at the preset's value.

    Raises:
      ValueError: a field without documentation or without a TOML form.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for table, config in tables.items():
        docs = field_docs(type(config))
        lines += ["", f"[{table}]"]
        for f in dataclasses.fields(config):
            if f.name not in docs:
                raise ValueError(f"to_toml: {type(config).__name__}.{f.name} is not documented")
            meaning = textwrap.wrap(_first_sentence(docs[f.name]), width - 2)
            lines += [f"# {line}" for line in meaning]
            value = getattr(config, f.name)
            if value is None:
                lines.append(f"# {f.name} = (not set)")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"
