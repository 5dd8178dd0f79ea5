import DGWConfig
import DGWControl
import DGWPipeline
import DGWPorts
import DGWTestSupport
import DGWWire
import Foundation
import Testing

let root = packageRoot
let dgw = builtExecutable("dgw")

/// A scratch directory, removed by `cleanup()`.
struct Scratch {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-replay-\(UUID().uuidString)")
    init() throws { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    func cleanup() { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: dir.appendingPathComponent(name))
        return path(name)
    }

    func capture(_ name: String, _ frames: [[UInt8]], start: Int = 1_764_000_000, stepNs: Int = 1_000_000) throws -> String {
        let w = try PcapFileWriter(path: path(name))
        for (i, f) in frames.enumerated() {
            let t = i * stepNs
            try w.write(f, seconds: start + t / 1_000_000_000, nanoseconds: t % 1_000_000_000)
        }
        try w.close()
        return path(name)
    }
}

/// Access and core traffic for every action of the scenario, and some for drops.
func scenarioCaptures(_ s: Scratch) throws -> (access: String, core: String) {
    let access = [
        S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn),                           // uplink native
        S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn),                           // uplink encapsulated
        S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn, hopLimit: 1),              // Time Exceeded
        S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, size: 1461 - 48),          // Packet Too Big
        S.udp(S.mn1, S.dlif1, from: S.h3, to: S.cn),                           // source check
    ]
    let core = [
        S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h1),                   // downlink delivered
        S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h2),                   // downlink encapsulated
        S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, S.ip(S.udp(S.mn2, S.dlif1, from: S.h2, to: S.cn)))),
        S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h3)))),
        S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: IPv6Address("2001:db8:9::1")!),  // no route
    ]
    return (try s.capture("access.pcap", access, stepNs: 1_000_000), try s.capture("core.pcap", core, stepNs: 1_500_000))
}

@Suite struct ReplayTests {
    @Test func forwardsEverythingTheBindingsSayAndSummarises() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("gw.yaml", S.yaml)
        let (access, core) = try scenarioCaptures(s)
        let r = try runProcess(dgw, ["replay", "--config", config, "--access", access, "--core", core,
                               "--out-access", s.path("out-access.pcap"), "--out-core", s.path("out-core.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(summary["frames_in"] as? Int == 10)
        let actions = try #require(summary["actions"] as? [String: Int])
        #expect(actions == ["uplink_native": 1, "uplink_encapsulated": 1, "uplink_decapsulated": 1, "downlink_delivered": 1,
                            "downlink_encapsulated": 1, "downlink_decapsulated": 1, "icmp_error_sent": 3])
        #expect(summary["drops"] as? [String: Int] == ["hop_limit_exceeded": 1, "packet_too_big": 1, "source_check": 1, "no_route": 1])
        #expect(summary["frames_out"] as? Int == 9)
        #expect(summary["mpps"] != nil && summary["elapsed_s"] != nil)

        // The access router's first advertisements, one per DLIF (mn1's and mn3's), at the first frame's time.
        #expect(summary["control"] as? [String: Int] == ["router_advertisements": 2])

        // Outputs by port: to the MNs 2 RAs, 2 delivered + 2 errors; to the core 4 forwarded + 1 error.
        let outAccess = try readFrames(s.path("out-access.pcap")), outCore = try readFrames(s.path("out-core.pcap"))
        #expect(outAccess.count == 6 && outCore.count == 5)
        let ras = try outAccess.prefix(2).map { try Seen($0.bytes) }
        #expect(Set(ras.map { "\($0.eth.source) > \($0.eth.destination)" }) == ["\(S.dlif1) > \(S.mn1)", "\(S.dlif3) > \(S.mn3)"])
        #expect(ras.allSatisfy { $0.ip.destination == .allNodes && $0.ip.hopLimit == 255 && $0.ip.source.isLinkLocal })
        #expect(outAccess[0].time == 1_764_000_000_000_000_000)
        // Each frame stamped with the time of the frame that caused it, in order.
        #expect(outCore.map(\.time) == outCore.map(\.time).sorted())
        #expect(outAccess.map(\.time) == outAccess.map(\.time).sorted())
    }

    @Test func isDeterministic() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("gw.yaml", S.yaml)
        let (access, core) = try scenarioCaptures(s)
        var outputs: [[Data]] = []
        for run in 0..<2 {
            let r = try runProcess(dgw, ["replay", "--config", config, "--access", access, "--core", core,
                                   "--out-access", s.path("a\(run).pcap"), "--out-core", s.path("c\(run).pcap")])
            #expect(r.status == 0)
            outputs.append([try Data(contentsOf: URL(fileURLWithPath: s.path("a\(run).pcap"))),
                            try Data(contentsOf: URL(fileURLWithPath: s.path("c\(run).pcap")))])
        }
        #expect(outputs[0] == outputs[1])
        #expect(outputs[0][1].count > 24)
    }

    /// Every frame the pipeline emitted decodes in tshark with no malformed
    /// packet, no warning or error, and good checksums.
    @Test func tsharkAcceptsEveryEmittedFrame() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("gw.yaml", S.yaml)
        let (access, core) = try scenarioCaptures(s)
        // Add the slow path's frames: an NA (answering an NS), an NS (resolving), an echo reply.
        let ns = S.ethernet(S.a2MAC, MACAddress(multicast: S.a1.solicitedNodeMulticast),
                            S.ipv6(from: S.a2, to: S.a1.solicitedNodeMulticast, nextHeader: IPProtocol.icmpv6, hopLimit: 255) { b in
            try ICMPv6Message.neighborSolicitation(target: S.a1, options: .built([.sourceLinkLayerAddress(LinkLayerAddress(S.a2MAC))]))
                .emit(into: b, source: S.a2, destination: S.a1.solicitedNodeMulticast)
        })
        let echo = S.ethernet(S.routerMAC, S.coreMAC, S.ipv6(from: S.cn, to: S.a1, nextHeader: IPProtocol.icmpv6) { b in
            try ICMPv6Message.echoRequest(identifier: 1, sequence: 1, data: [9]).emit(into: b, source: S.cn, destination: S.a1)
        })
        let extra = try s.capture("extra.pcap", [ns, echo], start: 1_764_000_001)
        let unresolved = try s.capture("unres.pcap", [S.udp(S.mn1, S.dlif1, from: S.h1, to: IPv6Address("2001:db8:ffff::77")!)], start: 1_764_000_002)
        var files: [String] = []
        for (i, (a, c)) in [(access, core), (unresolved, extra)].enumerated() {
            let r = try runProcess(dgw, ["replay", "--config", config, "--access", a, "--core", c,
                                   "--out-access", s.path("oa\(i).pcap"), "--out-core", s.path("oc\(i).pcap")])
            #expect(r.status == 0, "\(r.stderr)")
            files += [s.path("oa\(i).pcap"), s.path("oc\(i).pcap")]
        }
        guard let tshark = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            Issue.record("tshark is not installed")
            return
        }
        var frames = 0
        for f in files {
            let r = try runProcess(tshark, ["-n", "-r", f, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "occurrence=a",
                                      "-e", "frame.protocols", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
                                      "-e", "icmpv6.checksum.status", "-e", "udp.checksum.status"])
            #expect(r.status == 0)
            for line in r.stdout.split(separator: "\n") {
                frames += 1
                let cols = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                #expect(cols.count >= 5)
                guard cols.count >= 5 else { continue }
                #expect(cols[1].isEmpty, "malformed: \(line)")
                let severe = cols[2].split(separator: ",").compactMap { Int($0) }.filter { $0 >= 0x0060_0000 }
                #expect(severe.isEmpty, "\(f): \(line)")
                // Checksums of the outer layers are good (the first occurrence; quoted packets are not verified).
                if let first = cols[3].split(separator: ",").first { #expect(first == "1", "\(line)") }
                if let first = cols[4].split(separator: ",").first, !cols[0].contains("icmpv6") { #expect(first == "1", "\(line)") }
            }
        }
        // The scenario's 9, then NA, echo reply and NS; and the RAs: 2 in the first run, 4 in the
        // second, whose captures span a second of the initial burst.
        #expect(frames == 9 + 3 + 6)
    }

    @Test func refusesBadInputAndWritesNothing() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let good = try s.write("gw.yaml", S.yaml)
        let bad = try s.write("bad.yaml", S.yaml + "\nbogus: 1\n")
        let (access, _) = try scenarioCaptures(s)
        let outA = s.path("oa.pcap"), outC = s.path("oc.pcap")
        let r1 = try runProcess(dgw, ["replay", "--config", bad, "--access", access, "--out-access", outA, "--out-core", outC])
        #expect(r1.status != 0)
        #expect(r1.stderr.contains("bad.yaml:15:1: unknown key 'bogus' in configuration"), "\(r1.stderr)")
        let r2 = try runProcess(dgw, ["replay", "--config", good, "--access", s.path("missing.pcap"), "--out-access", outA, "--out-core", outC])
        #expect(r2.status != 0 && r2.stderr.contains("missing.pcap"))
        let notPcap = try s.write("junk.pcap", "not a capture")
        let r3 = try runProcess(dgw, ["replay", "--config", good, "--core", notPcap, "--out-access", outA, "--out-core", outC])
        #expect(r3.status != 0)
        let r4 = try runProcess(dgw, ["replay", "--config", good, "--out-access", outA, "--out-core", outC])
        #expect(r4.status != 0)
        #expect(!FileManager.default.fileExists(atPath: outA) && !FileManager.default.fileExists(atPath: outC))
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.dir.path).allSatisfy { !$0.contains(".partial-") })
    }

    /// A frame longer than a packet slot (a jumbo frame in a capture) is
    /// counted and dropped; the frames around it go through.
    @Test func aFrameTooLongForTheGatewayIsDroppedByName() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("gw.yaml", S.yaml)
        let up = S.udp(S.mn1, S.dlif1, from: S.h1, to: S.cn)
        let jumbo = up + [UInt8](repeating: 0, count: 9000)  // a jumbo frame, as long as one gets
        let access = try s.capture("jumbo.pcap", [up, jumbo, up])
        let r = try runProcess(dgw, ["replay", "--config", config, "--access", access,
                               "--out-access", s.path("a.pcap"), "--out-core", s.path("c.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(summary["frames_in"] as? Int == 3)
        #expect(summary["drops"] as? [String: Int] == ["frame_too_long": 1])
        #expect(try readFrames(s.path("c.pcap")).count == 2)
    }

    /// An MN nobody configured sends an RS: it attaches (the first free /64
    /// of the pool, this gateway's DLIF, an RA), and its next frame, from
    /// its new address through that DLIF, goes out natively.
    @Test func anMNAttachesByItsRouterSolicitation() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("gw.yaml", S.yaml)
        let mn = MACAddress("02:aa:00:00:00:44")!
        // The anchor's allocation: its address, the prefix's index in the pool (0).
        let dlif = DLIF.logicalMAC(anchor: S.a1, pool: IPv6Prefix("2001:db8:1::/48")!, prefix: IPv6Prefix("2001:db8:1::/64")!)
        #expect(dlif == MACAddress("02:00:01:00:00:00")!)
        let allRouters = IPv6Address("ff02::2")!
        let rs = S.ethernet(mn, MACAddress(multicast: allRouters), S.ipv6(from: .unspecified, to: allRouters, nextHeader: IPProtocol.icmpv6, hopLimit: 255) { b in
            try ICMPv6Message.routerSolicitation(options: .none).emit(into: b, source: .unspecified, destination: allRouters)
        })
        // 2001:db8:1:1:: and 1:2:: are bound statically: the first free /64 of 2001:db8:1::/48 is 2001:db8:1::/64.
        let up = S.udp(mn, dlif, from: IPv6Address("2001:db8:1::44")!, to: S.cn)
        let access = try s.capture("attach.pcap", [rs, up])
        let r = try runProcess(dgw, ["replay", "--config", config, "--access", access,
                               "--out-access", s.path("a.pcap"), "--out-core", s.path("c.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect((summary["control"] as? [String: Int])?["attached"] == 1, "\(summary)")
        #expect(summary["actions"] as? [String: Int] == ["uplink_native": 1, "punted_neighbor_discovery": 1], "\(summary)")
        let ras = try readFrames(s.path("a.pcap")).map { try Seen($0.bytes) }.filter { $0.eth.source == dlif }
        #expect(!ras.isEmpty && ras.allSatisfy { $0.eth.destination == mn })
        let pio = ras.first?.bytes.withUnsafeBytes { b -> [IPv6Prefix] in
            guard let e = try? EthernetFrame(checking: b), let ip = try? IPv6Packet(checking: e.payload),
                  let icmp = try? ICMPv6Packet(checking: ip.payload), case .routerAdvertisement(let ra)? = try? ICMPv6Message.parse(unverified: icmp)
            else { return [] }
            return ra.options.compactMap { if case .prefixInformation(let p) = $0 { return p.prefix }; return nil }
        }
        #expect(pio == [IPv6Prefix("2001:db8:1::/64")!])
        #expect(try readFrames(s.path("c.pcap")).count == 1)
    }

    /// An MN that moved in with no trigger or RS, still sending to D-GW2's
    /// DLIF: its first frame attaches it (a /64, this gateway's DLIF and its
    /// RAs) and D-GW2, named by that DLIF's MAC, gets a PBU that tshark reads
    /// with the subscriber's MN-ID. With `attach_on_traffic: false`, or an MN
    /// no subscriber owns, the frame is only dropped.
    @Test func anMNThatMovedInIsAttachedOnItsFirstFrame() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let mn = MACAddress("02:aa:00:00:00:55")!
        let oldRouter = DLIF.logicalMAC(anchor: S.a2, pool: IPv6Prefix("2001:db8:2::/48")!, prefix: IPv6Prefix("2001:db8:2:5::/64")!)
        let up = S.udp(mn, oldRouter, from: IPv6Address("2001:db8:2:5::55")!, to: S.cn)
        let access = try s.capture("moved.pcap", [up, up])
        func replay(_ yaml: String) throws -> (summary: [String: Any], core: [Captured], access: [Captured]) {
            let config = try s.write("gw.yaml", yaml)
            let r = try runProcess(dgw, ["replay", "--config", config, "--access", access,
                                   "--out-access", s.path("a.pcap"), "--out-core", s.path("c.pcap")])
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return (summary, try readFrames(s.path("c.pcap")), try readFrames(s.path("a.pcap")))
        }
        let subscriber = "subscribers:\n  - { id: bob@dmm.example, macs: [\"02:aa:00:00:00:55\"] }\n"
        let on = try replay(S.yaml + "\n" + subscriber)
        #expect((on.summary["control"] as? [String: Int]).map { $0["attached"] == 1 && $0["attached_on_traffic"] == 1 } == true, "\(on.summary)")
        #expect((on.summary["actions"] as? [String: Int])?["punted_unknown_mn"] == 2, "\(on.summary)")
        #expect((on.summary["signalling"] as? [String: Int])?["pbu_sent"] == 1, "\(on.summary)")
        let pbu = try #require(on.core.first { $0.bytes.count > 56 && $0.bytes[20] == IPProtocol.mobility })
        #expect(try Seen(pbu.bytes).ip.destination == S.a2)
        let tshark = try #require(["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let t = try runProcess(tshark, ["-n", "-r", s.path("c.pcap"), "-Y", "mipv6", "-T", "fields",
                                        "-e", "mip6.mhtype", "-e", "mip6.mnid.identifier", "-e", "mip6.mnlli.lli"])
        #expect(t.stdout == "5\tbob@dmm.example\t02aa00000055\n", "\(t.stdout)\(t.stderr)")
        let newDLIF = DLIF.logicalMAC(anchor: S.a1, pool: IPv6Prefix("2001:db8:1::/48")!, prefix: IPv6Prefix("2001:db8:1::/64")!)
        #expect(on.access.contains { (try? Seen($0.bytes))?.eth.source == newDLIF && (try? Seen($0.bytes))?.eth.destination == mn })

        let off = try replay(S.yaml.replacingOccurrences(of: "mtu: 1500 }", with: "mtu: 1500, attach_on_traffic: false }"))
        #expect(off.summary["drops"] as? [String: Int] == ["unknown_destination_mac": 2], "\(off.summary)")
        func toMN(_ c: [Captured]) -> Bool { c.contains { (try? Seen($0.bytes))?.eth.destination == mn } }
        #expect((off.summary["control"] as? [String: Int])?["attached"] == nil && off.core.isEmpty && !toMN(off.access))

        let other = try replay(S.yaml + "\n" + subscriber.replacingOccurrences(of: ":55", with: ":56"))
        #expect((other.summary["control"] as? [String: Int])?["not_subscribed"] == 2, "\(other.summary)")
        #expect((other.summary["control"] as? [String: Int])?["attached"] == nil && other.core.isEmpty && !toMN(other.access))
    }

    /// A handover replayed: the attach trigger (`--events`) of an MN whose
    /// former anchor is D-GW2 makes D-GW1 send its RAs and a PBU to D-GW2;
    /// the PBA in the core capture installs the tunnel and D-GW2's DLIF as
    /// the PBA fixed it; tunnelled downlink from D-GW2 then reaches the MN
    /// from that DLIF. Triggers after the last frame are reported not applied.
    @Test func eventsDriveAHandover() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("gw.yaml", S.yaml)
        let mn = MACAddress("02:aa:00:00:00:07")!, anchored = IPv6Prefix("2001:db8:2:7::/64")!
        let host = IPv6Address("2001:db8:2:7::100")!, dlif2 = MACAddress("02:d2:00:00:00:07")!
        let pba = BindingAcknowledgement(status: 0, flags: [.proxyRegistration, .distributedGateway], sequence: 0, lifetime: 900,
                                         options: .built([.mobileNodeLinkLayerIdentifier(.owned([2, 0xaa, 0, 0, 0, 7])),
                                                          .anchoredPrefix(anchored), .localPrefix(IPv6Prefix("2001:db8:2:aaaa::/64")!),
                                                          .dlifLinkLocalAddress(IPv6Address("fe80::d2:7")!),
                                                          .dlifLinkLayerAddress(LinkLayerAddress(dlif2))]))
        let pbaFrame = S.ethernet(S.a2MAC, S.coreMAC, S.ipv6(from: S.a2, to: S.a1, nextHeader: IPProtocol.mobility) { b in
            try MobilityMessage.bindingAcknowledgement(pba).emit(into: b, source: S.a2, destination: S.a1)
        })
        let downlink = S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, S.ip(S.udp(S.a2MAC, S.coreMAC, from: S.cn, to: host))))
        // Core: a neighbour's NA at 0 s, the PBA at 1 s, the tunnelled packet at 2 s.
        let core = try s.capture("core.pcap", [S.neighborAdvertisement(of: S.gatewayAddress, at: S.routerMAC), pbaFrame, downlink],
                                 stepNs: 1_000_000_000)
        let events = try s.write("events.jsonl", """
            {"t": 0.5, "attach": {"mn": "02:aa:00:00:00:07", "previous": ["2001:db8:ffff::2"]}}
            {"t": 30, "detach": {"mn": "02:aa:00:00:00:07"}}
            """)
        let r = try runProcess(dgw, ["replay", "--config", config, "--core", core, "--access", try s.capture("empty.pcap", []),
                               "--events", events, "--out-access", s.path("a.pcap"), "--out-core", s.path("c.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(summary["events"] as? [String: Int] == ["attach": 1])
        #expect(summary["events_not_applied"] as? [String: Int] == ["detach": 1])
        #expect((summary["signalling"] as? [String: Int]).map { $0["pbu_sent"] == 1 && $0["pba_received"] == 1 } == true, "\(summary)")
        // The PBU, at the trigger's time, to D-GW2.
        let outCore = try readFrames(s.path("c.pcap"))
        let pbu = try #require(outCore.first { $0.bytes.count > 56 && $0.bytes[20] == IPProtocol.mobility })
        #expect(pbu.time == 1_764_000_000_500_000_000)
        #expect(try Seen(pbu.bytes).ip.destination == S.a2 && Seen(pbu.bytes).eth.destination == S.a2MAC)
        // On the access side: RAs from D-GW1's new DLIF, then from D-GW2's
        // (the PBA's MAC and link-local), deprecating its prefix, a RIO for its
        // local network; and the downlink delivered from that DLIF.
        let outAccess = try readFrames(s.path("a.pcap")).map { try Seen($0.bytes) }
        let fromD2 = outAccess.filter { $0.eth.source == dlif2 }
        let ra = try #require(fromD2.first { if case .routerAdvertisement = $0.icmp { true } else { false } })
        #expect(ra.ip.source == IPv6Address("fe80::d2:7")! && ra.eth.destination == mn)
        if case .routerAdvertisement(let adv) = ra.icmp {
            #expect(adv.options.contains(.prefixInformation(PrefixInformation(prefix: anchored, validLifetime: 86_400, preferredLifetime: 0))))
            #expect(adv.options.contains { if case .routeInformation(let rio) = $0 { rio.prefix == IPv6Prefix("2001:db8:2:aaaa::/64")! } else { false } })
        }
        let delivered = try #require(fromD2.first { $0.icmp == nil })
        #expect(delivered.eth.destination == mn && delivered.ip.destination == host && delivered.ip.hopLimit == 63)
        // Its DLIF of D-GW1, allocated with the first free /64 of the pool.
        #expect(outAccess.contains { $0.eth.source == DLIF.logicalMAC(anchor: S.a1, pool: IPv6Prefix("2001:db8:1::/48")!, prefix: IPv6Prefix("2001:db8:1::/64")!) })

        let bad = try s.write("bad.jsonl", "{\"t\": 1, \"attach\": {\"mn\": \"nope\"}}\n")
        let r2 = try runProcess(dgw, ["replay", "--config", config, "--core", core, "--events", bad,
                                "--out-access", s.path("a2.pcap"), "--out-core", s.path("c2.pcap")])
        #expect(r2.status != 0 && r2.stderr.contains("bad.jsonl:1:"))
    }

    /// A multi-interface MN replayed at the gateway of its second interface:
    /// the `move-prefix` event sends D-GW2 a PBU for the first interface's
    /// prefix (HI 2, the prefix as HNP, the subscriber's MN-ID: tshark reads
    /// them); D-GW2's PBA in the core capture installs the tunnel, and the
    /// prefix's tunnelled downlink reaches the second interface. A move for
    /// another subscriber is refused, reported and not applied.
    @Test func movePrefixEvent() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let yaml = S.yaml + "\nsubscribers:\n  - { id: alice@dmm.example, macs: [\"02:aa:00:00:00:07\", \"02:aa:00:00:00:08\"] }\n"
        let config = try s.write("gw.yaml", yaml)
        let b = MACAddress("02:aa:00:00:00:08")!, moved = IPv6Prefix("2001:db8:2:7::/64")!, dlif2 = MACAddress("02:d2:00:00:00:07")!
        let pba = BindingAcknowledgement(status: 0, flags: [.proxyRegistration, .distributedGateway], sequence: 0, lifetime: 900,
                                         options: .built([.mobileNodeLinkLayerIdentifier(.owned(b.octets)),
                                                          .anchoredPrefix(moved), .dlifLinkLayerAddress(LinkLayerAddress(dlif2))]))
        let pbaFrame = S.ethernet(S.a2MAC, S.coreMAC, S.ipv6(from: S.a2, to: S.a1, nextHeader: IPProtocol.mobility) { b in
            try MobilityMessage.bindingAcknowledgement(pba).emit(into: b, source: S.a2, destination: S.a1)
        })
        let host = IPv6Address("2001:db8:2:7::100")!
        let downlink = S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, S.ip(S.udp(S.a2MAC, S.coreMAC, from: S.cn, to: host))))
        let core = try s.capture("core.pcap", [S.neighborAdvertisement(of: S.gatewayAddress, at: S.routerMAC), pbaFrame, downlink],
                                 stepNs: 1_000_000_000)
        let events = try s.write("events.jsonl", """
            {"t": 0.2, "attach": {"mn": "02:aa:00:00:00:08"}}
            {"t": 0.5, "move-prefix": {"mn": "alice@dmm.example", "prefix": "2001:db8:2:7::/64", "to": "02:aa:00:00:00:08", "anchor": "2001:db8:ffff::2"}}
            {"t": 0.6, "move-prefix": {"mn": "bob@dmm.example", "prefix": "2001:db8:2:7::/64", "to": "02:aa:00:00:00:08", "anchor": "2001:db8:ffff::2"}}
            """)
        let r = try runProcess(dgw, ["replay", "--config", config, "--core", core, "--events", events,
                               "--out-access", s.path("a.pcap"), "--out-core", s.path("c.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("move-prefix at t=0.6 s refused: 02:aa:00:00:00:08 is not an interface of subscriber bob@dmm.example"), "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(summary["events"] as? [String: Int] == ["attach": 1, "move-prefix": 1])
        #expect(summary["events_not_applied"] as? [String: Int] == ["move-prefix": 1])
        #expect((summary["signalling"] as? [String: Int]).map { $0["pbu_sent"] == 1 && $0["pba_received"] == 1 } == true, "\(summary)")
        let tshark = try #require(["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let t = try runProcess(tshark, ["-n", "-r", s.path("c.pcap"), "-Y", "mipv6", "-T", "fields", "-e", "mip6.mhtype", "-e", "mip6.hi",
                                        "-e", "mip6.nemo.mnp.mnp", "-e", "mip6.mnid.identifier", "-e", "mip6.mnlli.lli", "-e", "ipv6.dst"])
        #expect(t.stdout == "5\t2\t2001:db8:2:7::\talice@dmm.example\t02aa00000008\t2001:db8:ffff::2\n", "\(t.stdout)\(t.stderr)")
        let delivered = try readFrames(s.path("a.pcap")).map { try Seen($0.bytes) }.filter { $0.icmp == nil }
        #expect(delivered.count == 1 && delivered.first?.eth.source == dlif2 && delivered.first?.eth.destination == b
                && delivered.first?.ip.destination == host)
    }
}

struct Captured { var time: Int; var bytes: [UInt8] }

func readFrames(_ path: String) throws -> [Captured] {
    let r = try PcapFileReader(path: path)
    var out: [Captured] = []
    while let rec = try r.next() { out.append(Captured(time: rec.seconds * 1_000_000_000 + rec.nanoseconds, bytes: Array(rec.data))) }
    return out
}

@Suite struct ConfigTests {
    func error(_ yaml: String) -> String {
        do {
            _ = try GatewayConfig.parse(yaml, file: "t.yaml")
            return "no error"
        } catch { return error.description }
    }

    @Test func readsTheContract() throws {
        let c = try GatewayConfig.parse(S.yaml, file: "t.yaml")
        #expect(c.name == "dgw1" && c.address == S.a1 && c.coreMAC == S.coreMAC)
        #expect(c.access?.interface == "acc0" && c.core.port.mtu == 1500 && c.core.gateway == S.gatewayAddress)
        #expect(c.staticBindings.count == 3 && c.staticBindings[1].serving == .peer(S.a2) && c.staticBindings[2].anchor == .peer(S.a2))
        #expect(c.peers.map(\.name) == ["dgw2"] && c.neighbors.count == 2)
    }

    static let design = root.deletingLastPathComponent().appendingPathComponent("shared/DESIGN.md")

    /// DESIGN.md lives beside the repository, not in it: a clone on its own
    /// skips this (README's examples are checked by readsREADMEsExamples).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: design.path), "../shared/DESIGN.md is beside the repository"))
    func readsDESIGNsExample() throws {
        let text = try String(contentsOf: Self.design, encoding: .utf8)
        guard let start = text.range(of: "```yaml\n"), let end = text.range(of: "```", range: start.upperBound..<text.endIndex) else {
            Issue.record("no yaml example in ../shared/DESIGN.md")
            return
        }
        // DESIGN.md elides the key ("00112233..."); a real one has 16 octets at least.
        let yaml = String(text[start.upperBound..<end.lowerBound])
            .replacingOccurrences(of: "00112233...", with: "00112233445566778899aabbccddeeff")
        let c = try GatewayConfig.parse(yaml, file: "DESIGN.md")
        #expect(c.staticBindings.count == 3 && c.auth.count == 1 && c.auth[0].spi == 256)
        #expect(c.localNetworks.first?.via == .access && c.metrics == "127.0.0.1:9100")
        #expect(c.ra.intervalSeconds == 3 && c.binding.maxAttempts == 5 && c.cmdMode == .relay)
    }

    /// Every configuration README.md shows is one `dgw` takes.
    @Test func readsREADMEsExamples() throws {
        let text = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        var roles: [Role] = []
        var rest = text[...]
        while let start = rest.range(of: "```yaml\n"), let end = rest.range(of: "```", range: start.upperBound..<rest.endIndex) {
            do {
                roles.append(try GatewayConfig.parse(String(rest[start.upperBound..<end.lowerBound]), file: "README.md").role)
            } catch {
                Issue.record("README.md: \(error)")
            }
            rest = rest[end.upperBound...]
        }
        #expect(roles == [.dgw, .cmd, .lma])
    }

    /// The YAML layer (libyaml's events composed into a tree): positions,
    /// anchors and aliases, and what it refuses.
    @Test func yamlSyntaxAndStructure() throws {
        let base = "name: x\naddress: 2001:db8::1\naccess: {interface: a}\n"
        let aliased = try GatewayConfig.parse(base + """
            core: &c {interface: c0, prefix: "2001:db8::/64"}
            peers:
              - {name: p, address: 2001:db8::2}
            neighbors:
              - &n {address: "2001:db8::2", mac: "02:00:00:00:00:02"}
              - *n
            """, file: "t.yaml")
        #expect(aliased.core.port.interface == "c0" && aliased.neighbors.count == 2 && aliased.neighbors[1].address == aliased.neighbors[0].address)
        #expect(error("name: x\n  bad: indent\n") == "t.yaml:2:6: YAML: mapping values are not allowed in this context")
        #expect(error(base + "core: *nope\n") == "t.yaml:4:7: YAML: unknown alias 'nope'")
        #expect(error(base + "core: {interface: c, prefix: 2001:db8::/64}\n---\nname: y\n").contains("t.yaml:5:1: YAML: one document expected"))
        #expect(error("") == "t.yaml:1:1: empty configuration")
        #expect(error("# only a comment\n") == "t.yaml:1:1: empty configuration")
        #expect(error(base + "name: y\ncore: {interface: c, prefix: 2001:db8::/64}\n") == "t.yaml:4:1: duplicate key 'name' in configuration")
        #expect(error("- just\n- a list\n") == "t.yaml:1:1: configuration must be a mapping")
    }

    @Test func refusesWithFileLineAndReason() throws {
        #expect(error("name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\nfoo: 1\n")
                == "t.yaml:5:1: unknown key 'foo' in configuration")
        #expect(error("name: x\naddress: 2001:db8::zz\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n")
                == "t.yaml:2:10: address: '2001:db8::zz' is not an IPv6 address")
        #expect(error("name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::1/64}\n")
                .contains("has bits set after /64"))
        // Gateways' addresses are ones signalling can come from.
        #expect(error("name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n"
                      + "peers: [{name: y, address: \"::1\"}]\n")
                == "t.yaml:5:28: address: '::1' is not a unicast address a gateway can signal from")
        #expect(error("name: x\naddress: \"::\"\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n")
                .contains("address: '::' is not a unicast address a gateway can signal from"))
        #expect(error("name: x\naddress: 2001:db8::1\naccess: {interface: a, mtu: 9}\ncore: {interface: c, prefix: 2001:db8::/64}\n")
                .contains("access.mtu must be in 1280...65535"))
        #expect(error("name: x\naddress: 2001:db8::1\ncore: {interface: c, prefix: 2001:db8::/64}\n").contains("access is required"))
        #expect(error("name: [\n").hasPrefix("t.yaml:"))
        // A key for an address nobody takes signalling from, a second key for one peer, a short key.
        let keyed = "name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n"
            + "peers: [{name: y, address: 2001:db8::2}]\nauth:\n"
        let entry = "  - { peer: 2001:db8::2, spi: 300, key_hex: \"00112233445566778899aabbccddeeff\" }\n"
        #expect(error(keyed + entry) == "no error")
        #expect(error(keyed + entry.replacingOccurrences(of: "::2", with: "::3"))
                == "t.yaml:7:13: auth peer 2001:db8::3 is not in peers, nor the cmd or lma")
        #expect(error(keyed + entry + entry) == "t.yaml:8:13: a second auth entry for 2001:db8::2")
        #expect(error(keyed + entry.replacingOccurrences(of: "ddeeff", with: "")).contains("key_hex must be at least 16 octets of hex"))
        #expect(try GatewayConfig.parse(keyed + entry, file: "t.yaml").authWindowSeconds == 7)
        #expect(try GatewayConfig.parse(keyed + entry + "auth_window_s: 30\n", file: "t.yaml").authWindowSeconds == 30)
        #expect(error(keyed + entry + "auth_window_s: 0\n").hasPrefix("t.yaml:8:16: auth_window_s"))
        #expect(error("""
            name: x
            address: 2001:db8::1
            access: {interface: a}
            core: {interface: c, prefix: 2001:db8::/64}
            static_bindings:
              - { mn: "02:aa:00:00:00:01", prefix: 2001:db8:1::/48, anchor: self, serving: self }
            """).contains("t.yaml:6:40: a binding's prefix must be a /64, not /48"))
        #expect(error("""
            name: x
            address: 2001:db8::1
            access: {interface: a}
            core: {interface: c, prefix: 2001:db8::/64}
            static_bindings:
              - { mn: "02:aa:00:00:00:01", prefix: 2001:db8:1:1::/64, anchor: self, serving: self }
              - { mn: "02:aa:00:00:00:02", prefix: 2001:db8:1:1::/64, anchor: self, serving: self }
            """).contains("already bound at line 6"))
    }

    /// Subscribers (MN-ID and MACs) and attach on traffic: read, and refused
    /// where they contradict themselves.
    @Test func readsSubscribers() throws {
        let base = "name: x\naddress: 2001:db8::1\ncore: {interface: c, prefix: 2001:db8::/64}\n"
        let c = try GatewayConfig.parse(base + """
            access: {interface: a, attach_on_traffic: false}
            subscribers:
              - { id: alice@dmm.example, macs: ["02:aa:00:00:00:01", "02:aa:00:00:00:02"] }
              - { macs: ["02:aa:00:00:00:03"] }
            """, file: "t.yaml")
        #expect(!c.attachOnTraffic && c.subscribers?.count == 2)
        #expect(c.subscribers?[0].id == "alice@dmm.example" && c.subscribers?[0].macs.count == 2 && c.subscribers?[1].id == nil)
        #expect(try GatewayConfig.parse(base + "access: {interface: a}\n", file: "t.yaml").attachOnTraffic)
        let access = "access: {interface: a}\nsubscribers:\n"
        #expect(error(base + "access: {interface: a, attach_on_traffic: maybe}\n")
                == "t.yaml:4:43: access.attach_on_traffic must be true or false")
        #expect(error(base + access + "  - { id: a, macs: [\"02:aa:00:00:00:01\"] }\n  - { macs: [\"02:aa:00:00:00:01\"] }\n")
                == "t.yaml:7:14: 02:aa:00:00:00:01 is already a subscriber's at line 6")
        #expect(error(base + access + "  - { id: a, macs: [\"02:aa:00:00:00:01\"] }\n  - { id: a, macs: [\"02:aa:00:00:00:02\"] }\n")
                == "t.yaml:7:11: subscriber a is already listed at line 6")
        #expect(error(base + access + "  - { macs: [] }\n") == "t.yaml:6:5: a subscriber needs at least one MAC in macs")
        #expect(error(base + access + "  - { macs: [\"33:33:00:00:00:01\"] }\n") == "t.yaml:6:14: 33:33:00:00:00:01 is a multicast MAC, no MN's")
        #expect(error(base + access + "  - { id: \(String(repeating: "n", count: 255)), macs: [\"02:aa:00:00:00:01\"] }\n")
                == "t.yaml:6:11: id is longer than 254 octets")
    }

    /// `hold_ms`: 50 by default, 0 to drop at once, within 0...10,000
    /// (LMAReplayTests replays with 0).
    @Test func readsTheHoldTime() throws {
        let base = "name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n"
        #expect(try GatewayConfig.parse(base, file: "t.yaml").holdMilliseconds == 50)
        #expect(try GatewayConfig.parse(base + "hold_ms: 0\n", file: "t.yaml").holdMilliseconds == 0)
        #expect(error(base + "hold_ms: 10001\n").hasPrefix("t.yaml:5:10: hold_ms"))
        #expect(error(base + "hold_ms: soon\n").hasPrefix("t.yaml:5:10: hold_ms"))
    }

    /// A CMD has the core port only and anchors nothing; a gateway's `cmd`
    /// is someone else.
    @Test func refusesWhatACMDCannotHave() {
        let cmd = "name: c\nrole: cmd\naddress: 2001:db8::100\ncore: {interface: c, prefix: 2001:db8::/64}\n"
        #expect(error(cmd + "access: {interface: a}\n") == "t.yaml:5:9: role cmd has no access port (it serves no MN); remove access")
        #expect(error(cmd + "prefix_pool: 2001:db8:1::/48\n") == "t.yaml:5:14: role cmd anchors no prefix: no prefix_pool, local_networks or static_bindings")
        #expect(error(cmd + "cmd: 2001:db8::1\n") == "t.yaml:5:6: cmd is for role dgw: the gateway registers its MNs there")
        #expect(error(cmd + "cmd_mode: proxy\n").contains("t.yaml:5:11: cmd_mode"))
        let gateway = "name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n"
        #expect(error(gateway + "cmd: 2001:db8::1\n") == "t.yaml:5:6: cmd is this gateway's own address")
        let parsed = try? GatewayConfig.parse(cmd + "cmd_mode: locator\npeers:\n  - {name: g, address: 2001:db8::1}\n", file: "t.yaml")
        #expect(parsed?.role == .cmd && parsed?.cmdMode == .locator && parsed?.access == nil)
        // Its records across a restart; a gateway's MNs register again.
        #expect((try? GatewayConfig.parse(cmd + "state_file: /var/lib/dgw/cmd.state\n", file: "t.yaml"))?.stateFile == "/var/lib/dgw/cmd.state")
        #expect(error(gateway + "state_file: /var/lib/dgw/x.state\n") == "t.yaml:5:13: state_file is for role cmd or lma: a gateway's MNs register again")
        // Its journal folded in past a limit (64 MiB unless told; 0: never).
        let stateFile = cmd + "state_file: /var/lib/dgw/cmd.state\n"
        #expect((try? GatewayConfig.parse(stateFile, file: "t.yaml"))?.stateJournalLimit == 64 << 20)
        #expect((try? GatewayConfig.parse(stateFile + "state_journal_limit: 0\n", file: "t.yaml"))?.stateJournalLimit == 0)
        #expect(error(cmd + "state_journal_limit: 1000\n") == "t.yaml:5:22: state_journal_limit is the journal of a state_file: set state_file too")
        #expect(error(stateFile + "state_journal_limit: -1\n").contains("t.yaml:6:22: state_journal_limit"))
        // Flushed to the disk at each step when asked.
        #expect((try? GatewayConfig.parse(stateFile, file: "t.yaml"))?.stateSync == false)
        #expect((try? GatewayConfig.parse(stateFile + "state_sync: true\n", file: "t.yaml"))?.stateSync == true)
        #expect(error(cmd + "state_sync: true\n") == "t.yaml:5:13: state_sync is the journal of a state_file: set state_file too")
        #expect(error(stateFile + "state_sync: 3\n").contains("t.yaml:6:13: state_sync"))
    }
}

extension ConfigTests {
    /// An LMA has the core port only, anchors no prefix of its own, and its
    /// static bindings join two peers; a gateway's `lma` is someone else
    /// than itself and its `cmd`; peers may name their operator.
    @Test func refusesWhatAnLMACannotHave() throws {
        let lma = "name: l\nrole: lma\naddress: 2001:db8::100\ncore: {interface: c, prefix: 2001:db8::/64}\n"
        #expect(error(lma + "access: {interface: a}\n") == "t.yaml:5:9: role lma has no access port (it serves no MN); remove access")
        #expect(error(lma + "prefix_pool: 2001:db8:1::/48\n") == "t.yaml:5:14: role lma anchors no prefix of its own: no prefix_pool or local_networks")
        #expect(error(lma + "lma: 2001:db8::1\n") == "t.yaml:5:6: lma is for role dgw: the gateway registers its MNs there")
        let bindings = "static_bindings:\n  - { mn: \"02:aa:00:00:00:01\", prefix: 2001:db8:1:1::/64, "
        #expect(error(lma + bindings + "anchor: self, serving: 2001:db8::2 }\n")
                == "t.yaml:6:5: an LMA's static binding joins two other gateways: anchor and serving are two peers")
        #expect(error(lma + bindings + "anchor: 2001:db8::2, serving: 2001:db8::2 }\n")
                == "t.yaml:6:5: an LMA's static binding joins two other gateways: anchor and serving are two peers")
        // Between two of its peers, one serving gateway per MN and one prefix per anchor (its records hold no more).
        let peers = "peers:\n  - { name: a, address: 2001:db8::1 }\n  - { name: b, address: 2001:db8::2 }\n  - { name: c, address: 2001:db8::3 }\n"
        #expect(error(lma + bindings + "anchor: 2001:db8::1, serving: 2001:db8::2 }\n")
                == "t.yaml:6:5: 2001:db8::1 is not in peers: the LMA signals only with its peers")
        #expect(error(lma + peers + bindings + "anchor: 2001:db8::1, serving: 2001:db8::4 }\n")
                == "t.yaml:10:5: 2001:db8::4 is not in peers: the LMA signals only with its peers")
        let second = "  - { mn: \"02:aa:00:00:00:01\", prefix: 2001:db8:1:2::/64, "
        #expect(error(lma + peers + bindings + "anchor: 2001:db8::1, serving: 2001:db8::2 }\n" + second + "anchor: 2001:db8::3, serving: 2001:db8::1 }\n")
                == "t.yaml:11:5: 02:aa:00:00:00:01 is served at one gateway: line 10 has it served elsewhere")
        #expect(error(lma + peers + bindings + "anchor: 2001:db8::1, serving: 2001:db8::2 }\n" + second + "anchor: 2001:db8::1, serving: 2001:db8::2 }\n")
                == "t.yaml:11:5: 02:aa:00:00:00:01 has one prefix per anchor: line 10 has one at that anchor already")
        let parsed = try GatewayConfig.parse(lma + peers + bindings + "anchor: 2001:db8::1, serving: 2001:db8::2 }\n"
                                             + second + "anchor: 2001:db8::3, serving: 2001:db8::2 }\n", file: "t.yaml")
        #expect(parsed.role == .lma && parsed.access == nil && parsed.staticBindings.count == 2)
        let gateway = "name: x\naddress: 2001:db8::1\naccess: {interface: a}\ncore: {interface: c, prefix: 2001:db8::/64}\n"
        #expect(error(gateway + "lma: 2001:db8::1\n") == "t.yaml:5:6: lma is this gateway's own address")
        #expect(error(gateway + "cmd: 2001:db8::100\nlma: 2001:db8::100\n") == "t.yaml:6:6: lma and cmd are one address: a node is a CMD or an LMA")
        let both = try GatewayConfig.parse(gateway + "cmd: 2001:db8::100\nlma: 2001:db8::200\n", file: "t.yaml")
        #expect(both.lma == IPv6Address("2001:db8::200") && both.cmd == IPv6Address("2001:db8::100"))
        let operators = try GatewayConfig.parse(lma + "peers:\n  - { name: a, address: 2001:db8::1, operator: blue }\n  - { name: b, address: 2001:db8::2 }\n",
                                                file: "t.yaml")
        #expect(operators.peers.map(\.operator) == ["blue", nil])
    }
}

/// `dgw replay` as an inter-operator LMA: a prefix bound between its
/// anchor and the MN's serving gateway, and tunnelled traffic from both.
@Suite struct LMAReplayTests {
    @Test func relaysBetweenTheTwoTunnels() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let config = try s.write("lma.yaml", """
            name: lma
            role: lma
            address: 2001:db8:ffff::1
            core: { interface: core0, mtu: 1500, prefix: 2001:db8:ffff::/64, gateway: 2001:db8:ffff::fe, mac: "02:dd:00:00:00:01" }
            peers:
              - { name: dgw2, address: 2001:db8:ffff::2 }
              - { name: dgw3, address: 2001:db8:ffff::3 }
            neighbors:
              - { address: 2001:db8:ffff::2, mac: "02:dd:00:00:00:02" }
              - { address: 2001:db8:ffff::3, mac: "02:dd:00:00:00:03" }
            static_bindings:
              - { mn: "02:aa:00:00:00:03", prefix: 2001:db8:2:3::/64, anchor: 2001:db8:ffff::2, serving: 2001:db8:ffff::3 }
            """)
        let up = S.ip(S.udp(S.mn3, S.dlif3, from: S.h3, to: S.cn, hopLimit: 60))
        let down = S.ip(S.udp(S.routerMAC, S.coreMAC, from: S.cn, to: S.h3, hopLimit: 40))
        let core = try s.capture("core.pcap", [
            S.ethernet(S.a3MAC, S.coreMAC, S.tunnel(from: S.a3, to: S.a1, up)),
            S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, down)),
            S.ethernet(S.a2MAC, S.coreMAC, S.tunnel(from: S.a2, to: S.a1, up)),  // the wrong way
        ])
        let r = try runProcess(dgw, ["replay", "--config", config, "--core", core,
                                     "--out-access", s.path("oa.pcap"), "--out-core", s.path("oc.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        // The wrong way from a peer: held for a binding, refused when the capture ends.
        #expect(summary["actions"] as? [String: Int] == ["uplink_relayed": 1, "downlink_relayed": 1, "held_for_binding": 1])
        #expect(summary["drops"] as? [String: Int] == ["decapsulation_refused": 1])
        #expect(try readFrames(s.path("oa.pcap")).isEmpty)
        // `hold_ms: 0`: refused at once.
        let noHold = try s.write("lma-nohold.yaml", try String(contentsOfFile: config, encoding: .utf8)
            + "\nhold_ms: 0\n")
        let r0 = try runProcess(dgw, ["replay", "--config", noHold, "--core", core,
                                      "--out-access", s.path("oa0.pcap"), "--out-core", s.path("oc0.pcap")])
        let summary0 = try #require(try JSONSerialization.jsonObject(with: Data(r0.stdout.utf8)) as? [String: Any])
        #expect(summary0["actions"] as? [String: Int] == ["uplink_relayed": 1, "downlink_relayed": 1], "\(r0.stderr)")
        #expect(summary0["drops"] as? [String: Int] == ["decapsulation_refused": 1])
        // tshark reads both tunnels: outer and inner addresses, hop limits.
        let tshark = try #require(which("tshark"))
        let t = try runProcess(tshark, ["-n", "-r", s.path("oc.pcap"), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                                        "-e", "eth.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.hlim", "-e", "_ws.malformed"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stdout.split(separator: "\n") == [
            "02:dd:00:00:00:02\t2001:db8:ffff::1|2001:db8:2:3::100\t2001:db8:ffff::2|2001:db8:cccc::1\t64|59\t",
            "02:dd:00:00:00:03\t2001:db8:ffff::1|2001:db8:cccc::1\t2001:db8:ffff::3|2001:db8:2:3::100\t64|39\t",
        ])
        // The binding from the LMA's `state_file` instead of its static bindings
        // (what `dgw run` saved when it stopped): relayed the same; the file untouched.
        let withoutStatic = try String(contentsOfFile: config, encoding: .utf8).components(separatedBy: "static_bindings:")[0]
        let statePath = s.path("lma.state")
        let state = "{\"mn\":\"02:aa:00:00:00:03\",\"anchors\":[{\"gateway\":\"2001:db8:ffff::2\",\"prefix\":\"2001:db8:2:3::/64\"}],"
            + "\"serving\":\"2001:db8:ffff::3\",\"relayed\":[{\"prefix\":\"2001:db8:2:3::/64\",\"anchor\":\"2001:db8:ffff::2\",\"serving\":\"2001:db8:ffff::3\"}]}\n"
        try Data(state.utf8).write(to: URL(fileURLWithPath: statePath))
        let saved = try s.write("lma-saved.yaml", withoutStatic + "state_file: \(statePath)\nhold_ms: 0\n")
        let r1 = try runProcess(dgw, ["replay", "--config", saved, "--core", core,
                                      "--out-access", s.path("oa1.pcap"), "--out-core", s.path("oc1.pcap")])
        let summary1 = try #require(try JSONSerialization.jsonObject(with: Data(r1.stdout.utf8)) as? [String: Any])
        #expect(summary1["actions"] as? [String: Int] == ["uplink_relayed": 1, "downlink_relayed": 1], "\(r1.stderr)")
        #expect(try String(contentsOfFile: statePath, encoding: .utf8) == state)
        // Without it, nothing is bound: all three refused.
        let none = try s.write("lma-none.yaml", withoutStatic + "hold_ms: 0\n")
        let r2 = try runProcess(dgw, ["replay", "--config", none, "--core", core,
                                      "--out-access", s.path("oa2.pcap"), "--out-core", s.path("oc2.pcap")])
        let summary2 = try #require(try JSONSerialization.jsonObject(with: Data(r2.stdout.utf8)) as? [String: Any])
        #expect(summary2["drops"] as? [String: Int] == ["decapsulation_refused": 3], "\(r2.stdout)")
        // A CMD carries no traffic: a relayed binding in its state is refused, with the line.
        let cmd = try s.write("cmd.yaml", withoutStatic.replacingOccurrences(of: "role: lma", with: "role: cmd") + "state_file: \(statePath)\n")
        let r3 = try runProcess(dgw, ["replay", "--config", cmd, "--core", core,
                                      "--out-access", s.path("oa3.pcap"), "--out-core", s.path("oc3.pcap")])
        #expect(r3.status == 2 && r3.stderr.contains("lma.state:1: relayed bindings are an LMA's: a CMD carries no traffic"), "\(r3.stderr)")
    }
}

@Suite struct PcapgenTests {
    var pcapgen: String { builtExecutable("dgw-pcapgen") }

    @Test func generatedTrafficExercisesEveryForwardingPathAndReplaysClean() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let gen = try runProcess(pcapgen, ["--mns", "200", "--frames", "5000", "--out", s.path("g"), "--malformed-percent", "3"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let r = try runProcess(dgw, ["replay", "--config", s.path("g/gw.yaml"), "--access", s.path("g/access.pcap"),
                               "--core", s.path("g/core.pcap"), "--out-access", s.path("oa.pcap"), "--out-core", s.path("oc.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let actions = try #require(summary["actions"] as? [String: Int])
        for a in ["uplink_native", "uplink_encapsulated", "uplink_decapsulated", "downlink_delivered",
                  "downlink_encapsulated", "downlink_decapsulated"] {
            #expect((actions[a] ?? 0) > 0, "\(a) never happened")
        }
        // Only the damage pcapgen does: truncated or non-IPv6 headers, MACs
        // nobody owns (from an MN, to a MAC no DLIF of its has: handed to
        // the control plane, which attaches nobody for it, within the rate).
        let drops = try #require(summary["drops"] as? [String: Int])
        #expect(Set(drops.keys).isSubset(of: ["malformed", "unknown_destination_mac", "not_for_this_gateway", "punted_to_control_plane"]),
                "\(drops)")
        // Those frames are held for a binding too (to a logical MAC), then dropped.
        #expect((actions["punted_unknown_mn"] ?? 0) <= (drops["punted_to_control_plane"] ?? 0) + (drops["unknown_destination_mac"] ?? 0))
        #expect((summary["control"] as? [String: Int])?["attached"] == nil, "\(summary)")
        let dropped = drops.values.reduce(0, +)
        #expect((50...250).contains(dropped), "\(dropped) of 5000 dropped for 3% damaged")
        #expect(summary["frames_in"] as? Int == 5000 && summary["frames_out"] as? Int == 5000 - dropped)
        // Deterministic for a seed.
        #expect(try runProcess(pcapgen, ["--mns", "200", "--frames", "5000", "--out", s.path("h"), "--malformed-percent", "3"]).status == 0)
        for f in ["access.pcap", "core.pcap", "gw.yaml"] {
            #expect(FileManager.default.contents(atPath: s.path("g/" + f)) == FileManager.default.contents(atPath: s.path("h/" + f)))
        }
    }
}
