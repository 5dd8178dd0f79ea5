// Addresses as small values: a MAC in one UInt64, an IPv6 address in two.

/// A 48-bit IEEE 802 MAC address, printed lower-case with colons.
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address in the low 48 bits, first octet most significant.
    public let value: UInt64

    @inlinable
    public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        value = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
            | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// Reads six octets at `offset` (the caller has checked the length).
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        value = UInt64(bytes.u16(offset)) << 32 | UInt64(bytes.u32(offset + 2))
    }

    @inlinable
    public func write(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.put16(UInt16(truncatingIfNeeded: value >> 32), at: offset)
        bytes.put32(UInt32(truncatingIfNeeded: value), at: offset + 2)
    }

    public static let broadcast = MACAddress(value: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(value: 0)

    /// Group bit (I/G) of the first octet.
    @inlinable public var isMulticast: Bool { value & 0x0100_0000_0000 != 0 }
    /// Locally administered bit (U/L): set on every DLIF logical MAC.
    @inlinable public var isLocallyAdministered: Bool { value & 0x0200_0000_0000 != 0 }

    /// The Ethernet multicast MAC of an IPv6 multicast address (RFC 2464 7).
    @inlinable
    public init(multicast address: IPv6Address) {
        value = 0x3333_0000_0000 | (address.low & 0xFFFF_FFFF)
    }

    public var octets: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64($0))) } }

    public var description: String { String(decoding: text, as: UTF8.self) }

    /// "02:aa:00:00:00:01" as ASCII bytes (the NAI of signalling, without a String).
    public var text: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.textLength)
        out.withUnsafeMutableBytes { writeText(to: $0, at: 0) }
        return out
    }

    public static let textLength = 17

    /// Writes `text` (17 octets) at `offset`.
    /// (Every PBU and PBA names its MN so: one bounds check, no per-octet
    /// subscripts.)
    public func writeText(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && offset + Self.textLength <= bytes.count, "MAC text out of bounds")
        let p = bytes.baseAddress! + offset
        for i in 0..<6 {
            let b = UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64(i)))
            p.storeBytes(of: AddressText.hexCharacter(b >> 4), toByteOffset: 3 * i, as: UInt8.self)
            p.storeBytes(of: AddressText.hexCharacter(b & 0xF), toByteOffset: 3 * i + 1, as: UInt8.self)
            if i < 5 { p.storeBytes(of: UInt8(ascii: ":"), toByteOffset: 3 * i + 2, as: UInt8.self) }
        }
    }

    /// Parses "02:aa:00:00:00:01" (also with '-' separators).
    @inlinable
    public init?(_ text: some StringProtocol) {
        guard let v = AddressText.parse(text, AddressText.mac) else { return nil }
        value = v
    }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.value < b.value }
}

/// An IPv6 address as two big-endian halves; printed in RFC 5952 form.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads 16 octets at `offset` (the caller has checked the length).
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        high = bytes.u64(offset)
        low = bytes.u64(offset + 8)
    }

    @inlinable
    public func write(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.put64(high, at: offset)
        bytes.put64(low, at: offset + 8)
    }

    public static let unspecified = IPv6Address(high: 0, low: 0)
    /// ff02::1, all nodes.
    public static let allNodes = IPv6Address(high: 0xFF02_0000_0000_0000, low: 1)
    /// ff02::2, all routers.
    public static let allRouters = IPv6Address(high: 0xFF02_0000_0000_0000, low: 2)

    @inlinable public var isMulticast: Bool { high >> 56 == 0xFF }
    @inlinable public var isLinkLocal: Bool { high >> 54 == 0x3FA }  // fe80::/10
    @inlinable public var isUnspecified: Bool { high == 0 && low == 0 }

    /// ff02::1:ffXX:XXXX for this address (RFC 4291 2.7.1).
    @inlinable public var solicitedNodeMulticast: IPv6Address {
        IPv6Address(high: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | (low & 0xFF_FFFF))
    }

    /// The eight 16-bit groups, first first.
    public var groups: [UInt16] {
        (0..<8).map { i in
            let half = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> (48 - 16 * UInt64(i % 4)))
        }
    }

    public var octets: [UInt8] {
        (0..<16).map { i in
            let half = i < 8 ? high : low
            return UInt8(truncatingIfNeeded: half >> (56 - 8 * UInt64(i % 8)))
        }
    }

    /// RFC 5952: lower case, no leading zeros, the longest run (first on a
    /// tie) of two or more zero groups as "::", IPv4-mapped in dotted form.
    public var description: String {
        let g = groups
        if high == 0 && low >> 32 == 0xFFFF {
            let v4 = UInt32(truncatingIfNeeded: low)
            return "::ffff:\(v4 >> 24).\(v4 >> 16 & 0xFF).\(v4 >> 8 & 0xFF).\(v4 & 0xFF)"
        }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            range.map { String(g[$0], radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLen)..<8)
    }

    /// Parses any RFC 4291 text form, including "::" and a dotted IPv4 tail.
    @inlinable
    public init?(_ text: some StringProtocol) {
        guard let a = AddressText.parse(text, AddressText.ipv6) else { return nil }
        self = a
    }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool {
        (a.high, a.low) < (b.high, b.low)
    }

    /// The address with every bit after the first `length` cleared.
    @inlinable
    public func masked(to length: Int) -> IPv6Address {
        if length <= 0 { return .unspecified }
        if length >= 128 { return self }
        if length <= 64 {
            let m: UInt64 = length == 64 ? ~0 : ~(~0 >> UInt64(length))
            return IPv6Address(high: high & m, low: 0)
        }
        return IPv6Address(high: high, low: low & ~(~0 >> UInt64(length - 64)))
    }
}

/// An IPv6 prefix: an address and a length of 0...128 (the only check made
/// at construction: host bits are kept as sent, since a wire option may
/// carry them).
public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv6Address
    public let length: UInt8

    @inlinable
    public init?(address: IPv6Address, length: Int) {
        guard (0...128).contains(length) else { return nil }
        self.address = address
        self.length = UInt8(length)
    }

    @inlinable
    public init(uncheckedAddress address: IPv6Address, length: UInt8) {
        self.address = address
        self.length = length
    }

    /// "2001:db8:1:1::/64"
    @inlinable
    public init?(_ text: some StringProtocol) {
        guard let p = AddressText.parse(text, AddressText.prefix) else { return nil }
        self = p
    }

    @inlinable
    public func contains(_ a: IPv6Address) -> Bool {
        a.masked(to: Int(length)) == address.masked(to: Int(length))
    }

    public var description: String { "\(address)/\(length)" }
}

/// A link-layer address of up to 16 octets, stored inline (no allocation):
/// the body of an ND link-layer option or of a DLIF Link-layer Address option.
public struct LinkLayerAddress: Hashable, Sendable, CustomStringConvertible {
    public static let maxLength = 16
    @usableFromInline var high: UInt64
    @usableFromInline var low: UInt64
    public let count: Int

    public init(_ mac: MACAddress) {
        high = mac.value << 16
        low = 0
        count = 6
    }

    /// Nil when longer than 16 octets.
    @inlinable
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= Self.maxLength else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<16 {
            let b = UInt64(i < bytes.count ? bytes[i] : 0)
            if i < 8 { h = h << 8 | b } else { l = l << 8 | b }
        }
        high = h; low = l; count = bytes.count
    }

    public subscript(i: Int) -> UInt8 {
        precondition(i >= 0 && i < count)
        return i < 8 ? UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
                     : UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i - 8)))
    }

    @inlinable
    /// (In every RA and PBA: one bounds check, the halves copied whole.)
    public func write(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && offset + count <= bytes.count, "link-layer address out of bounds")
        guard count > 0, let p = bytes.baseAddress.map({ $0 + offset }) else { return }
        withUnsafeBytes(of: high.bigEndian) { p.copyMemory(from: $0.baseAddress!, byteCount: Swift.min(count, 8)) }
        if count > 8 { withUnsafeBytes(of: low.bigEndian) { (p + 8).copyMemory(from: $0.baseAddress!, byteCount: count - 8) } }
    }

    /// The MAC, when this is a six-octet address.
    public var mac: MACAddress? {
        count == 6 ? MACAddress(value: high >> 16) : nil
    }

    public var octets: [UInt8] { (0..<count).map { self[$0] } }

    public var description: String { octets.map { hexString([$0]) }.joined(separator: ":") }
}

// Dictionary and Set keys: the control plane keeps millions of MACs and
// prefixes in hash tables, and the standard Hasher (SipHash, seeded and
// finalised per key) was a tenth of a handover's time. `_rawHashValue` is
// the hook the standard library's own integer types use to skip it. The
// table's seed (random per process) goes into a multiply-fold mix, so the
// MNs, which choose their MACs, still cannot choose colliding buckets
// without knowing it. `hash(into:)` (synthesised) stays for other uses.

/// Two words and a seed folded into a hash: two 64x64->128 multiplies,
/// each folded by xor (wyhash's "mum"), the seed in both operands so that
/// no input makes a product zero regardless of it.
@inlinable
public func foldedHash(_ a: UInt64, _ b: UInt64, seed: Int) -> Int {
    let s = UInt64(bitPattern: Int64(seed))
    let m = (a ^ s ^ 0xA076_1D64_78BD_642F).multipliedFullWidth(by: b ^ s ^ 0xE703_7ED1_A0B4_28DB)
    let n = (m.high ^ m.low ^ 0x8EBC_6AF0_9C88_C6E3).multipliedFullWidth(by: s ^ 0x5899_65CC_7537_4CC3)
    return Int(truncatingIfNeeded: n.high ^ n.low)
}

extension MACAddress {
    @inlinable
    public func _rawHashValue(seed: Int) -> Int { foldedHash(value, 0x6, seed: seed) }
}

extension IPv6Address {
    @inlinable
    public func _rawHashValue(seed: Int) -> Int { foldedHash(high, low, seed: seed) }
}

extension IPv6Prefix {
    @inlinable
    public func _rawHashValue(seed: Int) -> Int { foldedHash(address.high, address.low ^ UInt64(length), seed: seed) }
}
