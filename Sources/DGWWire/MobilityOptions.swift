// Mobility options (RFC 6275 6.2) used by PMIPv6 (RFC 5213) and DMM
// (RFC 8885). Types and alignments are the table of DESIGN.md.
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+- - - - - - - - -
// |  Option Type  | Option Length |   Option Data...   (length excludes type and length)
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+- - - - - - - - -
//
// Prefix options 22 / 65 / 66:  | Type | Len=18 | Reserved | Prefix Length | Prefix (16) |
// Previous MAAR 67:             | Type | Len=34 | Reserved | Prefix Length | MAAR (16) | HNP (16) |
// Serving MAAR 68, LLA 26, DLIF LLA 69: | Type | Len=16 | Address (16) |
// DLIF Link-layer Address 70, MN LL-ID 25: | Type | Len=2+n | Reserved (2) | address (n) |
// MN Identifier 8 (RFC 4283):   | Type | Len | Subtype | Identifier ... |
// Timestamp 27:                 | Type | Len=8 | Timestamp (64, NTP format) |
// Handoff Indicator 23, ATT 24: | Type | Len=2 | Reserved | value |

public enum MobilityOptionType {
    public static let pad1: UInt8 = 0                        // RFC 6275
    public static let padN: UInt8 = 1                        // RFC 6275
    public static let mobileNodeIdentifier: UInt8 = 8        // RFC 4283
    public static let authentication: UInt8 = 9              // RFC 4285 AUTH-OPTION-TYPE
    public static let messageIdentifier: UInt8 = 10          // RFC 4285 MESG-ID-OPTION-TYPE
    public static let homeNetworkPrefix: UInt8 = 22          // RFC 5213
    public static let handoffIndicator: UInt8 = 23           // RFC 5213
    public static let accessTechnologyType: UInt8 = 24       // RFC 5213
    public static let mobileNodeLinkLayerIdentifier: UInt8 = 25 // RFC 5213
    public static let linkLocalAddress: UInt8 = 26           // RFC 5213
    public static let timestamp: UInt8 = 27                  // RFC 5213
    public static let anchoredPrefix: UInt8 = 65             // RFC 8885
    public static let localPrefix: UInt8 = 66                // RFC 8885
    public static let previousMAAR: UInt8 = 67               // RFC 8885
    public static let servingMAAR: UInt8 = 68                // RFC 8885
    public static let dlifLinkLocalAddress: UInt8 = 69       // RFC 8885
    public static let dlifLinkLayerAddress: UInt8 = 70       // RFC 8885
}

/// Mobile Node Identifier subtypes (RFC 4283 3).
public enum MobileNodeIdentifierSubtype {
    public static let nai: UInt8 = 1
}

/// Option alignment "x n + y" (RFC 6275 6.2): the option's type octet sits
/// at an offset from the start of the Mobility Header congruent to y mod x.
public struct MobilityOptionAlignment: Equatable, Sendable {
    public let x: Int
    public let y: Int
    public static let none = MobilityOptionAlignment(x: 1, y: 0)
    public static func align(_ x: Int, _ y: Int) -> MobilityOptionAlignment { .init(x: x, y: y) }
}

public enum MobilityOption: Equatable {
    case mobileNodeIdentifier(subtype: UInt8, identifier: RawBytes)
    /// RFC 4285 section 5: subtype, Mobility SPI, authentication data.
    case authentication(subtype: UInt8, spi: UInt32, data: RawBytes)
    /// RFC 4285 section 6: a 64-bit value that only grows, against replay.
    case messageIdentifier(UInt64)
    case homeNetworkPrefix(IPv6Prefix)
    case handoffIndicator(UInt8)
    case accessTechnologyType(UInt8)
    case mobileNodeLinkLayerIdentifier(RawBytes)
    case linkLocalAddress(IPv6Address)
    /// 64-bit NTP format: seconds since 1900 in the high 32 bits.
    case timestamp(UInt64)
    case anchoredPrefix(IPv6Prefix)
    case localPrefix(IPv6Prefix)
    case previousMAAR(maar: IPv6Address, prefix: IPv6Prefix)
    case servingMAAR(IPv6Address)
    case dlifLinkLocalAddress(IPv6Address)
    case dlifLinkLayerAddress(LinkLayerAddress)
    /// Any other option (Pad1/PadN are never returned): kept, never an error.
    case unknown(type: UInt8, data: RawBytes)

    public var type: UInt8 {
        switch self {
        case .mobileNodeIdentifier: MobilityOptionType.mobileNodeIdentifier
        case .authentication: MobilityOptionType.authentication
        case .messageIdentifier: MobilityOptionType.messageIdentifier
        case .homeNetworkPrefix: MobilityOptionType.homeNetworkPrefix
        case .handoffIndicator: MobilityOptionType.handoffIndicator
        case .accessTechnologyType: MobilityOptionType.accessTechnologyType
        case .mobileNodeLinkLayerIdentifier: MobilityOptionType.mobileNodeLinkLayerIdentifier
        case .linkLocalAddress: MobilityOptionType.linkLocalAddress
        case .timestamp: MobilityOptionType.timestamp
        case .anchoredPrefix: MobilityOptionType.anchoredPrefix
        case .localPrefix: MobilityOptionType.localPrefix
        case .previousMAAR: MobilityOptionType.previousMAAR
        case .servingMAAR: MobilityOptionType.servingMAAR
        case .dlifLinkLocalAddress: MobilityOptionType.dlifLinkLocalAddress
        case .dlifLinkLayerAddress: MobilityOptionType.dlifLinkLayerAddress
        case .unknown(let t, _): t
        }
    }

    /// Alignment on emit. Where the RFC text gives one it is used (22, 25,
    /// 26, 27, 65, 66, 69); for 67, 68 and 70 the RFC 8885 figures put the
    /// addresses on 8-octet boundaries and we align to match; RFC 4283's
    /// identifier and RFC 5213's one-octet options need none.
    public var alignment: MobilityOptionAlignment {
        switch self {
        case .homeNetworkPrefix, .anchoredPrefix, .localPrefix, .previousMAAR: .align(8, 4)
        case .linkLocalAddress, .dlifLinkLocalAddress, .servingMAAR: .align(8, 6)
        case .mobileNodeLinkLayerIdentifier, .timestamp, .dlifLinkLayerAddress, .messageIdentifier: .align(8, 2)
        // RFC 4285 puts the SPI on 4; 8n+1 also lets a 32-octet authenticator
        // end the header with no padding after it (it must be the last option).
        case .authentication: .align(8, 1)
        case .mobileNodeIdentifier, .handoffIndicator, .accessTechnologyType, .unknown: .none
        }
    }

    /// Length of the option data (after type and length).
    public var dataLength: Int {
        switch self {
        case .mobileNodeIdentifier(_, let id): 1 + id.count
        case .authentication(_, _, let data): 5 + data.count
        case .messageIdentifier: 8
        case .homeNetworkPrefix, .anchoredPrefix, .localPrefix: 18
        case .handoffIndicator, .accessTechnologyType: 2
        case .mobileNodeLinkLayerIdentifier(let id): 2 + id.count
        case .linkLocalAddress, .servingMAAR, .dlifLinkLocalAddress: 16
        case .timestamp: 8
        case .previousMAAR: 34
        case .dlifLinkLayerAddress(let a): 2 + a.count
        case .unknown(_, let data): data.count
        }
    }

    /// Checks the option whose type octet is at `bytes[0]` (not a pad) as
    /// `parse` does, without making it; returns its total length. Every
    /// option of every message received is checked so, once
    /// (`MobilityOptions(checking:)`), before any is read.
    @inlinable
    static func check(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Int {
        guard bytes.count >= 2 else { throw .optionOverrun }
        let type = bytes.u8(0)
        let length = Int(bytes.u8(1))
        guard 2 + length <= bytes.count else { throw .optionOverrun }
        func exactly(_ n: Int) throws(WireError) { guard length == n else { throw .badOptionLength } }
        func atLeast(_ n: Int) throws(WireError) { guard length >= n else { throw .badOptionLength } }
        // Every prefix option has its prefix length in its second data octet.
        func prefixLength() throws(WireError) { guard bytes.u8(3) <= 128 else { throw .badPrefixLength } }
        switch type {
        case MobilityOptionType.mobileNodeIdentifier: try atLeast(2)
        case MobilityOptionType.authentication: try atLeast(5)
        case MobilityOptionType.messageIdentifier, MobilityOptionType.timestamp: try exactly(8)
        case MobilityOptionType.homeNetworkPrefix, MobilityOptionType.anchoredPrefix, MobilityOptionType.localPrefix:
            try exactly(18); try prefixLength()
        case MobilityOptionType.handoffIndicator, MobilityOptionType.accessTechnologyType: try exactly(2)
        case MobilityOptionType.mobileNodeLinkLayerIdentifier: try atLeast(3)
        case MobilityOptionType.linkLocalAddress, MobilityOptionType.servingMAAR, MobilityOptionType.dlifLinkLocalAddress:
            try exactly(16)
        case MobilityOptionType.previousMAAR: try exactly(34); try prefixLength()
        case MobilityOptionType.dlifLinkLayerAddress:
            try atLeast(3)
            guard length - 2 <= LinkLayerAddress.maxLength else { throw .badOptionLength }
        default: break
        }
        return 2 + length
    }

    /// Parses the option whose type octet is at `bytes[0]` (not a pad);
    /// returns it and its total length.
    @inlinable
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (MobilityOption, Int) {
        let n = try check(bytes)
        let d = bytes.slice(2..<n)
        // Checked above: a length of at most 128.
        func prefix(at offset: Int) -> IPv6Prefix { IPv6Prefix(uncheckedAddress: IPv6Address(d, at: offset), length: d.u8(1)) }
        let option: MobilityOption
        switch bytes.u8(0) {
        case MobilityOptionType.mobileNodeIdentifier:
            option = .mobileNodeIdentifier(subtype: d.u8(0), identifier: .borrowed(d.slice(from: 1)))
        case MobilityOptionType.authentication:
            option = .authentication(subtype: d.u8(0), spi: d.u32(1), data: .borrowed(d.slice(from: 5)))
        case MobilityOptionType.messageIdentifier: option = .messageIdentifier(d.u64(0))
        case MobilityOptionType.homeNetworkPrefix: option = .homeNetworkPrefix(prefix(at: 2))
        case MobilityOptionType.anchoredPrefix: option = .anchoredPrefix(prefix(at: 2))
        case MobilityOptionType.localPrefix: option = .localPrefix(prefix(at: 2))
        case MobilityOptionType.handoffIndicator: option = .handoffIndicator(d.u8(1))
        case MobilityOptionType.accessTechnologyType: option = .accessTechnologyType(d.u8(1))
        case MobilityOptionType.mobileNodeLinkLayerIdentifier: option = .mobileNodeLinkLayerIdentifier(.borrowed(d.slice(from: 2)))
        case MobilityOptionType.linkLocalAddress: option = .linkLocalAddress(IPv6Address(d, at: 0))
        case MobilityOptionType.timestamp: option = .timestamp(d.u64(0))
        case MobilityOptionType.previousMAAR: option = .previousMAAR(maar: IPv6Address(d, at: 2), prefix: prefix(at: 18))
        case MobilityOptionType.servingMAAR: option = .servingMAAR(IPv6Address(d, at: 0))
        case MobilityOptionType.dlifLinkLocalAddress: option = .dlifLinkLocalAddress(IPv6Address(d, at: 0))
        case MobilityOptionType.dlifLinkLayerAddress: option = .dlifLinkLayerAddress(LinkLayerAddress(d.slice(from: 2))!)
        case let type: option = .unknown(type: type, data: .borrowed(d))
        }
        return (option, n)
    }

    /// Writes type, length and data at `bytes[0...]`. Inlined into the
    /// loop over a message's options: called, it would get a copy of the
    /// option (payload retained and released) for each.
    @inline(__always)
    func emitBody(into bytes: UnsafeMutableRawBufferPointer, dataLength n: Int) throws(WireError) {
        guard n <= 255 else { throw .badOptionLength }
        bytes.put8(type, at: 0)
        bytes.put8(UInt8(n), at: 1)
        let d = bytes.slice(2..<(2 + n))
        func prefix(_ p: IPv6Prefix, at offset: Int) {
            d.put8(0, at: 0)
            d.put8(p.length, at: 1)
            p.address.write(to: d, at: offset)
        }
        switch self {
        case .mobileNodeIdentifier(let subtype, let id):
            d.put8(subtype, at: 0)
            id.withUnsafeBytes { d.copy($0, to: 1) }
        case .authentication(let subtype, let spi, let data):
            d.put8(subtype, at: 0)
            d.put32(spi, at: 1)
            data.withUnsafeBytes { d.copy($0, to: 5) }
        case .messageIdentifier(let v):
            d.put64(v, at: 0)
        case .homeNetworkPrefix(let p), .anchoredPrefix(let p), .localPrefix(let p):
            prefix(p, at: 2)
        case .handoffIndicator(let v), .accessTechnologyType(let v):
            d.put8(0, at: 0)
            d.put8(v, at: 1)
        case .mobileNodeLinkLayerIdentifier(let id):
            d.put16(0, at: 0)
            id.withUnsafeBytes { d.copy($0, to: 2) }
        case .linkLocalAddress(let a), .servingMAAR(let a), .dlifLinkLocalAddress(let a):
            a.write(to: d, at: 0)
        case .timestamp(let t):
            d.put64(t, at: 0)
        case .previousMAAR(let maar, let p):
            prefix(p, at: 18)
            maar.write(to: d, at: 2)
        case .dlifLinkLayerAddress(let a):
            d.put16(0, at: 0)
            a.write(to: d, at: 2)
        case .unknown(_, let data):
            data.withUnsafeBytes { d.copy($0, to: 0) }
        }
    }
}

/// The options of a mobility message: a checked view when parsed
/// (iteration does not allocate) or a list when built.
public enum MobilityOptions: Equatable, Sequence {
    case parsed(UnsafeRawBufferPointer)
    case built([MobilityOption])

    public static var none: MobilityOptions { .built([]) }

    /// The raw bytes of parsed options (empty for built ones).
    public var bytes: UnsafeRawBufferPointer {
        if case .parsed(let b) = self { return b }
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// Checks every option (pads included); then iteration cannot fail.
    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        var i = 0
        while i < bytes.count {
            let t = bytes.u8(i)
            if t == MobilityOptionType.pad1 { i += 1; continue }
            if t == MobilityOptionType.padN {
                guard i + 2 <= bytes.count, i + 2 + Int(bytes.u8(i + 1)) <= bytes.count
                else { throw .optionOverrun }
                i += 2 + Int(bytes.u8(i + 1))
                continue
            }
            i += try MobilityOption.check(bytes.slice(from: i))
        }
        self = .parsed(bytes)
    }

    public struct Iterator: IteratorProtocol {
        @usableFromInline let options: MobilityOptions
        @usableFromInline var index = 0

        @inlinable init(_ options: MobilityOptions) { self.options = options }

        @inlinable
        public mutating func next() -> MobilityOption? {
            switch options {
            case .built(let list):
                guard index < list.count else { return nil }
                index += 1
                return list[index - 1]
            case .parsed(let bytes):
                while index < bytes.count {
                    let t = bytes.u8(index)
                    if t == MobilityOptionType.pad1 { index += 1; continue }
                    guard index + 2 <= bytes.count else { return nil }
                    if t == MobilityOptionType.padN { index += 2 + Int(bytes.u8(index + 1)); continue }
                    guard let (option, length) = try? MobilityOption.parse(bytes.slice(from: index))
                    else { return nil }
                    index += length
                    return option
                }
                return nil
            }
        }
    }

    @inlinable public func makeIterator() -> Iterator { Iterator(self) }

    public static func == (a: MobilityOptions, b: MobilityOptions) -> Bool { a.elementsEqual(b) }

    /// Where each option starts when laid out from `start` (an offset from
    /// the start of the Mobility Header), and the end padded to 8. `visit`
    /// gets each option with where its padding starts, where it starts,
    /// and its data length (worked out once here). The option is lent
    /// through a pointer: a borrowed enum passed on to a method is copied
    /// (its payload retained and released), `pointee` is not.
    @inline(__always)
    func layout(from start: Int,
                _ visit: (UnsafePointer<MobilityOption>, _ padFrom: Int, _ at: Int, _ dataLength: Int) throws(WireError) -> Void)
        throws(WireError) -> Int
    {
        var o = start
        // Where an option of alignment xn+y goes from `o` (x a power of two,
        // as every option's is: a mask, not two divisions).
        func place(_ a: MobilityOptionAlignment) -> Int {
            a.x & (a.x - 1) == 0 ? o + ((a.y - o) & (a.x - 1)) : o + ((a.y - o) % a.x + a.x) % a.x
        }
        if case .built(let list) = self {
            // Read where they are in the list, not copied out (their payloads not retained).
            try list.withUnsafeBufferPointer { (options) throws(WireError) in
                guard let first = options.baseAddress else { return }
                for i in options.indices {
                    let option = first + i
                    let at = place(option.pointee.alignment), n = option.pointee.dataLength
                    try visit(option, o, at, n)
                    o = at + 2 + n
                }
            }
            return (o + 7) / 8 * 8
        }
        for option in self {
            let at = place(option.alignment), n = option.dataLength
            try withUnsafePointer(to: option) { (p) throws(WireError) in try visit(p, o, at, n) }
            o = at + 2 + n
        }
        return (o + 7) / 8 * 8
    }

    /// Total length of a message whose options start at `start`, padded.
    public func paddedEnd(from start: Int) -> Int {
        (try? layout(from: start) { _, _, _, _ in }) ?? start
    }

    /// Writes the options into `message` (the whole Mobility Header buffer)
    /// from offset `start`, with Pad1/PadN for alignment and at the end.
    /// Returns the padded end.
    @discardableResult
    public func emit(into message: UnsafeMutableRawBufferPointer, from start: Int) throws(WireError) -> Int {
        var last = start
        let end = try layout(from: start) { (option, padFrom, at, n) throws(WireError) in
            guard at + 2 + n <= message.count else { throw .bufferTooSmall }
            writePadding(message, from: padFrom, to: at)
            try option.pointee.emitBody(into: message.slice(at..<(at + 2 + n)), dataLength: n)
            last = at + 2 + n
        }
        guard end <= message.count else { throw .bufferTooSmall }
        writePadding(message, from: last, to: end)
        return end
    }

    /// Calls `body` with the data of each option of `type` (after its type
    /// and length octets) until it returns a value, reading parsed options
    /// in place (no option made of those before it): a look-up on every
    /// message. Options from `init(checking:)` only, whose lengths were checked.
    @inlinable
    public func first<T>(ofType type: UInt8, _ body: (UnsafeRawBufferPointer) -> T?) -> T? {
        guard case .parsed(let bytes) = self else { return nil }
        var i = 0
        while i + 2 <= bytes.count {
            let t = bytes.u8(i)
            if t == MobilityOptionType.pad1 { i += 1; continue }
            let end = i + 2 + Int(bytes.u8(i + 1))
            guard end <= bytes.count else { return nil }
            if t == type, let found = body(UnsafeRawBufferPointer(rebasing: bytes[(i + 2)..<end])) { return found }
            i = end
        }
        return nil
    }

    // Look-ups the control plane and `dgw decode` use.
    public var mobileNodeIdentifier: (subtype: UInt8, identifier: RawBytes)? {
        for case .mobileNodeIdentifier(let s, let id) in self { return (s, id) }
        return nil
    }

    public var timestamp: UInt64? {
        for case .timestamp(let t) in self { return t }
        return nil
    }

    public var messageIdentifier: UInt64? {
        for case .messageIdentifier(let v) in self { return v }
        return nil
    }
}
