import DGWControl
import DGWPipeline
import DGWPorts
import DGWSimulation
import DGWTestSupport
import DGWWire
import Foundation
import Testing

let ms: Int64 = 1_000_000

/// Three gateways, a correspondent and one MN, in memory (DGWSimulation):
/// the real data and control planes of each gateway on virtual time.
final class Domain {
    let sim: Simulation
    let mn = SimulatedHost(name: "mn", mac: MACAddress("02:aa:00:00:00:01")!)
    var cn: SimulatedHost { sim.correspondents[0] }
    var g: [SimulatedGateway] { sim.gateways }
    var cnAddress: IPv6Address { cn.addresses[0].address }
    private var probe: UInt8 = 0

    /// With `cmd`, a fourth node g[3]: the CMD the gateways register with;
    /// with `lma`, the inter-operator LMA after it (by default each gateway
    /// an operator of its own: no gateway another's peer).
    init(cmd: CMDMode? = nil, lma: Bool = false, operators: [Int]? = nil,
         configure: (inout ControlPlaneConfiguration) -> Void = { _ in },
         pipeline: (inout PipelineConfiguration) -> Void = { _ in }) throws {
        sim = try Simulation.domain(gateways: 3, cmd: cmd, lma: lma, operators: operators, configure: configure, pipeline: pipeline)
        sim.add(mn)
    }

    /// The MN moves into cell `cell` (its gateway told the former anchors
    /// `previous`), and 50 ms go by: signalling and the RA burst done.
    func move(to cell: Int, previous: [IPv6Address] = []) {
        sim.move(mn, to: cell, previous: previous)
        sim.run(for: 50 * ms)
    }

    /// The MN's address from gateway i's pool (1-based).
    func address(at i: Int) -> SimulatedHost.Address? {
        mn.addresses.first { g[i - 1].controlConfiguration.access.prefixPool!.contains($0.address) }
    }

    /// The logical MAC D-GW i gave the DLIF of the MN's prefix there.
    func dlifMAC(at i: Int) -> MACAddress? {
        address(at: i).map { DLIF.logicalMAC(anchor: g[i - 1].address, pool: g[i - 1].controlConfiguration.access.prefixPool!,
                                             prefix: IPv6Prefix(address: $0.address, length: 64)!) }
    }

    /// The /64 gateway i allocated to the MN.
    func prefix(at i: Int) -> IPv6Prefix? { g[i - 1].control.router.allocation(of: mn.mac) }

    /// One datagram each way between `address` and the correspondent (or
    /// `host`, a host in a cell): true when both arrived, unchanged.
    func roundTrip(_ address: IPv6Address, with host: SimulatedHost? = nil) -> Bool {
        probe &+= 1
        let payload: [UInt8] = [probe, 0xD6, 0x4D]
        let peer = host ?? cn, peerAddress = peer.addresses[0].address
        let peerBefore = peer.received.count, mnBefore = mn.received.count
        guard let up = mn.udp(from: address, to: peerAddress, payload: payload),
              let down = peer.udp(from: peerAddress, to: address, payload: payload) else { return false }
        sim.send(up, from: mn)
        if host == nil { sim.send(down, fromCorrespondent: cn) } else { sim.send(down, from: peer) }
        sim.run(for: 20 * ms)
        return peer.received.dropFirst(peerBefore).contains { $0.source == address && $0.payload == payload }
            && mn.received.dropFirst(mnBefore).contains { $0.destination == address && $0.payload == payload }
    }

    func binding(at i: Int, _ prefix: IPv6Prefix?) -> BindingEntry? { prefix.flatMap { g[i - 1].tables.binding($0) } }

    /// tshark run with `arguments` over everything the nodes sent so far
    /// (written to a capture, removed after).
    func tshark(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-simulation-\(getpid())-\(UInt64.random(in: 0 ... .max)).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let w = try PcapFileWriter(path: path)
        for (t, f) in sim.trace { try w.write(f, seconds: 1_764_000_000 + Int(t / 1_000_000_000), nanoseconds: Int(t % 1_000_000_000)) }
        try w.close()
        let tshark = try #require(which("tshark"), "tshark is not installed")
        return try runProcess(tshark, ["-n", "-r", path] + arguments)
    }
}

@Suite struct HandoverTests {
    /// An MN attaches at D-GW1 (the association trigger), configures an
    /// address by SLAAC from the RA burst of its DLIF and talks to the CN natively.
    @Test func attachThenNativeTraffic() throws {
        let d = try Domain()
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1))
        #expect(a1.preferred)
        #expect(a1.router == d.dlifMAC(at: 1))
        #expect(d.mn.routes.map(\.prefix) == [IPv6Prefix("2001:db8:1:aaaa::/64")!], "gw1's local network in a RIO")
        #expect(d.roundTrip(a1.address))
        let b = try #require(d.binding(at: 1, d.prefix(at: 1)))
        #expect(b.anchor == nil && b.serving == nil)
        #expect(d.g[0].pipeline.totals[.uplinkNative] == 1 && d.g[0].pipeline.totals[.downlinkDelivered] == 1)
        #expect(d.g[0].control.counters.pbuSent == 0)
    }

    /// The full tour: 1 -> 2 -> 3 with flows on every prefix after each
    /// move, old prefixes deprecated and tunnelled to their anchors, then
    /// back to 1: its prefix preferred again and its tunnel gone.
    @Test func handoverOneTwoThreeAndBack() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address

        d.move(to: 1, previous: [gw[0]])
        let a2 = try #require(d.address(at: 2))
        #expect(a2.preferred)
        #expect(d.address(at: 1)?.preferred == false, "the old prefix is deprecated")
        #expect(d.address(at: 1)?.router == d.dlifMAC(at: 1), "the same router as at D-GW1")
        #expect(d.mn.preferredAddress == a2.address)
        #expect(d.mn.routes.contains { $0.prefix == IPv6Prefix("2001:db8:1:aaaa::/64")! && $0.router == d.dlifMAC(at: 1) },
                "D-GW1's local network through D-GW1's DLIF")
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1])
        #expect(d.binding(at: 2, d.prefix(at: 1))?.anchor == gw[0])
        #expect(d.g[0].pipeline.totals[.downlinkEncapsulated] == 1 && d.g[0].pipeline.totals[.uplinkDecapsulated] == 1)

        d.move(to: 2, previous: [gw[0], gw[1]])
        let a3 = try #require(d.address(at: 3))
        #expect(a3.preferred && d.address(at: 1)?.preferred == false && d.address(at: 2)?.preferred == false)
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address) && d.roundTrip(a3.address))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2])
        #expect(d.binding(at: 2, d.prefix(at: 2))?.serving == gw[2])
        #expect(d.binding(at: 2, d.prefix(at: 1)) == nil, "D-GW2 no longer serves the MN")
        #expect(d.g[1].control.router.dlifs.isEmpty && d.g[1].control.sessions.isEmpty)
        #expect(d.g[2].control.sessions.map(\.state) == [.bound, .bound])

        d.move(to: 0, previous: [gw[1], gw[2]])
        #expect(d.address(at: 1)?.preferred == true, "the prefix of D-GW1 is preferred again")
        #expect(d.address(at: 3)?.preferred == false)
        #expect(d.mn.preferredAddress == a1)
        let back = try #require(d.binding(at: 1, d.prefix(at: 1)))
        #expect(back.serving == nil && back.anchor == nil, "no tunnel for D-GW1's own prefix")
        #expect(d.binding(at: 3, d.prefix(at: 1)) == nil && d.binding(at: 3, d.prefix(at: 2)) == nil)
        #expect(d.binding(at: 3, d.prefix(at: 3))?.serving == gw[0])
        let native = d.g[0].pipeline.totals[.downlinkDelivered]
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address) && d.roundTrip(a3.address))
        #expect(d.g[0].pipeline.totals[.downlinkDelivered] == native + 1, "a1 delivered natively")
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.rejected == 0 && $0.control.counters.malformed == 0 })
    }

    /// LIPA (draft-bernardos 4.1): a host of D-GW1's local network, on its
    /// access link, stays reachable wherever the MN goes, from each of its
    /// addresses: through D-GW1's DLIF (the RIO's router) and the tunnel to
    /// D-GW1 from the serving gateway, natively back for the serving
    /// gateway's own prefix. The route goes when the MN leaves.
    @Test func localNetworkReachableFromEveryServingGateway() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        let lipa = IPv6Prefix("2001:db8:1:aaaa::/64")!
        let host = SimulatedHost(name: "lipa", mac: MACAddress("02:bb:00:00:00:01")!, addresses: [IPv6Address("2001:db8:1:aaaa::10")!])
        let hostDLIF = MACAddress("02:d1:00:00:aa:aa")!
        try d.g[0].tables.attach(mn: host.mac, prefix: lipa, dlifMAC: hostDLIF)  // a host bound statically
        host.routes = [(IPv6Prefix("::/0")!, hostDLIF)]
        d.sim.place(host, in: 0)

        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        #expect(d.roundTrip(a1, with: host))
        #expect(d.g[0].pipeline.totals[.uplinkDelivered] == 2, "both ways on D-GW1's access link")

        d.move(to: 1, previous: [gw[0]])
        let a2 = try #require(d.address(at: 2)).address
        #expect(d.g[1].tables.localNetworkRoutes.map(\.prefix) == [lipa] && d.g[1].tables.localNetworkRoutes.first?.anchor == gw[0])
        let tunnelled = d.g[1].pipeline.totals[.uplinkEncapsulated]
        #expect(d.roundTrip(a2, with: host), "from the new prefix")
        #expect(d.g[1].pipeline.totals[.uplinkEncapsulated] == tunnelled + 1, "into D-GW1's tunnel though anchored at D-GW2")
        #expect(d.roundTrip(a1, with: host), "from the old prefix")

        d.move(to: 2, previous: [gw[0], gw[1]])
        let a3 = try #require(d.address(at: 3)).address
        #expect(d.g[1].tables.localNetworkRoutes.isEmpty, "D-GW2 serves the MN no more")
        #expect(d.g[2].tables.localNetworkRoutes.map(\.prefix) == [lipa, IPv6Prefix("2001:db8:2:aaaa::/64")!])
        #expect(d.roundTrip(a3, with: host) && d.roundTrip(a2, with: host) && d.roundTrip(a1, with: host))

        d.move(to: 0, previous: [gw[1], gw[2]])
        #expect(d.g[2].tables.localNetworkRoutes.isEmpty)
        #expect(d.g[0].tables.localNetworkRoutes.map(\.prefix) == [IPv6Prefix("2001:db8:2:aaaa::/64")!, IPv6Prefix("2001:db8:3:aaaa::/64")!])
        #expect(d.roundTrip(a1, with: host) && d.roundTrip(a3, with: host))
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 })
        // Another anchor's local network is not routed for the core.
        let cnToLIPA = try #require(d.cn.udp(from: d.cnAddress, to: IPv6Address("2001:db8:2:aaaa::1")!, payload: [1]))
        var misrouted = cnToLIPA
        misrouted.replaceSubrange(0..<6, with: d.g[0].coreMAC.octets)
        let before = d.g[0].pipeline.totals[.noRoute]
        d.sim.send(misrouted, fromCorrespondent: d.cn)
        d.sim.run(for: 20 * ms)
        #expect(d.g[0].pipeline.totals[.noRoute] == before + 1)
    }

    /// With 30% of the signalling lost, handovers complete by retransmission.
    @Test func thirtyPercentSignallingLoss() throws {
        var completed = 0, totalLost = 0, totalRetransmitted = 0
        for seed in UInt64(1)...8 {
            let d = try Domain()
            d.sim.signallingLoss = 0.3
            d.sim.seed(seed)
            let gw = d.g.map(\.address)
            d.move(to: 0)
            d.sim.move(d.mn, to: 1, previous: [gw[0]])
            d.sim.run(for: 40_000 * ms)
            d.sim.move(d.mn, to: 2, previous: [gw[0], gw[1]])
            d.sim.run(for: 40_000 * ms)
            let lost = d.sim.signallingLost
            let retransmitted = d.g.map(\.control.counters.pbuRetransmitted).reduce(0, +)
            let timeouts = d.g.map(\.control.counters.timeouts).reduce(0, +)
            if timeouts == 0 {
                completed += 1
                #expect(d.g[2].control.sessions.map(\.state) == [.bound, .bound])
                #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address))
            }
            #expect(lost == 0 || retransmitted > 0, "seed \(seed): \(lost) lost, \(retransmitted) retransmitted")
            totalLost += lost
            totalRetransmitted += retransmitted
        }
        #expect(totalLost >= 3 && totalRetransmitted >= totalLost / 2)
        // 5 attempts each: a session fails with probability about 0.51^5 = 3.5%.
        #expect(completed >= 6)
    }

    /// The serving gateway restarts (state and sequence numbers lost): the
    /// anchor refuses its first PBU as out of window, it resynchronises and
    /// the MN's old prefix works again.
    @Test func servingGatewayRestartsMidSession() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        // D-GW2 has sent 100 PBUs before (an older session's numbers).
        try d.g[1].restart(initialSequence: 100)
        d.move(to: 1, previous: [gw[0]])
        let a1 = try #require(d.address(at: 1)).address
        #expect(d.roundTrip(a1))
        try d.g[1].restart(initialSequence: 0)
        d.move(to: 1, previous: [gw[0]])
        #expect(d.g[0].control.counters.rejected == 1)
        #expect(d.g[1].control.counters.resynchronised == 1)
        #expect(d.g[1].control.sessions.map(\.state) == [.bound])
        #expect(d.roundTrip(a1))
    }

    /// A PBU from an address that is not a peer is dropped unanswered; a
    /// replayed (stale) PBU from a peer is refused and changes nothing.
    @Test func unauthorisedAndStalePBUs() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        // The PBU D-GW2 sent, as captured.
        let pbu = try #require(d.sim.trace.first { isMobility($0.frame, type: MobilityHeaderType.bindingUpdate) }?.frame)
        d.move(to: 2, previous: [gw[0], gw[1]])
        let before = d.g[0].control.counters
        // Replayed: from D-GW2, with a sequence number D-GW1 accepted already.
        let replies = d.g[0].receive(pbu, on: .core, time: d.sim.now)
        #expect(d.g[0].control.counters.rejected == before.rejected + 1)
        #expect(replies.count == 1)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2], "the binding stays with D-GW3")
        // From a stranger: the same PBU with its source rewritten (checksum fixed).
        let stranger = rewriteSource(pbu, to: IPv6Address("2001:db8:ffff::66")!)
        #expect(d.g[0].receive(stranger, on: .core, time: d.sim.now).isEmpty)
        #expect(d.g[0].control.counters.unknownPeer == before.unknownPeer + 1)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2])
    }

    /// The MN leaves D-GW2 (detach): D-GW2 de-registers at D-GW1, whose
    /// binding goes; an unanswered anchor is given up after max_attempts.
    @Test func detachDeregistersAndSilentAnchorTimesOut() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1])
        d.sim.detach(d.mn, from: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, d.prefix(at: 1)) == nil, "de-registered: D-GW1 routes the prefix nowhere")
        #expect(d.g[1].control.counters.deregistrations == 1)
        // An anchor that never answers (2001:db8:ffff::9 is no gateway): 5 attempts, 1+2+4+8+16 s apart.
        d.sim.move(d.mn, to: 1, previous: [IPv6Address("2001:db8:ffff::9")!])
        d.sim.run(for: 60_000 * ms)
        #expect(d.g[1].control.counters.timeouts == 1)
        #expect(d.g[1].control.sessions.isEmpty)
    }

    /// A binding not refreshed ends at the anchor when its lifetime does;
    /// one that is refreshed stays.
    @Test func lifetimesRefreshAndExpire() throws {
        let d = try Domain { $0.bindingLifetime = 40 }
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.sim.move(d.mn, to: 1, previous: [gw[0]])
        d.sim.run(for: 120_000 * ms)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1], "refreshed every 32 s")
        #expect(d.g[1].control.counters.pbuSent >= 4)
        // D-GW2 restarts and forgets the MN: nobody refreshes.
        try d.g[1].restart()
        d.sim.run(for: 41_000 * ms)
        #expect(d.binding(at: 1, d.prefix(at: 1)) == nil)
        #expect(d.g[0].control.counters.expired == 1)
    }

    /// Every frame the gateways sent in a handover tour decodes in tshark
    /// with no malformed packet or warning, checksums verified; the PBU and
    /// PBA carry what they should.
    @Test func tsharkAcceptsTheSignalling() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        _ = d.roundTrip(d.address(at: 1)!.address)
        let r = try d.tshark(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                                        "-e", "frame.protocols", "-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "mip6.mhtype",
                                        "-e", "mip6.ba.status", "-e", "mip6.mnid.identifier"])
        #expect(r.status == 0, "\(r.stderr)")
        var types: [String] = []
        for line in r.stdout.split(separator: "\n") {
            let cols = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(cols.count >= 6)
            #expect(cols[1].isEmpty, "malformed: \(line)")
            #expect(cols[2].split(separator: "|").compactMap { Int($0) }.allSatisfy { $0 < 0x0060_0000 }, "\(line)")
            if !cols[3].isEmpty {
                types.append(cols[3])
                #expect(cols[5] == "02:aa:00:00:00:01", "\(line)")
            }
            if cols[3] == "6" { #expect(cols[4] == "0") }
        }
        #expect(types == ["5", "6"])
    }
}

func isMobility(_ frame: [UInt8], type: UInt8) -> Bool {
    frame.count > 56 && frame[20] == IPProtocol.mobility && frame[54 + 2] == type
}

/// The frame with its IPv6 source changed and the Mobility Header checksum redone.
func rewriteSource(_ frame: [UInt8], to source: IPv6Address) -> [UInt8] {
    var f = frame
    f.withUnsafeMutableBytes { b in
        source.write(to: b, at: 22)
        let ip = UnsafeMutableRawBufferPointer(rebasing: b[14...])
        let mh = UnsafeMutableRawBufferPointer(rebasing: ip[40...])
        MobilityHeaderPacket.writeChecksum(mh, source: source, destination: IPv6Address(UnsafeRawBufferPointer(ip), at: 24))
    }
    return f
}
