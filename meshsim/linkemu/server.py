"""The link emulator process: one epoll loop owning every TAP fd, a delay heap and a timerfd.

Frames read from a link end are admitted by that direction's `Direction` (loss, rate, queue, delay,
jitter), wait in one heap ordered by due time, and are written to the far end's TAP when due. A timerfd
armed at the heap head (absolute CLOCK_MONOTONIC, µs resolution) wakes the loop; epoll's own timeout
is never used because it rounds to whole milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import logging
import os
import random
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass, field

from meshsim.linkemu import protocol
from meshsim.linkemu.engine import Direction, DirParams
from meshsim.linkemu.timerfd import TimerFd, set_timer_slack

log = logging.getLogger("meshsim.linkemu")

READ_SIZE = 65536
READ_BATCH = 64
FLUSH_SLACK_S = 10e-6
SPIN_S = 60e-6
MAX_SPIN_S = 300e-6
MAX_INFLIGHT_BYTES = 256 << 20
MAX_FDS_PER_MSG = 16
TUNGETIFF = 0x800454D2
IFF_TAP = 0x0002

_RO = select.EPOLLIN
_RW = select.EPOLLIN | select.EPOLLOUT


class Lateness:
    """How late frames leave compared with their due time: a log2 histogram in µs, plus totals."""

    __slots__ = ("count", "total_s", "max_s", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.buckets = [0] * 24  # bucket k: late < 2**k µs (bucket 0 also holds early frames)

    def add(self, late_s: float) -> None:
        self.count += 1
        self.total_s += late_s
        if late_s > self.max_s:
            self.max_s = late_s
        us = int(late_s * 1e6)
        self.buckets[min(23, us.bit_length()) if us > 0 else 0] += 1

    def to_dict(self) -> dict:
        return {
            "frames": self.count,
            "mean_us": round(1e6 * self.total_s / self.count, 1) if self.count else 0.0,
            "max_us": round(1e6 * self.max_s, 1),
            "hist_log2_us": self.buckets[: max((i + 1 for i, b in enumerate(self.buckets) if b), default=0)],
        }


class _Port:
    """One direction as seen by the loop: its scheduler, the fd it writes to, and a unique id.

    Heap entries name the port by id, not by reference: tuples of plain numbers and bytes are untracked
    by the cyclic GC, so a heap of 100k frames does not make every collection walk it (ms-long pauses).
    """

    __slots__ = ("direction", "out_fd", "pid")

    def __init__(self, direction: Direction, out_fd: int, pid: int) -> None:
        self.direction = direction
        self.out_fd = out_fd
        self.pid = pid


@dataclass
class _Link:
    link_id: str
    fd_a: int
    fd_b: int
    ab: _Port
    ba: _Port
    names: tuple[str, str]


@dataclass
class _Conn:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    fds: list[int] = field(default_factory=list)


def tap_name(fd: int) -> str:
    """Interface name behind a TAP fd; raise ValueError if `fd` is not an attached TAP."""
    try:
        res = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
    except OSError as exc:
        raise ValueError(f"fd is not an attached TAP device ({exc.strerror})") from None
    name, flags = struct.unpack("16sH22x", res)
    if not flags & IFF_TAP:
        raise ValueError("fd is a TUN, not a TAP device")
    return name.rstrip(b"\0").decode()


class Server:
    """The emulator: call `serve_forever()`; `stop()` (or SIGTERM) ends it."""

    def __init__(self, control_path: str, seed: int | None = None) -> None:
        self.control_path = control_path
        self._rng = random.Random(seed)
        self._links: dict[str, _Link] = {}
        self._taps: dict[int, _Port] = {}  # by the fd it reads
        self._ports: dict[int, _Port] = {}  # by id, for heap entries
        self._next_pid = 0
        self._conns: dict[int, _Conn] = {}
        self._heap: list = []
        self._seq = 0
        self._inflight = 0
        self._armed: float | None = None
        self._stopping = False
        self.lateness = Lateness()
        self._ep = select.epoll()
        self._timer = TimerFd()
        self._ep.register(self._timer.fd, _RO)
        self._listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listen.bind(control_path)
        os.chmod(control_path, 0o600)
        self._listen.listen(16)
        self._listen.setblocking(False)
        self._ep.register(self._listen.fileno(), _RO)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._ep.register(self._wake_r, _RO)

    # ---- lifecycle -------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def serve_forever(self) -> None:
        set_timer_slack(1)
        log.info("listening on %s", self.control_path)
        try:
            while not self._stopping:
                self._iterate()
        finally:
            self.close()

    def close(self) -> None:
        for link_id in list(self._links):
            self._remove(link_id)
        for conn in list(self._conns.values()):
            self._drop_conn(conn)
        self._heap.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control_path)
        self._listen.close()
        self._timer.close()
        self._ep.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        log.info("stopped")

    # ---- the loop --------------------------------------------------------------------------------

    def _iterate(self) -> None:
        try:
            events = self._ep.poll()
        except InterruptedError:
            return
        taps = self._taps
        for fd, ev in events:
            port = taps.get(fd)
            if port is not None:
                self._read_tap(fd, port)
                heap = self._heap
                if heap and heap[0][0] <= time.monotonic() + FLUSH_SLACK_S:
                    self._flush()
            elif fd == self._timer.fd:
                self._timer.clear()
                self._armed = None
            elif fd in self._conns:
                self._service_conn(self._conns[fd], ev)
            elif fd == self._listen.fileno():
                self._accept()
            elif fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
        self._flush()
        heap = self._heap
        if not heap:
            return
        # A sleeping loop wakes tens of µs late (VM idle exits): sleep until SPIN_S before the
        # head is due, then spin for the last stretch, at most MAX_SPIN_S per loop turn, and only
        # while no fd is ready (level-triggered epoll reports those again on the next turn).
        monotonic = time.monotonic
        poll = self._ep.poll
        spin_end = monotonic() + MAX_SPIN_S
        busy = False
        while heap and not busy:
            target = heap[0][0] - FLUSH_SLACK_S
            now = monotonic()
            if target - now > SPIN_S or now > spin_end:
                break
            while monotonic() < target:
                if poll(0):
                    busy = True
                    break
            self._flush()
        if heap:
            wake = heap[0][0] - SPIN_S
            if self._armed is None or wake < self._armed:
                self._timer.arm(wake)
                self._armed = wake

    def _read_tap(self, fd: int, port: _Port) -> None:
        admit = port.direction.admit
        pid = port.pid
        heap = self._heap
        now = time.monotonic()
        read = os.read
        for _ in range(READ_BATCH):
            try:
                frame = read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    return
                continue
            if not frame:
                return
            if self._inflight > MAX_INFLIGHT_BYTES:
                counters = port.direction.counters
                counters.drops += 1
                counters.queue_drops += 1
                continue
            due = admit(len(frame), now)
            if due is not None:
                self._seq += 1
                self._inflight += len(frame)
                heapq.heappush(heap, (due, self._seq, pid, frame))

    def _flush(self) -> None:
        heap = self._heap
        if not heap:
            return
        pop = heapq.heappop
        write = os.write
        now = time.monotonic()
        limit = now + FLUSH_SLACK_S
        n = 0
        late = self.lateness
        ports = self._ports
        while heap and heap[0][0] <= limit:
            due, _, pid, frame = pop(heap)
            self._inflight -= len(frame)
            port = ports.get(pid)
            if port is not None:
                try:
                    write(port.out_fd, frame)
                    port.direction.delivered(len(frame))
                except OSError:
                    port.direction.failed()
            late.add(now - due)
            n += 1
            if not n & 15:
                now = time.monotonic()
                limit = now + FLUSH_SLACK_S

    # ---- control connections ---------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            self._conns[sock.fileno()] = conn
            self._ep.register(sock.fileno(), _RO)

    def _drop_conn(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        self._conns.pop(fd, None)
        with contextlib.suppress(OSError, ValueError):
            self._ep.unregister(fd)
        conn.sock.close()
        for extra in conn.fds:
            _close_quietly(extra)
        conn.fds.clear()

    def _service_conn(self, conn: _Conn, ev: int) -> None:
        if ev & select.EPOLLOUT:
            self._send(conn)
        if not ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            return
        try:
            data, fds, flags, _ = socket.recv_fds(conn.sock, 65536, MAX_FDS_PER_MSG)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop_conn(conn)
            return
        conn.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            log.warning("control message truncated: too many fds")
        if not data:
            self._drop_conn(conn)
            return
        conn.inbuf += data
        while conn.sock.fileno() in self._conns:
            nl = conn.inbuf.find(b"\n")
            if nl < 0:
                if len(conn.inbuf) > protocol.MAX_LINE:
                    self._reply(conn, protocol.error(None, "request line too long"))
                    self._drop_conn(conn)
                return
            line = bytes(conn.inbuf[:nl])
            del conn.inbuf[: nl + 1]
            if line.strip():
                self._reply(conn, self._handle_line(conn, line))
            if not conn.inbuf and conn.fds:  # fds sent with no add request to claim them
                for extra in conn.fds:
                    _close_quietly(extra)
                conn.fds.clear()

    def _reply(self, conn: _Conn, msg: dict) -> None:
        conn.outbuf += protocol.encode(msg)
        self._send(conn)

    def _send(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        try:
            while conn.outbuf:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop_conn(conn)
            return
        self._ep.modify(fd, _RW if conn.outbuf else _RO)

    # ---- requests --------------------------------------------------------------------------------

    def _handle_line(self, conn: _Conn, line: bytes) -> dict:
        try:
            req = protocol.parse_request(line)
        except protocol.ProtocolError as exc:
            if protocol.request_op(line) == "add":  # its fds must not go to the next add
                for fd in conn.fds[:2]:
                    _close_quietly(fd)
                del conn.fds[:2]
            return protocol.error(protocol.request_id(line), str(exc))
        fds: list[int] = []
        if req.op == "add":
            fds, conn.fds[:] = conn.fds[:2], conn.fds[2:]
        try:
            if req.op == "add":
                return self._add(req, fds)
            if req.op == "set":
                return self._set(req)
            if req.op == "remove":
                if req.link not in self._links:
                    return protocol.error(req.id, f"no link {req.link!r}")
                stats = self._remove(req.link)
                return protocol.ok(req.id, stats=stats)
            if req.op == "stats":
                return protocol.ok(
                    req.id, links=self.stats(), queued=len(self._heap), lateness=self.lateness.to_dict()
                )
            return protocol.ok(req.id, links=len(self._links))
        except Exception as exc:  # a bad request must never kill the emulator
            log.exception("request failed: %r", line[:200])
            for fd in fds:
                _close_quietly(fd)
            return protocol.error(req.id, f"internal error: {exc}")

    def _add(self, req: protocol.Request, fds: list[int]) -> dict:
        def fail(message: str) -> dict:
            for fd in fds:
                _close_quietly(fd)
            return protocol.error(req.id, message)

        if len(fds) != 2:
            return fail(f"add needs 2 TAP fds as SCM_RIGHTS, got {len(fds)}")
        if req.link in self._links:
            return fail(f"link {req.link!r} exists")
        try:
            names = (tap_name(fds[0]), tap_name(fds[1]))
        except ValueError as exc:
            return fail(str(exc))
        fd_a, fd_b = fds
        for fd in fds:
            os.set_blocking(fd, False)
        ab = Direction(protocol.merge_params(DirParams(), req.ab), random.Random(self._rng.random()))
        ba = Direction(protocol.merge_params(DirParams(), req.ba), random.Random(self._rng.random()))
        self._next_pid += 2
        link = _Link(
            req.link, fd_a, fd_b, _Port(ab, fd_b, self._next_pid), _Port(ba, fd_a, self._next_pid + 1), names
        )
        self._ports[link.ab.pid] = link.ab
        self._ports[link.ba.pid] = link.ba
        self._links[req.link] = link
        self._taps[fd_a] = link.ab
        self._taps[fd_b] = link.ba
        self._ep.register(fd_a, _RO)
        self._ep.register(fd_b, _RO)
        log.info("add %s (%s <-> %s) ab=%s ba=%s", req.link, *names, ab.params, ba.params)
        return protocol.ok(req.id)

    def _set(self, req: protocol.Request) -> dict:
        link = self._links.get(req.link or "")
        if link is None:
            return protocol.error(req.id, f"no link {req.link!r}")
        new_ab = protocol.merge_params(link.ab.direction.params, req.ab)
        new_ba = protocol.merge_params(link.ba.direction.params, req.ba)
        link.ab.direction.set_params(new_ab)
        link.ba.direction.set_params(new_ba)
        log.info("set %s ab=%s ba=%s", req.link, new_ab, new_ba)
        return protocol.ok(req.id)

    def _remove(self, link_id: str) -> dict:
        link = self._links.pop(link_id)
        for fd in (link.fd_a, link.fd_b):
            self._taps.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self._ep.unregister(fd)
            _close_quietly(fd)
        self._ports.pop(link.ab.pid, None)
        self._ports.pop(link.ba.pid, None)
        log.info("remove %s", link_id)
        return {"ab": link.ab.direction.counters.to_dict(), "ba": link.ba.direction.counters.to_dict()}

    def stats(self) -> dict:
        return {
            link_id: {"ab": link.ab.direction.counters.to_dict(), "ba": link.ba.direction.counters.to_dict()}
            for link_id, link in self._links.items()
        }


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
