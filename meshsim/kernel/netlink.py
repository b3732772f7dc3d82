"""A minimal rtnetlink client: routes, links and neighbours inside one node namespace, no subprocess.

`NsRoutes(ns)` opens one NETLINK_ROUTE socket inside /run/netns/NS (a socket stays bound to the
namespace it was created in) and keeps it. `apply()` packs every route change of a call into as few
`send` calls as the socket buffers allow, each message with NLM_F_ACK, and reads every ack back: one
round trip per node instead of one `ip -batch` process. Messages are byte-for-byte what
`ip route replace DST/32 via GW dev OIF onlink src SRC` and `ip route del DST/32` send.

An open socket keeps its namespace alive after `ip netns del`: close() it before deleting the node.
"""

from __future__ import annotations

import errno as E
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from . import nsexec
from .tap import parse_mac

# -- constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/neighbour.h) ---------------
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200  # in an NLMSG_ERROR: extended-ack attributes follow
NLM_F_CAPPED = 0x100  # in an NLMSG_ERROR: the request's payload was left out
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR = 20
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH = 28

RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route` uses unless told `proto`
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RTN_UNICAST = 1
RTNH_F_ONLINK = 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 7, 15

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_GROUP = 1, 3, 4, 27
IFF_UP = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTA = struct.Struct("=HH")  # rtattr: len, type
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_ERR = struct.Struct("=i")
# One whole route message in one pack: header, rtmsg, RTA_DST, RTA_GATEWAY, RTA_PREFSRC, RTA_OIF.
_ROUTE_SRC = struct.Struct("=IHHII BBBBBBBBI HH4s HH4s HH4s HHi")
_ROUTE_NOSRC = struct.Struct("=IHHII BBBBBBBBI HH4s HH4s HHi")
_ROUTE_DEL = struct.Struct("=IHHII BBBBBBBBI HH4s")
_REPLACE_FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
_ACK_BYTES = 2048  # receive-buffer budget per outstanding ack (skb truesize, with room for ext-ack text)


class NetlinkError(OSError):
    """A request the kernel refused: `errno`, the `request` in `ip` words, the kernel's `detail`."""

    def __init__(self, err: int, request: str, detail: str = "", dst: str | None = None) -> None:
        text = os.strerror(err) + (f" ({detail})" if detail else "")
        super().__init__(err, f"{request}: {text}")
        self.request = request
        self.detail = detail
        self.dst = dst


# -- packing (pure) ---------------------------------------------------------------------------------
def _ip(addr: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, addr)
    except OSError:
        raise ValueError(f"bad IPv4 address {addr!r}") from None


def _align(n: int) -> int:
    return (n + 3) & ~3


def rta(kind: int, data: bytes) -> bytes:
    """One route attribute, padded to 4 bytes."""
    n = _RTA.size + len(data)
    return _RTA.pack(n, kind) + data + b"\0" * (_align(n) - n)


def nlmsg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body


def route_replace_msg(seq: int, dst: str, gateway: str, oif: int, src: str | None) -> bytes:
    """RTM_NEWROUTE as `ip route replace DST/32 via GATEWAY dev OIF onlink src SRC` sends it."""
    rt = (socket.AF_INET, 32, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, RTNH_F_ONLINK)
    if src:
        return _ROUTE_SRC.pack(
            _ROUTE_SRC.size, RTM_NEWROUTE, _REPLACE_FLAGS, seq, 0, *rt,
            8, RTA_DST, _ip(dst), 8, RTA_GATEWAY, _ip(gateway), 8, RTA_PREFSRC, _ip(src), 8, RTA_OIF, oif,
        )  # fmt: skip
    return _ROUTE_NOSRC.pack(
        _ROUTE_NOSRC.size, RTM_NEWROUTE, _REPLACE_FLAGS, seq, 0, *rt,
        8, RTA_DST, _ip(dst), 8, RTA_GATEWAY, _ip(gateway), 8, RTA_OIF, oif,
    )  # fmt: skip


def route_del_msg(seq: int, dst: str) -> bytes:
    """RTM_DELROUTE as `ip route del DST/32` sends it (table main, any scope)."""
    return _ROUTE_DEL.pack(
        _ROUTE_DEL.size, RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, 0,
        socket.AF_INET, 32, 0, 0, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0, 0, 8, RTA_DST, _ip(dst),
    )  # fmt: skip


def link_set_msg(
    seq: int,
    index: int,
    up: bool | None,
    mac: str | None,
    mtu: int | None,
    group: int | None = None,
    name: str | None = None,
) -> bytes:
    """RTM_NEWLINK on an existing link, as `ip link set dev X [address MAC] [mtu N] [group G] [name N] [up|down]`."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up is not None else 0)
    if mac is not None:
        body += rta(IFLA_ADDRESS, parse_mac(mac))
    if mtu is not None:
        body += rta(IFLA_MTU, struct.pack("=I", mtu))
    if group is not None:
        body += rta(IFLA_GROUP, struct.pack("=I", group))
    if name is not None:
        body += rta(IFLA_IFNAME, name.encode() + b"\0")
    return nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def neigh_replace_msg(seq: int, ip: str, mac: str, index: int) -> bytes:
    """RTM_NEWNEIGH as `ip neigh replace IP lladdr MAC dev X nud permanent`."""
    body = _NDMSG.pack(socket.AF_INET, index, NUD_PERMANENT, 0, 0)
    body += rta(NDA_DST, _ip(ip)) + rta(NDA_LLADDR, parse_mac(mac))
    return nlmsg(RTM_NEWNEIGH, _REPLACE_FLAGS, seq, body)


def addr_replace_msg(seq: int, ip: str, prefixlen: int, index: int) -> bytes:
    """RTM_NEWADDR as `ip addr replace IP/PREFIXLEN dev X` (host scope on lo, like ip picks)."""
    scope = RT_SCOPE_HOST if ip.startswith("127.") else RT_SCOPE_UNIVERSE
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, scope, index)
    body += rta(IFA_LOCAL, _ip(ip)) + rta(IFA_ADDRESS, _ip(ip))
    return nlmsg(RTM_NEWADDR, _REPLACE_FLAGS, seq, body)


def dump_msg(kind: int, seq: int, body: bytes) -> bytes:
    return nlmsg(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


# -- parsing (pure) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    kind: int
    flags: int
    seq: int
    payload: memoryview


def parse_messages(buf: bytes | memoryview) -> Iterator[Message]:
    """Split a datagram into netlink messages."""
    view = memoryview(buf)
    off = 0
    while off + _HDR.size <= len(view):
        length, kind, flags, seq, _pid = _HDR.unpack_from(view, off)
        if length < _HDR.size or off + length > len(view):
            raise ValueError(f"truncated netlink message at {off}: len {length}")
        yield Message(kind, flags, seq, view[off + _HDR.size : off + length])
        off += _align(length)


def parse_attrs(buf: bytes | memoryview) -> dict[int, memoryview]:
    """Attributes of a message body, by type (the last one wins)."""
    view = memoryview(buf)
    out: dict[int, memoryview] = {}
    off = 0
    while off + _RTA.size <= len(view):
        length, kind = _RTA.unpack_from(view, off)
        if length < _RTA.size:
            break
        out[kind & 0x3FFF] = view[off + _RTA.size : off + length]  # strip NLA_F_NESTED / BYTEORDER
        off += _align(length)
    return out


def parse_error(msg: Message) -> tuple[int, str]:
    """An NLMSG_ERROR's (errno, extended-ack message); errno 0 is a plain ack."""
    (neg,) = _ERR.unpack_from(msg.payload, 0)
    detail = ""
    if msg.flags & NLM_F_ACK_TLVS:
        if msg.flags & NLM_F_CAPPED:
            tlv_at = _ERR.size + _HDR.size
        else:
            (orig_len,) = struct.unpack_from("=I", msg.payload, _ERR.size)
            tlv_at = _ERR.size + _align(orig_len)
        raw = parse_attrs(msg.payload[tlv_at:]).get(NLMSGERR_ATTR_MSG)
        if raw is not None:
            detail = bytes(raw).split(b"\0", 1)[0].decode(errors="replace")
    return -neg, detail


def _cstr(raw: memoryview) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode()


def _ipstr(raw: memoryview) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes(raw))


# -- the client -------------------------------------------------------------------------------------
Route = tuple[str, str, str, str]  # (dst, gateway, oif name, prefsrc)
_Req = tuple[int, bytes, object]  # (seq, message, what it was for: Route, deleted dst, or None)
_PLAIN_ACK = struct.Struct("=IHHIIi16x")  # NLMSG_ERROR 0 with the request's header only (NETLINK_CAP_ACK)


class NsRoutes:
    """One rtnetlink socket inside a namespace. Thread safe: one lock serialises the socket."""

    def __init__(self, netns: str, *, sndbuf: int = 4 << 20, rcvbuf: int = 8 << 20, timeout: float = 10.0):
        self.netns = netns
        self._lock = threading.Lock()
        self._seq = 0
        self._links: dict[str, int] = {}
        self._buf = bytearray(1 << 16)
        sock = nsexec.in_netns(netns, _open_socket)
        self._sock = sock
        sock.settimeout(timeout)
        for force, plain, size in (
            (SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf),
            (SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf),
        ):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, size)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
        # A send must fit the send buffer (minus a little); the acks of one send must fit the receive one.
        self._max_send = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 64
        self._max_inflight = max(1, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // _ACK_BYTES)

    # -- public ---------------------------------------------------------------------------------------
    def ifindex(self, ifname: str) -> int:
        """The index of interface `ifname` (cached; a miss re-reads all links). NetlinkError if none."""
        with self._lock:
            return self._ifindex(ifname)

    def forget(self, ifname: str | None = None) -> None:
        """Drop a cached interface index (all of them with no name), e.g. after removing a link."""
        with self._lock:
            if ifname is None:
                self._links.clear()
            else:
                self._links.pop(ifname, None)

    def apply(self, replace: Iterable[Route] = (), delete: Iterable[str] = ()) -> list[NetlinkError]:
        """Replace and delete /32 routes in one round trip; return every failure (ESRCH on delete is fine).

        replace: (dst, gateway, oif name, prefsrc or "") as `ip route replace DST/32 via GW dev OIF
        onlink src SRC`. Deletes go out after the replaces. A route whose interface vanished and came
        back under a new index is retried once with the fresh index.
        """
        replace, delete = list(replace), list(delete)
        if not replace and not delete:
            return []
        with self._lock:
            errors: list[NetlinkError] = []
            reqs: list[_Req] = []
            refreshed = False  # re-read the links at most once per call
            for route in replace:
                oif = self._links.get(route[2])
                if oif is None and not refreshed:
                    self._refresh_links()
                    refreshed = True
                    oif = self._links.get(route[2])
                if oif is None:
                    errors.append(_route_error(E.ENODEV, route, "no such interface"))
                    continue
                seq = self._next()
                reqs.append((seq, route_replace_msg(seq, route[0], route[1], oif, route[3]), route))
            for dst in delete:
                seq = self._next()
                reqs.append((seq, route_del_msg(seq, dst), dst))
            failed = self._transact(reqs)
            stale = [f for f in failed if f[0] == E.ENODEV and isinstance(f[1], tuple)]
            if stale:  # an interface came back under a new index: re-read links, retry those once
                self._refresh_links()
                failed = [f for f in failed if f not in stale]
                retry: list[_Req] = []
                for _err, route, detail in stale:
                    oif = self._links.get(route[2])
                    if oif is None:
                        errors.append(_route_error(E.ENODEV, route, detail or "no such interface"))
                        continue
                    seq = self._next()
                    retry.append((seq, route_replace_msg(seq, route[0], route[1], oif, route[3]), route))
                failed += self._transact(retry)
            for err, item, detail in failed:
                if not (err == E.ESRCH and isinstance(item, str)):
                    errors.append(_route_error(err, item, detail))
            return errors

    def routes(self) -> dict[str, str]:
        """{dst: gateway} for the /32 routes with a gateway in table main."""
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        out: dict[str, str] = {}
        with self._lock:
            for msg in self._dump(RTM_GETROUTE, body, "route show"):
                family, dst_len, _s, _t, table, _p, _sc, _ty, _f = _RTMSG.unpack_from(msg.payload, 0)
                if family != socket.AF_INET or dst_len != 32:
                    continue
                attrs = parse_attrs(msg.payload[_RTMSG.size :])
                if RTA_TABLE in attrs:
                    (table,) = struct.unpack("=I", attrs[RTA_TABLE])
                if table != RT_TABLE_MAIN or RTA_DST not in attrs or RTA_GATEWAY not in attrs:
                    continue
                out[_ipstr(attrs[RTA_DST])] = _ipstr(attrs[RTA_GATEWAY])
        return out

    def set_link(
        self,
        ifname: str,
        up: bool | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        group: int | None = None,
        name: str | None = None,
    ) -> None:
        """`ip link set dev IFNAME [address MAC] [mtu MTU] [group G] [name NEW] [up|down]`."""
        words = [f"link set dev {ifname}"]
        words += [f"address {mac}"] if mac is not None else []
        words += [f"mtu {mtu}"] if mtu is not None else []
        words += [f"group {group}"] if group is not None else []
        words += [f"name {name}"] if name is not None else []
        words += [] if up is None else ["up" if up else "down"]
        with self._lock:
            index = self._ifindex(ifname)
            self._one(link_set_msg(self._next(), index, up, mac, mtu, group, name), " ".join(words))
            if name is not None:
                self._links.pop(ifname, None)

    def neigh_replace(self, ip: str, mac: str, ifname: str) -> None:
        """`ip neigh replace IP lladdr MAC dev IFNAME nud permanent`; NetlinkError on failure."""
        with self._lock:
            index = self._ifindex(ifname)
            self._one(
                neigh_replace_msg(self._next(), ip, mac, index),
                f"neigh replace {ip} lladdr {mac} dev {ifname} nud permanent",
            )

    def addr_replace(self, ip: str, prefixlen: int, ifname: str) -> None:
        """`ip addr replace IP/PREFIXLEN dev IFNAME`; NetlinkError on failure."""
        with self._lock:
            index = self._ifindex(ifname)
            self._one(
                addr_replace_msg(self._next(), ip, prefixlen, index),
                f"addr replace {ip}/{prefixlen} dev {ifname}",
            )

    def close(self) -> None:
        with self._lock:
            self._sock.close()

    def __enter__(self) -> NsRoutes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (call with the lock held) ------------------------------------------------------------
    def _next(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _ifindex(self, ifname: str) -> int:
        index = self._links.get(ifname)
        if index is None:
            self._refresh_links()
            index = self._links.get(ifname)
            if index is None:
                raise NetlinkError(E.ENODEV, f"link show dev {ifname}", "no such interface")
        return index

    def _refresh_links(self) -> None:
        links: dict[str, int] = {}
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for msg in self._dump(RTM_GETLINK, body, "link show"):
            _fam, _type, index, _flags, _change = _IFINFO.unpack_from(msg.payload, 0)
            name = parse_attrs(msg.payload[_IFINFO.size :]).get(IFLA_IFNAME)
            if name is not None:
                links[_cstr(name)] = index
        self._links = links

    def _one(self, raw: bytes, request: str) -> None:
        (seq,) = struct.unpack_from("=I", raw, 8)
        failed = self._transact([(seq, raw, None)])
        if failed:
            raise NetlinkError(failed[0][0], request, failed[0][2])

    def _transact(self, reqs: Sequence[_Req]) -> list[tuple[int, object, str]]:
        """Send acked requests in chunks that fit both socket buffers; return failures (errno, item, detail)."""
        failed: list[tuple[int, object, str]] = []
        buf, i = self._buf, 0
        while i < len(reqs):
            pending: dict[int, object] = {}
            parts: list[bytes] = []
            size = 0
            while i < len(reqs) and len(parts) < self._max_inflight:
                seq, raw, item = reqs[i]
                if parts and size + len(raw) > self._max_send:
                    break
                pending[seq] = item
                parts.append(raw)
                size += len(raw)
                i += 1
            self._send(b"".join(parts))
            while pending:
                n = self._recv_into()
                if n == _PLAIN_ACK.size:  # fast path: one capped ack without extended-ack attributes
                    _len, kind, _flags, seq, _pid, neg = _PLAIN_ACK.unpack_from(buf)
                    if kind == NLMSG_ERROR and neg == 0:
                        pending.pop(seq, None)
                        continue
                for msg in parse_messages(memoryview(buf)[:n]):
                    if msg.kind != NLMSG_ERROR or msg.seq not in pending:
                        continue  # a stray answer to an earlier, abandoned request
                    item = pending.pop(msg.seq)
                    err, detail = parse_error(msg)
                    if err:
                        failed.append((err, item, detail))
        return failed

    def _dump(self, kind: int, body: bytes, request: str) -> Iterator[Message]:
        seq = self._next()
        self._send(dump_msg(kind, seq, body))
        msgs: list[Message] = []
        while True:
            for msg in self._recv():
                if msg.seq != seq:
                    continue
                if msg.kind == NLMSG_DONE:
                    return iter(msgs)
                if msg.kind == NLMSG_ERROR:
                    err, detail = parse_error(msg)
                    if err:
                        raise NetlinkError(err, request, detail)
                    return iter(msgs)
                msgs.append(Message(msg.kind, msg.flags, msg.seq, memoryview(bytes(msg.payload))))

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendto(data, (0, 0))
        except OSError as exc:
            raise NetlinkError(exc.errno or E.EIO, f"sendto netlink in {self.netns}") from exc

    def _recv_into(self) -> int:
        try:
            n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
        except OSError as exc:
            raise NetlinkError(exc.errno or E.EIO, f"recv netlink in {self.netns}") from exc
        if n > len(self._buf):
            raise NetlinkError(E.EMSGSIZE, f"recv netlink in {self.netns}", f"datagram of {n} bytes")
        return n

    def _recv(self) -> Iterator[Message]:
        return parse_messages(memoryview(self._buf)[: self._recv_into()])


def _route_error(err: int, item: object, detail: str) -> NetlinkError:
    """The error of one route request, described in `ip` words."""
    if isinstance(item, str):
        return NetlinkError(err, f"route del {item}/32", detail, item)
    dst, gw, dev, src = item  # type: ignore[misc]
    req = f"route replace {dst}/32 via {gw} dev {dev} onlink" + (f" src {src}" if src else "")
    return NetlinkError(err, req, detail, dst)


def _open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock
