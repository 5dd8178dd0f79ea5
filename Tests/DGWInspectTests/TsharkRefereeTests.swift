import DGWPorts
import DGWTestSupport
import DGWWire
import Foundation
import Testing

/// Every message type the project emits, built with the wire layer,
/// written to a pcap and judged by tshark: no malformed packet, no warning
/// or error expert info, checksums good. tshark 4.0 does not verify
/// Mobility Header checksums, so those are checked here against an
/// independent naive sum of the bytes tshark shows.
@Suite struct TsharkRefereeTests {
    static let gw1 = MACAddress("02:00:00:00:00:01")!, gw2 = MACAddress("02:00:00:00:00:02")!
    static let mn = MACAddress("02:aa:00:00:00:01")!, dlif = MACAddress("02:d1:00:00:01:01")!
    static let a1 = IPv6Address("2001:db8:ffff::1")!, a2 = IPv6Address("2001:db8:ffff::2")!
    static let mnAddr = IPv6Address("2001:db8:1:1::100")!, cn = IPv6Address("2001:db8:cccc::1")!
    static let mnLL = IPv6Address("fe80::aa:ff:fe00:1")!, dlifLL = IPv6Address("fe80::d1:1")!
    static let hnp = IPv6Prefix("2001:db8:1:1::/64")!, lipa = IPv6Prefix("2001:db8:aaaa::/48")!

    /// Ethernet + IPv6 + whatever `upper` writes (it returns its length).
    static func frame(_ src: MACAddress, _ dst: MACAddress, vlan: VLANTag? = nil, from s: IPv6Address,
                      to d: IPv6Address, nextHeader: UInt8, hopLimit: UInt8 = 64,
                      _ upper: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 2048)
        let n = try bytes.withUnsafeMutableBytes { b in
            let eth = try EthernetHeader(destination: dst, source: src, outerTag: vlan, etherType: EtherType.ipv6)
                .emit(into: b)
            let ip = UnsafeMutableRawBufferPointer(rebasing: b[eth...])
            let length = try upper(UnsafeMutableRawBufferPointer(rebasing: ip[40...]))
            try IPv6Header(payloadLength: length, nextHeader: nextHeader, hopLimit: hopLimit, source: s, destination: d)
                .emit(into: ip)
            return eth + 40 + length
        }
        return Array(bytes[..<n])
    }

    static func icmp(_ m: ICMPv6Message, _ src: MACAddress, _ dst: MACAddress, from s: IPv6Address, to d: IPv6Address,
                     hopLimit: UInt8 = 255) throws -> [UInt8] {
        try frame(src, dst, from: s, to: d, nextHeader: IPProtocol.icmpv6, hopLimit: hopLimit) {
            try m.emit(into: $0, source: s, destination: d)
        }
    }

    static func mh(_ m: MobilityMessage, from s: IPv6Address, to d: IPv6Address) throws -> [UInt8] {
        try frame(s == a1 ? gw1 : gw2, s == a1 ? gw2 : gw1, from: s, to: d, nextHeader: IPProtocol.mobility) {
            try m.emit(into: $0, source: s, destination: d)
        }
    }

    static func udpPacket(from s: IPv6Address, to d: IPv6Address, hopLimit: UInt8 = 64) throws -> [UInt8] {
        Array(try frame(mn, dlif, from: s, to: d, nextHeader: IPProtocol.udp, hopLimit: hopLimit) { b in
            try Array("dgw test payload".utf8).withUnsafeBytes {
                try UDPHeader(sourcePort: 40000, destinationPort: 9).emit(payload: $0, into: b, source: s, destination: d)
            }
        }[14...])
    }

    /// Ethernet, then `inner` encapsulated by the wire layer's RFC 2473 code.
    static func tunnelFrame(_ inner: [UInt8]) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 2048)
        let n = try bytes.withUnsafeMutableBytes { b in
            let eth = try EthernetHeader(destination: gw2, source: gw1, etherType: EtherType.ipv6).emit(into: b)
            return try inner.withUnsafeBytes { q in
                eth + (try IPv6Tunnel.encapsulate(try IPv6Packet(checking: q), into: UnsafeMutableRawBufferPointer(rebasing: b[eth...]),
                                                  source: a1, destination: a2))
            }
        }
        return Array(bytes[..<n])
    }

    /// (name, frame, what tshark must see in frame.protocols)
    static func messages() throws -> [(String, [UInt8], String)] {
        let nai = RawBytes.owned(Array("mn1@example.org".utf8))
        let mnSLLA = NDOption.sourceLinkLayerAddress(LinkLayerAddress(mn))
        let quoted = try udpPacket(from: cn, to: mnAddr, hopLimit: 1)
        let big = RawBytes.owned(quoted + [UInt8](repeating: 0x55, count: 1400))
        var list: [(String, [UInt8], String)] = []
        list.append(("udp", try frame(mn, dlif, from: mnAddr, to: cn, nextHeader: IPProtocol.udp) { b in
            try Array("hello".utf8).withUnsafeBytes {
                try UDPHeader(sourcePort: 40000, destinationPort: 9).emit(payload: $0, into: b, source: mnAddr, destination: cn)
            }
        }, "udp"))
        list.append(("tcp", try frame(mn, dlif, vlan: VLANTag(pcp: 3, vid: 42), from: mnAddr, to: cn, nextHeader: IPProtocol.tcp) { b in
            try TCPHeader(sourcePort: 40001, destinationPort: 80, sequence: 1, acknowledgement: 0, flags: TCPHeader.syn,
                          window: 65535).emit(payload: UnsafeRawBufferPointer(start: nil, count: 0), into: b,
                                              source: mnAddr, destination: cn)
        }, "vlan:ethertype:ipv6:tcp"))
        list.append(("extension headers", try frame(mn, dlif, from: mnAddr, to: cn, nextHeader: IPProtocol.hopByHop) { b in
            var o = try IPv6OptionsHeader(nextHeader: IPProtocol.destinationOptions, options: [5, 2, 0, 0]).emit(into: b)
            o += try IPv6OptionsHeader(nextHeader: IPProtocol.udp, options: [1, 2, 0, 0]).emit(into: UnsafeMutableRawBufferPointer(rebasing: b[o...]))
            let s = mnAddr, d = cn
            return o + (try Array("opts".utf8).withUnsafeBytes {
                try UDPHeader(sourcePort: 40000, destinationPort: 9).emit(payload: $0, into: UnsafeMutableRawBufferPointer(rebasing: b[o...]), source: s, destination: d)
            })
        }, "ipv6.hopopts:ipv6.dstopts:udp"))
        list.append(("atomic fragment", try frame(mn, dlif, from: mnAddr, to: cn, nextHeader: IPProtocol.fragment) { b in
            let o = try IPv6FragmentHeader(nextHeader: IPProtocol.udp, offset: 0, moreFragments: false, identification: 0xD6D)
                .emit(into: b)
            let s = mnAddr, d = cn
            return o + (try Array("frag".utf8).withUnsafeBytes {
                try UDPHeader(sourcePort: 40000, destinationPort: 9).emit(payload: $0, into: UnsafeMutableRawBufferPointer(rebasing: b[o...]), source: s, destination: d)
            })
        }, "ipv6.fraghdr:udp"))
        list.append(("tunnel", try tunnelFrame(quoted), "ipv6:ipv6:udp"))
        list.append(("RS", try icmp(.routerSolicitation(options: .built([mnSLLA])), mn, MACAddress(multicast: .allRouters),
                                     from: mnLL, to: .allRouters), "icmpv6"))
        list.append(("RA", try icmp(.routerAdvertisement(RouterAdvertisement(
            curHopLimit: 64, managed: false, otherConfig: true, preference: .low, routerLifetime: 1800,
            reachableTime: 0, retransTimer: 0, options: .built([
                .prefixInformation(PrefixInformation(prefix: hnp, validLifetime: 86400, preferredLifetime: 3600)),
                .prefixInformation(PrefixInformation(prefix: IPv6Prefix("2001:db8:2:3::/64")!, validLifetime: 86400, preferredLifetime: 0)),
                .routeInformation(RouteInformation(prefix: lipa, preference: .medium, lifetime: 1800)),
                .routeInformation(RouteInformation(prefix: IPv6Prefix("::/0")!, preference: .low, lifetime: 60)),
                .mtu(1500),
                .sourceLinkLayerAddress(LinkLayerAddress(dlif)),
            ]))), dlif, MACAddress(multicast: .allNodes), from: dlifLL, to: .allNodes), "icmpv6"))
        list.append(("NS", try icmp(.neighborSolicitation(target: dlifLL, options: .built([mnSLLA])), mn,
                                     MACAddress(multicast: dlifLL.solicitedNodeMulticast), from: mnLL,
                                     to: dlifLL.solicitedNodeMulticast), "icmpv6"))
        list.append(("NA", try icmp(.neighborAdvertisement(NeighborAdvertisement(
            router: true, solicited: true, override: true, target: dlifLL,
            options: .built([.targetLinkLayerAddress(LinkLayerAddress(dlif))]))), dlif, mn, from: dlifLL, to: mnLL), "icmpv6"))
        list.append(("Packet Too Big", try icmp(.packetTooBig(mtu: 1280, invoking: big), gw1, gw2, from: a1, to: cn, hopLimit: 64), "icmpv6"))
        list.append(("Time Exceeded", try icmp(.timeExceeded(code: TimeExceededCode.hopLimit, invoking: .owned(quoted)),
                                                gw1, gw2, from: a1, to: cn, hopLimit: 64), "icmpv6"))
        list.append(("Destination Unreachable", try icmp(.destinationUnreachable(code: UnreachableCode.noRoute, invoking: .owned(quoted)),
                                                          gw1, gw2, from: a1, to: cn, hopLimit: 64), "icmpv6"))
        list.append(("Echo Request", try icmp(.echoRequest(identifier: 1, sequence: 2, data: [1, 2, 3]), gw1, gw2, from: a1, to: a2, hopLimit: 64), "icmpv6"))
        list.append(("Echo Reply", try icmp(.echoReply(identifier: 1, sequence: 2, data: [1, 2, 3]), gw2, gw1, from: a2, to: a1, hopLimit: 64), "icmpv6"))
        list.append(("PBU", try mh(.bindingUpdate(BindingUpdate(
            sequence: 7, flags: [.acknowledge, .homeRegistration, .proxyRegistration, .distributedGateway], lifetime: 900,
            options: .built([
                .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
                .homeNetworkPrefix(hnp), .handoffIndicator(4), .accessTechnologyType(4),
                .mobileNodeLinkLayerIdentifier(.owned(mn.octets)), .linkLocalAddress(mnLL),
                .timestamp(0xED2F_2A00_8000_0000), .anchoredPrefix(hnp), .localPrefix(lipa),
                .previousMAAR(maar: a1, prefix: hnp), .servingMAAR(a2), .dlifLinkLocalAddress(dlifLL),
                .dlifLinkLayerAddress(LinkLayerAddress(dlif)),
            ]))), from: a2, to: a1), "mipv6"))
        list.append(("PBA", try mh(.bindingAcknowledgement(BindingAcknowledgement(
            status: BindingAckStatus.accepted, flags: [.proxyRegistration, .distributedGateway], sequence: 7, lifetime: 900,
            options: .built([
                .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: nai),
                .anchoredPrefix(hnp), .localPrefix(lipa), .dlifLinkLocalAddress(dlifLL),
                .dlifLinkLayerAddress(LinkLayerAddress(dlif)), .timestamp(0xED2F_2A00_8000_0000),
            ]))), from: a1, to: a2), "mipv6"))
        list.append(("PBA rejected", try mh(.bindingAcknowledgement(BindingAcknowledgement(
            status: BindingAckStatus.timestampLowerThanPreviousAccepted, flags: [.proxyRegistration, .distributedGateway],
            sequence: 8, lifetime: 0, options: .built([.mobileNodeIdentifier(subtype: 1, identifier: nai), .homeNetworkPrefix(hnp)]))),
            from: a1, to: a2), "mipv6"))
        list.append(("de-registration", try mh(.bindingUpdate(BindingUpdate(
            sequence: 9, flags: [.acknowledge, .proxyRegistration, .distributedGateway], lifetime: 0,
            options: .built([.mobileNodeIdentifier(subtype: 1, identifier: nai), .homeNetworkPrefix(hnp)]))),
            from: a2, to: a1), "mipv6"))
        list.append(("Binding Error", try mh(.other(type: MobilityHeaderType.bindingError,
                                                    data: .owned([1, 0] + mnAddr.octets)), from: a1, to: a2), "mipv6"))
        return list
    }

    /// An independent RFC 1071 sum over pseudo-header and message.
    static func naiveChecksumIsValid(_ ipPacket: [UInt8]) -> Bool {
        let payload = Array(ipPacket[40...])
        var words: [UInt8] = Array(ipPacket[8..<40])
        words += [UInt8(payload.count >> 24 & 0xFF), UInt8(payload.count >> 16 & 0xFF), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF)]
        words += [0, 0, 0, ipPacket[6]] + payload
        if words.count % 2 == 1 { words.append(0) }
        var sum: UInt32 = 0
        for i in stride(from: 0, to: words.count, by: 2) {
            sum += UInt32(words[i]) << 8 | UInt32(words[i + 1])
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return sum == 0xFFFF
    }

    @Test func tsharkAcceptsEverythingWeEmit() throws {
        let messages = try Self.messages()
        let path = temporaryPath("referee.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        for (i, m) in messages.enumerated() { try writer.write(m.1, seconds: 1_764_000_000 + i, nanoseconds: 0) }
        try writer.close()

        let rows = try tsharkFields(path, ["frame.protocols", "_ws.malformed", "_ws.expert.severity", "_ws.expert.message",
                                           "icmpv6.checksum.status", "udp.checksum.status", "tcp.checksum.status",
                                           "mip6.bu.seqnr", "mip6.ba.status", "mip6.mnid.identifier"],
                                   options: ["-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"])
        try #require(rows.count == messages.count)
        for (i, (name, bytes, protocols)) in messages.enumerated() {
            let row = rows[i]
            #expect(row["frame.protocols"]?.first?.contains(protocols) == true, "\(name): \(row["frame.protocols"] ?? [])")
            #expect(row["_ws.malformed"] == nil, "\(name) is malformed for tshark")
            // Severity: 0x00400000 note, 0x00600000 warning, 0x00800000 error.
            let severe = (row["_ws.expert.severity"] ?? []).compactMap { Int($0) }.filter { $0 >= 0x0060_0000 }
            #expect(severe.isEmpty, "\(name): \(row["_ws.expert.message"] ?? [])")
            for key in ["icmpv6.checksum.status", "udp.checksum.status", "tcp.checksum.status"] {
                // Status 1 is "Good" (0 bad, 2 unverified); quoted packets inside errors are not verified.
                if let status = row[key]?.first { #expect(status == "1", "\(name): \(key) \(status)") }
            }
            if protocols == "mipv6" {
                #expect(Self.naiveChecksumIsValid(Array(bytes[14...])), "\(name): Mobility Header checksum")
            }
        }
        // tshark read the identifiers we wrote.
        #expect(rows[14]["mip6.bu.seqnr"] == ["7"])
        #expect(rows[14]["mip6.mnid.identifier"] == ["mn1@example.org"])
        #expect(rows[16]["mip6.ba.status"] == ["157"])
    }

    /// Our status codes mean to tshark what their names say (RFC 5213 8.9,
    /// RFC 6275): one PBA per code, each status read back by name.
    @Test func bindingAckStatusesAreTheRegistrys() throws {
        guard let tshark = which("tshark") else { throw ToolMissing(tool: "tshark") }
        let codes: [(UInt8, String)] = [
            (BindingAckStatus.sequenceNumberOutOfWindow, "Sequence number out of window"),
            (BindingAckStatus.proxyRegistrationNotEnabled, "PROXY_REG_NOT_ENABLED"),
            (BindingAckStatus.notLMAForThisMobileNode, "NOT_LMA_FOR_THIS_MOBILE_NODE"),
            (BindingAckStatus.magNotAuthorizedForProxyRegistration, "MAG_NOT_AUTHORIZED_FOR_PROXY_REG"),
            (BindingAckStatus.notAuthorizedForHomeNetworkPrefix, "NOT_AUTHORIZED_FOR_HOME_NETWORK_PREFIX"),
            (BindingAckStatus.timestampMismatch, "TIMESTAMP_MISMATCH"),
            (BindingAckStatus.timestampLowerThanPreviousAccepted, "TIMESTAMP_LOWER_THAN_PREV_ACCEPTED"),
            (BindingAckStatus.missingHomeNetworkPrefixOption, "MISSING_HOME_NETWORK_PREFIX_OPTION"),
            (BindingAckStatus.bcePbuPrefixSetDoNotMatch, "BCE_PBU_PREFIX_SET_DO_NOT_MATCH"),
            (BindingAckStatus.missingMNIdentifierOption, "MISSING_MN_IDENTIFIER_OPTION"),
            (BindingAckStatus.missingHandoffIndicatorOption, "MISSING_HANDOFF_INDICATOR_OPTION"),
            (BindingAckStatus.missingAccessTechTypeOption, "MISSING_ACCESS_TECH_TYPE_OPTION"),
        ]
        let path = temporaryPath("referee-status.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        for (i, (code, _)) in codes.enumerated() {
            let pba = MobilityMessage.bindingAcknowledgement(BindingAcknowledgement(
                status: code, flags: [.proxyRegistration], sequence: UInt16(i), lifetime: 0, options: .none))
            try writer.write(try Self.mh(pba, from: Self.a1, to: Self.a2), seconds: i, nanoseconds: 0)
        }
        try writer.close()
        let r = try runProcess(tshark, ["-n", "-V", "-r", path])
        #expect(r.status == 0)
        let statuses = r.stdout.split(separator: "\n").filter { $0.contains("Status: ") && $0.contains("(") }
        #expect(statuses.count == codes.count, "\(statuses)")
        for ((code, name), line) in zip(codes, statuses) {
            #expect(line.contains("\(name) (\(code))"), "\(line)")
        }
    }

    @Test func verboseDissectionHasNoMalformedText() throws {
        guard let tshark = which("tshark") else { throw ToolMissing(tool: "tshark") }
        let path = temporaryPath("referee-v.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        for (i, m) in try Self.messages().enumerated() { try writer.write(m.1, seconds: i, nanoseconds: 0) }
        try writer.close()
        let r = try runProcess(tshark, ["-n", "-V", "-r", path])
        #expect(r.status == 0)
        #expect(!r.stdout.contains("Malformed"))
        #expect(!r.stdout.contains("[Severity level: Error]"))
        #expect(!r.stdout.contains("[Severity level: Warning]"))
        #expect(!r.stdout.contains("Checksum Status: Bad"))
    }
}

