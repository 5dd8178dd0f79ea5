import Testing
@testable import DGWWire

@Suite struct UDPTests {
    /// The UDP datagram of the 64-octet Ethernet fixture.
    var datagram: [UInt8] { Array(Fixtures.ethernetUDP64[54...]) }

    @Test func read() throws {
        try with(datagram) { b in
            let u = try UDPPacket(checking: b)
            #expect(u.sourcePort == 40000 && u.destinationPort == 5001 && u.length == 10)
            #expect(u.checksumIsValid(source: mnAddress, destination: cnAddress))
            #expect(Array(u.payload) == [0, 0])
        }
    }

    @Test func buildAndEmit() throws {
        let built = try emitted {
            try UDPHeader(sourcePort: 40000, destinationPort: 5001).emit(
                payload: UnsafeRawBufferPointer(start: nil, count: 0) , into: $0, source: mnAddress, destination: cnAddress)
        }
        #expect(built.count == 8)
        let again = try with(datagram) { b in
            let u = try UDPPacket(checking: b)
            return try emitted { try UDPHeader(u).emit(payload: u.payload, into: $0, source: mnAddress, destination: cnAddress) }
        }
        #expect(again == datagram)
    }

    @Test func truncation() {
        for n in 0..<datagram.count {
            #expect(throws: WireError.truncated) { try with(Array(datagram[..<n])) { _ = try UDPPacket(checking: $0) } }
        }
        var bad = datagram
        bad[5] = 4
        #expect(throws: WireError.badLength) { try with(bad) { _ = try UDPPacket(checking: $0) } }
    }
}

@Suite struct TCPTests {
    var segment: [UInt8] { upper(Fixtures.ipv6TCP) }
    let header = TCPHeader(sourcePort: 40001, destinationPort: 80, sequence: 1000, acknowledgement: 0,
                           flags: TCPHeader.syn, window: 8192)

    @Test func read() throws {
        try with(segment) { b in
            let s = try TCPSegment(checking: b)
            #expect(s.sourcePort == 40001 && s.destinationPort == 80 && s.sequence == 1000)
            #expect(s.flags == TCPHeader.syn && s.headerLength == 20 && s.window == 8192)
        }
    }

    @Test func parseBuildEmit() throws {
        #expect(try with(segment) { TCPHeader(try TCPSegment(checking: $0)) } == header)
        let built = try emitted {
            try header.emit(payload: UnsafeRawBufferPointer(start: nil, count: 0), into: $0, source: mnAddress, destination: cnAddress)
        }
        #expect(built == segment)
    }

    @Test func truncation() {
        for n in 0..<segment.count {
            #expect(throws: WireError.truncated) { try with(Array(segment[..<n])) { _ = try TCPSegment(checking: $0) } }
        }
        var bad = segment
        bad[12] = 0x40  // data offset 4 words
        #expect(throws: WireError.badLength) { try with(bad) { _ = try TCPSegment(checking: $0) } }
    }
}

@Suite struct FiveTupleTests {
    @Test func readsPortsThroughExtensionHeaders() throws {
        let t = try with(Fixtures.ipv6ExtensionChain) { try FiveTuple(try IPv6Packet(checking: $0)) }
        #expect(t == FiveTuple(source: mnAddress, destination: cnAddress, sourcePort: 7, destinationPort: 9, proto: IPProtocol.udp))
    }

    @Test func stableHash() throws {
        let a = FiveTuple(source: mnAddress, destination: cnAddress, sourcePort: 1, destinationPort: 2, proto: 17)
        var b = a
        b.sourcePort = 3
        #expect(a.stableHash == a.stableHash)
        #expect(a.stableHash != b.stableHash)
        // Spread over 16 buckets for 4096 flows: no bucket far from 256.
        var buckets = [Int](repeating: 0, count: 16)
        for p in 0..<4096 {
            let t = FiveTuple(source: mnAddress, destination: cnAddress, sourcePort: UInt16(p), destinationPort: 80, proto: 6)
            buckets[Int(t.stableHash % 16)] += 1
        }
        #expect(buckets.allSatisfy { (192...320).contains($0) })
    }
}

/// A frame from a sender that left its checksum to the NIC (Linux
/// CHECKSUM_PARTIAL): the field holds the pseudo-header's sum only;
/// completed, it is the frame scapy built with the full checksum.
@Suite struct PartialChecksumTests {
    /// `frame` with its transport checksum at `field` (offset in the frame)
    /// replaced by the folded pseudo-header sum, as the Linux stack leaves it.
    func partial(_ frame: [UInt8], field: Int, nextHeader: UInt8) -> [UInt8] {
        var f = frame
        let (source, destination, length) = f.withUnsafeBytes { b in
            (IPv6Address(b, at: 22), IPv6Address(b, at: 38), Int(b[18]) << 8 | Int(b[19]))
        }
        let pseudo = InternetChecksum(source: source, destination: destination, length: length, nextHeader: nextHeader).folded
        f[field] = UInt8(pseudo >> 8)
        f[field + 1] = UInt8(pseudo & 0xFF)
        return f
    }

    @Test func udpAndTCPAreCompleted() {
        let udp = Fixtures.ethernetUDP64
        var f = partial(udp, field: 54 + 6, nextHeader: IPProtocol.udp)
        #expect(f != udp)
        #expect(f.withUnsafeMutableBytes { completeTransportChecksum($0) })
        #expect(f == udp)
        let tcp = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xDD] + Fixtures.ipv6TCP
        var g = partial(tcp, field: 54 + 16, nextHeader: IPProtocol.tcp)
        #expect(g.withUnsafeMutableBytes { completeTransportChecksum($0) })
        #expect(g == tcp)
    }

    @Test func anythingElseIsLeftAlone() {
        // Truncated, not Ethernet, a Mobility Header (no transport checksum).
        let ethernet: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xDD]
        for frame in [Fixtures.ethernetUDP64.prefix(60), Fixtures.proxyBindingUpdate[...], (ethernet + Fixtures.proxyBindingUpdate)[...]] {
            var f = Array(frame)
            #expect(!f.withUnsafeMutableBytes { completeTransportChecksum($0) })
            #expect(f == Array(frame))
        }
    }
}
