"""rtnetlink message packing and parsing, against bytes `ip` itself sends (captured with strace)."""

from __future__ import annotations

import errno
import struct

import pytest

from meshsim.kernel import netlink as nl

# `strace -xx ip route replace 10.99.0.5/32 via 10.99.0.6 dev eth1 onlink src 10.99.0.1` (eth1 = index 3),
# iproute2 6.1, with the sequence number set to 1.
IP_ROUTE_REPLACE = bytes.fromhex(
    "3c000000" "1800" "0505" "01000000" "00000000"  # nlmsghdr: len 60, RTM_NEWROUTE, REQUEST|ACK|REPLACE|CREATE
    "02200000" "fe030001" "04000000"  # rtmsg: inet /32, table main, proto boot, scope universe, unicast, onlink
    "08000100" "0a630005"  # RTA_DST
    "08000500" "0a630006"  # RTA_GATEWAY
    "08000700" "0a630001"  # RTA_PREFSRC
    "08000400" "03000000"  # RTA_OIF
)  # fmt: skip
# `ip route del 10.99.0.5/32`
IP_ROUTE_DEL = bytes.fromhex(
    "24000000" "1900" "0500" "01000000" "00000000" "02200000" "fe00ff00" "00000000" "08000100" "0a630005"
)  # fmt: skip


def test_route_replace_is_byte_for_byte_what_ip_sends() -> None:
    assert nl.route_replace_msg(1, "10.99.0.5", "10.99.0.6", 3, "10.99.0.1") == IP_ROUTE_REPLACE


def test_route_replace_without_src_omits_prefsrc() -> None:
    raw = nl.route_replace_msg(7, "10.99.0.5", "10.99.0.6", 3, "")
    (msg,) = nl.parse_messages(raw)
    assert (msg.kind, msg.seq, len(raw)) == (nl.RTM_NEWROUTE, 7, 52)
    attrs = nl.parse_attrs(msg.payload[12:])
    assert set(attrs) == {nl.RTA_DST, nl.RTA_GATEWAY, nl.RTA_OIF}
    assert struct.unpack("=i", attrs[nl.RTA_OIF]) == (3,)


def test_route_del_is_byte_for_byte_what_ip_sends() -> None:
    assert nl.route_del_msg(1, "10.99.0.5") == IP_ROUTE_DEL


def test_bad_address_is_a_value_error() -> None:
    for bad in ("10.99.0", "10.99.0.256", "fe80::1", ""):
        with pytest.raises(ValueError):
            nl.route_replace_msg(1, bad, "10.99.0.6", 3, "10.99.0.1")


def _error_msg(err: int, orig: bytes, flags: int, tlvs: bytes = b"") -> bytes:
    """An NLMSG_ERROR as the kernel builds it: -errno, the request (capped or whole), ext-ack TLVs."""
    body = struct.pack("=i", -err) + (orig[:16] if flags & nl.NLM_F_CAPPED else orig) + tlvs
    return nl.nlmsg(nl.NLMSG_ERROR, flags, struct.unpack_from("=I", orig, 8)[0], body)


def test_parse_plain_ack() -> None:
    raw = _error_msg(0, IP_ROUTE_REPLACE, nl.NLM_F_CAPPED)
    (msg,) = nl.parse_messages(raw)
    assert (msg.kind, msg.seq) == (nl.NLMSG_ERROR, 1)
    assert nl.parse_error(msg) == (0, "")


@pytest.mark.parametrize("capped", [True, False])
def test_parse_error_with_extended_ack_message(capped: bool) -> None:
    text = b"Nexthop device is not up\0"
    tlvs = nl.rta(nl.NLMSGERR_ATTR_MSG, text) + nl.rta(2, struct.pack("=I", 44))
    flags = nl.NLM_F_ACK_TLVS | (nl.NLM_F_CAPPED if capped else 0)
    raw = _error_msg(errno.ENETDOWN, IP_ROUTE_REPLACE, flags, tlvs)
    (msg,) = nl.parse_messages(raw)
    assert nl.parse_error(msg) == (errno.ENETDOWN, "Nexthop device is not up")


def test_parse_several_messages_and_reject_truncation() -> None:
    two = _error_msg(0, IP_ROUTE_REPLACE, nl.NLM_F_CAPPED) + _error_msg(errno.ESRCH, IP_ROUTE_DEL, 0)
    msgs = list(nl.parse_messages(two))
    assert [nl.parse_error(m)[0] for m in msgs] == [0, errno.ESRCH]
    with pytest.raises(ValueError):
        list(nl.parse_messages(two[:-4]))


def test_parse_attrs_pads_and_strips_nested_flag() -> None:
    body = nl.rta(3, b"eth1\0") + nl.rta(0x8000 | 4, struct.pack("=I", 1500))
    assert len(body) == 8 + 4 + 8
    attrs = nl.parse_attrs(body)
    assert bytes(attrs[3]) == b"eth1\0"
    assert struct.unpack("=I", attrs[4]) == (1500,)


def test_link_set_message() -> None:
    raw = nl.link_set_msg(5, 9, True, "02:00:0a:00:00:01", 1400)
    (msg,) = nl.parse_messages(raw)
    assert (msg.kind, msg.flags) == (nl.RTM_NEWLINK, nl.NLM_F_REQUEST | nl.NLM_F_ACK)
    assert nl._IFINFO.unpack_from(msg.payload) == (0, 0, 9, nl.IFF_UP, nl.IFF_UP)
    attrs = nl.parse_attrs(msg.payload[nl._IFINFO.size :])
    assert bytes(attrs[nl.IFLA_ADDRESS]) == bytes([2, 0, 10, 0, 0, 1])
    assert struct.unpack("=I", attrs[nl.IFLA_MTU]) == (1400,)
    # down changes the flag; None leaves it alone
    assert nl._IFINFO.unpack_from(nl.link_set_msg(5, 9, False, None, None), 16)[3:] == (0, nl.IFF_UP)
    assert nl._IFINFO.unpack_from(nl.link_set_msg(5, 9, None, None, 9000), 16)[3:] == (0, 0)


def test_neigh_replace_message() -> None:
    raw = nl.neigh_replace_msg(5, "10.99.0.6", "02:00:0a:00:00:06", 4)
    (msg,) = nl.parse_messages(raw)
    assert msg.kind == nl.RTM_NEWNEIGH
    assert msg.flags == nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    assert nl._NDMSG.unpack_from(msg.payload) == (2, 4, nl.NUD_PERMANENT, 0, 0)
    attrs = nl.parse_attrs(msg.payload[nl._NDMSG.size :])
    assert bytes(attrs[nl.NDA_DST]) == bytes([10, 99, 0, 6])
    assert bytes(attrs[nl.NDA_LLADDR]) == bytes([2, 0, 10, 0, 0, 6])


def test_netlink_error_carries_errno_and_request() -> None:
    exc = nl.NetlinkError(
        errno.ENODEV, "route replace 10.99.0.5/32 via ...", "no such interface", "10.99.0.5"
    )
    assert isinstance(exc, OSError)
    assert exc.errno == errno.ENODEV
    assert exc.request.startswith("route replace")
    assert exc.dst == "10.99.0.5"
    assert "No such device" in str(exc) and "no such interface" in str(exc)
