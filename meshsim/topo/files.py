"""Load and save topology files: JSON, or YAML when the name ends in .yaml or .yml."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml

from .errors import TopoError
from .model import Topology

_YAML = (".yaml", ".yml")


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in _YAML


def loads(text: str, yaml_format: bool = False, name: str = "<string>") -> Topology:
    """Parse topology file text; errors start with `name`."""
    try:
        data = yaml.safe_load(text) if yaml_format else json.loads(text)
    except json.JSONDecodeError as e:
        raise TopoError(f"{name}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise TopoError(f"{name}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    try:
        return Topology.from_dict(data)
    except TopoError as e:
        raise TopoError(f"{name}: {e}") from None


def load(path: str | os.PathLike[str]) -> Topology:
    """Read a topology file; raises TopoError naming the file and the bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TopoError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TopoError(f"{path}: not a text file (not UTF-8)") from None
    return loads(text, _is_yaml(path), str(path))


def dumps(topology: Topology, yaml_format: bool = False) -> str:
    data = topology.to_dict()
    if yaml_format:
        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"


def save(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Write a topology file atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    text = dumps(topology, _is_yaml(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise TopoError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise TopoError(f"{path}: cannot write: {e.strerror or e}") from None
        raise
