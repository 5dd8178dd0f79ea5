// UDP (RFC 768) and TCP (RFC 9293) headers: enough for a 5-tuple.
//
// UDP: | Source Port | Destination Port |
//      |   Length    |     Checksum     |
// TCP: | Source Port | Destination Port | Sequence (4) | Ack (4) |
//      |Off| Rsvd|Flags| Window | Checksum | Urgent | options...

@usableFromInline enum TransportField {
    @usableFromInline static let sourcePort = 0
    @usableFromInline static let destinationPort = 2
    @usableFromInline static let udpLength = 4
    @usableFromInline static let udpChecksum = 6
    @usableFromInline static let udpHeaderLength = 8
    @usableFromInline static let tcpSequence = 4
    @usableFromInline static let tcpAcknowledgement = 8
    @usableFromInline static let tcpDataOffset = 12
    @usableFromInline static let tcpFlags = 13
    @usableFromInline static let tcpWindow = 14
    @usableFromInline static let tcpChecksum = 16
    @usableFromInline static let tcpMinimumLength = 20
}

/// A checked view of a UDP datagram: the length field is at least 8 and
/// within the buffer.
public struct UDPPacket {
    public let bytes: UnsafeRawBufferPointer

    /// `firstFragment`: the datagram was fragmented and these are the
    /// bytes of its first fragment, so the length field (which covers the
    /// whole datagram) cannot be checked against them.
    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer, firstFragment: Bool = false) throws(WireError) {
        guard bytes.count >= TransportField.udpHeaderLength else { throw .truncated }
        let length = Int(bytes.u16(TransportField.udpLength))
        guard length >= TransportField.udpHeaderLength else { throw .badLength }
        if firstFragment {
            guard length > bytes.count else { throw .badLength }
            self.bytes = bytes
            return
        }
        guard length <= bytes.count else { throw .truncated }
        self.bytes = bytes.slice(0..<length)
    }

    @inlinable public var sourcePort: UInt16 { bytes.u16(TransportField.sourcePort) }
    @inlinable public var destinationPort: UInt16 { bytes.u16(TransportField.destinationPort) }
    /// The length field (for a first fragment, more than `bytes.count`).
    @inlinable public var length: Int { Int(bytes.u16(TransportField.udpLength)) }
    @inlinable public var checksum: UInt16 { bytes.u16(TransportField.udpChecksum) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(from: TransportField.udpHeaderLength) }

    @inlinable
    public func checksumIsValid(source: IPv6Address, destination: IPv6Address) -> Bool {
        upperLayerChecksum(bytes, source: source, destination: destination, nextHeader: IPProtocol.udp).isValid
    }
}

public struct UDPHeader: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(sourcePort: UInt16, destinationPort: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    public init(_ packet: UDPPacket) {
        sourcePort = packet.sourcePort
        destinationPort = packet.destinationPort
    }

    /// Writes header and payload with the checksum; returns the length.
    @discardableResult
    public func emit(payload: UnsafeRawBufferPointer, into bytes: UnsafeMutableRawBufferPointer,
                     source: IPv6Address, destination: IPv6Address) throws(WireError) -> Int {
        let n = TransportField.udpHeaderLength + payload.count
        guard n <= 0xFFFF else { throw .badLength }
        guard bytes.count >= n else { throw .bufferTooSmall }
        let b = bytes.slice(0..<n)
        b.put16(sourcePort, at: TransportField.sourcePort)
        b.put16(destinationPort, at: TransportField.destinationPort)
        b.put16(UInt16(n), at: TransportField.udpLength)
        b.put16(0, at: TransportField.udpChecksum)
        b.copy(payload, to: TransportField.udpHeaderLength)
        let sum = upperLayerChecksum(UnsafeRawBufferPointer(b), source: source, destination: destination,
                                     nextHeader: IPProtocol.udp).value
        // RFC 8200 8.1: a computed zero is sent as 0xFFFF.
        b.put16(sum == 0 ? 0xFFFF : sum, at: TransportField.udpChecksum)
        return n
    }
}

/// A checked view of a TCP segment: the data offset is 5...15 words and
/// within the buffer.
public struct TCPSegment {
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= TransportField.tcpMinimumLength else { throw .truncated }
        let header = Int(bytes.u8(TransportField.tcpDataOffset) >> 4) * 4
        guard header >= TransportField.tcpMinimumLength else { throw .badLength }
        guard header <= bytes.count else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable public var sourcePort: UInt16 { bytes.u16(TransportField.sourcePort) }
    @inlinable public var destinationPort: UInt16 { bytes.u16(TransportField.destinationPort) }
    @inlinable public var sequence: UInt32 { bytes.u32(TransportField.tcpSequence) }
    @inlinable public var acknowledgement: UInt32 { bytes.u32(TransportField.tcpAcknowledgement) }
    @inlinable public var headerLength: Int { Int(bytes.u8(TransportField.tcpDataOffset) >> 4) * 4 }
    /// CWR ECE URG ACK PSH RST SYN FIN, low bit FIN.
    @inlinable public var flags: UInt8 { bytes.u8(TransportField.tcpFlags) }
    @inlinable public var window: UInt16 { bytes.u16(TransportField.tcpWindow) }
    @inlinable public var checksum: UInt16 { bytes.u16(TransportField.tcpChecksum) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(from: headerLength) }
}

public struct TCPHeader: Hashable, Sendable {
    public static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04
    public static let psh: UInt8 = 0x08, ack: UInt8 = 0x10, cwr: UInt8 = 0x80

    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgement: UInt32
    public var flags: UInt8
    public var window: UInt16

    public init(sourcePort: UInt16, destinationPort: UInt16, sequence: UInt32, acknowledgement: UInt32,
                flags: UInt8, window: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.acknowledgement = acknowledgement
        self.flags = flags
        self.window = window
    }

    public init(_ s: TCPSegment) {
        self.init(sourcePort: s.sourcePort, destinationPort: s.destinationPort, sequence: s.sequence,
                  acknowledgement: s.acknowledgement, flags: s.flags, window: s.window)
    }

    /// Writes a 20-octet header (no options) and the payload, with checksum.
    @discardableResult
    public func emit(payload: UnsafeRawBufferPointer, into bytes: UnsafeMutableRawBufferPointer,
                     source: IPv6Address, destination: IPv6Address) throws(WireError) -> Int {
        let n = TransportField.tcpMinimumLength + payload.count
        guard bytes.count >= n else { throw .bufferTooSmall }
        let b = bytes.slice(0..<n)
        b.put16(sourcePort, at: TransportField.sourcePort)
        b.put16(destinationPort, at: TransportField.destinationPort)
        b.put32(sequence, at: TransportField.tcpSequence)
        b.put32(acknowledgement, at: TransportField.tcpAcknowledgement)
        b.put8(5 << 4, at: TransportField.tcpDataOffset)
        b.put8(flags, at: TransportField.tcpFlags)
        b.put16(window, at: TransportField.tcpWindow)
        b.put32(0, at: TransportField.tcpChecksum)  // checksum and urgent pointer
        b.copy(payload, to: TransportField.tcpMinimumLength)
        let sum = upperLayerChecksum(UnsafeRawBufferPointer(b), source: source, destination: destination,
                                     nextHeader: IPProtocol.tcp)
        b.put16(sum.value, at: TransportField.tcpChecksum)
        return n
    }
}

/// The flow of a packet, for hashing packets of one flow to one worker or
/// one tunnel flow label. Ports are 0 for protocols without them.
public struct FiveTuple: Hashable, Sendable {
    public var source: IPv6Address
    public var destination: IPv6Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var proto: UInt8

    public init(source: IPv6Address, destination: IPv6Address, sourcePort: UInt16 = 0,
                destinationPort: UInt16 = 0, proto: UInt8) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.proto = proto
    }

    /// Reads the 5-tuple of an IPv6 packet (walking extension headers);
    /// a non-first fragment or an upper layer without ports gives ports 0.
    @inlinable
    public init(_ packet: IPv6Packet) throws(WireError) {
        var chain = IPv6HeaderChain(packet: packet)
        let upper = try chain.skipToUpperLayer()
        var sp: UInt16 = 0, dp: UInt16 = 0
        if !chain.isNonFirstFragment && (upper.protocol == IPProtocol.udp || upper.protocol == IPProtocol.tcp) {
            guard upper.bytes.count >= 4 else { throw .truncated }
            sp = upper.bytes.u16(0)
            dp = upper.bytes.u16(2)
        }
        self.init(source: packet.source, destination: packet.destination,
                  sourcePort: sp, destinationPort: dp, proto: upper.protocol)
    }

    /// A well-mixed 64-bit hash, stable across runs (not Swift's seeded
    /// Hasher), so replay and fan-out decisions are deterministic.
    @inlinable
    public var stableHash: UInt64 {
        @inline(__always) func mix(_ h: UInt64, _ v: UInt64) -> UInt64 {
            var x = (h ^ v) &* 0x9E37_79B9_7F4A_7C15
            x ^= x >> 29
            return x
        }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        h = mix(h, source.high); h = mix(h, source.low)
        h = mix(h, destination.high); h = mix(h, destination.low)
        h = mix(h, UInt64(sourcePort) << 24 | UInt64(destinationPort) << 8 | UInt64(proto))
        h ^= h >> 32
        return h &* 0xFF51_AFD7_ED55_8CCD
    }
}

/// Completes the TCP, UDP or ICMPv6 checksum of an Ethernet frame carrying
/// IPv6 whose sender left it to a NIC that does not exist (Linux
/// CHECKSUM_PARTIAL, what a packet socket sees from a veth or local socket
/// with TX offload on: AF_PACKET's TP_STATUS_CSUMNOTREADY): the field is
/// recomputed over the pseudo-header and the whole segment, as the NIC
/// would have. False, and nothing changed, for anything else (not IPv6, a
/// fragment, another upper layer, too short).
public func completeTransportChecksum(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
    guard let eth = try? EthernetFrame(checking: UnsafeRawBufferPointer(frame)), eth.etherType == EtherType.ipv6,
          let ip = try? IPv6Packet(checking: eth.payload) else { return false }
    var chain = IPv6HeaderChain(packet: ip)
    do throws(WireError) {
        while let header = try chain.next() {
            if header.kind == .fragment { return false }  // the checksum covers the reassembled datagram
        }
    } catch {
        return false
    }
    let field: Int
    switch chain.nextHeader {
    case IPProtocol.tcp: field = TransportField.tcpChecksum
    case IPProtocol.udp: field = TransportField.udpChecksum
    case IPProtocol.icmpv6: field = ICMPv6Field.checksum
    default: return false
    }
    let segment = chain.remainder
    guard segment.count >= field + 2, let base = segment.baseAddress else { return false }
    // The segment's place in `frame` (the views above are read-only views of it).
    let at = base - UnsafeRawPointer(frame.baseAddress!)
    frame[at + field] = 0
    frame[at + field + 1] = 0
    var sum = upperLayerChecksum(segment, source: ip.source, destination: ip.destination, nextHeader: chain.nextHeader).value
    if sum == 0 && chain.nextHeader == IPProtocol.udp { sum = 0xFFFF }  // 0 means "no checksum" in UDP
    frame[at + field] = UInt8(sum >> 8)
    frame[at + field + 1] = UInt8(sum & 0xFF)
    return true
}
