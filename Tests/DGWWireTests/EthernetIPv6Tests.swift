import Testing
@testable import DGWWire

@Suite struct EthernetTests {
    let header = EthernetHeader(destination: dlifMAC, source: mnMAC,
                                outerTag: VLANTag(pcp: 5, vid: 100), etherType: EtherType.ipv6)

    @Test func read() throws {
        try with(Fixtures.ethernetVLANUDP) { b in
            let f = try EthernetFrame(checking: b)
            #expect(f.destination == dlifMAC)
            #expect(f.source == mnMAC)
            #expect(f.tagCount == 1)
            #expect(f.tag(0) == VLANTag(tpid: 0x8100, pcp: 5, dei: false, vid: 100))
            #expect(f.etherType == EtherType.ipv6)
            #expect(f.headerLength == 18)
            #expect(f.payload.count == Fixtures.ethernetVLANUDP.count - 18)
        }
    }

    @Test func build() throws {
        let bytes = try emitted { try header.emit(into: $0) }
        #expect(bytes == Array(Fixtures.ethernetVLANUDP[..<18]))
    }

    @Test func parse() throws {
        let parsed = try with(Fixtures.ethernetVLANUDP) { EthernetHeader(try EthernetFrame(checking: $0)) }
        #expect(parsed == header)
    }

    @Test func emit() throws {
        let bytes = try with(Fixtures.ethernetUDP64) { b in
            let parsed = EthernetHeader(try EthernetFrame(checking: b))
            return try emitted { try parsed.emit(into: $0) }
        }
        #expect(bytes == Array(Fixtures.ethernetUDP64[..<14]))
    }

    @Test func truncation() {
        for n in 0..<18 {
            #expect(throws: WireError.truncated) {
                try with(Array(Fixtures.ethernetVLANUDP[..<n])) { _ = try EthernetFrame(checking: $0) }
            }
        }
    }

    @Test func doubleTag() throws {
        let qinq = EthernetHeader(destination: .broadcast, source: mnMAC,
                                  outerTag: VLANTag(tpid: EtherType.qinq, vid: 10),
                                  innerTag: VLANTag(vid: 20), etherType: EtherType.ipv6)
        let bytes = try emitted { try qinq.emit(into: $0) }
        #expect(bytes.count == 22)
        #expect(try with(bytes) { EthernetHeader(try EthernetFrame(checking: $0)) } == qinq)
    }
}

@Suite struct IPv6Tests {
    let header = IPv6Header(trafficClass: 0xb8, flowLabel: 0x12345, payloadLength: 20,
                            nextHeader: IPProtocol.tcp, hopLimit: 64, source: mnAddress, destination: cnAddress)

    @Test func read() throws {
        try with(Fixtures.ipv6TCP) { b in
            let p = try IPv6Packet(checking: b)
            #expect(p.version == 6)
            #expect(p.trafficClass == 0xb8)
            #expect(p.flowLabel == 0x12345)
            #expect(p.payloadLength == 20)
            #expect(p.nextHeader == IPProtocol.tcp)
            #expect(p.hopLimit == 64)
            #expect(p.source == mnAddress)
            #expect(p.destination == cnAddress)
            #expect(p.payload.count == 20)
        }
    }

    @Test func build() throws {
        #expect(try emitted { try header.emit(into: $0); return 40 } == Array(Fixtures.ipv6TCP[..<40]))
    }

    @Test func parse() throws {
        #expect(try with(Fixtures.ipv6TCP) { IPv6Header(try IPv6Packet(checking: $0)) } == header)
    }

    @Test func emit() throws {
        let bytes = try with(Fixtures.ipv6TCP) { b in
            let parsed = IPv6Header(try IPv6Packet(checking: b))
            return try emitted { try parsed.emit(into: $0); return 40 }
        }
        #expect(bytes == Array(Fixtures.ipv6TCP[..<40]))
    }

    @Test func truncation() {
        let full = Fixtures.ipv6TCP
        for n in 0..<full.count {
            let expected: WireError = n < 40 ? .truncated : .payloadLengthBeyondFrame
            #expect(throws: expected) { try with(Array(full[..<n])) { _ = try IPv6Packet(checking: $0) } }
        }
    }

    @Test func linkPaddingIsCut() throws {
        let padded = Fixtures.ipv6TCP + [0, 0, 0, 0]
        let length = try with(padded) { try IPv6Packet(checking: $0).totalLength }
        #expect(length == Fixtures.ipv6TCP.count)
    }

    @Test func badVersion() {
        var bytes = Fixtures.ipv6TCP
        bytes[0] = 0x45
        #expect(throws: WireError.badVersion) { try with(bytes) { _ = try IPv6Packet(checking: $0) } }
    }
}

@Suite struct ExtensionHeaderTests {
    @Test func walksTheChain() throws {
        try with(Fixtures.ipv6ExtensionChain) { b in
            var chain = IPv6HeaderChain(packet: try IPv6Packet(checking: b))
            var kinds: [IPv6ExtensionKind] = []
            var fragment: IPv6FragmentHeader?
            var routing: IPv6RoutingHeader?
            while let h = try chain.next() {
                kinds.append(h.kind)
                if h.kind == .fragment { fragment = IPv6FragmentHeader(h) }
                if h.kind == .routing { routing = IPv6RoutingHeader(h) }
            }
            #expect(kinds == [.hopByHop, .routing, .destinationOptions, .fragment])
            #expect(chain.nextHeader == IPProtocol.udp)
            #expect(!chain.isNonFirstFragment)
            #expect(fragment == IPv6FragmentHeader(nextHeader: IPProtocol.udp, offset: 0, moreFragments: true,
                                                   identification: 0xABCD_EF01))
            #expect(routing?.routingType == 0)
            #expect(routing?.segmentsLeft == 1)
            let udp = try UDPPacket(checking: chain.remainder, firstFragment: true)
            #expect(udp.sourcePort == 7 && udp.length == 100)
        }
    }

    /// Each header, parsed and emitted again, gives the fixture's bytes; and
    /// built from literal values, the same bytes.
    @Test func parseEmitAndBuild() throws {
        let payload = upper(Fixtures.ipv6ExtensionChain)
        var rebuilt: [UInt8] = []
        try with(Fixtures.ipv6ExtensionChain) { b in
            var chain = IPv6HeaderChain(packet: try IPv6Packet(checking: b))
            while let h = try chain.next() {
                switch h.kind {
                case .hopByHop, .destinationOptions:
                    rebuilt += try emitted { try IPv6OptionsHeader(h).emit(into: $0) }
                case .routing:
                    rebuilt += try emitted { try IPv6RoutingHeader(h).emit(into: $0) }
                case .fragment:
                    rebuilt += try emitted { try IPv6FragmentHeader(h).emit(into: $0) }
                case .authentication:
                    Issue.record("no AH in the fixture")
                }
            }
        }
        #expect(rebuilt == Array(payload[..<rebuilt.count]))
        // Built from values: hop-by-hop with a router alert (5, 2, 0, 0) padded by PadN.
        let hbh = try emitted { try IPv6OptionsHeader(nextHeader: IPProtocol.routing, options: [5, 2, 0, 0]).emit(into: $0) }
        #expect(hbh == Array(payload[..<8]))
        let frag = try emitted {
            try IPv6FragmentHeader(nextHeader: IPProtocol.udp, offset: 0, moreFragments: true,
                                   identification: 0xABCD_EF01).emit(into: $0)
        }
        #expect(frag == Array(payload[(rebuilt.count - 8)..<rebuilt.count]))
    }

    @Test func truncation() throws {
        let payload = upper(Fixtures.ipv6ExtensionChain)
        let headers = 8 + 24 + 8 + 8  // hbh, routing (one address), dstopts, fragment
        for n in 0..<headers {
            // Cut inside a header, or right after one with the next missing.
            #expect(throws: WireError.truncated) {
                try with(Array(payload[..<n])) { b in
                    var chain = IPv6HeaderChain(payload: b, nextHeader: IPProtocol.hopByHop)
                    while try chain.next() != nil {}
                }
            }
        }
    }

    @Test func nonFirstFragmentStopsTheWalk() throws {
        let bytes: [UInt8] = [IPProtocol.udp, 0, 0x00, 0x10, 0, 0, 0, 1] + [UInt8](repeating: 0xAA, count: 16)
        let (offset, after, nonFirst) = try with(bytes) { b in
            var chain = IPv6HeaderChain(payload: b, nextHeader: IPProtocol.fragment)
            let offset = try chain.next()?.fragmentOffset
            let after = try chain.next()
            return (offset, after == nil, chain.isNonFirstFragment)
        }
        #expect(offset == 16 && after && nonFirst)
    }

    @Test func misplacedHopByHop() {
        let bytes: [UInt8] = [IPProtocol.hopByHop, 0, 1, 4, 0, 0, 0, 0] + [IPProtocol.udp, 0, 1, 4, 0, 0, 0, 0]
        #expect(throws: WireError.misplacedHopByHop) {
            try with(bytes) { b in
                var chain = IPv6HeaderChain(payload: b, nextHeader: IPProtocol.destinationOptions)
                while try chain.next() != nil {}
            }
        }
    }

    @Test func optionOverrun() {
        // PadN claiming 9 octets inside a 6-octet option area.
        let bytes: [UInt8] = [IPProtocol.udp, 0, 1, 9, 0, 0, 0, 0]
        #expect(throws: WireError.optionOverrun) {
            try with(bytes) { b in
                var chain = IPv6HeaderChain(payload: b, nextHeader: IPProtocol.destinationOptions)
                _ = try chain.next()
            }
        }
    }

    @Test func tooLongChainIsRefused() {
        let one: [UInt8] = [IPProtocol.destinationOptions, 0, 1, 4, 0, 0, 0, 0]
        let bytes = Array([[UInt8]](repeating: one, count: 40).joined())
        #expect(throws: WireError.tooManyHeaders) {
            try with(bytes) { b in
                var chain = IPv6HeaderChain(payload: b, nextHeader: IPProtocol.destinationOptions)
                while try chain.next() != nil {}
            }
        }
    }
}

@Suite struct TunnelTests {
    @Test func encapsulateMatchesRFC2473Layout() throws {
        let out = try with(Fixtures.tunnelInner) { b in
            let inner = try IPv6Packet(checking: b)
            return try emitted { try IPv6Tunnel.encapsulate(inner, into: $0, source: anchor1, destination: anchor2) }
        }
        #expect(out == Fixtures.tunnelOuter)
    }

    @Test func outerHeaderInHeadroom() throws {
        // Zero-copy: the inner packet already sits 40 octets into the buffer.
        var buffer = [UInt8](repeating: 0, count: 40) + Fixtures.tunnelInner
        try buffer.withUnsafeMutableBytes { b in
            let inner = try IPv6Packet(checking: UnsafeRawBufferPointer(b.slice(40..<b.count)))
            try IPv6Tunnel.writeOuterHeader(into: b.slice(0..<40), inner: inner, source: anchor1,
                                            destination: anchor2, hopLimit: 64)
        }
        #expect(buffer == Fixtures.tunnelOuter)
    }

    @Test func decapsulate() throws {
        let inner = try with(Fixtures.tunnelOuter) { b in
            try IPv6Tunnel.decapsulate(try IPv6Packet(checking: b)).map { Array($0.bytes) }
        }
        #expect(inner == Fixtures.tunnelInner)
        #expect(try with(Fixtures.ipv6TCP) { try IPv6Tunnel.decapsulate(try IPv6Packet(checking: $0)) } == nil)
    }

    @Test func decapsulationTruncation() {
        // The outer payload length cut with the frame: every cut inside the inner header fails.
        for n in 40..<80 {
            var bytes = Array(Fixtures.tunnelOuter[..<n])
            bytes[4] = UInt8((n - 40) >> 8); bytes[5] = UInt8((n - 40) & 0xFF)
            #expect(throws: WireError.truncated) {
                try with(bytes) { _ = try IPv6Tunnel.decapsulate(try IPv6Packet(checking: $0)) }
            }
        }
    }
}
