// Segmentation offload: the virtio-net header a packet socket with
// PACKET_VNET_HDR puts before each frame (<linux/virtio_net.h>, virtio 1.x
// section 5.1.6), and the software segmentation of the super-frames it
// describes. A veth or a local socket with TSO/GSO on, or a NIC with GRO,
// hands a packet socket one frame of up to 64 KB for a train of TCP
// segments; a router must put packets of at most gso_size on the wire.
//
//  0               1               2                               4
// +---------------+---------------+-------------------------------+
// |     flags     |   gso_type    |      hdr_len (hint only)      |
// +---------------+---------------+-------------------------------+
// |           gso_size            |          csum_start           |
// +-------------------------------+-------------------------------+
// |          csum_offset          |
// +-------------------------------+
//
// A packet socket writes the 16-bit fields in host byte order (its
// `vio_le()` is the legacy, native-endian layout).

@usableFromInline enum VirtioNetField {
    @usableFromInline static let flags = 0
    @usableFromInline static let gsoType = 1
    @usableFromInline static let headerLength = 2
    @usableFromInline static let gsoSize = 4
    @usableFromInline static let checksumStart = 6
    @usableFromInline static let checksumOffset = 8
    @usableFromInline static let length = 10
}

public enum VirtioNetFlags {
    /// The checksum at csum_start + csum_offset holds only the pseudo-header's sum.
    public static let needsChecksum: UInt8 = 0x01
    /// The receiving NIC verified the checksum.
    public static let dataValid: UInt8 = 0x02
}

public enum VirtioGSOType {
    public static let none: UInt8 = 0
    public static let tcpv4: UInt8 = 1
    public static let udp: UInt8 = 3        // UDP fragmentation offload (IP fragments)
    public static let tcpv6: UInt8 = 4
    public static let udpL4: UInt8 = 5      // UDP segmentation offload (one datagram per segment)
    /// Or-ed in: the first segment carries CWR.
    public static let ecn: UInt8 = 0x80
}

/// A checked view of a virtio-net header (10 bytes).
public struct VirtioNetHeaderView {
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= VirtioNetField.length else { throw .truncated }
        self.bytes = bytes.slice(0..<VirtioNetField.length)
    }

    @inlinable func host16(_ offset: Int) -> UInt16 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }

    @inlinable public var flags: UInt8 { bytes.u8(VirtioNetField.flags) }
    @inlinable public var gsoType: UInt8 { bytes.u8(VirtioNetField.gsoType) }
    @inlinable public var headerLength: UInt16 { host16(VirtioNetField.headerLength) }
    @inlinable public var gsoSize: UInt16 { host16(VirtioNetField.gsoSize) }
    @inlinable public var checksumStart: UInt16 { host16(VirtioNetField.checksumStart) }
    @inlinable public var checksumOffset: UInt16 { host16(VirtioNetField.checksumOffset) }
}

/// A virtio-net header as a value.
public struct VirtioNetHeader: Hashable, Sendable {
    public static let length = VirtioNetField.length

    public var flags: UInt8
    /// One of `VirtioGSOType`, possibly with `.ecn` or-ed in.
    public var gsoType: UInt8
    public var headerLength: UInt16
    public var gsoSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16

    public init(flags: UInt8 = 0, gsoType: UInt8 = VirtioGSOType.none, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
                checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    public init(_ view: VirtioNetHeaderView) {
        self.init(flags: view.flags, gsoType: view.gsoType, headerLength: view.headerLength, gsoSize: view.gsoSize,
                  checksumStart: view.checksumStart, checksumOffset: view.checksumOffset)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> VirtioNetHeader {
        VirtioNetHeader(try VirtioNetHeaderView(checking: bytes))
    }

    /// The segmentation type without the ECN bit.
    @inlinable public var segmentation: UInt8 { gsoType & ~VirtioGSOType.ecn }

    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard bytes.count >= VirtioNetField.length else { throw .bufferTooSmall }
        bytes.put8(flags, at: VirtioNetField.flags)
        bytes.put8(gsoType, at: VirtioNetField.gsoType)
        bytes.storeBytes(of: headerLength, toByteOffset: VirtioNetField.headerLength, as: UInt16.self)
        bytes.storeBytes(of: gsoSize, toByteOffset: VirtioNetField.gsoSize, as: UInt16.self)
        bytes.storeBytes(of: checksumStart, toByteOffset: VirtioNetField.checksumStart, as: UInt16.self)
        bytes.storeBytes(of: checksumOffset, toByteOffset: VirtioNetField.checksumOffset, as: UInt16.self)
        return VirtioNetField.length
    }
}

/// Why a super-frame was not cut into packets.
public enum SegmentationError: Error, Equatable, Sendable {
    /// IPv4 (TCPv4, or UDP segmentation over IPv4): not the gateway's.
    case notIPv6
    /// Headers that do not parse, a segment size of 0, a transport that is
    /// not the one the header names, a fragment, or UDP fragmentation
    /// offload (which IPv6 senders do not produce).
    case malformed
}

/// How one TCP or UDP super-frame (Ethernet, IPv6, extension headers,
/// transport header, payload) is cut: every segment repeats the headers and
/// carries `segmentSize` bytes of payload (the last one the rest), with its
/// own IPv6 payload length, TCP sequence number and flags or UDP length,
/// and a full checksum, as the NIC would have written them.
public struct SegmentationPlan: Sendable {
    /// Where the IPv6 header and the TCP/UDP header start in the frame.
    public let networkOffset: Int
    public let transportOffset: Int
    /// Every header up to the end of the transport header.
    public let headerLength: Int
    public let segmentSize: Int
    public let payloadLength: Int
    public let isTCP: Bool

    public init(frame: UnsafeRawBufferPointer, header: VirtioNetHeader) throws(SegmentationError) {
        let kind = header.segmentation
        switch kind {
        case VirtioGSOType.tcpv6, VirtioGSOType.udpL4: break
        case VirtioGSOType.tcpv4: throw .notIPv6
        default: throw .malformed
        }
        guard header.gsoSize > 0, let eth = try? EthernetFrame(checking: frame) else { throw .malformed }
        guard eth.etherType == EtherType.ipv6 else { throw kind == VirtioGSOType.udpL4 ? .notIPv6 : .malformed }
        guard let ip = try? IPv6Packet(checking: eth.payload) else { throw .malformed }
        var chain = IPv6HeaderChain(packet: ip)
        do throws(WireError) {
            while let h = try chain.next() {
                if h.kind == .fragment { throw .badLength }  // segments of a fragment: not a thing
            }
        } catch {
            throw .malformed
        }
        let isTCP = kind == VirtioGSOType.tcpv6
        guard chain.nextHeader == (isTCP ? IPProtocol.tcp : IPProtocol.udp) else { throw .malformed }
        let upper = chain.remainder
        let transportHeader: Int
        if isTCP {
            guard let tcp = try? TCPSegment(checking: upper) else { throw .malformed }
            transportHeader = tcp.headerLength
        } else {
            guard upper.count >= TransportField.udpHeaderLength else { throw .malformed }
            transportHeader = TransportField.udpHeaderLength
        }
        networkOffset = eth.headerLength
        transportOffset = networkOffset + IPv6Field.headerLength + chain.offset
        headerLength = transportOffset + transportHeader
        // The IPv6 length, not the frame's: Ethernet padding is no payload.
        payloadLength = networkOffset + ip.totalLength - headerLength
        guard payloadLength > 0 else { throw .malformed }
        segmentSize = Int(header.gsoSize)
        self.isTCP = isTCP
    }

    /// How many packets the super-frame makes.
    @inlinable public var count: Int { (payloadLength + segmentSize - 1) / segmentSize }

    /// The frame length of segment `i`.
    @inlinable
    public func length(ofSegment i: Int) -> Int {
        headerLength + min(segmentSize, payloadLength - i * segmentSize)
    }

    /// The longest segment, headers included.
    @inlinable public var longestSegment: Int { length(ofSegment: 0) }

    /// Writes segment `i` of `frame` (the super-frame this plan was made
    /// for) into `out`, which holds at least `length(ofSegment: i)` bytes;
    /// returns that length.
    public func write(segment i: Int, of frame: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(i >= 0 && i < count)
        let start = i * segmentSize
        let n = min(segmentSize, payloadLength - start)
        let total = headerLength + n
        precondition(out.count >= total && frame.count >= headerLength + payloadLength)
        let b = out.slice(0..<total)
        b.copy(frame.slice(0..<headerLength), to: 0)
        b.copy(frame.slice(headerLength + start..<headerLength + start + n), to: headerLength)
        b.put16(UInt16(total - networkOffset - IPv6Field.headerLength), at: networkOffset + IPv6Field.payloadLength)
        let transport = b.slice(transportOffset..<total)
        let checksumField: Int
        if isTCP {
            let header = UnsafeRawBufferPointer(transport)
            transport.put32(header.u32(TransportField.tcpSequence) &+ UInt32(truncatingIfNeeded: start),
                            at: TransportField.tcpSequence)
            var flags = header.u8(TransportField.tcpFlags)
            // FIN and PSH end the train: the last segment's; CWR starts it: the first's.
            if i < count - 1 { flags &= ~(TCPHeader.fin | TCPHeader.psh) }
            if i > 0 { flags &= ~TCPHeader.cwr }
            transport.put8(flags, at: TransportField.tcpFlags)
            checksumField = TransportField.tcpChecksum
        } else {
            transport.put16(UInt16(transport.count), at: TransportField.udpLength)
            checksumField = TransportField.udpChecksum
        }
        transport.put16(0, at: checksumField)
        let ip = UnsafeRawBufferPointer(b.slice(networkOffset..<networkOffset + IPv6Field.headerLength))
        var sum = upperLayerChecksum(UnsafeRawBufferPointer(transport), source: IPv6Address(ip, at: IPv6Field.source),
                                     destination: IPv6Address(ip, at: IPv6Field.destination),
                                     nextHeader: isTCP ? IPProtocol.tcp : IPProtocol.udp).value
        if sum == 0 && !isTCP { sum = 0xFFFF }  // 0 means "no checksum" in UDP
        transport.put16(sum, at: checksumField)
        return total
    }
}
