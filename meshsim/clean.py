"""Remove everything a run made, found through its run directory and its name prefix only.

Safe to run twice, safe after SIGKILL: namespaces `ms{run}-*`, root interfaces `ms{run}*`, processes
recorded in the run directory or living in its namespaces, PostgreSQL from its data directory,
/etc/netns entries, sockets and the run directory itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

from .controller.network import kill_netns_processes
from .controller.rundir import RunDir
from .kernel import names
from .kernel.procs import cmdline, pid_alive, stop_pid

log = logging.getLogger(__name__)
NETNS_DIR = Path("/run/netns")


def run_namespaces(run: str) -> list[str]:
    head = f"{names.prefix(run)}-"
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(head))


def root_interfaces(run: str) -> list[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=False).stdout
    head = names.prefix(run)
    try:
        return sorted(i["ifname"] for i in json.loads(out or "[]") if i.get("ifname", "").startswith(head))
    except ValueError:
        return []


def controller_alive(rd: RunDir) -> int | None:
    """The pid of this run's live controller, if any."""
    info = rd.controller_info()
    pid = int(info.get("pid", 0)) if info else 0
    if pid and pid != os.getpid() and pid_alive(pid) and "meshsim" in cmdline(pid):
        return pid
    return None


def clean_run(rd: RunDir, *, keep_dir: bool = False) -> list[str]:
    """Remove one run's namespaces, interfaces, processes, sockets and (unless keep_dir) its files."""
    done: list[str] = []
    pid = controller_alive(rd)
    if pid and stop_pid(pid, "meshsim", grace=15.0):
        done.append(f"controller pid {pid}")
    pids = rd.recorded_pids()
    if "linkemu" in pids and stop_pid(pids["linkemu"], "linkemu"):
        done.append(f"linkemu pid {pids['linkemu']}")
    # Homeservers first (they live in the namespaces), then PostgreSQL with nobody connected.
    for ns in run_namespaces(rd.run):
        kill_netns_processes(ns, grace=3.0)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        done.append(f"netns {ns}")
    for name, pid in pids.items():
        if name.startswith("synapse") and stop_pid(pid, "synapse"):
            done.append(f"{name} pid {pid}")
    done += _stop_postgres(rd.path / "pg" / "data")
    for ifname in root_interfaces(rd.run):
        subprocess.run(["ip", "link", "del", ifname], capture_output=True, check=False)
        done.append(f"interface {ifname}")
    etc = Path("/etc/netns")
    if etc.is_dir():
        for p in etc.glob(f"{names.prefix(rd.run)}-*"):
            shutil.rmtree(p, ignore_errors=True)
    for sock in rd.path.glob("**/*.sock") if rd.path.is_dir() else []:
        sock.unlink(missing_ok=True)
    if not keep_dir and rd.path.exists():
        shutil.rmtree(rd.path, ignore_errors=True)
        done.append(f"run directory {rd.path}")
    return done


def _stop_postgres(data_dir: Path) -> list[str]:
    pidfile = data_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    # SIGINT is PostgreSQL's fast shutdown: clients go, a checkpoint makes every commit durable.
    if stop_pid(pid, "postgres", grace=20.0, sig=signal.SIGINT):
        return [f"postgres pid {pid}"]
    return []


def clean_all(root: Path | None = None, *, keep_dirs: bool = False) -> list[str]:
    """Clean every run recorded under the state root."""
    done: list[str] = []
    for rd in RunDir.all(root):
        done += clean_run(rd, keep_dir=keep_dirs)
    return done
