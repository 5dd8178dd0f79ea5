#!/usr/bin/env python3
"""Writes Samples/handover.pcapng: the frames of a DMM handover and some
malformed ones, built with scapy (independent of our Swift wire code).

The committed capture is what tests and `make demo` use; this script only
documents how it was made (pip install scapy; python3 Tools/make-sample-capture.py).
Options of RFC 8885 (65-70), unknown to scapy, are packed by hand here.
"""
import os, struct, sys
from scapy.all import (Ether, Dot1Q, Dot1AD, IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrFragment, RouterAlert, UDP, TCP, Raw, ARP,
                       ICMPv6ND_RS, ICMPv6ND_RA, ICMPv6ND_NS, ICMPv6ND_NA,
                       ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo,
                       ICMPv6NDOptMTU, ICMPv6NDOptRouteInfo, ICMPv6PacketTooBig,
                       ICMPv6TimeExceeded, ICMPv6DestUnreach, ICMPv6EchoRequest, wrpcapng)
from scapy.layers.inet6 import in6_chksum

MN = "02:aa:00:00:00:01"
DLIF1 = "02:d1:00:00:01:01"
GW1, GW2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
MN_LLA = "fe80::aa:ff:fe00:1"
DLIF_LLA = "fe80::d1:1"
HNP1 = "2001:db8:1:1::"
MN_ADDR = "2001:db8:1:1::100"
CN = "2001:db8:cccc::1"
A1, A2 = "2001:db8:ffff::1", "2001:db8:ffff::2"

sys.path.insert(0, os.path.dirname(__file__))
from dmm_frames import a16, mh_bytes

def mh(mh_type, fixed, options, src, dst, corrupt=False):
    """A Mobility Header frame between the two gateways."""
    return (Ether(src=GW2 if src == A2 else GW1, dst=GW1 if dst == A1 else GW2) /
            IPv6(src=src, dst=dst, nh=135, hlim=64) / Raw(mh_bytes(mh_type, fixed, options, src, dst, corrupt)))

frames = []
# 1-4: attach at D-GW1: RS, RA through DLIF, NS/NA for the DLIF's link-local.
frames.append(Ether(src=MN, dst="33:33:00:00:00:02") / IPv6(src=MN_LLA, dst="ff02::2", hlim=255) /
              ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MN))
frames.append(Ether(src=DLIF1, dst="33:33:00:00:00:01") / IPv6(src=DLIF_LLA, dst="ff02::1", hlim=255) /
              ICMPv6ND_RA(chlim=64, M=0, O=1, prf=1, routerlifetime=1800, reachabletime=30000, retranstimer=1000) /
              ICMPv6NDOptPrefixInfo(prefix=HNP1, prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=3600) /
              ICMPv6NDOptPrefixInfo(prefix="2001:db8:2:3::", prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=0) /
              ICMPv6NDOptRouteInfo(prefix="2001:db8:aaaa::", plen=48, prf=3, rtlifetime=1800) /
              ICMPv6NDOptMTU(mtu=1500) / ICMPv6NDOptSrcLLAddr(lladdr=DLIF1))
frames.append(Ether(src=MN, dst="33:33:ff:d1:00:01") / IPv6(src=MN_LLA, dst="ff02::1:ffd1:1", hlim=255) /
              ICMPv6ND_NS(tgt=DLIF_LLA) / ICMPv6NDOptSrcLLAddr(lladdr=MN))
frames.append(Ether(src=DLIF1, dst=MN) / IPv6(src=DLIF_LLA, dst=MN_LLA, hlim=255) /
              ICMPv6ND_NA(R=1, S=1, O=1, tgt=DLIF_LLA) / ICMPv6NDOptDstLLAddr(lladdr=DLIF1))
# 5-6: MN traffic: a 64-byte UDP frame and a TCP SYN.
frames.append(Ether(src=MN, dst=DLIF1) / IPv6(src=MN_ADDR, dst=CN, hlim=64) / UDP(sport=40000, dport=5001) / Raw(b"\x00" * 2))
frames.append(Ether(src=MN, dst=DLIF1) / IPv6(src=MN_ADDR, dst=CN, hlim=64) / TCP(sport=40001, dport=80, flags="S", seq=1000))
# 7-8: handover signalling, D-GW2 (serving) to D-GW1 (anchor) and back.
pfx1 = a16(HNP1)
frames.append(mh(5, struct.pack("!HHH", 7, 0x8000 | 0x4000 | 0x0200 | 0x0010, 900), [
    (8, b"\x01mn1@example.org", (1, 0)),
    (22, b"\x00\x40" + pfx1, (8, 4)),
    (65, b"\x00\x40" + pfx1, (8, 4)),
    (67, b"\x00\x40" + a16(A1) + pfx1, (8, 4)),
    (27, struct.pack("!Q", (3_973_000_000 << 32) | 0x80000000), (8, 2)),
    (23, b"\x00\x04", (1, 0)),
    (24, b"\x00\x04", (1, 0)),
], A2, A1))
frames.append(mh(6, struct.pack("!BBHH", 0, 0x20 | 0x02, 7, 900), [
    (8, b"\x01mn1@example.org", (1, 0)),
    (65, b"\x00\x40" + pfx1, (8, 4)),
    (66, b"\x00\x30" + a16("2001:db8:aaaa::"), (8, 4)),
    (68, a16(A2), (8, 6)),
    (69, a16(DLIF_LLA), (8, 6)),
    (70, b"\x00\x00" + bytes.fromhex("02d100000101"), (8, 2)),
    (200, b"\x01\x02\x03", (1, 0)),
], A1, A2))
# 9: downlink of the old prefix, tunnelled anchor -> serving (RFC 2473).
frames.append(Ether(src=GW1, dst=GW2) / IPv6(src=A1, dst=A2, nh=41, hlim=64) /
              IPv6(src=CN, dst=MN_ADDR, hlim=63) / UDP(sport=5001, dport=40000) / Raw(b"downlink"))
# 10: 802.1Q, hop-by-hop (router alert), destination options, first fragment, UDP.
frames.append(Ether(src=MN, dst=DLIF1) / Dot1Q(vlan=100, prio=5) / IPv6(src=MN_ADDR, dst=CN) /
              IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrDestOpt() /
              IPv6ExtHdrFragment(offset=0, m=1, id=0x1234) / UDP(sport=1, dport=2, len=1008) / Raw(b"x" * 16))
# 11: a later fragment: no upper layer to see.
frames.append(Ether(src=MN, dst=DLIF1) / IPv6(src=MN_ADDR, dst=CN) /
              IPv6ExtHdrFragment(offset=2, m=0, id=0x1234, nh=17) / Raw(b"y" * 24))
# 12-15: ICMPv6 errors a router sends, and an echo request.
inv = IPv6(src=CN, dst=MN_ADDR, hlim=1) / UDP(sport=5001, dport=40000) / Raw(b"z" * 32)
frames.append(Ether(src=GW1, dst=GW2) / IPv6(src=A1, dst=CN) / ICMPv6PacketTooBig(mtu=1280) / inv)
frames.append(Ether(src=GW1, dst=GW2) / IPv6(src=A1, dst=CN) / ICMPv6TimeExceeded(code=0) / inv)
frames.append(Ether(src=GW1, dst=GW2) / IPv6(src=A1, dst=CN) / ICMPv6DestUnreach(code=0) / inv)
frames.append(Ether(src=GW1, dst=GW2) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IPv6(src=A1, dst=A2) /
              ICMPv6EchoRequest(id=0x42, seq=7, data=b"ping"))
# 16: truncated IPv6 header.
frames.append(Ether(bytes(Ether(src=MN, dst=DLIF1, type=0x86DD) / Raw(bytes(IPv6(src=MN_ADDR, dst=CN))[:20]))))
# 17: an RA with a corrupted checksum.
ra = bytes(frames[1])
frames.append(Ether(ra[:56] + bytes([ra[56] ^ 0xFF]) + ra[57:]))
# 18: an RS with a zero-length ND option (checksum right).
rs_ip = IPv6(src=MN_LLA, dst="ff02::2", hlim=255, nh=58)
rs = bytes([133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
ck = in6_chksum(58, rs_ip / Raw(rs), rs)
frames.append(Ether(src=MN, dst="33:33:00:00:00:02") / rs_ip / Raw(rs[:2] + struct.pack("!H", ck) + rs[4:]))
# 19: payload length beyond the frame.
p = bytearray(bytes(Ether(src=MN, dst=DLIF1) / IPv6(src=MN_ADDR, dst=CN) / UDP(sport=1, dport=2) / Raw(b"abcd")))
p[14 + 4:14 + 6] = struct.pack("!H", 200)
frames.append(Ether(bytes(p)))
# 20: a PBU whose last option runs past the message (checksum right).
bad = mh(5, struct.pack("!HHH", 8, 0x8000 | 0x0200 | 0x0010, 900), [(22, b"\x00\x40" + pfx1, (8, 4))], A2, A1)
raw = bytearray(bytes(bad))
mh_off = 14 + 40
raw[mh_off + 12 + 1] = 40   # HNP option length 18 -> 40 (past the end)
ck_ip = IPv6(src=A2, dst=A1, nh=135, hlim=64)
body = bytes(raw[mh_off:])
body = body[:4] + b"\x00\x00" + body[6:]
ck = in6_chksum(135, ck_ip / Raw(body), body)
raw[mh_off + 4:mh_off + 6] = struct.pack("!H", ck)
frames.append(Ether(bytes(raw)))
# 21: a PBA with a bad MH checksum.
frames.append(mh(6, struct.pack("!BBHH", 0, 0x22, 9, 0), [], A1, A2, corrupt=True))
# 22: not IPv6 at all.
frames.append(Ether(src=MN, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="192.0.2.1", pdst="192.0.2.2"))

for i, f in enumerate(frames):
    f.time = 1_764_000_000 + i * 0.010
out = sys.argv[1] if len(sys.argv) > 1 else "Samples/handover.pcapng"
wrpcapng(out, frames)
print(f"wrote {len(frames)} frames to {out}")
