// The Internet checksum (RFC 1071) with the IPv6 pseudo-header (RFC 8200
// 8.1), used by ICMPv6, the Mobility Header, UDP and TCP.

public struct InternetChecksum: Sendable {
    // Sum of big-endian 32-bit words; 2^16 = 1 mod 0xFFFF, so folding this
    // gives the same result as summing 16-bit words.
    @usableFromInline var sum: UInt64 = 0

    @inlinable public init() {}

    /// Starts with the IPv6 pseudo-header for an upper-layer message.
    @inlinable
    public init(source: IPv6Address, destination: IPv6Address, length: Int, nextHeader: UInt8) {
        add(source.high); add(source.low)
        add(destination.high); add(destination.low)
        sum &+= UInt64(UInt32(truncatingIfNeeded: length))
        sum &+= UInt64(nextHeader)
    }

    @inlinable
    public mutating func add(_ value: UInt64) {
        sum &+= value >> 32
        sum &+= value & 0xFFFF_FFFF
    }

    @inlinable
    public mutating func add(_ value: UInt16) { sum &+= UInt64(value) }

    /// Adds bytes that start on an even offset of the checksummed message.
    /// Summed eight octets at a time in the host's byte order: a one's
    /// complement sum of byte-swapped words is the byte-swapped sum (RFC
    /// 1071 2(B)), so the folded sum is swapped back once at the end.
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let n = bytes.count
        var i = 0
        // Whole 64-bit words, sixteen octets a turn, each carry out of the
        // top counted apart: 2^64 = 1 modulo 0xFFFF, so a carry is worth 1.
        var wide: UInt64 = 0, carries: UInt64 = 0
        while i &+ 16 <= n {
            let (s, o) = wide.addingReportingOverflow(base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let (t, p) = s.addingReportingOverflow(base.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self))
            wide = t
            carries &+= (o ? 1 : 0) &+ (p ? 1 : 0)
            i &+= 16
        }
        if i &+ 8 <= n {
            let (s, o) = wide.addingReportingOverflow(base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            wide = s
            carries &+= o ? 1 : 0
            i &+= 8
        }
        var native = (wide & 0xFFFF_FFFF) &+ (wide >> 32) &+ carries  // then 32-bit additions: no overflow
        if i &+ 4 <= n {
            native &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i &+= 4
        }
        if i &+ 2 <= n {
            native &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i &+= 2
        }
        // A last odd octet is the high half of a big-endian word.
        if i < n {
            let last = UInt64(base.load(fromByteOffset: i, as: UInt8.self))
            #if _endian(little)
            native &+= last
            #else
            native &+= last << 8
            #endif
        }
        while native >> 16 != 0 { native = (native & 0xFFFF) &+ (native >> 16) }
        #if _endian(little)
        sum &+= UInt64(UInt16(truncatingIfNeeded: native).byteSwapped)
        #else
        sum &+= native
        #endif
    }

    /// The folded one's-complement sum (not yet complemented).
    @inlinable
    public var folded: UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xFFFF) &+ (s >> 16) }
        return UInt16(s)
    }

    /// The value to write in a checksum field that was zero while summing.
    @inlinable public var value: UInt16 { ~folded }

    /// True when the sum covered a message with its checksum field in place
    /// and the message is intact.
    @inlinable public var isValid: Bool { folded == 0xFFFF }
}

/// Checksum of an upper-layer message over IPv6.
@inlinable
public func upperLayerChecksum(
    _ message: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address, nextHeader: UInt8
) -> InternetChecksum {
    var c = InternetChecksum(source: source, destination: destination, length: message.count, nextHeader: nextHeader)
    c.add(message)
    return c
}
