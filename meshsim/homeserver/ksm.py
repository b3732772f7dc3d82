"""Kernel samepage merging (KSM) for homeservers: opt a process in, switch the scanner, read savings.

Many Synapse processes hold largely identical memory (the same modules, bytecode and caches).
`PR_SET_MEMORY_MERGE` (Linux >= 6.4) marks every present and future mapping of the calling
process mergeable; the `ksmd` scanner then merges identical anonymous pages across processes.
Merging only happens while /sys/kernel/mm/ksm/run is 1, which `KsmScanner` sets and restores.

Identical *content* is what KSM needs: pages full of pointers only match when the processes lay
their heaps out alike, so `ksm_exec` also turns off address randomisation for the server and
fixes its hash seed (see `meshsim.homeserver.ksm_exec`).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

PR_SET_MEMORY_MERGE = 67
PR_GET_MEMORY_MERGE = 68
KSM_SYSFS = Path("/sys/kernel/mm/ksm")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: env var giving `SynapseSpec.ksm` its default: unset/0/off, merge, or 1/same-layout
ENV = "MESHSIM_KSM"
#: off: plain Synapse; merge: start it under `ksm_exec`; same-layout: also without ASLR, fixed hash seed
MODES = ("off", "merge", "same-layout")
_ALIASES = {"": "off", "0": "off", "1": "same-layout"}


def mode_from_env() -> str:
    """The KSM mode named by $MESHSIM_KSM (ValueError if it names none)."""
    raw = os.environ.get(ENV, "").strip().lower()
    mode = _ALIASES.get(raw, raw)
    if mode not in MODES:
        raise ValueError(f"${ENV}: expected one of 0, 1, {', '.join(MODES)}; got {raw!r}")
    return mode


def wrap_argv(mode: str, python: str, module_argv: list[str]) -> list[str]:
    """`python -m MODULE ARGS` as argv, run under `ksm_exec` unless mode is off."""
    if mode not in MODES:
        raise ValueError(f"KSM mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return [python, "-m", *module_argv]
    opts = ["--same-layout"] if mode == "same-layout" else []
    return [python, "-m", "meshsim.homeserver.ksm_exec", *opts, "-m", *module_argv]


def available() -> bool:
    """True if the kernel has KSM (the sysfs directory exists)."""
    return (KSM_SYSFS / "run").exists()


def _prctl(option: int, arg: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    rc = int(libc.prctl(option, arg, 0, 0, 0))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return rc


def enable_for_process() -> None:
    """Mark all of this process's memory mergeable (inherited by children it forks)."""
    _prctl(PR_SET_MEMORY_MERGE, 1)


def enabled_for_process() -> bool:
    return _prctl(PR_GET_MEMORY_MERGE) == 1


def _read(name: str) -> str:
    return (KSM_SYSFS / name).read_text().strip()


@dataclass(frozen=True)
class KsmStats:
    """System-wide KSM counters (pages). `saved_bytes` is what merging spares right now."""

    pages_shared: int
    pages_sharing: int
    full_scans: int

    @property
    def saved_bytes(self) -> int:
        return self.pages_sharing * PAGE_SIZE

    @classmethod
    def read(cls) -> KsmStats:
        return cls(int(_read("pages_shared")), int(_read("pages_sharing")), int(_read("full_scans")))


def process_merging_bytes(pid: int) -> int:
    """Bytes of process `pid` currently backed by merged pages (0 if unknown)."""
    try:
        return int(Path(f"/proc/{pid}/ksm_merging_pages").read_text()) * PAGE_SIZE
    except (OSError, ValueError):
        return 0


class KsmScanner:
    """Context manager: run ksmd with the given scan rate, then put every setting back.

    `pages_to_scan` pages every `sleep_millisecs` ms; the kernel default (100 / 20 ms) takes
    minutes to sweep a hundred servers, 1000 / 20 ms costs a few % of one core while it runs.
    """

    SETTINGS = ("run", "pages_to_scan", "sleep_millisecs")

    def __init__(self, pages_to_scan: int = 1000, sleep_millisecs: int = 20) -> None:
        self.wanted = {
            "pages_to_scan": str(pages_to_scan),
            "sleep_millisecs": str(sleep_millisecs),
            "run": "1",
        }
        self._saved: dict[str, str] = {}

    def __enter__(self) -> KsmScanner:
        if not available():
            raise RuntimeError(f"KSM is not available ({KSM_SYSFS} missing)")
        self._saved = {name: _read(name) for name in self.SETTINGS}
        for name, value in self.wanted.items():
            (KSM_SYSFS / name).write_text(value)
        return self

    def set_rate(self, pages_to_scan: int, sleep_millisecs: int) -> None:
        """Change the scan rate while active (e.g. slow down once merging has converged)."""
        (KSM_SYSFS / "pages_to_scan").write_text(str(pages_to_scan))
        (KSM_SYSFS / "sleep_millisecs").write_text(str(sleep_millisecs))

    def __exit__(self, *exc: object) -> None:
        # `run` last: an old value of 0 stops ksmd but keeps merged pages (2 would unmerge them all)
        for name in ("pages_to_scan", "sleep_millisecs", "run"):
            if name in self._saved:
                (KSM_SYSFS / name).write_text(self._saved[name])
        self._saved = {}
