// The common cases of pass 3, decided from what pass 1 already checked and
// the look-ups of pass 2, without parsing the frame again: downlink to an
// MN attached here, and downlink or uplink into a tunnel to a peer whose
// MAC is known. Anything else (every drop, every ICMPv6 error, a hop limit
// about to expire, an unresolved hop, a native uplink) returns false and
// takes the general path, which decides it in full.

import DGWWire
import Synchronization

extension Pipeline {
    /// A core frame from pass 1: untagged IPv6 to the gateway's MAC, a whole
    /// IPv6 header at 14, a unicast destination that is not the gateway.
    @inline(__always)
    func fastCoreIn(_ p: inout Packet, route: Int) -> Bool {
        guard route != 0 else { return false }
        let frame = pool.bytes(p)
        let hopLimit = frame[14 + 7]
        guard hopLimit > 1 else { return false }
        let h = hot[route - 1]
        if h.isServedHere {
            frame[14 + 7] = hopLimit &- 1
            writeEthernet(frame, destination: h.mnMAC, source: h.dlifMAC)
            p.verdict = .forward(.access)
            count(.downlinkDelivered)
            return true
        }
        guard !h.isLocalNetwork else { return false }
        return fastEncapsulate(&p, hop: h.peerHop, action: .downlinkEncapsulated)
    }

    /// An access frame from pass 1: untagged IPv6 to a unicast MAC, a whole
    /// IPv6 header at 14, a unicast destination that is not the gateway.
    @inline(__always)
    func fastAccessIn(_ p: inout Packet, route: Int, dlif: Int) -> Bool {
        guard route != 0, dlif > 0 else { return false }
        let frame = UnsafeRawBufferPointer(pool.bytes(p))
        let source = MACAddress(frame, at: 6)
        let h = hot[route - 1]
        // The DLIF is one of this MN's and the source one of its prefixes
        // served here, anchored elsewhere.
        guard hot[dlif - 1].mnMAC == source, h.mnMAC == source, h.isServedHere, !h.isAnchoredHere,
              frame[14 + 7] > 1 else { return false }
        return fastEncapsulate(&p, hop: h.peerHop, action: .uplinkEncapsulated)
    }

    /// RFC 2473 encapsulation into the slot's headroom: the outer header
    /// takes the inner one's traffic class and flow label (its first word,
    /// as both are version 6), the inner hop limit goes down by one.
    @inline(__always)
    func fastEncapsulate(_ p: inout Packet, hop: Int, action: Action) -> Bool {
        let overhead = IPv6Tunnel.overhead
        let inner = pool.bytes(p)
        // Header plus payload length (an IPv6 header is as long as the overhead).
        let totalLength = overhead + Int(UnsafeRawBufferPointer(inner).u16(14 + 4))
        guard hop >= 0, totalLength <= configuration.coreMTU - overhead, p.offset >= overhead else { return false }
        let mac = neighborMACs[hop].load(ordering: .relaxed)
        guard mac != 0 else { return false }
        inner[14 + 7] &-= 1
        p.offset -= overhead
        p.length += overhead
        let frame = pool.bytes(p)
        frame.put32(UnsafeRawBufferPointer(frame).u32(14 + overhead), at: 14)
        frame.put16(UInt16(truncatingIfNeeded: totalLength), at: 14 + 4)
        frame[14 + 6] = IPProtocol.ipv6
        frame[14 + 7] = IPv6Tunnel.defaultHopLimit
        configuration.address.write(to: frame, at: 14 + 8)
        hopAddress(hop).write(to: frame, at: 14 + 24)
        writeEthernet(frame, destination: MACAddress(value: mac), source: configuration.coreMAC)
        p.verdict = .forward(.core)
        count(action)
        return true
    }
}
