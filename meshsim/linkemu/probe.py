"""Small traffic tools for measuring emulated links, run inside namespaces with `ip netns exec`.

    python -m meshsim.linkemu.probe echo --port P [--seconds S]
    python -m meshsim.linkemu.probe ping --dst ADDR --port P --count N --interval S [--size B]
    python -m meshsim.linkemu.probe sink --port P [--seconds S]
    python -m meshsim.linkemu.probe send --dst ADDR --port P --seconds S

RTT is timed in user space at both ends (unlike ping, which timestamps on arrival at the interface), so
delay added anywhere on the path, the receiving stack included, shows up. `ping` and `sink` print one
JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import struct
import sys
import time

_HDR = struct.Struct("!IQ")


def echo(port: int, seconds: float) -> None:
    """Reflect every UDP datagram to its sender."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.5)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        sock.sendto(data, addr)


def ping(dst: str, port: int, count: int, interval: float, size: int, wait: float) -> dict:
    """Send `count` probes `interval` s apart; return RTTs (ms) in send order, None for lost ones."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.connect((dst, port))
    sock.setblocking(False)
    pad = b"\0" * max(0, size - _HDR.size)
    rtts: list[float | None] = [None] * count
    received = 0
    start = time.monotonic()
    sent = 0
    last_deadline = None
    while True:
        now = time.monotonic()
        if sent < count and now >= start + sent * interval:
            with contextlib.suppress(OSError):
                sock.send(_HDR.pack(sent, time.monotonic_ns()) + pad)
            sent += 1
            if sent == count:
                last_deadline = time.monotonic() + wait
            continue
        if sent == count and (received == count or time.monotonic() > last_deadline):
            break
        until = start + sent * interval if sent < count else last_deadline
        timeout = max(0.0, until - time.monotonic())
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            continue
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ConnectionRefusedError):
                break
            t = time.monotonic_ns()
            if len(data) < _HDR.size:
                continue
            seq, t0 = _HDR.unpack_from(data)
            if seq < count and rtts[seq] is None:
                rtts[seq] = (t - t0) / 1e6
                received += 1
    return {"sent": count, "received": received, "rtt_ms": rtts}


def sink(port: int, seconds: float) -> dict:
    """Accept one TCP connection; return cumulative bytes sampled about every 50 ms."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(1)
    lsock.settimeout(seconds)
    conn, _ = lsock.accept()
    conn.settimeout(0.05)
    total = 0
    t0 = time.monotonic()
    samples = [(0.0, 0)]
    last = t0
    end = t0 + seconds
    while time.monotonic() < end:
        try:
            chunk = conn.recv(1 << 20)
        except TimeoutError:
            chunk = None
        if chunk == b"":
            break
        if chunk:
            total += len(chunk)
        now = time.monotonic()
        if now - last >= 0.05:
            samples.append((now - t0, total))
            last = now
    samples.append((time.monotonic() - t0, total))
    conn.close()
    return {"bytes": total, "samples": samples}


def send(dst: str, port: int, seconds: float) -> None:
    """Write to a TCP sink as fast as the path allows for `seconds`."""
    deadline = time.monotonic() + 15.0
    while True:
        try:
            sock = socket.create_connection((dst, port), timeout=5.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    sock.settimeout(0.2)
    buf = b"\0" * (1 << 16)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sock.send(buf)
        except TimeoutError:
            continue
        except OSError:
            break
    sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meshsim.linkemu.probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("echo")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=600.0)
    p = sub.add_parser("ping")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--wait", type=float, default=2.0, help="seconds to wait for the last replies")
    p = sub.add_parser("sink")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p = sub.add_parser("send")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.cmd == "echo":
        echo(args.port, args.seconds)
    elif args.cmd == "ping":
        json.dump(ping(args.dst, args.port, args.count, args.interval, args.size, args.wait), sys.stdout)
    elif args.cmd == "sink":
        json.dump(sink(args.port, args.seconds), sys.stdout)
    else:
        send(args.dst, args.port, args.seconds)


if __name__ == "__main__":
    main()
