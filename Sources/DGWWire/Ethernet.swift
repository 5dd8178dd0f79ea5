// Ethernet II with up to two 802.1Q / 802.1ad tags.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                  Destination MAC (6 octets)                   |
// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                               |                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+    Source MAC (6 octets)      +
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |     TPID 0x8100 / 0x88a8      | PCP |D|        VLAN ID        |  (optional, up to 2)
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |           EtherType           |   payload ...
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100     // IEEE 802.1Q
    public static let qinq: UInt16 = 0x88A8     // IEEE 802.1ad
    public static let ipv6: UInt16 = 0x86DD
}

@usableFromInline enum EthernetField {
    @usableFromInline static let destination = 0
    @usableFromInline static let source = 6
    @usableFromInline static let etherType = 12
    @usableFromInline static let headerLength = 14
    @usableFromInline static let tagLength = 4
    @usableFromInline static let maxTags = 2
}

/// An 802.1Q tag: priority, drop-eligible bit and VLAN ID.
public struct VLANTag: Hashable, Sendable {
    public var tpid: UInt16
    public var pcp: UInt8
    public var dei: Bool
    public var vid: UInt16

    public init(tpid: UInt16 = EtherType.vlan, pcp: UInt8 = 0, dei: Bool = false, vid: UInt16) {
        self.tpid = tpid
        self.pcp = pcp & 0x7
        self.dei = dei
        self.vid = vid & 0xFFF
    }

    @inlinable public var tci: UInt16 { UInt16(pcp) << 13 | (dei ? 0x1000 : 0) | vid }
}

/// A checked view of an Ethernet frame.
public struct EthernetFrame {
    public let bytes: UnsafeRawBufferPointer
    /// Number of VLAN tags (0...2).
    public let tagCount: Int

    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= EthernetField.headerLength else { throw .truncated }
        var tags = 0
        var typeOffset = EthernetField.etherType
        while tags < EthernetField.maxTags {
            let t = bytes.u16(typeOffset)
            guard t == EtherType.vlan || t == EtherType.qinq else { break }
            guard bytes.count >= EthernetField.headerLength + (tags + 1) * EthernetField.tagLength
            else { throw .truncated }
            tags += 1
            typeOffset += EthernetField.tagLength
        }
        self.bytes = bytes
        self.tagCount = tags
    }

    @inlinable public var destination: MACAddress { MACAddress(bytes, at: EthernetField.destination) }
    @inlinable public var source: MACAddress { MACAddress(bytes, at: EthernetField.source) }
    @inlinable public var headerLength: Int { EthernetField.headerLength + tagCount * EthernetField.tagLength }
    /// The EtherType after any tags.
    @inlinable public var etherType: UInt16 { bytes.u16(headerLength - 2) }

    /// Tag `i` (0 = outermost).
    @inlinable
    public func tag(_ i: Int) -> VLANTag {
        precondition(i < tagCount)
        let o = EthernetField.etherType + i * EthernetField.tagLength
        let tci = bytes.u16(o + 2)
        return VLANTag(tpid: bytes.u16(o), pcp: UInt8(tci >> 13), dei: tci & 0x1000 != 0, vid: tci & 0xFFF)
    }

    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(from: headerLength) }
}

/// An Ethernet header as a value.
public struct EthernetHeader: Hashable, Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    /// Outer tag first; at most two.
    public var outerTag: VLANTag?
    public var innerTag: VLANTag?
    public var etherType: UInt16

    public init(destination: MACAddress, source: MACAddress, outerTag: VLANTag? = nil,
                innerTag: VLANTag? = nil, etherType: UInt16) {
        self.destination = destination
        self.source = source
        self.outerTag = outerTag
        self.innerTag = innerTag
        self.etherType = etherType
    }

    public init(_ frame: EthernetFrame) {
        destination = frame.destination
        source = frame.source
        outerTag = frame.tagCount > 0 ? frame.tag(0) : nil
        innerTag = frame.tagCount > 1 ? frame.tag(1) : nil
        etherType = frame.etherType
    }

    public var headerLength: Int {
        EthernetField.headerLength + (outerTag == nil ? 0 : 4) + (innerTag == nil ? 0 : 4)
    }

    /// Writes the header; returns its length.
    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard bytes.count >= headerLength else { throw .bufferTooSmall }
        destination.write(to: bytes, at: EthernetField.destination)
        source.write(to: bytes, at: EthernetField.source)
        var o = EthernetField.etherType
        // Each tag in turn, outer first (no array of them: a header per frame sent).
        func put(_ tag: VLANTag?) {
            guard let tag else { return }
            bytes.put16(tag.tpid, at: o)
            bytes.put16(tag.tci, at: o + 2)
            o += 4
        }
        put(outerTag)
        put(innerTag)
        bytes.put16(etherType, at: o)
        return o + 2
    }
}
