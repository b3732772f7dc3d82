"""Create TAP devices with a plain TUNSETIFF ioctl.

The device is created in the caller's namespace and lives as long as an fd on it is open. It may be
moved into another namespace afterwards (`ip link set dev NAME netns NS name ethN`); the fd stays valid.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import struct

TUNSETIFF = 0x400454CA
SIOCSIFHWADDR = 0x8924
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
ARPHRD_ETHER = 1
IFNAMSIZ = 16

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def validate_ifname(name: str) -> None:
    """Raise ValueError unless `name` is a usable interface name (1-15 chars, no '/' or spaces)."""
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"bad interface name {name!r}: 1-15 chars of [A-Za-z0-9_.-]")


def parse_mac(mac: str) -> bytes:
    """Return the 6 bytes of a unicast `aa:bb:cc:dd:ee:ff` address."""
    if not _MAC_RE.match(mac):
        raise ValueError(f"bad MAC address {mac!r}")
    raw = bytes(int(part, 16) for part in mac.split(":"))
    if raw[0] & 1:
        raise ValueError(f"MAC address {mac!r} is multicast")
    return raw


def open_tap(name: str, mac: str | None = None) -> int:
    """Create TAP `name` (IFF_TAP | IFF_NO_PI) and return its non-blocking fd; set its MAC if given."""
    validate_ifname(name)
    raw_mac = parse_mac(mac) if mac is not None else None
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack(f"{IFNAMSIZ}sH22x", name.encode(), IFF_TAP | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        if raw_mac is not None:
            set_mac(name, raw_mac)
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_mac(name: str, raw_mac: bytes) -> None:
    """Set the hardware address of interface `name` in the caller's namespace."""
    ifr = struct.pack(f"{IFNAMSIZ}sH6s16x", name.encode(), ARPHRD_ETHER, raw_mac)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCSIFHWADDR, ifr)
