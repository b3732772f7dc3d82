"""KSM memory merging for homeservers: modes, argv wrapping, and the real prctl in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshsim.homeserver import ksm, ksm_exec
from meshsim.homeserver.config import Secrets
from meshsim.homeserver.process import SynapseServer, SynapseSpec


def test_wrap_argv_per_mode():
    mod = ["synapse.app.homeserver", "-c", "x.yaml"]
    assert ksm.wrap_argv("off", "py", mod) == ["py", "-m", *mod]
    assert ksm.wrap_argv("merge", "py", mod) == ["py", "-m", "meshsim.homeserver.ksm_exec", "-m", *mod]
    assert ksm.wrap_argv("same-layout", "py", mod) == [
        "py", "-m", "meshsim.homeserver.ksm_exec", "--same-layout", "-m", *mod,
    ]  # fmt: skip
    with pytest.raises(ValueError):
        ksm.wrap_argv("on", "py", mod)


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        (None, "off"),
        ("", "off"),
        ("0", "off"),
        ("1", "same-layout"),
        ("merge", "merge"),
        ("Same-Layout", "same-layout"),
    ],
)
def test_mode_from_env(monkeypatch, raw, mode):
    if raw is None:
        monkeypatch.delenv(ksm.ENV, raising=False)
    else:
        monkeypatch.setenv(ksm.ENV, raw)
    assert ksm.mode_from_env() == mode


def test_bad_env_value_is_an_error(monkeypatch):
    monkeypatch.setenv(ksm.ENV, "yes")
    with pytest.raises(ValueError, match="MESHSIM_KSM"):
        ksm.mode_from_env()


def test_spec_takes_its_default_from_the_env_and_argv_wraps_synapse(monkeypatch, tmp_path):
    monkeypatch.setenv(ksm.ENV, "1")
    spec = SynapseSpec(server_id=3, netns="msb0b0-3", data_dir=tmp_path, secrets=Secrets.fresh(), python="py")
    assert spec.ksm == "same-layout"
    argv = SynapseServer(spec, ca=None).argv()  # type: ignore[arg-type]
    assert argv[:4] == ["ip", "netns", "exec", "msb0b0-3"]
    assert argv[4:] == [
        "py", "-m", "meshsim.homeserver.ksm_exec", "--same-layout",
        "-m", "synapse.app.homeserver", "-c", str(tmp_path / "homeserver.yaml"),
    ]  # fmt: skip
    monkeypatch.delenv(ksm.ENV)
    plain = SynapseSpec(server_id=3, netns="n", data_dir=tmp_path, secrets=Secrets.fresh(), python="py")
    assert SynapseServer(plain, ca=None).argv()[4:7] == ["py", "-m", "synapse.app.homeserver"]  # type: ignore[arg-type]


def test_exec_parse():
    assert ksm_exec.parse(["-m", "mod", "-c", "f"]) == (False, "mod", ["-c", "f"])
    assert ksm_exec.parse(["--same-layout", "-m", "mod"]) == (True, "mod", [])
    for bad in (["--nope", "-m", "mod"], ["-m"], []):
        with pytest.raises(SystemExit):
            ksm_exec.parse(bad)


PROBE = """
import os, sys
stat = dict(l.split(": ", 1) for l in open("/proc/self/ksm_stat").read().splitlines() if ": " in l)
print(stat.get("ksm_merge_any"), open("/proc/self/personality").read().strip(), os.environ.get("PYTHONHASHSEED"), sys.argv[1:])
"""


@pytest.mark.root
@pytest.mark.skipif(not Path("/proc/self/ksm_stat").exists(), reason="kernel without per-process KSM stats")
@pytest.mark.parametrize("same_layout", [False, True])
def test_exec_marks_the_process_mergeable(tmp_path, same_layout):
    (tmp_path / "ksm_probe_mod.py").write_text(PROBE)
    opts = ["--same-layout"] if same_layout else []
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    env.pop("PYTHONHASHSEED", None)
    out = subprocess.run(
        [sys.executable, "-m", "meshsim.homeserver.ksm_exec", *opts, "-m", "ksm_probe_mod", "a", "-b"],
        capture_output=True, text=True, env=env, timeout=30, check=True,
    ).stdout.split(maxsplit=3)  # fmt: skip
    assert out[0] == "yes"
    no_aslr = int(out[1], 16) & ksm_exec.ADDR_NO_RANDOMIZE
    assert bool(no_aslr) is same_layout
    assert out[2] == ("0" if same_layout else "None")
    assert out[3].strip() == "['a', '-b']"


def test_stats_read_when_available():
    if not ksm.available():
        pytest.skip("no KSM in this kernel")
    st = ksm.KsmStats.read()
    assert st.pages_sharing >= 0 and st.saved_bytes == st.pages_sharing * ksm.PAGE_SIZE
