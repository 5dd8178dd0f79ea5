// ICMPv6 (RFC 4443) and Neighbor Discovery messages (RFC 4861).
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |     Type      |     Code      |          Checksum             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  4 octets: unused / MTU / pointer / id+seq / RA or NA fields  |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// RA:  | Cur Hop Limit |M|O|H|Prf|Resv.|       Router Lifetime       |
//      |                        Reachable Time                       |
//      |                        Retrans Timer                        |   options...
// NS:  |                          Reserved                           |
//      |                       Target Address (16)                   |   options...
// NA:  |R|S|O|                     Reserved                          |
//      |                       Target Address (16)                   |   options...

public enum ICMPv6Type {
    public static let destinationUnreachable: UInt8 = 1  // RFC 4443
    public static let packetTooBig: UInt8 = 2            // RFC 4443
    public static let timeExceeded: UInt8 = 3            // RFC 4443
    public static let parameterProblem: UInt8 = 4        // RFC 4443
    public static let echoRequest: UInt8 = 128           // RFC 4443
    public static let echoReply: UInt8 = 129             // RFC 4443
    public static let routerSolicitation: UInt8 = 133    // RFC 4861
    public static let routerAdvertisement: UInt8 = 134   // RFC 4861
    public static let neighborSolicitation: UInt8 = 135  // RFC 4861
    public static let neighborAdvertisement: UInt8 = 136 // RFC 4861
    public static let redirect: UInt8 = 137              // RFC 4861
}

/// Destination Unreachable codes (RFC 4443 3.1).
public enum UnreachableCode {
    public static let noRoute: UInt8 = 0
    public static let administrativelyProhibited: UInt8 = 1
    public static let beyondScope: UInt8 = 2
    public static let address: UInt8 = 3
    public static let port: UInt8 = 4
    public static let sourcePolicy: UInt8 = 5
    public static let rejectRoute: UInt8 = 6
}

/// Time Exceeded codes (RFC 4443 3.3).
public enum TimeExceededCode {
    public static let hopLimit: UInt8 = 0
    public static let reassembly: UInt8 = 1
}

@usableFromInline enum ICMPv6Field {
    @usableFromInline static let type = 0
    @usableFromInline static let code = 1
    @usableFromInline static let checksum = 2
    @usableFromInline static let word = 4            // MTU, pointer, id/seq, flags
    @usableFromInline static let headerLength = 8
    // RA
    @usableFromInline static let curHopLimit = 4
    @usableFromInline static let raFlags = 5
    @usableFromInline static let routerLifetime = 6
    @usableFromInline static let reachableTime = 8
    @usableFromInline static let retransTimer = 12
    @usableFromInline static let raOptions = 16
    // NS / NA
    @usableFromInline static let target = 8
    @usableFromInline static let ndOptions = 24
    @usableFromInline static let rsOptions = 8
}

/// The most of an invoking packet an ICMPv6 error may carry so the error
/// fits the IPv6 minimum MTU (RFC 4443 2.4 (c)): 1280 - 40 - 8.
public let icmpv6ErrorMaxInvoking = 1232

/// A checked view of an ICMPv6 message (header length only; the message
/// body is checked by `ICMPv6Message.parse`).
public struct ICMPv6Packet {
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 4 else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable public var type: UInt8 { bytes.u8(ICMPv6Field.type) }
    @inlinable public var code: UInt8 { bytes.u8(ICMPv6Field.code) }
    @inlinable public var checksum: UInt16 { bytes.u16(ICMPv6Field.checksum) }

    @inlinable
    public func checksumIsValid(source: IPv6Address, destination: IPv6Address) -> Bool {
        upperLayerChecksum(bytes, source: source, destination: destination, nextHeader: IPProtocol.icmpv6).isValid
    }
}

public struct RouterAdvertisement: Equatable {
    public var curHopLimit: UInt8
    public var managed: Bool         // M
    public var otherConfig: Bool     // O
    public var preference: RouterPreference
    /// Seconds; 0 = not a default router.
    public var routerLifetime: UInt16
    /// Milliseconds; 0 = unspecified.
    public var reachableTime: UInt32
    public var retransTimer: UInt32
    public var options: NDOptions

    public init(curHopLimit: UInt8 = 64, managed: Bool = false, otherConfig: Bool = false,
                preference: RouterPreference = .medium, routerLifetime: UInt16,
                reachableTime: UInt32 = 0, retransTimer: UInt32 = 0, options: NDOptions) {
        self.curHopLimit = curHopLimit
        self.managed = managed
        self.otherConfig = otherConfig
        self.preference = preference
        self.routerLifetime = routerLifetime
        self.reachableTime = reachableTime
        self.retransTimer = retransTimer
        self.options = options
    }
}

extension RouterAdvertisement {
    /// Writes an RA with this header (its `options` unused) and the options
    /// `write` appends, straight into `bytes`, then the checksum: what a
    /// router sends per DLIF and per period, with no option list built.
    /// `length` is the message's (16 plus the options'); returns it.
    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer, length: Int, source: IPv6Address, destination: IPv6Address,
                     options write: (inout NDOptionWriter) throws(WireError) -> Void) throws(WireError) -> Int {
        guard length >= ICMPv6Field.raOptions, bytes.count >= length else { throw .bufferTooSmall }
        let b = bytes.slice(0..<length)
        b.put8(ICMPv6Type.routerAdvertisement, at: ICMPv6Field.type)
        b.put8(0, at: ICMPv6Field.code)
        b.put16(0, at: ICMPv6Field.checksum)
        b.put8(curHopLimit, at: ICMPv6Field.curHopLimit)
        b.put8((managed ? 0x80 : 0) | (otherConfig ? 0x40 : 0) | preference.rawValue << 3, at: ICMPv6Field.raFlags)
        b.put16(routerLifetime, at: ICMPv6Field.routerLifetime)
        b.put32(reachableTime, at: ICMPv6Field.reachableTime)
        b.put32(retransTimer, at: ICMPv6Field.retransTimer)
        var writer = NDOptionWriter(b.slice(ICMPv6Field.raOptions..<length))
        try write(&writer)
        guard writer.count == length - ICMPv6Field.raOptions else { throw .badOptionLength }
        let sum = upperLayerChecksum(UnsafeRawBufferPointer(b), source: source, destination: destination,
                                     nextHeader: IPProtocol.icmpv6)
        b.put16(sum.value, at: ICMPv6Field.checksum)
        return length
    }
}

public struct NeighborAdvertisement: Equatable {
    public var router: Bool       // R
    public var solicited: Bool    // S
    public var override: Bool     // O
    public var target: IPv6Address
    public var options: NDOptions

    public init(router: Bool, solicited: Bool, override: Bool, target: IPv6Address, options: NDOptions) {
        self.router = router
        self.solicited = solicited
        self.override = override
        self.target = target
        self.options = options
    }
}

/// An ICMPv6 message as a value.
public enum ICMPv6Message: Equatable {
    case destinationUnreachable(code: UInt8, invoking: RawBytes)
    case packetTooBig(mtu: UInt32, invoking: RawBytes)
    case timeExceeded(code: UInt8, invoking: RawBytes)
    case parameterProblem(code: UInt8, pointer: UInt32, invoking: RawBytes)
    case echoRequest(identifier: UInt16, sequence: UInt16, data: RawBytes)
    case echoReply(identifier: UInt16, sequence: UInt16, data: RawBytes)
    case routerSolicitation(options: NDOptions)
    case routerAdvertisement(RouterAdvertisement)
    case neighborSolicitation(target: IPv6Address, options: NDOptions)
    case neighborAdvertisement(NeighborAdvertisement)
    /// Any other type, body after the checksum kept as is.
    case other(type: UInt8, code: UInt8, body: RawBytes)

    /// Parses a message whose checksum is verified against the pseudo-header.
    @inlinable
    public static func parse(_ packet: ICMPv6Packet, source: IPv6Address, destination: IPv6Address)
        throws(WireError) -> ICMPv6Message
    {
        guard packet.checksumIsValid(source: source, destination: destination) else { throw .badChecksum }
        return try parse(unverified: packet)
    }

    /// Parses without looking at the checksum (for messages quoted inside others).
    @inlinable
    public static func parse(unverified packet: ICMPv6Packet) throws(WireError) -> ICMPv6Message {
        let b = packet.bytes
        let type = packet.type, code = packet.code
        func need(_ n: Int) throws(WireError) { guard b.count >= n else { throw .truncated } }
        switch type {
        case ICMPv6Type.destinationUnreachable, ICMPv6Type.timeExceeded,
             ICMPv6Type.packetTooBig, ICMPv6Type.parameterProblem:
            try need(ICMPv6Field.headerLength)
            let invoking = RawBytes.borrowed(b.slice(from: ICMPv6Field.headerLength))
            let word = b.u32(ICMPv6Field.word)
            switch type {
            case ICMPv6Type.destinationUnreachable: return .destinationUnreachable(code: code, invoking: invoking)
            case ICMPv6Type.timeExceeded: return .timeExceeded(code: code, invoking: invoking)
            case ICMPv6Type.packetTooBig: return .packetTooBig(mtu: word, invoking: invoking)
            default: return .parameterProblem(code: code, pointer: word, invoking: invoking)
            }
        case ICMPv6Type.echoRequest, ICMPv6Type.echoReply:
            try need(ICMPv6Field.headerLength)
            let id = b.u16(4), seq = b.u16(6)
            let data = RawBytes.borrowed(b.slice(from: ICMPv6Field.headerLength))
            return type == ICMPv6Type.echoRequest
                ? .echoRequest(identifier: id, sequence: seq, data: data)
                : .echoReply(identifier: id, sequence: seq, data: data)
        case ICMPv6Type.routerSolicitation:
            try need(ICMPv6Field.rsOptions)
            return .routerSolicitation(options: try NDOptions(checking: b.slice(from: ICMPv6Field.rsOptions)))
        case ICMPv6Type.routerAdvertisement:
            try need(ICMPv6Field.raOptions)
            let flags = b.u8(ICMPv6Field.raFlags)
            return .routerAdvertisement(RouterAdvertisement(
                curHopLimit: b.u8(ICMPv6Field.curHopLimit),
                managed: flags & 0x80 != 0, otherConfig: flags & 0x40 != 0,
                preference: RouterPreference(rawValue: (flags >> 3) & 0x3)!,
                routerLifetime: b.u16(ICMPv6Field.routerLifetime),
                reachableTime: b.u32(ICMPv6Field.reachableTime),
                retransTimer: b.u32(ICMPv6Field.retransTimer),
                options: try NDOptions(checking: b.slice(from: ICMPv6Field.raOptions))))
        case ICMPv6Type.neighborSolicitation:
            try need(ICMPv6Field.ndOptions)
            return .neighborSolicitation(
                target: IPv6Address(b, at: ICMPv6Field.target),
                options: try NDOptions(checking: b.slice(from: ICMPv6Field.ndOptions)))
        case ICMPv6Type.neighborAdvertisement:
            try need(ICMPv6Field.ndOptions)
            let flags = b.u8(ICMPv6Field.word)
            return .neighborAdvertisement(NeighborAdvertisement(
                router: flags & 0x80 != 0, solicited: flags & 0x40 != 0, override: flags & 0x20 != 0,
                target: IPv6Address(b, at: ICMPv6Field.target),
                options: try NDOptions(checking: b.slice(from: ICMPv6Field.ndOptions))))
        default:
            return .other(type: type, code: code, body: .borrowed(b.slice(from: 4)))
        }
    }

    public var type: UInt8 {
        switch self {
        case .destinationUnreachable: ICMPv6Type.destinationUnreachable
        case .packetTooBig: ICMPv6Type.packetTooBig
        case .timeExceeded: ICMPv6Type.timeExceeded
        case .parameterProblem: ICMPv6Type.parameterProblem
        case .echoRequest: ICMPv6Type.echoRequest
        case .echoReply: ICMPv6Type.echoReply
        case .routerSolicitation: ICMPv6Type.routerSolicitation
        case .routerAdvertisement: ICMPv6Type.routerAdvertisement
        case .neighborSolicitation: ICMPv6Type.neighborSolicitation
        case .neighborAdvertisement: ICMPv6Type.neighborAdvertisement
        case .other(let t, _, _): t
        }
    }

    public var code: UInt8 {
        switch self {
        case .destinationUnreachable(let c, _), .timeExceeded(let c, _), .parameterProblem(let c, _, _): c
        case .other(_, let c, _): c
        default: 0
        }
    }

    public var bufferLength: Int {
        switch self {
        case .destinationUnreachable(_, let inv), .packetTooBig(_, let inv),
             .timeExceeded(_, let inv), .parameterProblem(_, _, let inv):
            8 + min(inv.count, icmpv6ErrorMaxInvoking)
        case .echoRequest(_, _, let d), .echoReply(_, _, let d): 8 + d.count
        case .routerSolicitation(let o): ICMPv6Field.rsOptions + o.bufferLength
        case .routerAdvertisement(let ra): ICMPv6Field.raOptions + ra.options.bufferLength
        case .neighborSolicitation(_, let o): ICMPv6Field.ndOptions + o.bufferLength
        case .neighborAdvertisement(let na): ICMPv6Field.ndOptions + na.options.bufferLength
        case .other(_, _, let body): 4 + body.count
        }
    }

    /// Writes the message with its checksum; returns its length.
    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address)
        throws(WireError) -> Int
    {
        let n = bufferLength
        guard bytes.count >= n else { throw .bufferTooSmall }
        let b = bytes.slice(0..<n)
        b.put8(type, at: ICMPv6Field.type)
        b.put8(code, at: ICMPv6Field.code)
        b.put16(0, at: ICMPv6Field.checksum)
        func quote(_ invoking: RawBytes, word: UInt32) {
            b.put32(word, at: ICMPv6Field.word)
            invoking.withUnsafeBytes { b.copy($0.slice(0..<(n - 8)), to: 8) }
        }
        switch self {
        case .destinationUnreachable(_, let inv), .timeExceeded(_, let inv): quote(inv, word: 0)
        case .packetTooBig(let mtu, let inv): quote(inv, word: mtu)
        case .parameterProblem(_, let pointer, let inv): quote(inv, word: pointer)
        case .echoRequest(let id, let seq, let data), .echoReply(let id, let seq, let data):
            b.put16(id, at: 4)
            b.put16(seq, at: 6)
            data.withUnsafeBytes { b.copy($0, to: 8) }
        case .routerSolicitation(let options):
            b.put32(0, at: ICMPv6Field.word)
            try options.emit(into: b.slice(ICMPv6Field.rsOptions..<n))
        case .routerAdvertisement(let ra):
            b.put8(ra.curHopLimit, at: ICMPv6Field.curHopLimit)
            b.put8((ra.managed ? 0x80 : 0) | (ra.otherConfig ? 0x40 : 0) | ra.preference.rawValue << 3,
                   at: ICMPv6Field.raFlags)
            b.put16(ra.routerLifetime, at: ICMPv6Field.routerLifetime)
            b.put32(ra.reachableTime, at: ICMPv6Field.reachableTime)
            b.put32(ra.retransTimer, at: ICMPv6Field.retransTimer)
            try ra.options.emit(into: b.slice(ICMPv6Field.raOptions..<n))
        case .neighborSolicitation(let target, let options):
            b.put32(0, at: ICMPv6Field.word)
            target.write(to: b, at: ICMPv6Field.target)
            try options.emit(into: b.slice(ICMPv6Field.ndOptions..<n))
        case .neighborAdvertisement(let na):
            b.put32(UInt32((na.router ? 0x80 : 0) | (na.solicited ? 0x40 : 0) | (na.override ? 0x20 : 0)) << 24,
                    at: ICMPv6Field.word)
            na.target.write(to: b, at: ICMPv6Field.target)
            try na.options.emit(into: b.slice(ICMPv6Field.ndOptions..<n))
        case .other(_, _, let body):
            body.withUnsafeBytes { b.copy($0, to: 4) }
        }
        let sum = upperLayerChecksum(UnsafeRawBufferPointer(b), source: source, destination: destination,
                                     nextHeader: IPProtocol.icmpv6)
        b.put16(sum.value, at: ICMPv6Field.checksum)
        return n
    }
}
