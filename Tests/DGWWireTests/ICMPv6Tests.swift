import Testing
@testable import DGWWire

/// Parses the ICMPv6 message of an IPv6 fixture, checksum verified.
func parseICMPv6(_ packet: [UInt8]) throws -> ICMPv6Message {
    try with(packet) { b in
        let ip = try IPv6Packet(checking: b)
        return try ICMPv6Message.parse(try ICMPv6Packet(checking: ip.payload), source: ip.source, destination: ip.destination)
    }
}

/// The message emitted with the fixture's addresses.
func emitICMPv6(_ message: ICMPv6Message, like packet: [UInt8]) throws -> [UInt8] {
    let (src, dst) = with(packet) { (IPv6Address($0, at: 8), IPv6Address($0, at: 24)) }
    return try emitted { try message.emit(into: $0, source: src, destination: dst) }
}

@Suite struct ICMPv6Tests {
    static var ra: ICMPv6Message { ICMPv6Message.routerAdvertisement(RouterAdvertisement(
        curHopLimit: 64, managed: true, otherConfig: true, preference: .low, routerLifetime: 1800,
        reachableTime: 30000, retransTimer: 1000, options: .built([
            .prefixInformation(PrefixInformation(prefix: prefix("2001:db8:1:1::/64"), onLink: true, autonomous: true,
                                                 validLifetime: 86400, preferredLifetime: 3600)),
            .prefixInformation(PrefixInformation(prefix: prefix("2001:db8:2:3::/64"), onLink: true, autonomous: false,
                                                 validLifetime: 7200, preferredLifetime: 0)),
            .routeInformation(RouteInformation(prefix: prefix("2001:db8:aaaa::/48"), preference: .high, lifetime: 1800)),
            .routeInformation(RouteInformation(prefix: prefix("::/0"), preference: .medium, lifetime: 600)),
            .routeInformation(RouteInformation(prefix: prefix("2001:db8:bbbb:1:2::/80"), preference: .low, lifetime: 60)),
            .mtu(1500),
            .sourceLinkLayerAddress(LinkLayerAddress(dlifMAC)),
        ])))}

    static var quoted: RawBytes { .owned(Fixtures.quotedPacket) }

    /// (fixture, the message it holds) for every ICMPv6 message we emit.
    static var cases: [(String, [UInt8], ICMPv6Message)] { [
        ("RS", Fixtures.routerSolicitation,
         .routerSolicitation(options: .built([.sourceLinkLayerAddress(LinkLayerAddress(mnMAC))]))),
        ("RA", Fixtures.routerAdvertisement, ra),
        ("NS", Fixtures.neighborSolicitation,
         .neighborSolicitation(target: dlifLinkLocal, options: .built([.sourceLinkLayerAddress(LinkLayerAddress(mnMAC))]))),
        ("NA", Fixtures.neighborAdvertisement,
         .neighborAdvertisement(NeighborAdvertisement(router: true, solicited: true, override: false, target: dlifLinkLocal,
                                                      options: .built([.targetLinkLayerAddress(LinkLayerAddress(dlifMAC))])))),
        ("PTB", Fixtures.packetTooBig, .packetTooBig(mtu: 1460, invoking: quoted)),
        ("TE", Fixtures.timeExceeded, .timeExceeded(code: TimeExceededCode.hopLimit, invoking: quoted)),
        ("DU", Fixtures.destinationUnreachable, .destinationUnreachable(code: UnreachableCode.address, invoking: quoted)),
        ("Echo", Fixtures.echoRequest, .echoRequest(identifier: 0x42, sequence: 7, data: [0x70, 0x69, 0x6e, 0x67])),
    ]}

    @Test func read() throws {
        try with(Fixtures.routerAdvertisement) { b in
            let ip = try IPv6Packet(checking: b)
            let icmp = try ICMPv6Packet(checking: ip.payload)
            #expect(icmp.type == ICMPv6Type.routerAdvertisement)
            #expect(icmp.code == 0)
            #expect(icmp.checksumIsValid(source: ip.source, destination: ip.destination))
            #expect(!icmp.checksumIsValid(source: anchor1, destination: ip.destination))
        }
    }

    @Test(arguments: 0..<cases.count)
    func parse(_ i: Int) throws {
        let (name, fixture, message) = Self.cases[i]
        #expect(try parseICMPv6(fixture) == message, "\(name)")
    }

    @Test(arguments: 0..<cases.count)
    func build(_ i: Int) throws {
        let (name, fixture, message) = Self.cases[i]
        #expect(try emitICMPv6(message, like: fixture) == upper(fixture), "\(name)")
    }

    @Test(arguments: 0..<cases.count)
    func emit(_ i: Int) throws {
        let (name, fixture, _) = Self.cases[i]
        #expect(try emitICMPv6(try parseICMPv6(fixture), like: fixture) == upper(fixture), "\(name)")
    }

    /// An RA written option by option (`RouterAdvertisement.emit(into:length:...)`,
    /// as the access router sends them) is the fixture, byte for byte; a
    /// wrong length or too small a buffer is an error, not a short message.
    @Test func buildOptionByOption() throws {
        guard case .routerAdvertisement(let ra) = Self.ra else { Issue.record("not an RA"); return }
        let fixture = Fixtures.routerAdvertisement
        let (src, dst) = with(fixture) { (IPv6Address($0, at: 8), IPv6Address($0, at: 24)) }
        let options = Array(ra.options)
        let length = 16 + options.reduce(0) { $0 + $1.bufferLength }
        func write(_ w: inout NDOptionWriter) throws(WireError) { for o in options { try w.append(o) } }
        #expect(try emitted { try ra.emit(into: $0, length: length, source: src, destination: dst, options: write) } == upper(fixture))
        #expect(throws: WireError.badOptionLength) {
            try emitted { try ra.emit(into: $0, length: length + 8, source: src, destination: dst, options: write) }
        }
        #expect(throws: WireError.bufferTooSmall) {
            try emitted(length - 1) { try ra.emit(into: $0, length: length, source: src, destination: dst, options: write) }
        }
    }

    /// Every shorter message is rejected (its checksum no longer holds, or
    /// it is too short), and nothing traps on the way.
    @Test(arguments: 0..<cases.count)
    func truncation(_ i: Int) throws {
        let (name, fixture, _) = Self.cases[i]
        let message = upper(fixture)
        let (src, dst) = with(fixture) { (IPv6Address($0, at: 8), IPv6Address($0, at: 24)) }
        for n in 0..<message.count {
            #expect(throws: WireError.self, "\(name) cut to \(n)") {
                try with(Array(message[..<n])) { b in
                    _ = try ICMPv6Message.parse(try ICMPv6Packet(checking: b), source: src, destination: dst)
                }
            }
            // Without the checksum: a cut inside the fixed part or an option is an error too.
            _ = try? with(Array(message[..<n])) { b in try ICMPv6Message.parse(unverified: try ICMPv6Packet(checking: b)) }
        }
    }

    @Test func errorMessagesQuoteAtMost1232Octets() throws {
        let big = RawBytes.owned([UInt8](repeating: 0xAB, count: 2000))
        let bytes = try emitted { try ICMPv6Message.packetTooBig(mtu: 1280, invoking: big).emit(into: $0, source: anchor1, destination: cnAddress) }
        #expect(bytes.count == 1240)
        #expect(bytes.count + 40 == 1280)
    }
}

@Suite struct NDOptionTests {
    func options(_ bytes: [UInt8]) throws -> [NDOption] {
        try with(bytes) { Array(try NDOptions(checking: $0)) }
    }

    @Test func zeroLengthIsAnError() {
        #expect(throws: WireError.zeroLengthNDOption) { try options([1, 0, 0, 0, 0, 0, 0, 0]) }
    }

    @Test func overrun() {
        #expect(throws: WireError.optionOverrun) { try options([1, 2, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: WireError.optionOverrun) { try options([1]) }
    }

    @Test func badLengths() {
        // Prefix information must be 4 units, MTU 1.
        #expect(throws: WireError.badOptionLength) { try options([3, 1, 64, 0xC0, 0, 0, 0, 0]) }
        #expect(throws: WireError.badOptionLength) { try options([5, 2] + [UInt8](repeating: 0, count: 14)) }
        // A /80 route needs the full 16-octet prefix (length 3), RFC 4191 2.3.
        #expect(throws: WireError.badOptionLength) { try options([24, 2, 80, 0, 0, 0, 0, 60] + [UInt8](repeating: 0, count: 8)) }
        #expect(throws: WireError.badOptionLength) { try options([24, 1, 48, 0, 0, 0, 0, 60]) }
        #expect(throws: WireError.badPrefixLength) { try options([24, 3, 129, 0, 0, 0, 0, 60] + [UInt8](repeating: 0, count: 16)) }
        #expect(throws: WireError.badPrefixLength) { try options([3, 4, 200, 0xC0] + [UInt8](repeating: 0, count: 28)) }
    }

    @Test func unknownKept() throws {
        let bytes: [UInt8] = [99, 1, 1, 2, 3, 4, 5, 6]
        let parsed = try options(bytes)
        #expect(parsed == [.unknown(type: 99, data: [1, 2, 3, 4, 5, 6])])
        #expect(try emitted { try NDOptions.built(parsed).emit(into: $0) } == bytes)
    }
}
