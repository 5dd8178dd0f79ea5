// The Mobility Message Authentication option (RFC 4285 section 5), the
// last option of a Mobility Header:
//
//                 +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//                 |  Option Type  | Option Length |    Subtype    |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                         Mobility SPI                          |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                    Authentication Data ...
//
// The authenticator covers Mobility Data = source | destination | MH Data,
// MH Data being the header from its first octet to the end of the SPI
// field, with the checksum taken as 0. RFC 4285 names the care-of and home
// addresses; between proxy mobility agents these are the packet's source
// and destination. The MAC (HMAC-SHA256 here) is the caller's.

/// RFC 4285 subtypes.
public enum MobilityAuthenticationSubtype {
    public static let mnHA: UInt8 = 1
    public static let mnAAA: UInt8 = 2
}

@usableFromInline enum MobilityAuthenticationField {
    // From the option's type octet.
    @usableFromInline static let subtype = 2
    @usableFromInline static let spi = 3
    @usableFromInline static let data = 7
}

/// The authentication option that ends a Mobility Header.
public struct MobilityAuthenticationTrailer: Equatable, Sendable {
    public var subtype: UInt8
    public var spi: UInt32
    /// Where the authentication data starts; it runs to the end of the header.
    public var dataOffset: Int

    public init(subtype: UInt8, spi: UInt32, dataOffset: Int) {
        self.subtype = subtype
        self.spi = spi
        self.dataOffset = dataOffset
    }

    /// The last option of `packet` (a BU, BA or Binding Revocation) when it is an authentication
    /// option that ends the header; nil otherwise (none, not last, padding
    /// after it, options that do not parse).
    public init?(_ packet: MobilityHeaderPacket) {
        let b = packet.bytes
        guard packet.hasOptions else { return nil }
        var i = MobilityField.options
        var last: Int?
        while i < b.count {
            let t = b.u8(i)
            if t == MobilityOptionType.pad1 { i += 1; continue }
            guard i + 2 <= b.count else { return nil }
            if t != MobilityOptionType.padN { last = i }
            i += 2 + Int(b.u8(i + 1))
        }
        guard i == b.count, let last, b.u8(last) == MobilityOptionType.authentication,
              last + 2 + Int(b.u8(last + 1)) == b.count, Int(b.u8(last + 1)) >= MobilityAuthenticationField.data - 2
        else { return nil }
        subtype = b.u8(last + MobilityAuthenticationField.subtype)
        spi = b.u32(last + MobilityAuthenticationField.spi)
        dataOffset = last + MobilityAuthenticationField.data
    }

    /// The octets the authenticator of `header` covers.
    public func authenticatedData(of header: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address) -> [UInt8] {
        var data = [UInt8](repeating: 0, count: 32 + dataOffset)
        data.withUnsafeMutableBytes { d in
            source.write(to: d, at: 0)
            destination.write(to: d, at: 16)
            d.copy(header.slice(0..<dataOffset), to: 32)
            d.put16(0, at: 32 + MobilityField.checksum)
        }
        return data
    }

    /// Writes `authenticator` as the authentication data of `header` (a
    /// message emitted with the option last and its data the right length)
    /// and the checksum again.
    public static func seal(_ header: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address,
                            authenticator: [UInt8]) throws(WireError) {
        guard authenticator.count <= header.count else { throw .bufferTooSmall }
        authenticator.withUnsafeBytes { header.copy($0, to: header.count - authenticator.count) }
        MobilityHeaderPacket.writeChecksum(header, source: source, destination: destination)
    }
}
