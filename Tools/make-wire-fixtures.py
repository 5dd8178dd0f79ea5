#!/usr/bin/env python3
"""Prints Tests/DGWWireTests/Fixtures.swift: byte fixtures built with scapy
(and RFC 8885 options packed by hand), independent of our Swift code.
Run once (pip install scapy); the output is committed, not regenerated in CI."""
import os, struct, sys
from scapy.all import *
from scapy.layers.inet6 import in6_chksum

sys.path.insert(0, os.path.dirname(__file__))
from dmm_frames import a16, mh_bytes

def mh(mh_type, fixed, options, src, dst):
    return bytes(IPv6(src=src, dst=dst, nh=135, hlim=64) / Raw(mh_bytes(mh_type, fixed, options, src, dst)))

MN, DLIF1 = "02:aa:00:00:00:01", "02:d1:00:00:01:01"
MN_ADDR, CN = "2001:db8:1:1::100", "2001:db8:cccc::1"
A1, A2 = "2001:db8:ffff::1", "2001:db8:ffff::2"
LLA, DLLA = "fe80::aa:ff:fe00:1", "fe80::d1:1"
pfx = a16("2001:db8:1:1::")
fx = {}
fx["ethernetVLANUDP"] = bytes(Ether(dst=DLIF1, src=MN) / Dot1Q(vlan=100, prio=5) / IPv6(src=MN_ADDR, dst=CN, hlim=64) / UDP(sport=40000, dport=5001) / Raw(b"hello"))
fx["ethernetUDP64"] = bytes(Ether(dst=DLIF1, src=MN) / IPv6(src=MN_ADDR, dst=CN, hlim=64) / UDP(sport=40000, dport=5001) / Raw(b"\x00\x00"))
fx["ipv6TCP"] = bytes(IPv6(src=MN_ADDR, dst=CN, hlim=64, tc=0xb8, fl=0x12345) / TCP(sport=40001, dport=80, flags="S", seq=1000, window=8192))
fx["ipv6ExtensionChain"] = bytes(IPv6(src=MN_ADDR, dst=CN, hlim=64) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) /
    IPv6ExtHdrRouting(type=0, addresses=[A1], segleft=1) / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")]) /
    IPv6ExtHdrFragment(offset=0, m=1, id=0xABCDEF01) / UDP(sport=7, dport=9, len=100) / Raw(b"frag"))
inner = IPv6(src=CN, dst=MN_ADDR, hlim=63, tc=0x28, fl=0xBEEF) / UDP(sport=5001, dport=40000) / Raw(b"downlink")
fx["tunnelInner"] = bytes(inner)
fx["tunnelOuter"] = bytes(IPv6(src=A1, dst=A2, nh=41, hlim=64, tc=0x28, fl=0xBEEF) / inner)
fx["routerSolicitation"] = bytes(IPv6(src=LLA, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MN))
fx["routerAdvertisement"] = bytes(IPv6(src=DLLA, dst="ff02::1", hlim=255) /
    ICMPv6ND_RA(chlim=64, M=1, O=1, prf=3, routerlifetime=1800, reachabletime=30000, retranstimer=1000) /
    ICMPv6NDOptPrefixInfo(prefix="2001:db8:1:1::", prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=3600) /
    ICMPv6NDOptPrefixInfo(prefix="2001:db8:2:3::", prefixlen=64, L=1, A=0, validlifetime=7200, preferredlifetime=0) /
    ICMPv6NDOptRouteInfo(prefix="2001:db8:aaaa::", plen=48, prf=1, rtlifetime=1800) /
    ICMPv6NDOptRouteInfo(prefix="::", plen=0, prf=0, rtlifetime=600) /
    ICMPv6NDOptRouteInfo(prefix="2001:db8:bbbb:1:2::", plen=80, prf=3, rtlifetime=60) /
    ICMPv6NDOptMTU(mtu=1500) / ICMPv6NDOptSrcLLAddr(lladdr=DLIF1))
fx["neighborSolicitation"] = bytes(IPv6(src=LLA, dst="ff02::1:ffd1:1", hlim=255) / ICMPv6ND_NS(tgt=DLLA) / ICMPv6NDOptSrcLLAddr(lladdr=MN))
fx["neighborAdvertisement"] = bytes(IPv6(src=DLLA, dst=LLA, hlim=255) / ICMPv6ND_NA(R=1, S=1, O=0, tgt=DLLA) / ICMPv6NDOptDstLLAddr(lladdr=DLIF1))
quoted = bytes(IPv6(src=CN, dst=MN_ADDR, hlim=1) / UDP(sport=5001, dport=40000) / Raw(b"z" * 12))
fx["quotedPacket"] = quoted
fx["packetTooBig"] = bytes(IPv6(src=A1, dst=CN, hlim=64) / ICMPv6PacketTooBig(mtu=1460) / Raw(quoted))
fx["timeExceeded"] = bytes(IPv6(src=A1, dst=CN, hlim=64) / ICMPv6TimeExceeded(code=0) / Raw(quoted))
fx["destinationUnreachable"] = bytes(IPv6(src=A1, dst=CN, hlim=64) / ICMPv6DestUnreach(code=3) / Raw(quoted))
fx["echoRequest"] = bytes(IPv6(src=A1, dst=A2, hlim=64) / ICMPv6EchoRequest(id=0x42, seq=7, data=b"ping"))
fx["proxyBindingUpdate"] = mh(5, struct.pack("!HHH", 7, 0x8000 | 0x4000 | 0x0200 | 0x0010, 900), [
    (8, b"\x01mn1@example.org", (1, 0)),
    (22, b"\x00\x40" + pfx, (8, 4)),
    (23, b"\x00\x04", (1, 0)),
    (24, b"\x00\x04", (1, 0)),
    (25, b"\x00\x00" + bytes.fromhex("02aa00000001"), (8, 2)),
    (26, a16(LLA), (8, 6)),
    (27, struct.pack("!Q", 0xED2F_2A00_8000_0000), (8, 2)),
    (65, b"\x00\x40" + pfx, (8, 4)),
    (66, b"\x00\x30" + a16("2001:db8:aaaa::"), (8, 4)),
    (67, b"\x00\x40" + a16(A1) + pfx, (8, 4)),
    (68, a16(A2), (8, 6)),
    (69, a16(DLLA), (8, 6)),
    (70, b"\x00\x00" + bytes.fromhex("02d100000101"), (8, 2)),
    (200, b"\xde\xad", (1, 0)),
], A2, A1)
fx["proxyBindingUpdateFourOptions"] = mh(5, struct.pack("!HHH", 8, 0x8000 | 0x0200 | 0x0010, 900), [
    (8, b"\x01mn1@example.org", (1, 0)),
    (22, b"\x00\x40" + pfx, (8, 4)),
    (65, b"\x00\x40" + pfx, (8, 4)),
    (27, struct.pack("!Q", 0xED2F_2A00_8000_0000), (8, 2)),
], A2, A1)
fx["proxyBindingAck"] = mh(6, struct.pack("!BBHH", 0, 0x20 | 0x02, 7, 900), [
    (8, b"\x01mn1@example.org", (1, 0)),
    (65, b"\x00\x40" + pfx, (8, 4)),
    (66, b"\x00\x30" + a16("2001:db8:aaaa::"), (8, 4)),
    (69, a16(DLLA), (8, 6)),
    (70, b"\x00\x00" + bytes.fromhex("02d100000101"), (8, 2)),
], A1, A2)

print("// Generated once by Tools/make-wire-fixtures.py (scapy); committed bytes.")
print("// Do not edit by hand.\n")
print("enum Fixtures {")
for k, v in fx.items():
    print(f"    static let {k}: [UInt8] = [")
    for i in range(0, len(v), 16):
        print("        " + ", ".join(f"0x{b:02x}" for b in v[i:i+16]) + ",")
    print("    ]")
print("}")
