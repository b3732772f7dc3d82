"""Scenario files: YAML with line marks, checked against `scenario.schema.json`.

Errors name the file, the line and the field: `scenario.yaml:12: steps[3].send.count: must be >= 1`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

Path_ = tuple[str | int, ...]

#: The actions a step may hold (exactly one per step).
ACTIONS = (
    "create_room",
    "join",
    "send",
    "pin",
    "unpin",
    "cut",
    "heal",
    "partition",
    "heal_partition",
    "heal_all",
    "stop",
    "kill",
    "start",
    "restart",
    "sleep",
    "wait",
    "traffic",
    "add_server",
)


class ScenarioError(ValueError):
    """A bad scenario file; `str()` is one or more `file:line: path: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of scenario files."""
    text = resources.files(__package__).joinpath("scenario.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass
class Source:
    """A parsed file: its data plus the line of every value and key (1-based)."""

    name: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    key_lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_, key: bool = False) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        p = tuple(path)
        while True:
            if key and p in self.key_lines:
                return self.key_lines[p]
            if p in self.lines:
                return self.lines[p]
            if not p:
                return 1
            p = p[:-1]

    def error(self, path: Path_, message: str, key: bool = False) -> str:
        where = dotted(path)
        return f"{self.name}:{self.line(path, key)}: {where + ': ' if where else ''}{message}"


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(text: str, name: str) -> Source:
    """YAML (or JSON) text into a Source; syntax errors become ScenarioError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ScenarioError([f"{name}:{line}: not valid YAML: {getattr(e, 'problem', None) or e}"]) from None
    finally:
        loader.dispose()
    src = Source(name, data)
    if node is not None:
        _marks(node, (), src)
    return src


def _marks(node: yaml.Node, path: Path_, src: Source) -> None:
    src.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                sub = (*path, key.value)
                src.key_lines[sub] = key.start_mark.line + 1
                _marks(value, sub, src)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, (*path, i), src)


def validate(src: Source) -> None:
    """Check the data against the schema and the one-action-per-step rule; raise ScenarioError."""
    problems: list[tuple[int, str]] = []
    data = src.data
    if not isinstance(data, dict):
        raise ScenarioError([src.error((), "a scenario must be a mapping with `topology` and `steps`")])
    validator = jsonschema.Draft202012Validator(schema())
    for err in validator.iter_errors(data):
        path, message, key = _describe(err)
        problems.append((src.line(path, key), src.error(path, message, key)))
    for i, step in enumerate(data.get("steps") or []):
        if isinstance(step, dict):
            actions = [k for k in step if k in ACTIONS]
            if len(actions) != 1:
                got = ", ".join(actions) if actions else "none"
                msg = f"a step needs exactly one action ({', '.join(ACTIONS)}); got {got}"
                problems.append((src.line(("steps", i)), src.error(("steps", i), msg)))
    topo = data.get("topology")
    if isinstance(topo, dict):
        given = [k for k in ("file", "generate", "servers") if k in topo]
        if len(given) != 1:
            msg = f"give exactly one of file, generate, servers; got {', '.join(given) or 'none'}"
            problems.append((src.line(("topology",)), src.error(("topology",), msg)))
    if problems:
        raise ScenarioError([m for _, m in sorted(set(problems))])


def _describe(err: jsonschema.ValidationError) -> tuple[Path_, str, bool]:
    """(path, readable message, whether the line is the key's) for one schema error."""
    path: Path_ = tuple(err.absolute_path)
    v, arg, inst = err.validator, err.validator_value, err.instance
    if v == "additionalProperties":
        extra = sorted(set(inst) - set(err.schema.get("properties", {})))
        allowed = ", ".join(err.schema.get("properties", {})) or "none"
        if extra:
            return (*path, extra[0]), f"unknown field (allowed here: {allowed})", True
    if v == "required":
        missing = [k for k in arg if k not in inst]
        return path, f"missing required field {missing[0]!r}" if missing else err.message, False
    messages = {
        "minimum": lambda: f"must be >= {arg}",
        "maximum": lambda: f"must be <= {arg}",
        "exclusiveMinimum": lambda: f"must be > {arg}",
        "exclusiveMaximum": lambda: f"must be < {arg}",
        "type": lambda: f"must be {_article(arg)}, got {_type_name(inst)}",
        "enum": lambda: f"must be one of {', '.join(map(json.dumps, arg))}, got {json.dumps(inst)}",
        "const": lambda: f"must be {json.dumps(arg)}",
        "minItems": lambda: f"must have at least {arg} item(s)",
        "maxItems": lambda: f"must have at most {arg} item(s)",
        "uniqueItems": lambda: "items must be unique",
        "minLength": lambda: f"must be at least {arg} character(s)",
        "maxLength": lambda: f"must be at most {arg} character(s)",
        "pattern": lambda: f"must match {arg}",
        "minProperties": lambda: err.schema.get("description") or f"needs at least {arg} field(s)",
        "anyOf": lambda: f"must be {err.schema.get('description', 'one of the allowed forms')}",
    }
    make = messages.get(str(v))
    return path, make() if make else err.message, False


def _article(t: Any) -> str:
    names = [t] if isinstance(t, str) else list(t)
    words = {"object": "a mapping", "array": "a list", "integer": "an integer", "number": "a number"}
    return " or ".join(words.get(n, f"a {n}") for n in names)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def load_source(path: Path) -> Source:
    """Read and validate a scenario file (syntax and schema); raise ScenarioError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError([f"{path}: cannot read: {e.strerror or e}"]) from None
    except UnicodeDecodeError:
        raise ScenarioError([f"{path}: not a text file (not UTF-8)"]) from None
    src = parse(text, str(path))
    validate(src)
    return src
