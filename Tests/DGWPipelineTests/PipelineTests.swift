import DGWPipeline
import DGWWire
import Foundation
import Synchronization
import Testing

typealias S = Scenario

/// Runs frames through a fresh pipeline, one batch; returns what left, by
/// port, in order (forwarded then generated), the verdicts and the counters.
struct Run {
    var out: [(GatewayPort, [UInt8])] = []
    var verdicts: [Verdict] = []
    /// Whether each frame was handed to the control plane (a held one too).
    var punted: [Bool] = []
    var counters = Counters()

    init(_ frames: [(GatewayPort, [UInt8])], configuration: PipelineConfiguration = S.configuration, poolSize: Int = 256) throws {
        let pool = PacketPool(count: poolSize)
        try self.init(frames, pipeline: try Pipeline(configuration, pool: pool), pool: pool)
    }

    /// Through `pipeline`, whose packets come from `pool`.
    init(_ frames: [(GatewayPort, [UInt8])], pipeline: Pipeline, pool: PacketPool) throws {
        var batch: [Packet] = []
        for (i, (port, bytes)) in frames.enumerated() {
            let p = bytes.withUnsafeBytes { pool.load($0, port: port, time: Int64(i) * 1_000_000) }
            batch.append(try #require(p))
        }
        var generated: [Packet] = []
        batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
        punted = batch.map(\.verdict.isPunted)
        // Frames held for a binding: decided once their time is up (no
        // binding comes here), in their places.
        let retried = UnsafeMutableBufferPointer<Packet>.allocate(capacity: batch.count)
        defer { retried.deallocate() }
        let n = pipeline.processHeld(now: .max, into: retried, generated: &generated)
        for (k, i) in batch.indices.filter({ batch[$0].verdict.isHeld }).enumerated() where k < n { batch[i] = retried[k] }
        for p in batch + generated {
            if case .forward(let port) = p.verdict { out.append((port, Array(pool.bytes(p)))) }
        }
        verdicts = batch.map(\.verdict)
        counters = pipeline.totals
    }
}

/// The parsed layers of an output frame.
struct Seen {
    var eth: EthernetHeader
    var ip: IPv6Header
    var inner: IPv6Header?
    var icmp: ICMPv6Message?
    var bytes: [UInt8]

    init(_ frame: [UInt8]) throws {
        bytes = frame
        let (eth, ip, inner) = try frame.withUnsafeBytes { b -> (EthernetHeader, IPv6Header, IPv6Header?) in
            let e = try EthernetFrame(checking: b)
            let p = try IPv6Packet(checking: e.payload)
            return (EthernetHeader(e), IPv6Header(p), try IPv6Tunnel.decapsulate(p).map(IPv6Header.init))
        }
        self.eth = eth
        self.ip = ip
        self.inner = inner
        icmp = nil
        if ip.nextHeader == IPProtocol.icmpv6 {
            icmp = try frame.withUnsafeBytes { b in
                let p = try IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: b[14...]))
                return try ICMPv6Message.parse(try ICMPv6Packet(checking: p.payload), source: p.source, destination: p.destination).owned()
            }
        }
    }
}

extension ICMPv6Message {
    /// A copy that does not borrow the frame it was parsed from.
    func owned() -> ICMPv6Message {
        switch self {
        case .packetTooBig(let m, let i): .packetTooBig(mtu: m, invoking: i.owned())
        case .timeExceeded(let c, let i): .timeExceeded(code: c, invoking: i.owned())
        case .destinationUnreachable(let c, let i): .destinationUnreachable(code: c, invoking: i.owned())
        case .echoReply(let id, let s, let d): .echoReply(identifier: id, sequence: s, data: d.owned())
        default: self
        }
    }
}

@Suite struct ForwardingTests {
    @Test func uplinkAnchoredHereGoesNativeToTheCore() throws {
        let frame = S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn)
        let r = try Run([(.access, frame)])
        try #require(r.out.count == 1)
        #expect(r.out[0].0 == .core)
        let s = try Seen(r.out[0].1)
        #expect(s.eth.source == S.coreMAC && s.eth.destination == S.routerMAC)
        #expect(s.ip.source == S.h1 && s.ip.destination == S.cn && s.ip.hopLimit == 63)
        #expect(Array(s.bytes[22...]) == Array(frame[22...]))  // addresses and payload untouched
        #expect(r.counters[.uplinkNative] == 1)
    }

    @Test func uplinkAnchoredElsewhereIsTunnelledToTheAnchor() throws {
        let frame = S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn)
        let r = try Run([(.access, frame)])
        try #require(r.out.count == 1)
        let s = try Seen(r.out[0].1)
        #expect(r.out[0].0 == .core)
        #expect(s.eth.destination == S.a2MAC && s.eth.source == S.coreMAC)
        #expect(s.ip.source == S.a1 && s.ip.destination == S.a2 && s.ip.nextHeader == IPProtocol.ipv6 && s.ip.hopLimit == 64)
        #expect(s.ip.payloadLength == frame.count - 14)
        #expect(s.inner?.source == S.h3 && s.inner?.destination == S.cn && s.inner?.hopLimit == 63)
        #expect(r.counters[.uplinkEncapsulated] == 1)
    }

    @Test func downlinkToAnMNAttachedHereLeavesFromItsDLIF() throws {
        let r = try Run([(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1, hopLimit: 50))])
        try #require(r.out.count == 1)
        let s = try Seen(r.out[0].1)
        #expect(r.out[0].0 == .access)
        #expect(s.eth.source == S.dlif1 && s.eth.destination == S.mn1)
        #expect(s.ip.destination == S.h1 && s.ip.hopLimit == 49)
        #expect(r.counters[.downlinkDelivered] == 1)
    }

    @Test func downlinkToAnMNServedElsewhereIsTunnelledToItsServingGateway() throws {
        let r = try Run([(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h2))])
        let s = try Seen(try #require(r.out.first).1)
        #expect(s.ip.source == S.a1 && s.ip.destination == S.a2 && s.eth.destination == S.a2MAC)
        #expect(s.inner?.destination == S.h2 && s.inner?.hopLimit == 63)
        #expect(r.counters[.downlinkEncapsulated] == 1)
    }

    /// The fast path writes the outer header itself: byte for byte what the
    /// wire layer's RFC 2473 encapsulation makes (traffic class and flow
    /// label of the inner header, hop limit 64), behind an Ethernet header
    /// to the peer, both ways into a tunnel.
    @Test func tunnelledFramesMatchTheWireLayersEncapsulation() throws {
        for (port, frame, expectedAction) in [
            (GatewayPort.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h2, hopLimit: 17), Action.downlinkEncapsulated),
            (.access, S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, hopLimit: 9), .uplinkEncapsulated),
        ] {
            var marked = frame
            marked.replaceSubrange(14..<18, with: [0x6B, 0x81, 0x23, 0x45])  // class 0xB8, flow label 0x12345
            let r = try Run([(port, marked)])
            #expect(r.counters[expectedAction] == 1)
            var inner = Array(marked[14...])
            inner[7] -= 1
            var expected = [UInt8](repeating: 0, count: 14 + 40 + inner.count)
            expected.replaceSubrange(0..<6, with: S.a2MAC.octets)
            expected.replaceSubrange(6..<12, with: S.coreMAC.octets)
            expected.replaceSubrange(12..<14, with: [0x86, 0xDD])
            let n = try inner.withUnsafeBytes { i in
                try expected.withUnsafeMutableBytes { out in
                    try IPv6Tunnel.encapsulate(try IPv6Packet(checking: i), into: UnsafeMutableRawBufferPointer(rebasing: out[14...]),
                                               source: S.a1, destination: S.a2)
                }
            }
            #expect(n == 40 + inner.count)
            #expect(r.out.count == 1 && r.out.first?.0 == .core)
            #expect(r.out.first?.1 == expected)
        }
    }

    @Test func tunnelledUplinkFromTheServingGatewayIsDecapsulatedToTheCore() throws {
        let inner = S.ip(S.udp(S.mn2, S.dlif1, from: S.h2, to: S.cn, hopLimit: 63))
        let r = try Run([(.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, inner)))])
        try #require(r.out.count == 1)
        let s = try Seen(r.out[0].1)
        #expect(r.out[0].0 == .core && s.inner == nil)
        #expect(s.eth.destination == S.routerMAC && s.eth.source == S.coreMAC)
        #expect(s.ip.source == S.h2 && s.ip.destination == S.cn && s.ip.hopLimit == 62)
        #expect(s.bytes.count == 14 + inner.count)
        #expect(r.counters[.uplinkDecapsulated] == 1)
    }

    @Test func tunnelledDownlinkFromTheAnchorIsDecapsulatedToTheMN() throws {
        let inner = S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h3, hopLimit: 40))
        let r = try Run([(.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, inner)))])
        let s = try Seen(try #require(r.out.first).1)
        #expect(r.out[0].0 == .access)
        #expect(s.eth.source == S.dlif3 && s.eth.destination == S.mn3)
        #expect(s.ip.destination == S.h3 && s.ip.hopLimit == 39)
        #expect(r.counters[.downlinkDecapsulated] == 1)
    }
}

extension ForwardingTests {
    /// A router routes between its own hosts: an MN's packet for another
    /// host attached here leaves on the access link from that host's DLIF,
    /// one for a prefix served by a peer goes into that tunnel.
    @Test func uplinkForAHostHereOrServedByAPeerIsRoutedByDestination() throws {
        let r = try Run([(.access, S.udp(S.mn1, S.dlif1, from: S.h1, to: S.h3)), (.access, S.udp(S.mn1, S.dlif1, from: S.h1, to: S.h2))])
        try #require(r.out.count == 2)
        let here = try Seen(r.out[0].1), there = try Seen(r.out[1].1)
        #expect(r.out[0].0 == .access && here.eth.source == S.dlif3 && here.eth.destination == S.mn3)
        #expect(here.ip.source == S.h1 && here.ip.destination == S.h3 && here.ip.hopLimit == 63)
        #expect(r.out[1].0 == .core && there.eth.destination == S.a2MAC && there.ip.destination == S.a2)
        #expect(there.inner?.source == S.h1 && there.inner?.destination == S.h2 && there.inner?.hopLimit == 63)
        #expect(r.counters[.uplinkDelivered] == 1 && r.counters[.uplinkEncapsulated] == 1)
    }

    /// LIPA at the anchor: a peer's MN reaches this gateway's local network
    /// through the tunnel from any of its prefixes (one anchored at the peer
    /// here); the host there is bound on the access link. Not from a
    /// gateway that is no peer, and not for anything outside the network.
    @Test func tunnelledTrafficForALocalNetworkIsAcceptedFromPeersOnly() throws {
        let lipa = IPv6Prefix("2001:db8:aaaa::/48")!, hostMAC = MACAddress("02:bb:00:00:00:01")!
        let host = IPv6Address("2001:db8:aaaa:1::10")!, fromPeer = IPv6Address("2001:db8:2:9::1")!
        var c = S.configuration
        c.localNetworks = [lipa]
        c.peers = [S.a2]
        c.bindings.append(BindingEntry(mn: hostMAC, prefix: IPv6Prefix("2001:db8:aaaa:1::/64")!, anchor: nil, serving: nil))
        c.neighbors.append((S.a3, S.a3MAC))
        let inner = S.ip(S.udp(S.mn1, S.dlif1, from: fromPeer, to: host, hopLimit: 63))
        let outside = S.ip(S.udp(S.mn1, S.dlif1, from: fromPeer, to: S.cn, hopLimit: 63))
        let r = try Run([(.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, inner))),
                         (.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, inner))),
                         (.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, outside)))], configuration: c)
        #expect(r.verdicts == [.forward(.access), .drop(.decapsulationRefused), .drop(.decapsulationRefused)], "\(r.verdicts)")
        let s = try Seen(try #require(r.out.first).1)
        #expect(s.eth.destination == hostMAC && s.eth.source == logicalMAC(anchor: S.a1, mn: hostMAC) && s.inner == nil)
        #expect(s.ip.source == fromPeer && s.ip.destination == host && s.ip.hopLimit == 62)
        #expect(r.counters[.uplinkDecapsulated] == 1)
    }

    /// Another anchor's local network, routed for the MNs served here: their
    /// uplink for it goes into the anchor's tunnel whatever its source
    /// prefix; the core gets no route to it. Routes are counted per session.
    @Test func anotherAnchorsLocalNetworkIsRoutedIntoItsTunnel() throws {
        let lipa = IPv6Prefix("2001:db8:bbbb::/48")!, host = IPv6Address("2001:db8:bbbb::10")!
        let tables = try GatewayTables(S.configuration), pool = PacketPool(count: 64)
        let pipeline = Pipeline(pool: pool, tables: tables)
        func run(_ port: GatewayPort, _ frame: [UInt8]) throws -> (Verdict, Seen?) {
            var batch = [try #require(frame.withUnsafeBytes { pool.load($0, port: port, time: 1) })]
            var generated: [Packet] = []
            batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
            defer { for p in batch + generated { pool.release(p.slot) } }
            return (batch[0].verdict, batch[0].verdict == .forward(.core) ? try Seen(Array(pool.bytes(batch[0]))) : nil)
        }
        let up = S.udp(S.mn1, S.dlif1, from: S.h1, to: host), down = S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: host)
        #expect(try run(.access, up).1?.eth.destination == S.routerMAC, "not routed yet: native")
        try tables.route(localNetwork: lipa, anchor: S.a2)
        try tables.route(localNetwork: lipa, anchor: S.a2)
        #expect(throws: GatewayTablesError.prefixInUse(lipa)) { try tables.route(localNetwork: lipa, anchor: S.a3) }
        #expect(throws: GatewayTablesError.prefixInUse(lipa)) {
            try tables.install(BindingEntry(mn: S.mn1, prefix: lipa, anchor: nil, serving: nil))
        }
        let tunnelled = try run(.access, up)
        #expect(tunnelled.0 == .forward(.core) && tunnelled.1?.ip.destination == S.a2 && tunnelled.1?.inner?.destination == host)
        #expect(try run(.core, down).0 == .drop(.noRoute))
        #expect(tables.localNetworkRoutes.count == 1 && tables.localNetworkRoutes.first?.anchor == S.a2)
        tables.unroute(localNetwork: lipa, anchor: S.a2)
        #expect(try run(.access, up).1?.inner != nil, "one session still wants it")
        tables.unroute(localNetwork: lipa, anchor: S.a2)
        let native = try run(.access, up)
        #expect(native.0 == .forward(.core) && native.1?.inner == nil && native.1?.eth.destination == S.routerMAC)
        #expect(tables.localNetworkRoutes.isEmpty)
    }
}

@Suite struct DropTests {
    func drop(_ port: GatewayPort, _ frame: [UInt8], _ reason: DropReason,
              configuration: PipelineConfiguration = S.configuration) throws -> Run {
        let r = try Run([(port, frame)], configuration: configuration)
        #expect(r.verdicts == [.drop(reason)], "\(r.verdicts)")
        #expect(r.counters[reason] == 1)
        return r
    }

    @Test func malformedNotIPv6AndVLAN() throws {
        let good = S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn)
        _ = try drop(.access, Array(good[..<30]), .malformed)
        _ = try drop(.access, Array(good[..<10]), .malformed)
        let toCore = S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1)
        _ = try drop(.core, Array(toCore[..<40]), .malformed)
        _ = try drop(.access, S.ethernet(S.mn1, .broadcast, [UInt8](repeating: 0, count: 28), type: EtherType.arp), .notIPv6)
        _ = try drop(.access, S.ethernet(S.mn1, S.dlif1, S.ip(good), vlan: VLANTag(vid: 7)), .vlanTagged)
    }

    @Test func unknownDestinationMACAndSourceCheck() throws {
        var closed = S.configuration
        closed.unknownMNPuntRate = 0  // no attach on traffic
        _ = try drop(.access, S.udp(S.mn1, MACAddress("02:d1:99:99:99:99")!, from: S.h1, to: S.cn), .unknownDestinationMAC,
                     configuration: closed)
        // mn1 with mn3's prefix, and a source outside every binding.
        _ = try drop(.access, S.udp(S.mn1, S.dlif1, from: S.h3, to: S.cn), .sourceCheck)
        _ = try drop(.access, S.udp(S.mn1, S.dlif1, from: IPv6Address("2001:db8:9::1")!, to: S.cn), .sourceCheck)
        // DLIF MACs are per MN: mn1's is not mn3's.
        _ = try drop(.access, S.udp(S.mn3, S.dlif1, from: S.h3, to: S.cn), .unknownDestinationMAC, configuration: closed)
    }

    /// A frame that matches no DLIF of its sender may come from an MN that
    /// moved in unannounced: the control plane gets it (to attach the MN),
    /// within the rate; the rest are dropped as before. Never multicast sources.
    @Test func framesFromUnknownMNsArePuntedWithinARate() throws {
        var c = S.configuration
        c.unknownMNPuntRate = 5
        let stranger = MACAddress("02:aa:00:00:77:77")!
        let frames = (0..<20).map { _ in (GatewayPort.access, S.udp(stranger, MACAddress("02:d1:99:99:99:99")!, from: S.h1, to: S.cn)) }
        let r = try Run(frames + [(.access, S.udp(MACAddress("03:00:00:00:00:01")!, S.dlif1, from: S.h1, to: S.cn))], configuration: c)
        // To a logical MAC no DLIF has: held for a binding too, and dropped
        // when none comes (here: none does).
        #expect(r.punted == Array(repeating: true, count: 5) + Array(repeating: false, count: 16), "\(r.punted)")
        #expect(r.verdicts.allSatisfy { $0 == .drop(.unknownDestinationMAC) }, "\(r.verdicts)")
        #expect(r.counters[.puntedUnknownMN] == 5 && r.counters[.heldForBinding] == 20 && r.counters[.unknownDestinationMAC] == 21)
        #expect(r.out.isEmpty)
        // The default lets one through at once; to another MN's DLIF: not held.
        let other = try drop(.access, S.udp(stranger, S.dlif1, from: S.h1, to: S.cn), .punted)
        #expect(other.counters[.heldForBinding] == 0)
    }

    @Test func noRouteSendsDestinationUnreachable() throws {
        let r = try drop(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: IPv6Address("2001:db8:9::1")!), .noRoute)
        let s = try Seen(try #require(r.out.first).1)
        #expect(r.out[0].0 == .core && s.eth.destination == S.routerMAC)
        #expect(s.ip.source == S.a1 && s.ip.destination == S.cn)
        guard case .destinationUnreachable(let code, let invoking)? = s.icmp else { Issue.record("\(String(describing: s.icmp))"); return }
        #expect(code == UnreachableCode.noRoute && invoking.count == 40 + 8 + 16)
        #expect(r.counters[.icmpError] == 1)
    }

    @Test func hopLimitExceededSendsTimeExceededToTheMN() throws {
        let r = try drop(.access, S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn, hopLimit: 1), .hopLimitExceeded)
        let s = try Seen(try #require(r.out.first).1)
        #expect(r.out[0].0 == .access && s.eth.destination == S.mn1 && s.eth.source == S.dlif1)
        #expect(s.ip.destination == S.h1)
        guard case .timeExceeded(0, _)? = s.icmp else { Issue.record(); return }
        _ = try drop(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1, hopLimit: 1), .hopLimitExceeded)
    }

    @Test func packetTooBigForTheTunnel() throws {
        // 1460 bytes of IPv6 fit a 1500 core MTU; with the tunnel's 40 they do not.
        let fits = S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, size: 1460 - 48)
        #expect(try Run([(.access, fits)]).counters[.uplinkEncapsulated] == 1)
        let r = try drop(.access, S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, size: 1461 - 48), .packetTooBig)
        let s = try Seen(try #require(r.out.first).1)
        guard case .packetTooBig(let mtu, let invoking)? = s.icmp else { Issue.record(); return }
        #expect(mtu == 1460 && invoking.count == 1232)
        #expect(r.out[0].0 == .access && s.ip.destination == S.h3)
    }

    @Test func packetTooBigForTheCoreLink() throws {
        // Natively to the core (mn1's prefix is anchored here): 1500 bytes of IPv6 fit its MTU, 1501 do not.
        let fits = S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn, size: 1500 - 48)
        #expect(try Run([(.access, fits)]).counters[.uplinkNative] == 1)
        let r = try drop(.access, S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn, size: 1501 - 48), .packetTooBig)
        let s = try Seen(try #require(r.out.first).1)
        guard case .packetTooBig(let mtu, let invoking)? = s.icmp else { Issue.record(); return }
        #expect(mtu == 1500 && invoking.count == 1232)
        #expect(r.out[0].0 == .access && s.eth.destination == S.mn1 && s.eth.source == S.dlif1 && s.ip.destination == S.h1)
    }

    @Test func decapsulationOnlyFromTheBoundGateway() throws {
        let inner = S.ip(S.udp(S.mn2, S.dlif1, from: S.h2, to: S.cn))
        // D-GW3 is not mn2's serving gateway; nor is D-GW2 the anchor of mn1's prefix.
        _ = try drop(.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, inner)), .decapsulationRefused)
        let toMN1 = S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1))
        _ = try drop(.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, toMN1)), .decapsulationRefused)
    }

    /// More held frames than a retry batch: each change of the tables, or
    /// expiry, tries every frame held once, in order, a batch at a time,
    /// and then stops (frames held again wait for the next change).
    @Test func heldFramesAreTriedOncePerChangeInOrder() throws {
        var c = S.configuration
        c.peers = [S.a2]
        let pool = PacketPool(count: 256)
        let tables = try GatewayTables(c)
        let pipeline = Pipeline(pool: pool, tables: tables)
        let mn9 = MACAddress("02:aa:00:00:00:09")!, p9 = IPv6Prefix("2001:db8:1:9::/64")!
        let frames = (0..<100).map { i in
            S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn,
                                                                                to: IPv6Address("2001:db8:1:9::\(String(i + 1, radix: 16))")!))))
        }
        var generated: [Packet] = []
        for chunk in stride(from: 0, to: 100, by: 25) {
            var batch = try frames[chunk..<(chunk + 25)].map { f in try #require(f.withUnsafeBytes { pool.load($0, port: .core, time: 1_000) }) }
            batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
            #expect(batch.allSatisfy { $0.verdict == .held(punted: false) })
            for p in batch { pool.release(p.slot) }
        }
        #expect(pipeline.totals[.heldForBinding] == 100 && pipeline.totals.framesIn == 100)
        let retry = UnsafeMutableBufferPointer<Packet>.allocate(capacity: 16)
        defer { retry.deallocate() }
        /// Every frame `processHeld` gives back until it gives none, its destination's last octet and verdict.
        func drain(at now: Int64) -> [(UInt8, Verdict)] {
            var out: [(UInt8, Verdict)] = []
            while true {
                let n = pipeline.processHeld(now: now, into: retry, generated: &generated)
                if n == 0 || out.count > 1000 { return out }
                for p in retry[..<n] {
                    // The inner destination's last octet (the outer header is gone once decapsulated).
                    let b = pool.bytes(p), ip = b[14 + 6] == IPProtocol.ipv6 ? 14 + 40 : 14
                    out.append((b[ip + 39], p.verdict))
                    pool.release(p.slot)
                }
            }
        }
        #expect(drain(at: 2_000).isEmpty, "no change, nothing expired")
        try tables.install(BindingEntry(mn: MACAddress("02:aa:00:00:00:08")!, prefix: IPv6Prefix("2001:db8:1:8::/64")!,
                                        anchor: S.a2, serving: nil))
        let again = drain(at: 3_000)
        #expect(again.map(\.0) == (1...100).map(UInt8.init) && again.allSatisfy { $0.1 == .held(punted: false) },
                "an unrelated change: each tried once, held again")
        try tables.install(BindingEntry(mn: mn9, prefix: p9, anchor: S.a2, serving: nil))
        let delivered = drain(at: 4_000)
        #expect(delivered.map(\.0) == (1...100).map(UInt8.init) && delivered.allSatisfy { $0.1 == .forward(.access) })
        #expect(!pipeline.holding && pipeline.totals[.downlinkDecapsulated] == 100 && pipeline.totals.framesIn == 100)
        #expect(pipeline.totals[.heldForBinding] == 100, "counted when first held only")
    }

    @Test func unresolvedNeighbourIsSolicited() throws {
        let onLink = IPv6Address("2001:db8:ffff::77")!
        let r = try drop(.access, S.udp(S.mn1, S.dlif1, from: S.h1, to: onLink), .neighborUnresolved)
        let s = try Seen(try #require(r.out.first).1)
        #expect(s.eth.destination == MACAddress(multicast: onLink.solicitedNodeMulticast))
        #expect(s.ip.destination == onLink.solicitedNodeMulticast && s.ip.hopLimit == 255)
        guard case .neighborSolicitation(let target, _)? = s.icmp else { Issue.record(); return }
        #expect(target == onLink && r.counters[.neighborSolicited] == 1)
    }

    @Test func anMNServedElsewhereCannotSendHere() throws {
        // mn2's prefix is anchored here but mn2 is attached to D-GW2.
        var c = S.configuration
        c.bindings.append(BindingEntry(mn: S.mn2, prefix: IPv6Prefix("2001:db8:1:9::/64")!, anchor: nil, serving: nil))
        let dlif2 = logicalMAC(anchor: S.a1, mn: S.mn2)
        let r = try Run([(.access, S.udp(S.mn2, dlif2, from: S.h2, to: S.cn))], configuration: c)
        #expect(r.verdicts == [.drop(.sourceCheck)])
    }

    @Test func notForThisGateway() throws {
        _ = try drop(.core, S.udp(S.routerMAC, MACAddress("02:dd:00:00:00:09")!, from: S.cn, to: S.h1), .notForThisGateway)
    }

    @Test func signallingAndNDArePunted() throws {
        let pbu = S.ethernet(S.a2MAC, S.coreMAC, S.ipv6(from: S.a2, to: S.a1, nextHeader: IPProtocol.mobility) { b in
            try MobilityMessage.bindingUpdate(BindingUpdate(sequence: 1, flags: [.proxyRegistration, .distributedGateway],
                                                            lifetime: 10, options: .none)).emit(into: b, source: S.a2, destination: S.a1)
        })
        let r = try drop(.core, pbu, .punted)
        #expect(r.counters[.puntedMobility] == 1)
        let ll = IPv6Address("fe80::aa:ff:fe00:1")!
        let rs = S.ethernet(S.mn1, MACAddress(multicast: .allRouters), S.ipv6(from: ll, to: .allRouters, nextHeader: IPProtocol.icmpv6, hopLimit: 255) { b in
            try ICMPv6Message.routerSolicitation(options: .none).emit(into: b, source: ll, destination: .allRouters)
        })
        #expect(try drop(.access, rs, .punted).counters[.puntedNeighborDiscovery] == 1)
    }

    /// Anything else for the gateway's own address (here UDP from the core,
    /// and a UDP datagram from an MN to the gateway) goes to the control plane.
    @Test func otherTrafficForTheGatewayIsPunted() throws {
        let r = try drop(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.a1), .punted)
        #expect(r.counters[.puntedForGateway] == 1 && r.counters[.punted] == 1 && r.out.isEmpty)
    }

    @Test func poolExhaustedWhenNoSlotIsLeftForAnError() throws {
        // A pool as large as the batch: the Unreachable has no slot.
        let r = try Run([(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: IPv6Address("2001:db8:9::1")!))], poolSize: 1)
        #expect(r.verdicts == [.drop(.noRoute)])
        #expect(r.counters[.poolExhausted] == 1 && r.out.isEmpty)
    }

    @Test func everyDropReasonHasAName() {
        let names = DropReason.allCases.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { !$0.isEmpty && $0 == $0.lowercased() })
    }
}

@Suite struct SlowPathTests {
    @Test func answersNeighborSolicitationForItsAddress() throws {
        let ns = S.ethernet(S.a2MAC, MACAddress(multicast: S.a1.solicitedNodeMulticast),
                            S.ipv6(from: S.a2, to: S.a1.solicitedNodeMulticast, nextHeader: IPProtocol.icmpv6, hopLimit: 255) { b in
            try ICMPv6Message.neighborSolicitation(target: S.a1, options: .built([.sourceLinkLayerAddress(LinkLayerAddress(S.a2MAC))]))
                .emit(into: b, source: S.a2, destination: S.a1.solicitedNodeMulticast)
        })
        let r = try Run([(.core, ns)])
        #expect(r.verdicts == [.consumed] && r.counters[.neighborAdvertised] == 1)
        let s = try Seen(try #require(r.out.first).1)
        #expect(s.eth.destination == S.a2MAC && s.eth.source == S.coreMAC && s.ip.hopLimit == 255)
        guard case .neighborAdvertisement(let na)? = s.icmp else { Issue.record(); return }
        #expect(na.target == S.a1 && na.router && na.solicited && na.override)
        #expect(na.options.targetLinkLayerAddress?.mac == S.coreMAC)
    }

    @Test func learnsANeighbourFromItsAdvertisementThenForwards() throws {
        let onLink = IPv6Address("2001:db8:ffff::77")!, mac = MACAddress("02:77:00:00:00:77")!
        let na = S.neighborAdvertisement(of: onLink, at: mac)
        let packet = S.udp(S.mn1, S.dlif1, from: S.h1, to: onLink)
        let r = try Run([(.access, packet), (.core, na), (.access, packet)])
        #expect(r.verdicts == [.drop(.neighborUnresolved), .consumed, .forward(.core)])
        #expect(r.counters[.neighborSolicited] == 1 && r.counters[.neighborLearned] == 1)
        let forwarded = try #require(r.out.first { $0.0 == .core && (try? Seen($0.1))?.ip.nextHeader == IPProtocol.udp })
        #expect(try Seen(forwarded.1).eth.destination == mac)
    }

    /// Two workers' pipelines share one set of tables, the neighbours with them: the advertisement
    /// one of them receives resolves the hop for the other, and only one of
    /// them solicits within the second.
    @Test func workersShareTheNeighbourTable() throws {
        let onLink = IPv6Address("2001:db8:ffff::77")!, mac = MACAddress("02:77:00:00:00:77")!
        let na = S.neighborAdvertisement(of: onLink, at: mac)
        let packet = S.udp(S.mn1, S.dlif1, from: S.h1, to: onLink)
        let pool = PacketPool(count: 64), tables = try GatewayTables(S.configuration), table = tables.neighbors
        let workers = [Pipeline(pool: pool, tables: tables), Pipeline(pool: pool, tables: tables)]
        func run(_ w: Int, _ port: GatewayPort, _ frame: [UInt8], at t: Int64) throws -> (Verdict, Int) {
            var batch = [try #require(frame.withUnsafeBytes { pool.load($0, port: port, time: t) })]
            var generated: [Packet] = []
            batch.withUnsafeMutableBufferPointer { workers[w].process($0, generated: &generated) }
            for p in batch + generated { pool.release(p.slot) }
            return (batch[0].verdict, generated.count)
        }
        #expect(try run(0, .access, packet, at: 1_000) == (.drop(.neighborUnresolved), 1))  // worker 0 solicits
        #expect(try run(1, .access, packet, at: 2_000) == (.drop(.neighborUnresolved), 0))  // worker 1: already asked
        #expect(try run(1, .core, na, at: 3_000).0 == .consumed)                            // the answer reaches worker 1
        #expect(try run(0, .access, packet, at: 4_000) == (.forward(.core), 0))             // and serves worker 0
        #expect(MACAddress(value: table.mac(try #require(table.index(of: onLink, adding: false)))) == mac)
    }

    /// A binding attached at run time (the control plane's attach) forwards
    /// both ways at once; the tables refuse a prefix bound already, and
    /// more bindings than they were given room for.
    @Test func attachAtRunTime() throws {
        var c = S.configuration
        c.dynamicBindings = 1
        let tables = try GatewayTables(c), pool = PacketPool(count: 64)
        let pipeline = Pipeline(pool: pool, tables: tables)
        let mn = MACAddress("02:aa:00:00:00:44")!, dlif = MACAddress("02:ee:00:00:00:44")!
        let prefix = IPv6Prefix("2001:db8:1:44::/64")!, host = IPv6Address("2001:db8:1:44::7")!
        let before = try Run([(.access, S.udp(mn, dlif, from: host, to: S.cn))], configuration: c)
        #expect(before.punted == [true] && before.counters[.puntedUnknownMN] == 1, "for the control plane to attach")
        #expect(before.counters[.heldForBinding] == 1 && before.verdicts == [.drop(.unknownDestinationMAC)], "held: no binding came")
        try tables.attach(mn: mn, prefix: prefix, dlifMAC: dlif)
        func forward(_ port: GatewayPort, _ frame: [UInt8]) throws -> (Verdict, [UInt8]) {
            var batch = [try #require(frame.withUnsafeBytes { pool.load($0, port: port, time: 1) })]
            var generated: [Packet] = []
            batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
            defer { for p in batch + generated { pool.release(p.slot) } }
            return (batch[0].verdict, Array(pool.bytes(batch[0])))
        }
        #expect(try forward(.access, S.udp(mn, dlif, from: host, to: S.gatewayAddress)).0 == .forward(.core))
        let (verdict, down) = try forward(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: host))
        #expect(verdict == .forward(.access))
        let seen = try Seen(down)
        #expect(seen.eth.source == dlif && seen.eth.destination == mn)
        #expect(throws: GatewayTablesError.prefixInUse(S.p1)) { try tables.attach(mn: mn, prefix: S.p1, dlifMAC: dlif) }
        #expect(throws: GatewayTablesError.logicalMACInUse(dlif)) {
            try tables.attach(mn: MACAddress("02:aa:00:00:00:45")!, prefix: IPv6Prefix("2001:db8:1:45::/64")!, dlifMAC: dlif)
        }
        for i in 0..<(tables.capacity - tables.count) {
            try tables.attach(mn: MACAddress(value: 0x02AA_0000_1000 + UInt64(i)),
                              prefix: IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0DB8_0001_1000 + UInt64(i), low: 0), length: 64),
                              dlifMAC: MACAddress(value: 0x02EE_0000_1000 + UInt64(i)))
        }
        #expect(throws: GatewayTablesError.full(tables.capacity)) {
            try tables.attach(mn: MACAddress("02:aa:00:00:00:45")!, prefix: IPv6Prefix("2001:db8:1:45::/64")!,
                              dlifMAC: MACAddress("02:ee:00:00:00:45")!)
        }
    }

    /// A DLIF with several prefixes (one MN, one logical MAC): the MAC table
    /// points at one of its bindings and follows when that one goes, so the
    /// uplink from the prefix left still passes; another MN cannot take the
    /// MAC while any of them is bound, and can once the last is gone.
    @Test func aDLIFWithSeveralPrefixes() throws {
        var c = S.configuration
        c.dynamicBindings = 8
        let tables = try GatewayTables(c), pool = PacketPool(count: 64)
        let pipeline = Pipeline(pool: pool, tables: tables)
        let mn = MACAddress("02:aa:00:00:00:44")!, other = MACAddress("02:aa:00:00:00:45")!, dlif = MACAddress("02:ee:00:00:00:44")!
        let prefixes = [IPv6Prefix("2001:db8:1:44::/64")!, IPv6Prefix("2001:db8:1:45::/64")!, IPv6Prefix("2001:db8:1:46::/64")!]
        let hosts = [IPv6Address("2001:db8:1:44::7")!, IPv6Address("2001:db8:1:45::7")!, IPv6Address("2001:db8:1:46::7")!]
        func up(_ i: Int, from sender: MACAddress? = nil) throws -> Verdict {
            let frame = S.udp(sender ?? mn, dlif, from: hosts[i], to: S.gatewayAddress)
            var batch = [try #require(frame.withUnsafeBytes { pool.load($0, port: .access, time: 1) })]
            var generated: [Packet] = []
            batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
            defer { for p in batch + generated { pool.release(p.slot) } }
            return batch[0].verdict
        }
        for p in prefixes { try tables.attach(mn: mn, prefix: p, dlifMAC: dlif) }
        #expect(try (0..<3).map { try up($0) } == Array(repeating: .forward(.core), count: 3))
        #expect(throws: GatewayTablesError.logicalMACInUse(dlif)) {
            try tables.attach(mn: other, prefix: IPv6Prefix("2001:db8:1:47::/64")!, dlifMAC: dlif)
        }
        // The first binding (the one the MAC table pointed at) goes, then the last.
        #expect(tables.remove(prefixes[0]) && tables.remove(prefixes[2]))
        #expect(try up(1) == .forward(.core), "the MAC table followed to the binding left")
        #expect(try up(0) != .forward(.core) && up(2) != .forward(.core))
        // Re-bound in place (a new slot for the same prefix): still one DLIF.
        try tables.install(BindingEntry(mn: mn, prefix: prefixes[1], anchor: nil, serving: nil, dlifMAC: dlif))
        #expect(try up(1) == .forward(.core))
        #expect(throws: GatewayTablesError.logicalMACInUse(dlif)) {
            try tables.attach(mn: other, prefix: IPv6Prefix("2001:db8:1:47::/64")!, dlifMAC: dlif)
        }
        #expect(tables.remove(prefixes[1]))
        #expect(try up(1) == .held(punted: true), "no DLIF has that MAC now: an unknown MN, for the control plane (held for a binding)")
        try tables.attach(mn: other, prefix: IPv6Prefix("2001:db8:1:47::/64")!, dlifMAC: dlif)
    }

    /// The control plane moves a binding while workers forward: the MN of
    /// a prefix anchored here leaves for a peer (downlink now tunnelled),
    /// comes back (delivered again), and is unbound (no route); the slots
    /// of replaced bindings are reused only after the workers' grace period.
    /// What the tables report is what was installed, field for field, for
    /// every kind of binding (kept compactly per slot, gateways by hop).
    @Test func bindingsAreReportedAsInstalled() throws {
        let tables = try GatewayTables(S.configuration)
        let named = MACAddress("02:d1:00:00:00:77")!
        let installed = [
            BindingEntry(mn: S.mn1, prefix: IPv6Prefix("2001:db8:77:1::/64")!, anchor: nil, serving: nil, dlifMAC: named),
            BindingEntry(mn: S.mn2, prefix: IPv6Prefix("2001:db8:77:2::/64")!, anchor: nil, serving: S.a2),
            BindingEntry(mn: S.mn2, prefix: IPv6Prefix("2001:db8:77:3::/64")!, anchor: S.a3, serving: nil),
            BindingEntry(mn: S.mn3, prefix: IPv6Prefix("2001:db8:77:4::/64")!, anchor: S.a2, serving: S.a3),
            // Host bits and a shorter prefix kept as given.
            BindingEntry(mn: S.mn3, prefix: IPv6Prefix("2001:db8:77:5::9/64")!, anchor: S.a3, serving: S.a2, dlifMAC: named),
            BindingEntry(mn: MACAddress("02:aa:00:00:01:01")!, prefix: IPv6Prefix("2001:db8:78::/48")!, anchor: nil, serving: nil),
        ]
        for b in installed { try tables.install(b) }
        func same(_ x: BindingEntry?, _ y: BindingEntry) -> Bool {
            x.map { $0.mn == y.mn && $0.prefix == y.prefix && $0.anchor == y.anchor && $0.serving == y.serving && $0.dlifMAC == y.dlifMAC } ?? false
        }
        for b in installed { #expect(same(tables.binding(b.prefix), b), "\(b.prefix)") }
        let reported = tables.bindings.suffix(installed.count)
        #expect(zip(reported, installed).allSatisfy { same($0.binding, $1) })
        #expect(reported.first?.dlifMAC == named && reported.dropFirst().first?.dlifMAC == logicalMAC(anchor: S.configuration.address, mn: S.mn2))
    }

    @Test func bindingsChangeAtRunTime() throws {
        let c = S.configuration
        let tables = try GatewayTables(c), pool = PacketPool(count: 64)
        let pipeline = Pipeline(pool: pool, tables: tables)
        let mn = S.mn1, host = S.h1, peer = S.a2, prefix = S.p1
        func down() throws -> (Verdict, Seen?) {
            var batch = [try #require(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: host).withUnsafeBytes { pool.load($0, port: .core, time: 1) })]
            var generated: [Packet] = []
            batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
            defer { for p in batch + generated { pool.release(p.slot) } }
            return (batch[0].verdict, batch[0].verdict == .forward(.core) || batch[0].verdict == .forward(.access) ? try Seen(Array(pool.bytes(batch[0]))) : nil)
        }
        #expect(try down().0 == .forward(.access))
        let before = tables.count
        try tables.install(BindingEntry(mn: mn, prefix: prefix, anchor: nil, serving: peer))
        let tunnelled = try down()
        #expect(tunnelled.0 == .forward(.core))
        #expect(tunnelled.1?.ip.destination == peer && tunnelled.1?.inner?.destination == host)
        #expect(tables.binding(prefix)?.serving == peer && tables.count == before)
        try tables.install(BindingEntry(mn: mn, prefix: prefix, anchor: nil, serving: nil))
        #expect(try down().0 == .forward(.access))
        #expect(tables.remove(prefix))
        #expect(!tables.remove(prefix))
        #expect(try down().0 == .drop(.noRoute))
        #expect(tables.count == before - 1 && tables.binding(prefix) == nil)
        // Every worker has passed a quiescent point (the batches above): the
        // slots retired (static 0, then 3 and 4 used by the moves) come
        // back, before any fresh one.
        tables.reclaim()
        var slots: Set<Int> = []
        for i in 0..<3 {
            slots.insert(try tables.install(BindingEntry(
                mn: mn, prefix: IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0DB8_0001_5000 + UInt64(i), low: 0), length: 64),
                anchor: nil, serving: nil)))
        }
        #expect(slots == [0, 3, 4])
    }

    @Test func repliesToEcho() throws {
        let echo = S.ethernet(S.routerMAC, S.coreMAC, S.ipv6(from: S.cn, to: S.a1, nextHeader: IPProtocol.icmpv6) { b in
            try ICMPv6Message.echoRequest(identifier: 7, sequence: 9, data: [1, 2, 3]).emit(into: b, source: S.cn, destination: S.a1)
        })
        let r = try Run([(.core, echo)])
        #expect(r.verdicts == [.consumed] && r.counters[.echoReplied] == 1)
        guard case .echoReply(7, 9, let data)? = try Seen(try #require(r.out.first).1).icmp else { Issue.record(); return }
        #expect(Array(data) == [1, 2, 3])
    }

    @Test func icmpErrorsAreRateLimited() throws {
        var c = S.configuration
        c.icmpRate = 5
        let frames = (0..<20).map { _ in (GatewayPort.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: IPv6Address("2001:db8:9::1")!)) }
        let r = try Run(frames, configuration: c)  // 20 frames within 20 ms
        #expect(r.counters[.icmpError] == 5 && r.counters[.icmpRateLimited] == 15)
        #expect(r.counters[.noRoute] == 20)
    }

    @Test func noErrorAboutAnError() throws {
        let error = S.ethernet(S.routerMAC, S.coreMAC, S.ipv6(from: S.cn, to: IPv6Address("2001:db8:9::1")!, nextHeader: IPProtocol.icmpv6) { b in
            try ICMPv6Message.destinationUnreachable(code: 0, invoking: []).emit(into: b, source: S.cn, destination: IPv6Address("2001:db8:9::1")!)
        })
        let r = try Run([(.core, error)])
        #expect(r.verdicts == [.drop(.noRoute)] && r.out.isEmpty)
    }
}

@Suite struct LogicalMACTests {
    @Test func anchorAssignedMACsAreUsedAndCollisionsRefused() throws {
        var c = S.configuration
        let assigned = MACAddress("02:d1:00:00:00:42")!
        c.bindings[0].dlifMAC = assigned
        let r = try Run([(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1))], configuration: c)
        #expect(try Seen(try #require(r.out.first).1).eth.source == assigned)
        // Two MNs on one logical MAC would misdeliver: refused at start.
        c.bindings[2].dlifMAC = assigned
        #expect(throws: PipelineError.self) { _ = try Pipeline(c, pool: PacketPool(count: 4)) }
    }

    @Test func defaultMACsAreLocallyAdministeredUnicastAndStable() {
        let m = logicalMAC(anchor: S.a1, mn: S.mn1)
        #expect(m.isLocallyAdministered && !m.isMulticast)
        #expect(m == logicalMAC(anchor: S.a1, mn: S.mn1))
        #expect(m != logicalMAC(anchor: S.a2, mn: S.mn1) && m != logicalMAC(anchor: S.a1, mn: S.mn2))
    }

    /// The hash spreads consecutive MACs over its 40 bits: 200,000 MNs at two
    /// anchors, no collision (an earlier, weaker mix collided by thousands).
    @Test func defaultMACsOfManyMNsDoNotCollide() {
        var seen = Set<MACAddress>()
        for anchor in [S.a1, S.a2] {
            for i in 0..<100_000 { seen.insert(logicalMAC(anchor: anchor, mn: MACAddress(value: 0x02AA_0000_0000 | UInt64(i)))) }
        }
        #expect(seen.count == 200_000)
    }
}

/// The control plane changes bindings while a worker forwards (run under
/// Thread Sanitizer by `make test`): every packet sees a whole binding,
/// old or new, never a slot half written or reused under it.
@Suite struct GatewayTablesConcurrencyTests {
    @Test func bindingsChangeWhileAWorkerForwards() throws {
        let tables = try GatewayTables(S.configuration)
        let done = Atomic<Bool>(false), unexpected = Atomic<Int>(0), batches = Atomic<Int>(0)
        let finished = DispatchSemaphore(value: 0)
        let frame = S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1)
        let reader = Thread { [tables] in
            let pool = PacketPool(count: 64)
            let pipeline = Pipeline(pool: pool, tables: tables)
            while !done.load(ordering: .acquiring) {
                var batch = (0..<8).map { _ in frame.withUnsafeBytes { pool.load($0, port: .core, time: 1)! } }
                var generated: [Packet] = []
                batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
                for p in batch {
                    switch p.verdict {
                    case .forward(.access):
                        // Delivered: to the MN, from its DLIF.
                        let b = Array(pool.bytes(p))
                        let destination = MACAddress(value: b[0..<6].reduce(0) { $0 << 8 | UInt64($1) })
                        let source = MACAddress(value: b[6..<12].reduce(0) { $0 << 8 | UInt64($1) })
                        if destination != S.mn1 || source != S.dlif1 { unexpected.add(1, ordering: .relaxed) }
                    case .forward(.core), .drop(.noRoute): break  // tunnelled to D-GW2, or between bindings
                    default: unexpected.add(1, ordering: .relaxed)
                    }
                }
                for p in batch + generated { pool.release(p.slot) }
                batches.add(1, ordering: .relaxed)
            }
            finished.signal()
        }
        reader.start()
        /// The control plane's writes: when every slot waits for its grace period, wait for the worker.
        func change(_ body: () throws(GatewayTablesError) -> Void) throws {
            while true {
                do throws(GatewayTablesError) {
                    try body()
                    return
                } catch .full {
                    sched_yield()
                    tables.reclaim()
                }
            }
        }
        for _ in 0..<3000 {
            try change { () throws(GatewayTablesError) in try tables.install(BindingEntry(mn: S.mn1, prefix: S.p1, anchor: nil, serving: S.a2)) }
            try change { () throws(GatewayTablesError) in try tables.install(BindingEntry(mn: S.mn1, prefix: S.p1, anchor: nil, serving: nil)) }
            tables.remove(S.p1)
            try change { () throws(GatewayTablesError) in try tables.install(BindingEntry(mn: S.mn1, prefix: S.p1, anchor: nil, serving: nil)) }
        }
        while batches.load(ordering: .relaxed) < 100 { sched_yield() }
        done.store(true, ordering: .releasing)
        finished.wait()
        #expect(unexpected.load(ordering: .relaxed) == 0, "packets saw a torn or reused binding")
        #expect(tables.binding(S.p1)?.serving == nil && tables.count == 3)
    }
}

/// An inter-operator LMA (draft-bernardos section 5): a prefix bound
/// between its anchor (a2) and the MN's serving gateway (a3) crosses from
/// one tunnel into the other, in both directions, and from no one else.
@Suite struct RelayedBindingTests {
    static var configuration: PipelineConfiguration {
        var c = S.configuration
        c.bindings = [BindingEntry(mn: S.mn3, prefix: S.p3, anchor: S.a2, serving: S.a3)]
        c.neighbors.append((S.a3, S.a3MAC))
        return c
    }

    @Test func uplinkFromTheServingGatewayGoesOnToTheAnchor() throws {
        let inner = S.ip(S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, hopLimit: 60))
        let r = try Run([(.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, inner)))], configuration: Self.configuration)
        let s = try Seen(try #require(r.out.first).1)
        #expect(r.out[0].0 == .core && s.eth.destination == S.a2MAC && s.eth.source == S.coreMAC)
        #expect(s.ip.source == S.a1 && s.ip.destination == S.a2)
        #expect(s.inner?.source == S.h3 && s.inner?.destination == S.cn && s.inner?.hopLimit == 59)
        #expect(s.bytes.count == 14 + 40 + inner.count)
        #expect(r.counters[.uplinkRelayed] == 1)
    }

    @Test func downlinkFromTheAnchorGoesOnToTheServingGateway() throws {
        let inner = S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h3, hopLimit: 40))
        let r = try Run([(.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, inner)))], configuration: Self.configuration)
        let s = try Seen(try #require(r.out.first).1)
        #expect(r.out[0].0 == .core && s.eth.destination == S.a3MAC)
        #expect(s.ip.source == S.a1 && s.ip.destination == S.a3)
        #expect(s.inner?.destination == S.h3 && s.inner?.hopLimit == 39)
        #expect(r.counters[.downlinkRelayed] == 1)
    }

    /// Native traffic for the prefix (it should not come here) goes to the
    /// serving gateway, as for any MN served elsewhere.
    @Test func nativeDownlinkGoesToTheServingGateway() throws {
        let r = try Run([(.core, S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h3, hopLimit: 40))], configuration: Self.configuration)
        let s = try Seen(try #require(r.out.first).1)
        #expect(s.ip.destination == S.a3 && s.inner?.hopLimit == 39)
        #expect(r.counters[.downlinkEncapsulated] == 1)
    }

    /// An anchor's local network routed at the LMA: tunnelled traffic for
    /// it from a peer goes on into the anchor's tunnel, whatever its source;
    /// not from a stranger, and not at a gateway that is no LMA.
    @Test func localNetworksGoOnToTheirAnchor() throws {
        let lipa = IPv6Prefix("2001:db8:aaaa::/48")!, host = IPv6Address("2001:db8:aaaa:1::10")!
        var c = Self.configuration
        c.peers = [S.a2, S.a3]
        c.relaysLocalNetworks = true
        let inner = S.ip(S.udp(S.mn3, S.dlif3, from: IPv6Address("2001:db8:3:9::1")!, to: host, hopLimit: 60))
        let frames: [(GatewayPort, [UInt8])] = [(.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, inner))),
                                                (.core, S.ethernet(S.routerMAC, S.coreMAC, S.tunnel(from: S.gatewayAddress, to: S.a1, inner)))]
        func run(_ c: PipelineConfiguration) throws -> Run {
            let pool = PacketPool(count: 16)
            let tables = try GatewayTables(c)
            try tables.route(localNetwork: lipa, anchor: S.a2)
            return try Run(frames, pipeline: Pipeline(pool: pool, tables: tables), pool: pool)
        }
        let r = try run(c)
        #expect(r.verdicts == [.forward(.core), .drop(.decapsulationRefused)], "\(r.verdicts)")
        let s = try Seen(try #require(r.out.first).1)
        #expect(s.ip.destination == S.a2 && s.inner?.destination == host && s.inner?.hopLimit == 59)
        #expect(r.counters[.uplinkRelayed] == 1)
        c.relaysLocalNetworks = false
        #expect(try run(c).verdicts == [.drop(.decapsulationRefused), .drop(.decapsulationRefused)])
    }

    /// Not the wrong way round, not from a third gateway, not for another
    /// prefix; and a packet out of hops is not sent on.
    @Test func refusedOtherwise() throws {
        let up = S.ip(S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, hopLimit: 60))
        let down = S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h3, hopLimit: 40))
        let other = S.ip(S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn, hopLimit: 60))
        let spent = S.ip(S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, hopLimit: 1))
        let r = try Run([(.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, up))),
                         (.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, down))),
                         (.core, S.ethernet(S.routerMAC, S.coreMAC, S.tunnel(from: S.gatewayAddress, to: S.a1, up))),
                         (.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, other))),
                         (.core, S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, spent)))], configuration: Self.configuration)
        #expect(r.verdicts == [.drop(.decapsulationRefused), .drop(.decapsulationRefused), .drop(.decapsulationRefused),
                               .drop(.decapsulationRefused), .drop(.hopLimitExceeded)], "\(r.verdicts)")
        #expect(r.out.isEmpty)
    }

    /// An anchor sends a decapsulated packet on into another tunnel (to
    /// the MN it is for, served by a peer): one out of hops is dropped, not
    /// sent with its hop limit wrapped.
    @Test func anAnchorDoesNotTunnelAPacketOutOfHops() throws {
        let frames = [UInt8(1), 0].map { hops in
            (GatewayPort.core, S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, S.ip(S.udp(S.mn2, S.dlif1, from: S.h2, to: S.h2, hopLimit: hops)))))
        }
        let r = try Run(frames)
        #expect(r.verdicts == [.drop(.hopLimitExceeded), .drop(.hopLimitExceeded)])
    }
}
