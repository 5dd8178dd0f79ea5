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
