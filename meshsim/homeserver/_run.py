"""Subprocess calls of the homeserver package (to be folded into `meshsim.kernel.runner`).

Argv lists only, never a shell. `user` drops to that OS user (its primary group, no
supplementary groups), which PostgreSQL needs because it refuses to run as root.
"""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO


class RunError(RuntimeError):
    """A command exited non-zero."""

    def __init__(self, argv: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.argv = list(argv)
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        super().__init__(f"{' '.join(self.argv[:6])} exited {proc.returncode}: {' | '.join(detail[-3:])}")


def _user_kwargs(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    pw = pwd.getpwnam(user)
    return {
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        "extra_groups": [],
        "env": {"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "LANG": "C.UTF-8"},
        "cwd": "/",
    }


def run(
    argv: Sequence[str],
    *,
    user: str | None = None,
    timeout: float = 60.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run argv to completion, capturing text output; raise RunError on non-zero if `check`."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **_user_kwargs(user),  # type: ignore[arg-type]
    )
    if check and proc.returncode != 0:
        raise RunError(argv, proc)
    return proc


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running process in its own session (signals to us never reach it), stderr into stdout."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
    )
