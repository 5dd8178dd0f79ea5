// Neighbor Discovery options (RFC 4861 4.6, RFC 4191 2.3).
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |     Type      |    Length     |  Length in units of 8 octets, never 0
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Prefix Information (type 3, length 4):
// | Type | Length | Prefix Length |L|A|R|Reserved1|
// |                         Valid Lifetime                        |
// |                       Preferred Lifetime                      |
// |                           Reserved2                           |
// |                          Prefix (16)                          |
// MTU (type 5, length 1):  | Type | Length | Reserved (2) | MTU (4) |
// Route Information (type 24, length 1..3):
// | Type | Length | Prefix Length |Resvd|Prf|Resvd|
// |                        Route Lifetime                         |
// |                   Prefix (0, 8 or 16 octets)                  |

public enum NDOptionType {
    public static let sourceLinkLayerAddress: UInt8 = 1  // RFC 4861
    public static let targetLinkLayerAddress: UInt8 = 2  // RFC 4861
    public static let prefixInformation: UInt8 = 3       // RFC 4861
    public static let redirectedHeader: UInt8 = 4        // RFC 4861
    public static let mtu: UInt8 = 5                     // RFC 4861
    public static let routeInformation: UInt8 = 24       // RFC 4191
}

@usableFromInline enum NDOptionField {
    @usableFromInline static let prefixLength = 2
    @usableFromInline static let prefixFlags = 3
    @usableFromInline static let validLifetime = 4
    @usableFromInline static let preferredLifetime = 8
    @usableFromInline static let prefix = 16
    @usableFromInline static let mtu = 4
    @usableFromInline static let routeFlags = 3
    @usableFromInline static let routeLifetime = 4
    @usableFromInline static let routePrefix = 8
}

/// Default Router Preference / Route Preference (RFC 4191 2.1), two bits.
public enum RouterPreference: UInt8, Sendable, Equatable {
    case medium = 0b00
    case high = 0b01
    case reserved = 0b10
    case low = 0b11

    public var name: String {
        switch self {
        case .medium: "medium"
        case .high: "high"
        case .reserved: "reserved"
        case .low: "low"
        }
    }
}

public struct PrefixInformation: Hashable, Sendable {
    public var prefix: IPv6Prefix
    public var onLink: Bool          // L
    public var autonomous: Bool      // A
    public var validLifetime: UInt32
    public var preferredLifetime: UInt32

    public init(prefix: IPv6Prefix, onLink: Bool = true, autonomous: Bool = true,
                validLifetime: UInt32, preferredLifetime: UInt32) {
        self.prefix = prefix
        self.onLink = onLink
        self.autonomous = autonomous
        self.validLifetime = validLifetime
        self.preferredLifetime = preferredLifetime
    }
}

public struct RouteInformation: Hashable, Sendable {
    public var prefix: IPv6Prefix
    public var preference: RouterPreference
    public var lifetime: UInt32

    public init(prefix: IPv6Prefix, preference: RouterPreference = .medium, lifetime: UInt32) {
        self.prefix = prefix
        self.preference = preference
        self.lifetime = lifetime
    }

    /// Option length in 8-octet units on emit: always 3, the full prefix,
    /// as radvd and scapy send it (RFC 4191 2.3 allows 1 or 2 for short
    /// prefixes; every receiver must take 3). Parsing accepts all three.
    @inlinable var units: Int { 3 }
}

public enum NDOption: Equatable {
    case sourceLinkLayerAddress(LinkLayerAddress)
    case targetLinkLayerAddress(LinkLayerAddress)
    case prefixInformation(PrefixInformation)
    case mtu(UInt32)
    case routeInformation(RouteInformation)
    /// Any other option; `data` is what follows the type and length octets.
    case unknown(type: UInt8, data: RawBytes)

    /// Parses one option at the start of `bytes`; returns it and its length.
    @inlinable
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (NDOption, Int) {
        guard bytes.count >= 2 else { throw .optionOverrun }
        let type = bytes.u8(0)
        let units = Int(bytes.u8(1))
        guard units != 0 else { throw .zeroLengthNDOption }
        let length = units * 8
        guard length <= bytes.count else { throw .optionOverrun }
        let o = bytes.slice(0..<length)
        switch type {
        case NDOptionType.sourceLinkLayerAddress, NDOptionType.targetLinkLayerAddress:
            // Ethernet: 6 octets (RFC 2464 6); other links may use more.
            let raw = o.slice(2..<length)
            let lla = LinkLayerAddress(length == 8 ? raw.slice(0..<6) : raw) ?? LinkLayerAddress(raw.slice(0..<16))!
            return (type == NDOptionType.sourceLinkLayerAddress
                    ? .sourceLinkLayerAddress(lla) : .targetLinkLayerAddress(lla), length)
        case NDOptionType.prefixInformation:
            guard units == 4 else { throw .badOptionLength }
            let plen = Int(o.u8(NDOptionField.prefixLength))
            guard let prefix = IPv6Prefix(address: IPv6Address(o, at: NDOptionField.prefix), length: plen)
            else { throw .badPrefixLength }
            let flags = o.u8(NDOptionField.prefixFlags)
            return (.prefixInformation(PrefixInformation(
                prefix: prefix, onLink: flags & 0x80 != 0, autonomous: flags & 0x40 != 0,
                validLifetime: o.u32(NDOptionField.validLifetime),
                preferredLifetime: o.u32(NDOptionField.preferredLifetime))), length)
        case NDOptionType.mtu:
            guard units == 1 else { throw .badOptionLength }
            return (.mtu(o.u32(NDOptionField.mtu)), length)
        case NDOptionType.routeInformation:
            guard units <= 3 else { throw .badOptionLength }
            let plen = Int(o.u8(NDOptionField.prefixLength))
            guard plen <= 128 else { throw .badPrefixLength }
            // RFC 4191 2.3: the length must cover the prefix length.
            guard (plen <= 64 || units >= 3) && (plen == 0 || units >= 2) else { throw .badOptionLength }
            var high: UInt64 = 0, low: UInt64 = 0
            if units >= 2 { high = o.u64(NDOptionField.routePrefix) }
            if units >= 3 { low = o.u64(NDOptionField.routePrefix + 8) }
            let prf = RouterPreference(rawValue: (o.u8(NDOptionField.routeFlags) >> 3) & 0x3)!
            let prefix = IPv6Prefix(uncheckedAddress: IPv6Address(high: high, low: low), length: UInt8(plen))
            return (.routeInformation(RouteInformation(
                prefix: prefix, preference: prf, lifetime: o.u32(NDOptionField.routeLifetime))), length)
        default:
            return (.unknown(type: type, data: .borrowed(o.slice(2..<length))), length)
        }
    }

    @inlinable
    public var bufferLength: Int {
        switch self {
        case .sourceLinkLayerAddress(let a), .targetLinkLayerAddress(let a): (2 + a.count + 7) / 8 * 8
        case .prefixInformation: 32
        case .mtu: 8
        case .routeInformation(let r): r.units * 8
        case .unknown(_, let data): (2 + data.count + 7) / 8 * 8
        }
    }

    /// Writes the option (zero-padded to its 8-octet length); returns the
    /// length. Inlinable: an RA's options, each made where it is written,
    /// are then written with no switch over their kind.
    @inlinable @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let n = bufferLength
        guard n <= 255 * 8 else { throw .badOptionLength }
        guard bytes.count >= n else { throw .bufferTooSmall }
        bytes.zero(0..<n)
        bytes.put8(UInt8(n / 8), at: 1)
        switch self {
        case .sourceLinkLayerAddress(let a):
            bytes.put8(NDOptionType.sourceLinkLayerAddress, at: 0)
            a.write(to: bytes, at: 2)
        case .targetLinkLayerAddress(let a):
            bytes.put8(NDOptionType.targetLinkLayerAddress, at: 0)
            a.write(to: bytes, at: 2)
        case .prefixInformation(let p):
            bytes.put8(NDOptionType.prefixInformation, at: 0)
            bytes.put8(p.prefix.length, at: NDOptionField.prefixLength)
            bytes.put8((p.onLink ? 0x80 : 0) | (p.autonomous ? 0x40 : 0), at: NDOptionField.prefixFlags)
            bytes.put32(p.validLifetime, at: NDOptionField.validLifetime)
            bytes.put32(p.preferredLifetime, at: NDOptionField.preferredLifetime)
            p.prefix.address.write(to: bytes, at: NDOptionField.prefix)
        case .mtu(let mtu):
            bytes.put8(NDOptionType.mtu, at: 0)
            bytes.put32(mtu, at: NDOptionField.mtu)
        case .routeInformation(let r):
            bytes.put8(NDOptionType.routeInformation, at: 0)
            bytes.put8(r.prefix.length, at: NDOptionField.prefixLength)
            bytes.put8(r.preference.rawValue << 3, at: NDOptionField.routeFlags)
            bytes.put32(r.lifetime, at: NDOptionField.routeLifetime)
            let a = r.prefix.address.masked(to: Int(r.prefix.length))
            if r.units >= 2 { bytes.put64(a.high, at: NDOptionField.routePrefix) }
            if r.units >= 3 { bytes.put64(a.low, at: NDOptionField.routePrefix + 8) }
        case .unknown(let type, let data):
            bytes.put8(type, at: 0)
            data.withUnsafeBytes { bytes.copy($0, to: 2) }
        }
        return n
    }
}

/// Appends ND options one after another into a buffer: a message's options
/// written where they go, with no list of them built.
public struct NDOptionWriter {
    @usableFromInline let bytes: UnsafeMutableRawBufferPointer
    /// Octets written so far.
    public var count: Int { written }
    @usableFromInline var written = 0

    public init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    @inlinable
    public mutating func append(_ option: NDOption) throws(WireError) {
        written += try option.emit(into: bytes.slice(written..<bytes.count))
    }
}

/// The options of an ND message: a checked view when parsed (iterating it
/// does not allocate), or a list when built.
public enum NDOptions: Equatable, Sequence {
    case parsed(UnsafeRawBufferPointer)
    case built([NDOption])

    public static var none: NDOptions { .built([]) }

    /// Checks every option of `bytes`; then iteration cannot fail.
    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        var i = 0
        while i < bytes.count {
            i += try NDOption.parse(bytes.slice(from: i)).1
        }
        self = .parsed(bytes)
    }

    public struct Iterator: IteratorProtocol {
        @usableFromInline let options: NDOptions
        @usableFromInline var index = 0

        @inlinable init(_ options: NDOptions) { self.options = options }

        @inlinable
        public mutating func next() -> NDOption? {
            switch options {
            case .built(let list):
                guard index < list.count else { return nil }
                index += 1
                return list[index - 1]
            case .parsed(let bytes):
                guard index < bytes.count,
                      let (option, length) = try? NDOption.parse(bytes.slice(from: index)) else { return nil }
                index += length
                return option
            }
        }
    }

    @inlinable public func makeIterator() -> Iterator { Iterator(self) }

    public var bufferLength: Int { reduce(0) { $0 + $1.bufferLength } }

    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var o = 0
        for option in self {
            o += try option.emit(into: bytes.slice(o..<bytes.count))
        }
        return o
    }

    public static func == (a: NDOptions, b: NDOptions) -> Bool { a.elementsEqual(b) }

    /// First source link-layer address option, if any.
    public var sourceLinkLayerAddress: LinkLayerAddress? {
        for case .sourceLinkLayerAddress(let a) in self { return a }
        return nil
    }

    public var targetLinkLayerAddress: LinkLayerAddress? {
        for case .targetLinkLayerAddress(let a) in self { return a }
        return nil
    }
}
