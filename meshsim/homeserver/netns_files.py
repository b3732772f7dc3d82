"""Per-namespace /etc files: `ip netns exec NAME` bind-mounts /etc/netns/NAME/* over /etc/*.

A bind-mounted file keeps its inode: rewrite it in place (open + truncate), never replace it by
rename, or processes already running in the namespace keep reading the old file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from meshsim.homeserver.config import hosts_file

ETC_NETNS = Path("/etc/netns")


def netns_etc(netns: str) -> Path:
    if not netns or "/" in netns or netns in {".", ".."}:
        raise ValueError(f"bad namespace name {netns!r}")
    return ETC_NETNS / netns


def write_hosts(netns: str, max_id: int) -> Path:
    """/etc/netns/NETNS/hosts naming synapse0..synapse{max_id}, rewritten in place."""
    d = netns_etc(netns)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "hosts"
    text = hosts_file(max_id)
    with open(path, "a+") as f:  # never O_TRUNC-then-rename: same inode, visible through the bind mount
        f.seek(0)
        if f.read() != text:
            f.seek(0)
            f.truncate()
            f.write(text)
    return path


def remove_netns_etc(netns: str) -> None:
    shutil.rmtree(netns_etc(netns), ignore_errors=True)
