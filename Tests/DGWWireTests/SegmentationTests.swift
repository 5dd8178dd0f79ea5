import DGWTestSupport
import DGWWire
import Foundation
import Testing

@Suite struct VirtioNetHeaderTests {
    // flags NEEDS_CSUM, TCPv6 with ECN, hdr_len 86, gso_size 1428, csum_start 54, csum_offset 16 (host order: little-endian here).
    static let bytes: [UInt8] = [0x01, 0x84, 0x56, 0x00, 0x94, 0x05, 0x36, 0x00, 0x10, 0x00]
    static let value = VirtioNetHeader(flags: VirtioNetFlags.needsChecksum, gsoType: VirtioGSOType.tcpv6 | VirtioGSOType.ecn,
                                       headerLength: 86, gsoSize: 1428, checksumStart: 54, checksumOffset: 16)

    @Test func read() throws {
        try with(Self.bytes) { b in
            let v = try VirtioNetHeaderView(checking: b)
            #expect(v.flags == 1 && v.gsoType == 0x84 && v.headerLength == 86 && v.gsoSize == 1428)
            #expect(v.checksumStart == 54 && v.checksumOffset == 16)
        }
    }

    @Test func parse() throws {
        let h = try with(Self.bytes) { try VirtioNetHeader.parse($0) }
        #expect(h == Self.value)
        #expect(h.segmentation == VirtioGSOType.tcpv6)
    }

    @Test func build() throws {
        // A value built field by field emits the fixture.
        var h = VirtioNetHeader()
        h.flags = VirtioNetFlags.needsChecksum
        h.gsoType = VirtioGSOType.tcpv6 | VirtioGSOType.ecn
        h.headerLength = 86
        h.gsoSize = 1428
        h.checksumStart = 54
        h.checksumOffset = 16
        #expect(try emitted { try h.emit(into: $0) } == Self.bytes)
    }

    @Test func emitThenParse() throws {
        let out = try emitted { try Self.value.emit(into: $0) }
        #expect(out == Self.bytes)
        #expect(try with(out) { try VirtioNetHeader.parse($0) } == Self.value)
    }

    @Test func truncated() throws {
        for n in 0..<VirtioNetHeader.length {
            #expect(throws: WireError.truncated) { try with(Array(Self.bytes.prefix(n))) { try VirtioNetHeaderView(checking: $0) } }
        }
        #expect(throws: WireError.bufferTooSmall) {
            var small = [UInt8](repeating: 0, count: 9)
            try small.withUnsafeMutableBytes { try Self.value.emit(into: $0) }
        }
    }
}

@Suite struct SegmentationTests {
    static let source = mnAddress, destination = cnAddress

    /// Ethernet + IPv6 (+ `extensions`) + TCP with a 12-octet timestamp option or UDP, and `payload`;
    /// the transport checksum as Linux leaves it for the NIC (the pseudo-header's sum only).
    static func superFrame(tcp: Bool = true, payload: [UInt8], flags: UInt8 = TCPHeader.ack | TCPHeader.psh,
                           extensions: [UInt8] = [], etherType: UInt16 = EtherType.ipv6) -> [UInt8] {
        var f: [UInt8] = [0x02, 0xD1, 0, 0, 1, 1, 0x02, 0xAA, 0, 0, 0, 1, UInt8(etherType >> 8), UInt8(etherType & 0xFF)]
        let transport: [UInt8]
        if tcp {
            transport = [0xC0, 0x01, 0x00, 0x50, 0xFF, 0xFF, 0xFF, 0x00, 0, 0, 0x10, 0, 0x80, flags, 0x01, 0xF5, 0, 0, 0, 0,
                         0x01, 0x01, 0x08, 0x0A, 0, 0, 0, 1, 0, 0, 0, 2]
        } else {
            transport = [0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0]
        }
        let upperLength = transport.count + payload.count
        let length = extensions.count + upperLength
        let next = extensions.isEmpty ? (tcp ? IPProtocol.tcp : IPProtocol.udp) : IPProtocol.hopByHop
        f += [0x60, 0, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), next, 64]
        f += withUnsafeBytes(of: source.high.bigEndian, Array.init) + withUnsafeBytes(of: source.low.bigEndian, Array.init)
        f += withUnsafeBytes(of: destination.high.bigEndian, Array.init) + withUnsafeBytes(of: destination.low.bigEndian, Array.init)
        f += extensions + transport + payload
        let at = 14 + 40 + extensions.count
        if !tcp {
            f[at + 4] = UInt8(upperLength >> 8)
            f[at + 5] = UInt8(upperLength & 0xFF)
        }
        let field = at + (tcp ? 16 : 6)
        let pseudo = InternetChecksum(source: source, destination: destination, length: upperLength,
                                      nextHeader: tcp ? IPProtocol.tcp : IPProtocol.udp).folded
        f[field] = UInt8(pseudo >> 8)
        f[field + 1] = UInt8(pseudo & 0xFF)
        return f
    }

    static func payload(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) } }

    static func cut(_ frame: [UInt8], _ header: VirtioNetHeader) throws(SegmentationError) -> (SegmentationPlan, [[UInt8]]) {
        let plan = try frame.withUnsafeBytes { b in Result { () throws(SegmentationError) in try SegmentationPlan(frame: b, header: header) } }.get()
        let segments = (0..<plan.count).map { i in
            frame.withUnsafeBytes { b in emitted(plan.length(ofSegment: i)) { plan.write(segment: i, of: b, into: $0) } }
        }
        return (plan, segments)
    }

    static func tcpHeader(gsoSize: UInt16, ecn: Bool = false) -> VirtioNetHeader {
        VirtioNetHeader(flags: VirtioNetFlags.needsChecksum, gsoType: VirtioGSOType.tcpv6 | (ecn ? VirtioGSOType.ecn : 0),
                        headerLength: 86, gsoSize: gsoSize, checksumStart: 54, checksumOffset: 16)
    }

    @Test func tcpIsCutIntoSegmentsOfGSOSize() throws {
        let data = Self.payload(3 * 1000 + 500)
        let frame = Self.superFrame(payload: data, flags: TCPHeader.ack | TCPHeader.psh | TCPHeader.fin | TCPHeader.cwr)
        let (plan, segments) = try Self.cut(frame, Self.tcpHeader(gsoSize: 1000, ecn: true))
        #expect(plan.count == 4 && plan.headerLength == 86 && plan.transportOffset == 54 && plan.payloadLength == 3500)
        #expect(segments.map(\.count) == [1086, 1086, 1086, 586])
        var joined: [UInt8] = []
        for (i, s) in segments.enumerated() {
            try with(s) { b in
                let eth = try EthernetFrame(checking: b)
                let ip = try IPv6Packet(checking: eth.payload)
                #expect(ip.totalLength == s.count - 14)
                #expect(ip.source == Self.source && ip.destination == Self.destination && ip.hopLimit == 64)
                let tcp = try TCPSegment(checking: ip.payload)
                #expect(tcp.sequence == 0xFFFF_FF00 &+ UInt32(i * 1000), "segment \(i): sequence wraps like TCP's")
                #expect(tcp.acknowledgement == 0x1000 && tcp.window == 0x01F5 && tcp.headerLength == 32)
                let last = i == segments.count - 1
                #expect(tcp.flags & TCPHeader.ack != 0)
                #expect((tcp.flags & TCPHeader.psh != 0) == last && (tcp.flags & TCPHeader.fin != 0) == last, "segment \(i)")
                #expect((tcp.flags & TCPHeader.cwr != 0) == (i == 0), "segment \(i)")
                #expect(Array(ip.payload[20..<32]) == [0x01, 0x01, 0x08, 0x0A, 0, 0, 0, 1, 0, 0, 0, 2], "options repeated")
                #expect(upperLayerChecksum(ip.payload, source: ip.source, destination: ip.destination, nextHeader: IPProtocol.tcp).isValid)
                joined += Array(tcp.payload)
            }
        }
        #expect(joined == data)
    }

    @Test func aFrameOfOneSegmentGetsItsChecksum() throws {
        let frame = Self.superFrame(payload: Self.payload(700))
        let (plan, segments) = try Self.cut(frame, Self.tcpHeader(gsoSize: 1428))
        #expect(plan.count == 1 && segments[0].count == frame.count)
        try with(segments[0]) { b in
            let ip = try IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: b[14...]))
            #expect(upperLayerChecksum(ip.payload, source: ip.source, destination: ip.destination, nextHeader: IPProtocol.tcp).isValid)
        }
        #expect(Array(segments[0][..<70]) == Array(frame[..<70]) && Array(segments[0][72...]) == Array(frame[72...]))
    }

    @Test func udpSegmentationMakesOneDatagramPerSegment() throws {
        let data = Self.payload(2 * 1200 + 1)
        let frame = Self.superFrame(tcp: false, payload: data)
        let header = VirtioNetHeader(flags: VirtioNetFlags.needsChecksum, gsoType: VirtioGSOType.udpL4, headerLength: 62,
                                     gsoSize: 1200, checksumStart: 54, checksumOffset: 6)
        let (plan, segments) = try Self.cut(frame, header)
        #expect(plan.count == 3 && !plan.isTCP)
        #expect(segments.map(\.count) == [1262, 1262, 63])
        var joined: [UInt8] = []
        for s in segments {
            try with(s) { b in
                let ip = try IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: b[14...]))
                let udp = try UDPPacket(checking: ip.payload)
                #expect(udp.length == ip.payloadLength && udp.sourcePort == 12345 && udp.destinationPort == 53)
                #expect(udp.checksumIsValid(source: ip.source, destination: ip.destination))
                joined += Array(udp.payload)
            }
        }
        #expect(joined == data)
    }

    @Test func extensionHeadersAreRepeatedInEverySegment() throws {
        // Hop-by-Hop, 8 octets: next header TCP, PadN.
        let hbh: [UInt8] = [IPProtocol.tcp, 0, 1, 4, 0, 0, 0, 0]
        let frame = Self.superFrame(payload: Self.payload(2000), extensions: hbh)
        let (plan, segments) = try Self.cut(frame, Self.tcpHeader(gsoSize: 1500))
        #expect(plan.transportOffset == 62 && plan.headerLength == 94 && segments.count == 2)
        for s in segments {
            #expect(Array(s[54..<62]) == hbh)
            try with(s) { b in
                let ip = try IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: b[14...]))
                #expect(ip.totalLength == s.count - 14)
                #expect(upperLayerChecksum(UnsafeRawBufferPointer(rebasing: ip.payload[8...]), source: ip.source, destination: ip.destination,
                                           nextHeader: IPProtocol.tcp).isValid)
            }
        }
    }

    @Test func whatCannotBeCutIsRefusedWithAReason() throws {
        let tcp = Self.superFrame(payload: Self.payload(3000))
        var header = Self.tcpHeader(gsoSize: 1000)
        header.gsoType = VirtioGSOType.tcpv4
        #expect(throws: SegmentationError.notIPv6) { try Self.cut(tcp, header) }
        header.gsoType = VirtioGSOType.udpL4
        #expect(throws: SegmentationError.notIPv6) { try Self.cut(Self.superFrame(tcp: false, payload: [1], etherType: EtherType.ipv4), header) }
        // UDP fragmentation offload, TCP named but UDP carried, no segment size, a fragment, no payload.
        header.gsoType = VirtioGSOType.udp
        #expect(throws: SegmentationError.malformed) { try Self.cut(tcp, header) }
        #expect(throws: SegmentationError.malformed) { try Self.cut(Self.superFrame(tcp: false, payload: [1]), Self.tcpHeader(gsoSize: 1000)) }
        #expect(throws: SegmentationError.malformed) { try Self.cut(tcp, Self.tcpHeader(gsoSize: 0)) }
        let fragment: [UInt8] = [IPProtocol.tcp, 0, 0, 1, 0, 0, 0, 9]
        #expect(throws: SegmentationError.malformed) {
            try Self.cut(Self.superFrame(payload: Self.payload(3000), extensions: fragment).enumerated().map { $0.offset == 20 ? IPProtocol.fragment : $0.element }, Self.tcpHeader(gsoSize: 1000))
        }
        #expect(throws: SegmentationError.malformed) { try Self.cut(Self.superFrame(payload: []), Self.tcpHeader(gsoSize: 1000)) }
    }

    @Test func truncatedSuperFramesAreRefused() throws {
        let frame = Self.superFrame(payload: Self.payload(3000))
        // Cut inside Ethernet, IPv6, TCP, and inside the payload (the IPv6 length then runs past the frame).
        for n in [10, 40, 60, 80, 2000] {
            #expect(throws: SegmentationError.malformed) { try Self.cut(Array(frame.prefix(n)), Self.tcpHeader(gsoSize: 1000)) }
        }
    }

    /// tshark, the referee: every segment a valid TCP segment, checksums good, sequence numbers continuous.
    @Test func tsharkAcceptsTheSegments() throws {
        guard let tshark = which("tshark") else { Issue.record("tshark is not installed"); return }
        let (_, segments) = try Self.cut(Self.superFrame(payload: Self.payload(5 * 1428 + 17)), Self.tcpHeader(gsoSize: 1428))
        // A classic pcap, Ethernet.
        var file: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]
        for (i, s) in segments.enumerated() {
            for v in [UInt32(1_764_000_000 + i), 0, UInt32(s.count), UInt32(s.count)] { file += withUnsafeBytes(of: v.littleEndian, Array.init) }
            file += s
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-segments-\(UUID().uuidString).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(file).write(to: URL(fileURLWithPath: path))
        let r = try runProcess(tshark, ["-n", "-r", path, "-o", "tcp.check_checksum:TRUE", "-o", "tcp.relative_sequence_numbers:FALSE",
                                        "-o", "tcp.analyze_sequence_numbers:FALSE",
                                        "-T", "fields", "-e", "tcp.checksum.status", "-e", "tcp.seq", "-e", "tcp.len",
                                        "-e", "_ws.malformed", "-e", "_ws.expert.severity"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == 6)
        var next = UInt32(0xFFFF_FF00)
        for row in rows {
            #expect(row[0] == "1", "checksum status \(row[0])")
            #expect(UInt32(row[1]) == next)
            next = next &+ UInt32(row[2])!
            #expect(row[3].isEmpty, "malformed")
            let severe = row[4].split(separator: ",").compactMap { Int($0) }.filter { $0 >= 0x0060_0000 }
            #expect(severe.isEmpty)
        }
    }
}
