@testable import DGWControl
import DGWPipeline
import DGWPorts
import DGWSimulation
import DGWTestSupport
import DGWWire
import Foundation
import Testing

/// RFC 8885's Central Mobility Database: the gateways register every MN
/// with it and learn the former anchors from it (no `previous` in the
/// attach triggers), relayed or located.
@Suite struct CMDTests {
    /// The tour 1 -> 2 -> 3 -> 1 with a CMD in `mode`: flows on every
    /// prefix after each move, old prefixes deprecated behind their
    /// anchors' DLIFs, D-GW1's local network through its DLIF, and back at
    /// 1 its prefix preferred again with no tunnel for it.
    @Test(arguments: [CMDMode.relay, .locator])
    func handoverTour(_ mode: CMDMode) throws {
        let d = try Domain(cmd: mode)
        let gw = d.g.map(\.address), cmd = d.g[3]
        let lipa = IPv6Prefix("2001:db8:1:aaaa::/64")!
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        #expect(d.roundTrip(a1))
        #expect(cmd.control.mobilityRecords.map(\.anchors) == [[Anchoring(gateway: gw[0], prefix: d.prefix(at: 1)!)]])
        #expect(cmd.control.mobilityRecords.first?.serving == gw[0])

        d.move(to: 1)
        let a2 = try #require(d.address(at: 2))
        #expect(a2.preferred && d.address(at: 1)?.preferred == false, "the old prefix is deprecated")
        #expect(d.address(at: 1)?.router == d.dlifMAC(at: 1), "the same router as at D-GW1")
        #expect(d.mn.routes.contains { $0.prefix == lipa && $0.router == d.dlifMAC(at: 1) }, "D-GW1's local network through its DLIF")
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1])
        #expect(d.binding(at: 2, d.prefix(at: 1))?.anchor == gw[0])
        #expect(d.g[1].tables.localNetworkRoutes.map(\.prefix) == [lipa])

        d.move(to: 2)
        let a3 = try #require(d.address(at: 3))
        #expect(a3.preferred && d.address(at: 1)?.preferred == false && d.address(at: 2)?.preferred == false)
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address) && d.roundTrip(a3.address))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2] && d.binding(at: 2, d.prefix(at: 2))?.serving == gw[2])
        #expect(d.binding(at: 2, d.prefix(at: 1)) == nil, "D-GW2 no longer serves the MN")
        #expect(d.g[1].control.router.dlifs.isEmpty && d.g[1].control.sessions.isEmpty)
        let sessions = d.g[2].control.sessions
        switch mode {
        case .relay:
            // One session, with the CMD, granting both former anchors.
            #expect(sessions.map(\.anchor) == [cmd.address] && sessions.map(\.state) == [.bound])
            #expect(sessions.first?.grants.map(\.anchor) == [gw[0], gw[1]])
            #expect(cmd.control.counters.pbuSent == 3, "relayed: 1 to D-GW1 at the first move, then to D-GW1 and D-GW2")
        case .locator:
            // Registered with the CMD, then bound with each former anchor directly.
            #expect(Set(sessions.map(\.anchor)) == [cmd.address, gw[0], gw[1]] && sessions.allSatisfy { $0.state == .bound })
            #expect(cmd.control.counters.pbuSent == 0)
        }
        #expect(cmd.control.mobilityRecords.first?.anchors.map(\.gateway) == [gw[0], gw[1], gw[2]])
        #expect(cmd.control.mobilityRecords.first?.serving == gw[2])

        d.move(to: 0)
        #expect(d.address(at: 1)?.preferred == true, "the prefix of D-GW1 is preferred again")
        #expect(d.mn.preferredAddress == a1)
        let back = try #require(d.binding(at: 1, d.prefix(at: 1)))
        #expect(back.serving == nil && back.anchor == nil, "no tunnel for D-GW1's own prefix")
        #expect(d.binding(at: 3, d.prefix(at: 3))?.serving == gw[0])
        #expect(d.g[2].control.sessions.isEmpty && d.g[2].tables.localNetworkRoutes.isEmpty)
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address) && d.roundTrip(a3.address))
        #expect(cmd.control.mobilityRecords.first?.serving == gw[0])
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.rejected == 0 && $0.control.counters.malformed == 0 && $0.control.counters.timeouts == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.unexpected == 0 })
    }

    /// The CMD restarts with the records it saved (`state_file`): the MN's
    /// next move brings in both former anchors at once, as if it had not
    /// restarted (without them it would know neither until the serving
    /// gateway's next refresh).
    @Test(arguments: [CMDMode.relay, .locator])
    func restartedWithItsRecords(_ mode: CMDMode) throws {
        let d = try Domain(cmd: mode)
        let gw = d.g.map(\.address), cmd = d.g[3]
        d.move(to: 0)
        d.move(to: 1)
        let saved = cmd.control.mobilityRecords
        #expect(saved.first?.anchors.map(\.gateway) == [gw[0], gw[1]] && saved.first?.serving == gw[1])
        try cmd.restart(initialSequence: 50, configure: { $0.records = saved })
        #expect(cmd.control.mobilityRecords == saved)

        d.move(to: 2)
        let a1 = try #require(d.address(at: 1)).address, a2 = try #require(d.address(at: 2)).address
        let a3 = try #require(d.address(at: 3)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2) && d.roundTrip(a3))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2] && d.binding(at: 2, d.prefix(at: 2))?.serving == gw[2])
        #expect(cmd.control.mobilityRecords.first?.anchors.map(\.gateway) == [gw[0], gw[1], gw[2]])
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.control.counters.rejected == 0 && $0.control.counters.timeouts == 0 })
    }

    /// The CMD restarts and forgets every record: the serving gateway's
    /// next refresh names the former anchors it holds grants from (Previous
    /// MAAR), the CMD rebuilds the record from it, and D-GW1's binding
    /// goes on being refreshed (through the relaying CMD) instead of
    /// lapsing; the next move still brings every former anchor.
    @Test(arguments: [CMDMode.relay, .locator])
    func restartedCMDRebuildsItsRecordsFromTheRefreshes(_ mode: CMDMode) throws {
        let d = try Domain(cmd: mode)
        let gw = d.g.map(\.address), cmd = d.g[3]
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        d.move(to: 1)
        let a2 = try #require(d.address(at: 2)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2))
        try cmd.restart(initialSequence: 50)
        #expect(cmd.control.mobilityRecords.isEmpty)
        // Two binding lifetimes: D-GW1's binding would have lapsed twice over.
        d.sim.run(for: Int64(2 * d.g[1].controlConfiguration.bindingLifetime) * 1_000 * ms)
        #expect(cmd.control.mobilityRecords.first?.anchors.map(\.gateway) == [gw[0], gw[1]], "\(mode)")
        #expect(cmd.control.counters.anchorsRelearnt == 1, "\(mode)")
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1], "\(mode)")
        #expect(d.roundTrip(a1) && d.roundTrip(a2), "\(mode)")
        d.move(to: 2)
        let a3 = try #require(d.address(at: 3)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2) && d.roundTrip(a3), "\(mode)")
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2], "\(mode)")
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 }, "\(mode)")
        // The refreshes with their Previous MAAR options, and all the rest, decode clean in tshark.
        let refreshes = d.sim.trace.map(\.frame).filter {
            isMobility($0, type: MobilityHeaderType.bindingUpdate) && source(of: $0) == gw[1]
                && options(of: $0).contains { if case .previousMAAR(gw[0], _) = $0 { true } else { false } }
        }
        #expect(!refreshes.isEmpty, "\(mode)")
        let r = try d.tshark(["-Y", "mipv6", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                              "-e", "_ws.malformed", "-e", "_ws.expert.severity"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in r.stdout.split(separator: "\n") {
            let cols = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            #expect(cols.first?.isEmpty == true, "malformed: \(line)")
            #expect(cols.dropFirst().first.map { $0.split(separator: "|").compactMap { Int($0) }.allSatisfy { $0 < 0x0060_0000 } } ?? true, "\(line)")
        }
    }

    /// The MN leaves D-GW2: its de-registration goes through the CMD to
    /// D-GW1, whose binding goes; the CMD keeps where the MN's prefixes are.
    @Test func detachIsRelayed() throws {
        let d = try Domain(cmd: .relay)
        let gw = d.g.map(\.address), cmd = d.g[3]
        d.move(to: 0)
        d.move(to: 1)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1])
        d.sim.detach(d.mn, from: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, d.prefix(at: 1)) == nil, "de-registered: D-GW1 routes the prefix nowhere")
        #expect(d.g[1].control.sessions.isEmpty)
        let record = try #require(cmd.control.mobilityRecords.first)
        #expect(record.serving == nil && record.anchors.map(\.gateway) == [gw[0], gw[1]])
        #expect(cmd.control.counters.deregistrations == 1 && cmd.control.counters.unexpected == 0)
        // Back at D-GW3 later: both former prefixes are brought back.
        d.move(to: 2)
        #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address))
    }

    /// A former anchor that does not answer is left out of the CMD's answer
    /// (after its attempts), and the others are granted; the serving gateway
    /// gets its answer before it gives up.
    @Test func silentAnchorIsLeftOut() throws {
        let d = try Domain(cmd: .relay)
        let gw = d.g.map(\.address), cmd = d.g[3]
        d.move(to: 0)
        d.move(to: 1)
        // D-GW1 is gone (no answer from it from now on).
        d.sim.down = [d.g[0].coreMAC]
        d.sim.move(d.mn, to: 2, previous: [])
        d.sim.run(for: 40_000 * ms)
        #expect(cmd.control.counters.timeouts == 1, "\(d.g.map(\.control.counters))")
        let sessions = d.g[2].control.sessions
        #expect(sessions.map(\.state) == [.bound] && sessions.first?.grants.map(\.anchor) == [gw[1]])
        #expect(d.g[2].control.counters.timeouts == 0)
        #expect(d.roundTrip(d.address(at: 2)!.address))
    }

    /// With 30% of the signalling lost (both legs through the CMD), the
    /// handovers complete by retransmission.
    @Test func thirtyPercentSignallingLoss() throws {
        var completed = 0, totalLost = 0
        for seed in UInt64(1)...8 {
            let d = try Domain(cmd: .relay)
            d.sim.signallingLoss = 0.3
            d.sim.seed(seed)
            let gw = d.g.map(\.address)
            d.sim.move(d.mn, to: 0, previous: [])
            d.sim.run(for: 40_000 * ms)
            d.sim.move(d.mn, to: 1, previous: [])
            d.sim.run(for: 40_000 * ms)
            d.sim.move(d.mn, to: 2, previous: [])
            d.sim.run(for: 40_000 * ms)
            totalLost += d.sim.signallingLost
            let timeouts = d.g.map(\.control.counters.timeouts).reduce(0, +)
            if timeouts == 0 {
                completed += 1
                #expect(d.g[2].control.sessions.first?.grants.map(\.anchor) == [gw[0], gw[1]], "seed \(seed)")
                #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address), "seed \(seed)")
            }
        }
        #expect(totalLost >= 5)
        #expect(completed >= 5)
    }

    /// The CMD takes signalling from its gateways only, refuses a replayed
    /// (stale) registration, and one without the MN's prefix.
    @Test func strangersStaleAndIncompleteRegistrations() throws {
        let d = try Domain(cmd: .relay)
        let gw = d.g.map(\.address), cmd = d.g[3]
        d.move(to: 0)
        let registration = try #require(d.sim.trace.first { isMobility($0.frame, type: MobilityHeaderType.bindingUpdate) }?.frame)
        d.move(to: 1)
        let before = cmd.control.counters
        #expect(cmd.receive(registration, on: .core, time: d.sim.now).count == 1)
        #expect(cmd.control.counters.rejected == before.rejected + 1, "D-GW1's sequence number was seen")
        #expect(cmd.control.mobilityRecords.first?.serving == gw[1], "nothing changed")
        let stranger = rewriteSource(registration, to: IPv6Address("2001:db8:ffff::66")!)
        #expect(cmd.receive(stranger, on: .core, time: d.sim.now).isEmpty)
        #expect(cmd.control.counters.unknownPeer == before.unknownPeer + 1)
        // A gateway's PBU with no Home Network Prefix option: refused.
        let pbu = ControlPlane.proxyBindingUpdate(sequence: 7, lifetime: 3600, options: ControlPlane.identify(d.mn.mac))
        let packet = try #require(ControlPlane.packet(.bindingUpdate(pbu), from: gw[2], to: cmd.address))
        let bare = cmd.coreMAC.octets + d.g[2].coreMAC.octets + [0x86, 0xDD] + packet.bytes
        let replies = cmd.receive(bare, on: .core, time: d.sim.now)
        #expect(replies.count == 1)
        #expect(cmd.control.counters.rejected == before.rejected + 2)
        #expect(cmd.control.mobilityRecords.first?.anchors.count == 2)
    }

    /// Every frame of a relayed tour decodes in tshark with no malformed
    /// packet or warning; the relayed PBU names the serving gateway
    /// (Serving MAAR) and the CMD's PBA each former anchor (Previous MAAR).
    @Test func tsharkAcceptsTheRelayedSignalling() throws {
        let d = try Domain(cmd: .relay)
        d.move(to: 0)
        d.move(to: 1)
        d.move(to: 2)
        let r = try d.tshark(["-Y", "mipv6", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                                        "-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "mip6.mhtype", "-e", "ipv6.src",
                                        "-e", "ipv6.dst"])
        #expect(r.status == 0, "\(r.stderr)")
        var lines: [[String]] = []
        for line in r.stdout.split(separator: "\n") {
            let cols = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(cols.count >= 5)
            #expect(cols[0].isEmpty, "malformed: \(line)")
            #expect(cols[1].split(separator: "|").compactMap { Int($0) }.allSatisfy { $0 < 0x0060_0000 }, "\(line)")
            lines.append(cols)
        }
        // 3 registrations and their answers, 3 relays and theirs.
        let cmd = "\(d.g[3].address)"
        #expect(lines.map { $0[2] } == ["5", "6", "5", "5", "6", "6", "5", "5", "5", "6", "6", "6"])
        #expect(lines.filter { $0[2] == "5" && $0[3] == cmd }.count == 3)
        // What they carry, by our own decoder.
        let signalling = d.sim.trace.map(\.frame).filter { isMobility($0, type: MobilityHeaderType.bindingUpdate) || isMobility($0, type: MobilityHeaderType.bindingAcknowledgement) }
        let relayed = signalling.filter { isMobility($0, type: MobilityHeaderType.bindingUpdate) && source(of: $0) == d.g[3].address }
        #expect(relayed.count == 3 && relayed.allSatisfy { options(of: $0).contains(.servingMAAR(d.g[1].address)) || options(of: $0).contains(.servingMAAR(d.g[2].address)) })
        let answer = try #require(signalling.last { isMobility($0, type: MobilityHeaderType.bindingAcknowledgement) && source(of: $0) == d.g[3].address })
        let previous = options(of: answer).compactMap { if case .previousMAAR(let maar, _) = $0 { maar } else { nil } }
        #expect(previous == [d.g[0].address, d.g[1].address], "a Previous MAAR option per former anchor")
    }

    /// With `journal`, the CMD notes each MN whose record changed, given
    /// once by `drainJournal` as it is now (what `dgw run` appends to its
    /// state file's journal), and as gone when it ran out.
    @Test func journalNotesEachChange() throws {
        let d = try Domain(cmd: .relay) { c in
            c.journal = true
            c.bindingLifetime = 40
        }
        let gw = d.g.map(\.address), cmd = d.g[3].control
        d.move(to: 0)
        let first = cmd.drainJournal()
        #expect(first.map(\.mn) == [d.mn.mac] && first.first?.record == cmd.mobilityRecords.first, "\(first)")
        #expect(cmd.drainJournal().isEmpty, "given once")
        d.move(to: 1)
        let second = cmd.drainJournal()
        #expect(second.count == 1 && second.first?.record?.serving == gw[1] && second.first?.record?.anchors.map(\.gateway) == [gw[0], gw[1]])
        // D-GW2 goes silent: its registration runs out, then the record.
        d.sim.down = [d.g[1].coreMAC]
        d.sim.run(for: 100_000 * ms)
        #expect(cmd.mobilityRecords.isEmpty)
        let gone = cmd.drainJournal()
        #expect(gone.map(\.mn) == [d.mn.mac] && gone.first?.record == nil && gone.first?.relayed == [], "\(gone)")
        // Without `journal`, nothing is noted.
        let plain = try Domain(cmd: .relay)
        plain.move(to: 0)
        #expect(plain.g[3].control.drainJournal().isEmpty && plain.g[3].control.mobilityRecords.count == 1)
    }
}

func source(of frame: [UInt8]) -> IPv6Address { frame.withUnsafeBytes { IPv6Address($0, at: 22) } }

/// The mobility options of a PBU or PBA frame (Ethernet, IPv6, Mobility
/// Header), but those that borrow the frame's bytes (identifiers).
func options(of frame: [UInt8]) -> [MobilityOption] {
    frame.withUnsafeBytes { b -> [MobilityOption] in
        guard let ip = try? IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: b[14...])),
              let mh = try? MobilityHeaderPacket(checking: ip.payload),
              let message = try? MobilityMessage.parse(mh, source: ip.source, destination: ip.destination) else { return [] }
        switch message {
        case .bindingUpdate(let u): return u.options.filter(\.isValue)
        case .bindingAcknowledgement(let a): return a.options.filter(\.isValue)
        case .bindingRevocation(let r): return r.options.filter(\.isValue)
        case .other: return []
        }
    }
}

extension MobilityOption {
    var isValue: Bool {
        switch self {
        case .mobileNodeIdentifier, .mobileNodeLinkLayerIdentifier, .unknown: false
        default: true
        }
    }
}
