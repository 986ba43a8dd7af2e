"""Reading a sweep YAML file: the document's own checks, then the schema, with pydantic's errors
turned into one ``ConfigError`` that names the file, each field, what was given and what is allowed."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.config import ConfigError, SweepConfig

#: More values than any config needs: a document past it is an alias bomb or refers to itself.
MAX_VALUES = 100_000
#: Integers longer than this many bits cannot be printed as decimals (Python stops at 4300 digits), so not hashed.
MAX_INT_BITS = 4096


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """``generators[1].truncations[0]`` with generator names where they are known."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{part}]" + (f" ({name})" if name else "")
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def _given(value: Any) -> str:
    """The value a user gave, shortened for an error line: a field may hold megabytes."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 4, 200, 200
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = 10
    return short.repr(value)


def _document_problem(data: Any) -> str | None:
    """What makes a loaded document unusable whatever its fields: more than ``MAX_VALUES``
    values (aliases that refer to themselves never end), or an integer too long to print."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return (f"the document expands to more than {MAX_VALUES} values; "
                    f"a YAML alias that refers to itself, or aliases nested many times?")
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and node.bit_length() > MAX_INT_BITS:
            return f"an integer of {node.bit_length()} bits; integers must fit in {MAX_INT_BITS} bits"
    return None


def parse_config(data: Any, source: str) -> SweepConfig:
    """Validate a loaded YAML document; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    problem = _document_problem(data)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            field = _field_path(e["loc"], data) or "(top level)"
            whole = isinstance(e["input"], dict)  # a check across fields: the message names the values
            given = "" if e["type"] == "missing" or not e["loc"] or whole else f" (given: {_given(e['input'])})"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown field"
            lines.append(f"  {field}: {msg}{given}")
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(lines)) from None


def load_config(path: str | Path, store: str | None = None) -> SweepConfig:
    """Read and validate a sweep YAML file; ``store`` overrides the file's store."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
        # PyYAML's constructors raise these for a bad tagged scalar (!!int abc, a 13th month,
        # an integer past 4300 digits) and its parser recurses once per level of nesting
        raise ConfigError(f"{path}: not valid YAML: {type(err).__name__}: {err}") from None
    config = parse_config(data, str(path))
    return config.model_copy(update={"store": store}) if store else config
