// IPv6 (RFC 8200): the fixed header and the walk over extension headers.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Version| Traffic Class |           Flow Label                  |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |         Payload Length        |  Next Header  |   Hop Limit   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                      Source Address (16)                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                    Destination Address (16)                   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// IANA protocol numbers used here.
public enum IPProtocol {
    public static let hopByHop: UInt8 = 0       // RFC 8200
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let ipv6: UInt8 = 41          // IPv6-in-IPv6, RFC 2473
    public static let routing: UInt8 = 43       // RFC 8200
    public static let fragment: UInt8 = 44      // RFC 8200
    public static let esp: UInt8 = 50
    public static let authentication: UInt8 = 51 // RFC 4302
    public static let icmpv6: UInt8 = 58        // RFC 4443
    public static let noNextHeader: UInt8 = 59  // RFC 8200
    public static let destinationOptions: UInt8 = 60 // RFC 8200
    public static let mobility: UInt8 = 135     // RFC 6275
}

@usableFromInline enum IPv6Field {
    @usableFromInline static let versionTCFlow = 0   // 4 octets
    @usableFromInline static let payloadLength = 4   // 2
    @usableFromInline static let nextHeader = 6      // 1
    @usableFromInline static let hopLimit = 7        // 1
    @usableFromInline static let source = 8          // 16
    @usableFromInline static let destination = 24    // 16
    @usableFromInline static let headerLength = 40
}

/// A checked view of an IPv6 packet. The payload is cut to the payload
/// length (Ethernet padding after it is ignored).
public struct IPv6Packet {
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= IPv6Field.headerLength else { throw .truncated }
        guard bytes.u8(0) >> 4 == 6 else { throw .badVersion }
        let total = IPv6Field.headerLength + Int(bytes.u16(IPv6Field.payloadLength))
        guard total <= bytes.count else { throw .payloadLengthBeyondFrame }
        self.bytes = bytes.slice(0..<total)
    }

    @inlinable public var version: UInt8 { bytes.u8(0) >> 4 }
    @inlinable public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.u32(0) >> 20) }
    @inlinable public var flowLabel: UInt32 { bytes.u32(0) & 0xF_FFFF }
    @inlinable public var payloadLength: Int { Int(bytes.u16(IPv6Field.payloadLength)) }
    @inlinable public var nextHeader: UInt8 { bytes.u8(IPv6Field.nextHeader) }
    @inlinable public var hopLimit: UInt8 { bytes.u8(IPv6Field.hopLimit) }
    @inlinable public var source: IPv6Address { IPv6Address(bytes, at: IPv6Field.source) }
    @inlinable public var destination: IPv6Address { IPv6Address(bytes, at: IPv6Field.destination) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(from: IPv6Field.headerLength) }
    /// Header plus payload, without link-layer padding.
    @inlinable public var totalLength: Int { bytes.count }
}

/// An IPv6 fixed header as a value.
public struct IPv6Header: Hashable, Sendable {
    public static let length = IPv6Field.headerLength

    public var trafficClass: UInt8
    public var flowLabel: UInt32
    public var payloadLength: Int
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPv6Address
    public var destination: IPv6Address

    public init(trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, payloadLength: Int, nextHeader: UInt8,
                hopLimit: UInt8, source: IPv6Address, destination: IPv6Address) {
        self.trafficClass = trafficClass
        self.flowLabel = flowLabel & 0xF_FFFF
        self.payloadLength = payloadLength
        self.nextHeader = nextHeader
        self.hopLimit = hopLimit
        self.source = source
        self.destination = destination
    }

    @inlinable
    public init(_ packet: IPv6Packet) {
        self.init(trafficClass: packet.trafficClass, flowLabel: packet.flowLabel,
                  payloadLength: packet.payloadLength, nextHeader: packet.nextHeader,
                  hopLimit: packet.hopLimit, source: packet.source, destination: packet.destination)
    }

    @inlinable
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard bytes.count >= IPv6Field.headerLength else { throw .bufferTooSmall }
        guard payloadLength <= 0xFFFF, payloadLength >= 0 else { throw .badLength }
        bytes.put32(6 << 28 | UInt32(trafficClass) << 20 | flowLabel, at: IPv6Field.versionTCFlow)
        bytes.put16(UInt16(payloadLength), at: IPv6Field.payloadLength)
        bytes.put8(nextHeader, at: IPv6Field.nextHeader)
        bytes.put8(hopLimit, at: IPv6Field.hopLimit)
        source.write(to: bytes, at: IPv6Field.source)
        destination.write(to: bytes, at: IPv6Field.destination)
    }
}

// MARK: - Extension headers

// Hop-by-Hop, Destination Options and Routing share the first two octets:
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Next Header  |  Hdr Ext Len  |  length = (Hdr Ext Len + 1) * 8
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// Fragment is a fixed 8 octets:
// |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
// |                         Identification                        |
// Authentication Header (RFC 4302): length = (Payload Len + 2) * 4.

public enum IPv6ExtensionKind: Sendable, Equatable {
    case hopByHop, routing, fragment, destinationOptions, authentication

    @inlinable
    public init?(protocol p: UInt8) {
        switch p {
        case IPProtocol.hopByHop: self = .hopByHop
        case IPProtocol.routing: self = .routing
        case IPProtocol.fragment: self = .fragment
        case IPProtocol.destinationOptions: self = .destinationOptions
        case IPProtocol.authentication: self = .authentication
        default: return nil
        }
    }

    /// Layer name in `dgw decode` output.
    public var name: String {
        switch self {
        case .hopByHop: "hbh"
        case .routing: "routing"
        case .fragment: "frag"
        case .destinationOptions: "dstopts"
        case .authentication: "ah"
        }
    }
}

/// One extension header located in a packet by `IPv6HeaderChain`.
public struct IPv6ExtensionHeader {
    public let kind: IPv6ExtensionKind
    /// The whole header, next-header octet first.
    public let bytes: UnsafeRawBufferPointer

    @usableFromInline
    init(kind: IPv6ExtensionKind, bytes: UnsafeRawBufferPointer) {
        self.kind = kind
        self.bytes = bytes
    }

    @inlinable public var nextHeader: UInt8 { bytes.u8(0) }

    // Fragment header fields (kind == .fragment).
    @inlinable public var fragmentOffset: Int { Int(bytes.u16(2) >> 3) * 8 }
    @inlinable public var moreFragments: Bool { bytes.u16(2) & 1 != 0 }
    @inlinable public var fragmentIdentification: UInt32 { bytes.u32(4) }

    // Routing header fields (kind == .routing).
    @inlinable public var routingType: UInt8 { bytes.u8(2) }
    @inlinable public var segmentsLeft: UInt8 { bytes.u8(3) }
}

/// Walks the extension headers after an IPv6 header without allocating.
/// Each header is checked (length within the payload, options within the
/// header) as it is reached.
public struct IPv6HeaderChain {
    /// Longer chains are refused: no legitimate packet needs more.
    public static let maxHeaders = 16

    public let payload: UnsafeRawBufferPointer
    /// Protocol of the header at `offset`: after the walk, the upper layer.
    @inlinable public var nextHeader: UInt8 { _nextHeader }
    /// Offset in `payload` of the header not yet walked.
    @inlinable public var offset: Int { _offset }
    /// Set when a fragment header with a non-zero offset was crossed: what
    /// follows is fragment data, not a header.
    @inlinable public var isNonFirstFragment: Bool { _isNonFirstFragment }
    /// The bytes after the walked headers: the upper layer once `next()`
    /// has returned nil.
    @inlinable public var remainder: UnsafeRawBufferPointer { payload.slice(from: _offset) }
    @usableFromInline var _nextHeader: UInt8
    @usableFromInline var _offset = 0
    @usableFromInline var _isNonFirstFragment = false
    @usableFromInline var count = 0

    @inlinable
    public init(packet: IPv6Packet) {
        payload = packet.payload
        _nextHeader = packet.nextHeader
    }

    @inlinable
    public init(payload: UnsafeRawBufferPointer, nextHeader: UInt8) {
        self.payload = payload
        self._nextHeader = nextHeader
    }

    /// The next extension header, or nil when the upper layer is reached.
    @inlinable
    public mutating func next() throws(WireError) -> IPv6ExtensionHeader? {
        guard !isNonFirstFragment, let kind = IPv6ExtensionKind(protocol: nextHeader) else { return nil }
        if kind == .hopByHop && count > 0 { throw .misplacedHopByHop }
        guard count < Self.maxHeaders else { throw .tooManyHeaders }
        let rest = payload.count - offset
        guard rest >= 8 else { throw .truncated }
        let length: Int
        switch kind {
        case .fragment: length = 8
        case .authentication: length = (Int(payload.u8(offset + 1)) + 2) * 4
        default: length = (Int(payload.u8(offset + 1)) + 1) * 8
        }
        guard length <= rest else { throw .truncated }
        let header = IPv6ExtensionHeader(kind: kind, bytes: payload.slice(offset..<(offset + length)))
        if kind == .hopByHop || kind == .destinationOptions {
            try IPv6Options.validate(header.bytes.slice(from: 2))
        }
        if kind == .fragment && header.fragmentOffset != 0 { _isNonFirstFragment = true }
        _nextHeader = header.nextHeader
        _offset += length
        count += 1
        return header
    }

    /// Walks to the upper layer; returns its protocol and bytes.
    @inlinable
    public mutating func skipToUpperLayer() throws(WireError) -> (protocol: UInt8, bytes: UnsafeRawBufferPointer) {
        while try next() != nil {}
        return (nextHeader, payload.slice(from: offset))
    }
}

/// TLV options inside Hop-by-Hop and Destination Options headers.
public enum IPv6Options {
    public static let pad1: UInt8 = 0
    public static let padN: UInt8 = 1

    /// Every option must fit in the header.
    @inlinable
    public static func validate(_ options: UnsafeRawBufferPointer) throws(WireError) {
        var i = 0
        while i < options.count {
            if options[i] == pad1 { i += 1; continue }
            guard i + 2 <= options.count else { throw .optionOverrun }
            let end = i + 2 + Int(options[i + 1])
            guard end <= options.count else { throw .optionOverrun }
            i = end
        }
    }
}

/// A Hop-by-Hop or Destination Options header as a value: the options are
/// kept as bytes and padded with Pad1/PadN to a multiple of 8 on emit.
public struct IPv6OptionsHeader: Equatable {
    public var nextHeader: UInt8
    /// Options without the trailing padding.
    public var options: RawBytes

    public init(nextHeader: UInt8, options: RawBytes) {
        self.nextHeader = nextHeader
        self.options = options
    }

    /// Parses a header found by `IPv6HeaderChain` (already validated).
    public init(_ header: IPv6ExtensionHeader) {
        nextHeader = header.nextHeader
        options = .borrowed(header.bytes.slice(from: 2))
    }

    public var bufferLength: Int { (2 + options.count + 7) / 8 * 8 }

    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let n = bufferLength
        guard n <= 2048 else { throw .badLength }
        guard bytes.count >= n else { throw .bufferTooSmall }
        bytes.put8(nextHeader, at: 0)
        bytes.put8(UInt8(n / 8 - 1), at: 1)
        options.withUnsafeBytes { bytes.copy($0, to: 2) }
        writePadding(bytes, from: 2 + options.count, to: n)
        return n
    }
}

/// Pad1 or PadN from `start` up to `end` (shared by IPv6 options and
/// mobility options, which use the same two padding codes).
@inlinable
func writePadding(_ bytes: UnsafeMutableRawBufferPointer, from start: Int, to end: Int) {
    let gap = end - start
    if gap <= 0 { return }
    if gap == 1 { bytes.put8(0, at: start); return }
    bytes.put8(1, at: start)
    bytes.put8(UInt8(gap - 2), at: start + 1)
    bytes.zero((start + 2)..<end)
}

/// A Fragment header as a value.
public struct IPv6FragmentHeader: Hashable, Sendable {
    public static let length = 8
    public var nextHeader: UInt8
    /// In octets; a multiple of 8.
    public var offset: Int
    public var moreFragments: Bool
    public var identification: UInt32

    public init(nextHeader: UInt8, offset: Int, moreFragments: Bool, identification: UInt32) {
        self.nextHeader = nextHeader
        self.offset = offset
        self.moreFragments = moreFragments
        self.identification = identification
    }

    public init(_ header: IPv6ExtensionHeader) {
        nextHeader = header.nextHeader
        offset = header.fragmentOffset
        moreFragments = header.moreFragments
        identification = header.fragmentIdentification
    }

    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard bytes.count >= 8 else { throw .bufferTooSmall }
        guard offset % 8 == 0, offset / 8 < 0x2000 else { throw .badLength }
        bytes.put8(nextHeader, at: 0)
        bytes.put8(0, at: 1)
        bytes.put16(UInt16(offset / 8) << 3 | (moreFragments ? 1 : 0), at: 2)
        bytes.put32(identification, at: 4)
        return 8
    }
}

/// A Routing header as a value (any type; the type-specific data is kept).
public struct IPv6RoutingHeader: Equatable {
    public var nextHeader: UInt8
    public var routingType: UInt8
    public var segmentsLeft: UInt8
    /// Everything after the first four octets; its length + 4 must be a multiple of 8.
    public var data: RawBytes

    public init(nextHeader: UInt8, routingType: UInt8, segmentsLeft: UInt8, data: RawBytes) {
        self.nextHeader = nextHeader
        self.routingType = routingType
        self.segmentsLeft = segmentsLeft
        self.data = data
    }

    public init(_ header: IPv6ExtensionHeader) {
        nextHeader = header.nextHeader
        routingType = header.routingType
        segmentsLeft = header.segmentsLeft
        data = .borrowed(header.bytes.slice(from: 4))
    }

    public var bufferLength: Int { 4 + data.count }

    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let n = bufferLength
        guard n % 8 == 0, n <= 2048 else { throw .badLength }
        guard bytes.count >= n else { throw .bufferTooSmall }
        bytes.put8(nextHeader, at: 0)
        bytes.put8(UInt8(n / 8 - 1), at: 1)
        bytes.put8(routingType, at: 2)
        bytes.put8(segmentsLeft, at: 3)
        data.withUnsafeBytes { bytes.copy($0, to: 4) }
        return n
    }
}
