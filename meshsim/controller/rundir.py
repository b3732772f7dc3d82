"""Where a run keeps its files: `{root}/runs/{run}/`, recorded before anything is created."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..kernel import names

DEFAULT_ROOT = Path("/var/lib/meshsim")


def state_root() -> Path:
    """The state root: $MESHSIM_HOME or /var/lib/meshsim."""
    return Path(os.environ.get("MESHSIM_HOME") or DEFAULT_ROOT)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a reader sees the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RunDir:
    root: Path
    run: str

    @classmethod
    def create(cls, root: Path | None = None, run: str | None = None) -> RunDir:
        root = root or state_root()
        rd = cls(root, names.check_run_id(run or names.new_run_id()))
        rd.path.mkdir(parents=True, exist_ok=True)
        os.chmod(rd.path, 0o700)
        return rd

    @classmethod
    def all(cls, root: Path | None = None) -> list[RunDir]:
        base = (root or state_root()) / "runs"
        if not base.is_dir():
            return []
        return [cls(base.parent, p.name) for p in sorted(base.iterdir()) if p.is_dir() and len(p.name) == 4]

    @property
    def path(self) -> Path:
        return self.root / "runs" / self.run

    @property
    def prefix(self) -> str:
        return names.prefix(self.run)

    @property
    def controller_file(self) -> Path:
        return self.path / "controller.json"

    @property
    def emulator_socket(self) -> Path:
        return self.path / "linkemu.sock"

    @property
    def telemetry_socket(self) -> Path:
        return self.path / "telemetry.sock"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def node_dir(self, node: int) -> Path:
        return self.path / "nodes" / str(node)

    def record_controller(self, **info: Any) -> None:
        write_json_atomic(self.controller_file, {"run": self.run, "pid": os.getpid(), **info})

    def controller_info(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.controller_file.read_text())
        except (OSError, ValueError):
            return None

    def record_options(self, **opts: Any) -> None:
        """The run's options (database, default kind, client ports): a resume keeps them."""
        write_json_atomic(self.path / "run.json", opts)

    def options(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "run.json").read_text())
        except (OSError, ValueError):
            return {}

    def record_pid(self, name: str, pid: int) -> None:
        """Remember a helper process (emulator, postgres, ...) so clean can stop it after a crash."""
        pids = self.path / "pids"
        pids.mkdir(exist_ok=True)
        (pids / name).write_text(str(pid))

    def forget_pid(self, name: str) -> None:
        (self.path / "pids" / name).unlink(missing_ok=True)

    def recorded_pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        pids = self.path / "pids"
        if pids.is_dir():
            for p in pids.iterdir():
                try:
                    out[p.name] = int(p.read_text().strip())
                except (OSError, ValueError):
                    continue
        return out
