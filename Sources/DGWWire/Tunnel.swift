// IPv6-in-IPv6 tunnelling (RFC 2473) between gateways.
//
// Choices, all within what RFC 2473 leaves to the entry point:
// - Outer hop limit: the tunnel's own value (default 64, section 6.3), not
//   the inner one. The inner hop limit is not touched here: the forwarding
//   step decrements it before the packet enters the tunnel (section 3.1, the
//   entry point forwards the original packet) and again after it leaves.
// - Traffic class: copied from the inner header (section 6.5 allows it; the
//   uniform model keeps DiffServ marking across the tunnel).
// - Flow label: copied from the inner header (section 6.5 / RFC 6437; a
//   zero inner label stays zero).
// - No Tunnel Encapsulation Limit option is added (section 4.1 makes it
//   optional); on decapsulation one in a Destination Options header is
//   walked past like any other option.
// - The tunnel MTU is the core MTU minus `overhead`; a packet that would
//   exceed it gets Packet Too Big (section 7), decided by the pipeline.

public enum IPv6Tunnel {
    /// Octets the outer header adds.
    public static let overhead = IPv6Header.length
    public static let defaultHopLimit: UInt8 = 64

    /// Writes the outer header for `inner` into the 40 octets of `outer`
    /// (typically headroom right before the inner packet: no copy).
    @inlinable
    public static func writeOuterHeader(
        into outer: UnsafeMutableRawBufferPointer, inner: IPv6Packet,
        source: IPv6Address, destination: IPv6Address, hopLimit: UInt8 = defaultHopLimit
    ) throws(WireError) {
        guard inner.totalLength <= 0xFFFF else { throw .badLength }
        try IPv6Header(trafficClass: inner.trafficClass, flowLabel: inner.flowLabel,
                       payloadLength: inner.totalLength, nextHeader: IPProtocol.ipv6,
                       hopLimit: hopLimit, source: source, destination: destination)
            .emit(into: outer)
    }

    /// Copies `inner` behind a new outer header in `out`; returns the length.
    @inlinable
    public static func encapsulate(
        _ inner: IPv6Packet, into out: UnsafeMutableRawBufferPointer,
        source: IPv6Address, destination: IPv6Address, hopLimit: UInt8 = defaultHopLimit
    ) throws(WireError) -> Int {
        let total = overhead + inner.totalLength
        guard out.count >= total else { throw .bufferTooSmall }
        try writeOuterHeader(into: out, inner: inner, source: source, destination: destination, hopLimit: hopLimit)
        out.copy(inner.bytes, to: overhead)
        return total
    }

    /// The inner packet of an IPv6-in-IPv6 packet (after any extension
    /// headers of the outer one), checked. Nil when the outer packet does
    /// not carry IPv6 (next header other than 41, or a non-first fragment).
    @inlinable
    public static func decapsulate(_ outer: IPv6Packet) throws(WireError) -> IPv6Packet? {
        var chain = IPv6HeaderChain(packet: outer)
        let upper = try chain.skipToUpperLayer()
        guard upper.protocol == IPProtocol.ipv6, !chain.isNonFirstFragment else { return nil }
        return try IPv6Packet(checking: upper.bytes)
    }
}
