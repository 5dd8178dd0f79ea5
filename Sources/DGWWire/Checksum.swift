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
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i + 4 <= n {
            sum &+= UInt64(bytes.u32(i))
            i += 4
        }
        if i + 2 <= n {
            sum &+= UInt64(bytes.u16(i))
            i += 2
        }
        if i < n { sum &+= UInt64(bytes[i]) << 8 }
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
