import Crypto
import Testing
@testable import DGWWire

func parseMH(_ packet: [UInt8]) throws -> MobilityMessage {
    try with(packet) { b in
        let ip = try IPv6Packet(checking: b)
        return try MobilityMessage.parse(try MobilityHeaderPacket(checking: ip.payload),
                                         source: ip.source, destination: ip.destination)
    }
}

func emitMH(_ message: MobilityMessage, like packet: [UInt8]) throws -> [UInt8] {
    let (src, dst) = with(packet) { (IPv6Address($0, at: 8), IPv6Address($0, at: 24)) }
    return try emitted { try message.emit(into: $0, source: src, destination: dst) }
}

var nai: RawBytes { .owned(Array("mn1@example.org".utf8)) }
let hnp = prefix("2001:db8:1:1::/64")
let ntpTimestamp: UInt64 = 0xED2F_2A00_8000_0000

@Suite struct MobilityTests {
    static var pbu: MobilityMessage { MobilityMessage.bindingUpdate(BindingUpdate(
        sequence: 7, flags: [.acknowledge, .homeRegistration, .proxyRegistration, .distributedGateway], lifetime: 900,
        options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
            .homeNetworkPrefix(hnp),
            .handoffIndicator(4),
            .accessTechnologyType(4),
            .mobileNodeLinkLayerIdentifier(.owned(mnMAC.octets)),
            .linkLocalAddress(mnLinkLocal),
            .timestamp(ntpTimestamp),
            .anchoredPrefix(hnp),
            .localPrefix(prefix("2001:db8:aaaa::/48")),
            .previousMAAR(maar: anchor1, prefix: hnp),
            .servingMAAR(anchor2),
            .dlifLinkLocalAddress(dlifLinkLocal),
            .dlifLinkLayerAddress(LinkLayerAddress(dlifMAC)),
            .unknown(type: 200, data: [0xde, 0xad]),
        ])))}

    static var pbuFourOptions: MobilityMessage { MobilityMessage.bindingUpdate(BindingUpdate(
        sequence: 8, flags: [.acknowledge, .proxyRegistration, .distributedGateway], lifetime: 900,
        options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
            .homeNetworkPrefix(hnp),
            .anchoredPrefix(hnp),
            .timestamp(ntpTimestamp),
        ])))}

    static var pba: MobilityMessage { MobilityMessage.bindingAcknowledgement(BindingAcknowledgement(
        status: BindingAckStatus.accepted, flags: [.proxyRegistration, .distributedGateway], sequence: 7, lifetime: 900,
        options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
            .anchoredPrefix(hnp),
            .localPrefix(prefix("2001:db8:aaaa::/48")),
            .dlifLinkLocalAddress(dlifLinkLocal),
            .dlifLinkLayerAddress(LinkLayerAddress(dlifMAC)),
        ])))}

    static let authenticator: [UInt8] = [0x73, 0xc7, 0x15, 0xbc, 0x90, 0x12, 0xc4, 0x79, 0x79, 0x5d, 0x05, 0x0a, 0x7b, 0x04, 0x05, 0xd1, 0x21, 0x87, 0xc8, 0x6a, 0x9e, 0xa2, 0xbc, 0xc3, 0x00, 0xdf, 0x57, 0xbd, 0x4b, 0x54, 0xdb, 0x87]

    static var pbuAuthenticated: MobilityMessage { MobilityMessage.bindingUpdate(BindingUpdate(
        sequence: 9, flags: [.acknowledge, .homeRegistration, .proxyRegistration, .distributedGateway], lifetime: 900,
        options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
            .handoffIndicator(3),
            .accessTechnologyType(3),
            .messageIdentifier(0x0000_0001_0000_0002),
            .authentication(subtype: MobilityAuthenticationSubtype.mnHA, spi: 256, data: .owned(authenticator)),
        ])))}

    static var bri: MobilityMessage { MobilityMessage.bindingRevocation(BindingRevocation(
        type: BindingRevocationType.indication, triggerOrStatus: RevocationTrigger.interMAGHandoverDifferentAccessType, sequence: 7,
        flags: .proxyBinding, options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
            .homeNetworkPrefix(hnp),
            .mobileNodeLinkLayerIdentifier(.owned(mnMAC.octets)),
        ])))}

    static var bra: MobilityMessage { MobilityMessage.bindingRevocation(BindingRevocation(
        type: BindingRevocationType.acknowledgement, triggerOrStatus: BindingRevocationStatus.success, sequence: 7,
        flags: .proxyBinding, options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
            .homeNetworkPrefix(hnp),
        ])))}

    static var cases: [(String, [UInt8], MobilityMessage)] { [
        ("PBU", Fixtures.proxyBindingUpdate, pbu),
        ("PBU-auth", Fixtures.proxyBindingUpdateAuthenticated, pbuAuthenticated),
        ("PBU4", Fixtures.proxyBindingUpdateFourOptions, pbuFourOptions),
        ("PBA", Fixtures.proxyBindingAck, pba),
        ("BRI", Fixtures.bindingRevocationIndication, bri),
        ("BRA", Fixtures.bindingRevocationAck, bra),
    ]}

    /// The checked view's fixed fields of a Binding Revocation (RFC 5846 6.1).
    @Test func readsARevocation() throws {
        try with(Fixtures.bindingRevocationIndication) { b in
            let ip = try IPv6Packet(checking: b)
            let mh = try MobilityHeaderPacket(checking: ip.payload)
            #expect(mh.isRevocation && mh.hasOptions && !mh.isBinding)
            #expect(mh.revocationType == BindingRevocationType.indication && mh.revocationTriggerOrStatus == 3)
            #expect(mh.revocationSequence == 7 && mh.revocationFlags == .proxyBinding)
        }
        // Its fixed fields are required: 8 octets are a header, not a revocation.
        let short: [UInt8] = [0x3b, 0x00, 0x10, 0x00, 0x00, 0x00, 0x01, 0x03]
        #expect(throws: WireError.badLength) { try with(short) { _ = try MobilityHeaderPacket(checking: $0) } }
    }

    /// A look-up in place among parsed options, past Pad1/PadN: the data
    /// of the first option of a type the closure accepts.
    @Test func firstOptionOfATypeInPlace() throws {
        try with(Fixtures.proxyBindingUpdate) { b in
            let ip = try IPv6Packet(checking: b)
            let mh = try MobilityHeaderPacket(checking: ip.payload)
            guard case .bindingUpdate(let pbu) = try MobilityMessage.parse(mh, source: ip.source, destination: ip.destination) else {
                Issue.record("not a BU")
                return
            }
            let linkLayer = pbu.options.first(ofType: MobilityOptionType.mobileNodeLinkLayerIdentifier) { Array($0) }
            #expect(linkLayer == [0x00, 0x00, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x01])
            #expect(pbu.options.first(ofType: 200) { Array($0) } == [0xde, 0xad], "the last option")
            #expect(pbu.options.first(ofType: 30) { Array($0) } == nil, "absent")
            #expect(pbu.options.first(ofType: MobilityOptionType.mobileNodeLinkLayerIdentifier) { $0.count == 6 ? 1 : nil } == nil,
                    "none the closure accepts")
            #expect(MobilityOptions.built([.handoffIndicator(2)]).first(ofType: MobilityOptionType.handoffIndicator) { _ in 1 } == nil,
                    "built options are not bytes")
        }
    }

    @Test func read() throws {
        try with(Fixtures.proxyBindingUpdate) { b in
            let ip = try IPv6Packet(checking: b)
            let mh = try MobilityHeaderPacket(checking: ip.payload)
            #expect(mh.payloadProto == IPProtocol.noNextHeader)
            #expect(mh.type == MobilityHeaderType.bindingUpdate)
            #expect(mh.length == ip.payload.count)
            #expect(mh.length % 8 == 0)
            #expect(mh.checksumIsValid(source: ip.source, destination: ip.destination))
        }
    }

    @Test func flagsAreTheRFC8885Values() throws {
        #expect(BindingUpdateFlags.distributedGateway.rawValue == 0x0010)
        #expect(BindingAckFlags.distributedGateway.rawValue == 0x02)
        guard case .bindingUpdate(let bu) = try parseMH(Fixtures.proxyBindingUpdate) else { Issue.record(); return }
        #expect(bu.flags.rawValue == 0xC210)
        #expect(bu.lifetimeSeconds == 3600)
        guard case .bindingAcknowledgement(let ba) = try parseMH(Fixtures.proxyBindingAck) else { Issue.record(); return }
        #expect(ba.flags.rawValue == 0x22)
    }

    @Test(arguments: 0..<cases.count)
    func parse(_ i: Int) throws {
        let (name, fixture, message) = Self.cases[i]
        #expect(try parseMH(fixture) == message, "\(name)")
    }

    /// Built from values, our Pad1/PadN placement matches the fixture's.
    @Test(arguments: 0..<cases.count)
    func build(_ i: Int) throws {
        let (name, fixture, message) = Self.cases[i]
        #expect(try emitMH(message, like: fixture) == upper(fixture), "\(name)")
    }

    @Test(arguments: 0..<cases.count)
    func emit(_ i: Int) throws {
        let (name, fixture, _) = Self.cases[i]
        #expect(try emitMH(try parseMH(fixture), like: fixture) == upper(fixture), "\(name)")
    }

    @Test(arguments: 0..<cases.count)
    func truncation(_ i: Int) throws {
        let (name, fixture, _) = Self.cases[i]
        let message = upper(fixture)
        for n in 0..<message.count {
            #expect(throws: WireError.truncated, "\(name) cut to \(n)") {
                try with(Array(message[..<n])) { _ = try MobilityHeaderPacket(checking: $0) }
            }
        }
    }

    @Test func optionsAreAligned() throws {
        // Each option sits at its x n + y offset from the start of the header.
        let message = upper(Fixtures.proxyBindingUpdate)
        var offset = 12
        var seen = 0
        while offset < message.count {
            let type = message[offset]
            if type == 0 { offset += 1; continue }
            let length = Int(message[offset + 1])
            if type != 1 {
                let option = try with(Array(message[offset...])) { try MobilityOption.parse($0).0 }
                let a = option.alignment
                #expect(offset % a.x == a.y, "option \(type) at \(offset)")
                seen += 1
            }
            offset += 2 + length
        }
        #expect(seen == 14)
    }

    /// RFC 4285: the authentication option ends the header; its authenticator
    /// covers source, destination and the header up to the SPI with the
    /// checksum zero. Python's HMAC made the fixture's; swift-crypto over our
    /// `authenticatedData` must agree, and sealing a message emitted with a
    /// zero authenticator must give the fixture again.
    @Test func authenticationTrailer() throws {
        let key: [UInt8] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        try with(Fixtures.proxyBindingUpdateAuthenticated) { b in
            let ip = try IPv6Packet(checking: b)
            let mh = try MobilityHeaderPacket(checking: ip.payload)
            let trailer = try #require(MobilityAuthenticationTrailer(mh))
            #expect(trailer == MobilityAuthenticationTrailer(subtype: MobilityAuthenticationSubtype.mnHA, spi: 256, dataOffset: 64))
            let data = trailer.authenticatedData(of: mh.bytes, source: ip.source, destination: ip.destination)
            #expect(data.count == 32 + 64 && data[36] == 0 && data[37] == 0, "checksum taken as zero")
            let mac = Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
            #expect(mac == Self.authenticator)
            #expect(Array(mh.bytes[64...]) == Self.authenticator)
        }
        // Emitted with a zero authenticator, then sealed.
        guard case .bindingUpdate(var bu) = Self.pbuAuthenticated else { Issue.record(); return }
        var options = Array(bu.options)
        options[options.count - 1] = .authentication(subtype: 1, spi: 256, data: .owned([UInt8](repeating: 0, count: 32)))
        bu.options = .built(options)
        var bytes = try emitMH(.bindingUpdate(bu), like: Fixtures.proxyBindingUpdateAuthenticated)
        try bytes.withUnsafeMutableBytes { b in
            try MobilityAuthenticationTrailer.seal(b, source: anchor2, destination: anchor1, authenticator: Self.authenticator)
        }
        #expect(bytes == upper(Fixtures.proxyBindingUpdateAuthenticated))
    }

    /// No trailer where the authentication option is missing, not last, or
    /// followed by padding.
    @Test func authenticationMustEndTheHeader() throws {
        func trailer(_ options: [MobilityOption]) throws -> MobilityAuthenticationTrailer? {
            let bytes = try emitted { try MobilityMessage.bindingUpdate(BindingUpdate(sequence: 1, flags: [.proxyRegistration], lifetime: 1,
                                                                                      options: .built(options))).emit(into: $0, source: anchor2, destination: anchor1) }
            return try with(bytes) { MobilityAuthenticationTrailer(try MobilityHeaderPacket(checking: $0)) }
        }
        let auth = MobilityOption.authentication(subtype: 1, spi: 300, data: .owned([UInt8](repeating: 7, count: 32)))
        #expect(try trailer([.handoffIndicator(3), auth])?.spi == 300)
        #expect(try trailer([.handoffIndicator(3)]) == nil)
        #expect(try trailer([auth, .handoffIndicator(3)]) == nil, "not last")
        #expect(try trailer([.authentication(subtype: 1, spi: 300, data: .owned([1, 2, 3]))]) == nil, "padding after it")
    }

    /// Each known option's data length, checked once for all options of a
    /// message before any is read; what passes parses. 129 is no prefix length.
    @Test func optionLengthsAreCheckedPerType() throws {
        typealias T = MobilityOptionType
        let rules: [(type: UInt8, accepts: (Int) -> Bool)] = [
            (T.mobileNodeIdentifier, { $0 >= 2 }), (T.authentication, { $0 >= 5 }),
            (T.messageIdentifier, { $0 == 8 }), (T.timestamp, { $0 == 8 }),
            (T.homeNetworkPrefix, { $0 == 18 }), (T.anchoredPrefix, { $0 == 18 }), (T.localPrefix, { $0 == 18 }),
            (T.handoffIndicator, { $0 == 2 }), (T.accessTechnologyType, { $0 == 2 }),
            (T.mobileNodeLinkLayerIdentifier, { $0 >= 3 }), (T.dlifLinkLayerAddress, { (3...18).contains($0) }),
            (T.linkLocalAddress, { $0 == 16 }), (T.servingMAAR, { $0 == 16 }), (T.dlifLinkLocalAddress, { $0 == 16 }),
            (T.previousMAAR, { $0 == 34 }), (99, { _ in true }),
        ]
        for (type, accepts) in rules {
            for length in 0...40 {
                let option = [type, UInt8(length)] + [UInt8](repeating: 0, count: length)
                if accepts(length) {
                    let parsed = try with(option) { b in Array(try MobilityOptions(checking: b)).count }
                    #expect(parsed == 1, "type \(type), length \(length)")
                } else {
                    #expect(throws: WireError.badOptionLength, "type \(type), length \(length)") {
                        try with(option) { _ = try MobilityOptions(checking: $0) }
                    }
                }
            }
        }
        for type in [T.homeNetworkPrefix, T.anchoredPrefix, T.localPrefix, T.previousMAAR] {
            let length = type == T.previousMAAR ? 34 : 18
            for plen: UInt8 in [128, 129, 255] {
                let option = [type, UInt8(length), 0, plen] + [UInt8](repeating: 0, count: length - 2)
                if plen <= 128 {
                    #expect(try with(option) { Array(try MobilityOptions(checking: $0)).count } == 1)
                } else {
                    #expect(throws: WireError.badPrefixLength) { try with(option) { _ = try MobilityOptions(checking: $0) } }
                }
            }
        }
    }

    @Test func optionOverrunIsAnError() {
        // PBU fixed part, then an HNP option claiming 40 octets in an 8-octet remainder.
        var message: [UInt8] = [59, 1, 5, 0, 0, 0, 0, 1, 0x02, 0x10, 0, 10, 22, 40, 0, 64]
        #expect(throws: WireError.optionOverrun) {
            try with(message) { _ = try MobilityMessage.parse(unverified: try MobilityHeaderPacket(checking: $0)) }
        }
        message[13] = 17  // wrong length for a known option
        message += [UInt8](repeating: 0, count: 16)
        message[1] = 3
        #expect(throws: WireError.badOptionLength) {
            try with(message) { _ = try MobilityMessage.parse(unverified: try MobilityHeaderPacket(checking: $0)) }
        }
    }

    @Test func badChecksum() throws {
        var bytes = Fixtures.proxyBindingAck
        bytes[bytes.count - 1] ^= 0x01
        #expect(throws: WireError.badChecksum) { _ = try parseMH(bytes) }
    }

    @Test func otherTypesKeptAsBytes() throws {
        let message = MobilityMessage.other(type: MobilityHeaderType.bindingError, data: .owned([1, 0] + [UInt8](repeating: 0, count: 16)))
        let bytes = try emitted { try message.emit(into: $0, source: anchor1, destination: anchor2) }
        #expect(bytes.count == 24)
        let parsed = try with(bytes) { b in
            try MobilityMessage.parse(try MobilityHeaderPacket(checking: b), source: anchor1, destination: anchor2)
        }
        guard case .other(let t, let d) = parsed else { Issue.record(); return }
        #expect(t == MobilityHeaderType.bindingError)
        #expect(Array(d.prefix(18)) == [1, 0] + [UInt8](repeating: 0, count: 16))
    }

    /// Written in one pass (the length known at the end): a buffer of
    /// exactly the message's length is enough, any shorter one is refused
    /// as too small, and a message past 2,048 octets as too long.
    @Test func emitNeedsRoomForTheWholeMessageOnly() throws {
        let message = Self.pbu
        let whole = try emitMH(message, like: Fixtures.proxyBindingUpdate)
        for n in 0...whole.count {
            var room = [UInt8](repeating: 0, count: n)
            let source = anchor2, destination = anchor1
            if n < whole.count {
                #expect(throws: WireError.bufferTooSmall, "room for \(n)") {
                    try room.withUnsafeMutableBytes { _ = try message.emit(into: $0, source: source, destination: destination) }
                }
            } else {
                let written = try room.withUnsafeMutableBytes { try message.emit(into: $0, source: source, destination: destination) }
                #expect(written == n && room[1] == UInt8(n / 8 - 1))
            }
        }
        let long = MobilityMessage.bindingUpdate(BindingUpdate(sequence: 1, flags: [.proxyRegistration], lifetime: 10,
            options: .built((0..<120).map { .homeNetworkPrefix(IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0db8_0000_0000 | UInt64($0) << 16, low: 0), length: 64)) })))
        #expect(throws: WireError.badLength) { _ = try emitted { try long.emit(into: $0, source: anchor2, destination: anchor1) } }
        let short = MobilityMessage.other(type: MobilityHeaderType.bindingError, data: .owned([1, 0]))
        let eight = try emitted(8) { try short.emit(into: $0, source: anchor1, destination: anchor2) }
        #expect(eight.count == 8 && eight[1] == 0)
    }

    @Test func deRegistrationHasNoOptionsAndIsPaddedTo8() throws {
        let message = MobilityMessage.bindingUpdate(BindingUpdate(sequence: 9, flags: [.proxyRegistration], lifetime: 0,
                                                                  options: .none))
        let bytes = try emitted { try message.emit(into: $0, source: anchor2, destination: anchor1) }
        #expect(bytes.count == 16)
        #expect(Array(bytes[12...]) == [1, 2, 0, 0])  // PadN of 4
    }
}
