"""TAP creation: argument validation (no root) and the real ioctl (root)."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from meshsim.kernel.tap import open_tap, parse_mac, validate_ifname


@pytest.mark.parametrize("name", ["", "a" * 16, "has space", "a/b", ".", ".."])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        validate_ifname(name)
    with pytest.raises(ValueError):
        open_tap(name)


def test_good_names_and_macs() -> None:
    validate_ifname("ms1a2bt123456")
    validate_ifname("a" * 15)
    assert parse_mac("02:00:0A:ff:01:02") == bytes([2, 0, 10, 255, 1, 2])
    for bad in ("01:00:00:00:00:00", "02:00:00:00:00", "zz:00:00:00:00:00"):
        with pytest.raises(ValueError):
            parse_mac(bad)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_open_tap_creates_device_with_mac() -> None:
    name = f"ms{secrets.token_hex(2)}t0"
    fd = open_tap(name, "02:12:34:56:78:9a")
    try:
        out = subprocess.run(["ip", "-o", "link", "show", "dev", name], capture_output=True, text=True).stdout
        assert "02:12:34:56:78:9a" in out
        assert not os.get_blocking(fd)
        with pytest.raises(BlockingIOError):
            os.read(fd, 2048)
    finally:
        os.close(fd)
    gone = subprocess.run(["ip", "link", "show", "dev", name], capture_output=True)
    assert gone.returncode != 0  # a non-persistent TAP vanishes with its last fd
