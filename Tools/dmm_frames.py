"""Helpers shared by the fixture and sample generators: Mobility Header
messages packed by hand (scapy does not know the RFC 8885 options), with
the checksum computed by scapy."""
import socket, struct
from scapy.all import IPv6, Raw
from scapy.layers.inet6 import in6_chksum

def a16(a):
    return socket.inet_pton(socket.AF_INET6, a)

def opt(t, body):
    return bytes([t, len(body)]) + body

def pad(cur, x, y):
    """Pad1/PadN taking offset `cur` to one congruent to y mod x."""
    need = (y - cur) % x
    return b"" if need == 0 else b"\x00" if need == 1 else bytes([1, need - 2]) + bytes(need - 2)

def mh_bytes(mh_type, fixed, options, src, dst, corrupt=False):
    """The Mobility Header: fixed fields after the checksum, then options
    given as (type, body, (x, y)), padded to alignment and to 8 octets."""
    out, cur = b"", 6 + len(fixed)
    for t, body, (x, y) in options:
        p = pad(cur, x, y); out += p; cur += len(p)
        o = opt(t, body); out += o; cur += len(o)
    out += pad(cur, 8, 0)
    msg = fixed + out
    hdr = bytes([59, (6 + len(msg)) // 8 - 1, mh_type, 0, 0, 0]) + msg
    ck = in6_chksum(135, IPv6(src=src, dst=dst, nh=135) / Raw(hdr), hdr)
    if corrupt:
        ck ^= 0x5555
    return hdr[:4] + struct.pack("!H", ck) + hdr[6:]
