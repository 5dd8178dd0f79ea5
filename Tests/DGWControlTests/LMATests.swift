@testable import DGWControl
import DGWPipeline
import DGWSimulation
import DGWWire
import Testing

/// draft-bernardos section 5: gateways of different operators do not
/// tunnel to each other; the home operator's LMA relays their signalling
/// and anchors the traffic between them (serving gateway <-> LMA <->
/// anchoring gateway). In the simulation every gateway is an operator of
/// its own, and only the LMA (g[3]) is anyone's peer.
@Suite struct LMATests {
    /// Every IPv6-in-IPv6 frame and every Mobility Header the nodes sent
    /// so far, as (outer source, outer destination).
    func crossings(_ d: Domain, protocol: UInt8) -> [(IPv6Address, IPv6Address)] {
        d.sim.trace.map(\.frame).filter { $0.count > 54 && $0[12] == 0x86 && $0[13] == 0xDD && $0[20] == `protocol` }
            .map { f in f.withUnsafeBytes { (IPv6Address($0, at: 22), IPv6Address($0, at: 38)) } }
    }

    /// The tour 1 -> 2 -> 3 -> 1 through the LMA: flows on every prefix
    /// after each move, old prefixes deprecated behind their anchors'
    /// DLIFs (as each anchor fixed them, though the tunnel goes to the
    /// LMA), the LMA binding each prefix between its anchor and the serving
    /// gateway, and back at 1 its prefix served there with no tunnel.
    @Test func handoverTourThroughTheLMA() throws {
        let d = try Domain(lma: true)
        let gw = d.g.map(\.address), lma = d.g[3]
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        #expect(d.roundTrip(a1))
        #expect(lma.control.mobilityRecords.map(\.anchors) == [[Anchoring(gateway: gw[0], prefix: d.prefix(at: 1)!)]])

        d.move(to: 1)
        let a2 = try #require(d.address(at: 2))
        #expect(a2.preferred && d.address(at: 1)?.preferred == false, "the old prefix is deprecated")
        #expect(d.address(at: 1)?.router == d.dlifMAC(at: 1), "the same router as at D-GW1")
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == lma.address, "to D-GW1 the LMA serves the MN")
        #expect(d.binding(at: 2, d.prefix(at: 1))?.anchor == lma.address, "to D-GW2 the LMA anchors the prefix")
        let relayed = try #require(lma.tables.binding(d.prefix(at: 1)!))
        #expect(relayed.anchor == gw[0] && relayed.serving == gw[1])
        #expect(lma.pipeline.totals[.uplinkRelayed] == 1 && lma.pipeline.totals[.downlinkRelayed] == 1)
        let lipa = IPv6Prefix("2001:db8:1:aaaa::/64")!
        #expect(d.g[1].tables.localNetworkRoutes.map(\.prefix) == [lipa] && d.g[1].tables.localNetworkRoutes.first?.anchor == lma.address,
                "D-GW1's local network into the tunnel to the LMA")
        #expect(lma.tables.localNetworkRoutes.map(\.prefix) == [lipa] && lma.tables.localNetworkRoutes.first?.anchor == gw[0])
        #expect(d.mn.routes.contains { $0.prefix == lipa && $0.router == d.dlifMAC(at: 1) }, "through D-GW1's DLIF")

        d.move(to: 2)
        let a3 = try #require(d.address(at: 3))
        #expect(a3.preferred && d.address(at: 1)?.preferred == false && d.address(at: 2)?.preferred == false)
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address) && d.roundTrip(a3.address))
        #expect(lma.tables.binding(d.prefix(at: 1)!)?.serving == gw[2] && lma.tables.binding(d.prefix(at: 2)!)?.serving == gw[2])
        #expect(lma.tables.binding(d.prefix(at: 2)!)?.anchor == gw[1])
        #expect(d.binding(at: 2, d.prefix(at: 1)) == nil && d.g[1].control.router.dlifs.isEmpty, "D-GW2 no longer serves the MN")
        let sessions = d.g[2].control.sessions
        #expect(sessions.map(\.anchor) == [lma.address] && sessions.first?.grants.map(\.anchor) == [gw[0], gw[1]])
        #expect(Set(d.g[2].control.router.dlifs.map(\.mac)) == Set([d.dlifMAC(at: 1), d.dlifMAC(at: 2), d.dlifMAC(at: 3)].compactMap { $0 }),
                "one DLIF per anchor, each with its anchor's MAC")

        d.move(to: 0)
        #expect(d.address(at: 1)?.preferred == true, "the prefix of D-GW1 is preferred again")
        let back = try #require(d.binding(at: 1, d.prefix(at: 1)))
        #expect(back.serving == nil && back.anchor == nil, "no tunnel for D-GW1's own prefix")
        #expect(lma.tables.binding(d.prefix(at: 1)!) == nil, "nor at the LMA")
        #expect(lma.tables.binding(d.prefix(at: 3)!)?.anchor == gw[2] && lma.tables.binding(d.prefix(at: 3)!)?.serving == gw[0])
        #expect(d.binding(at: 3, d.prefix(at: 3))?.serving == lma.address)
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address) && d.roundTrip(a3.address))
        #expect(lma.tables.count == 2)
        #expect(lma.tables.localNetworkRoutes.map(\.prefix) == [IPv6Prefix("2001:db8:2:aaaa::/64")!, IPv6Prefix("2001:db8:3:aaaa::/64")!])

        // Nothing went between two gateways: every tunnel and every PBU or PBA has the LMA at one end.
        let tunnels = crossings(d, protocol: IPProtocol.ipv6), signalling = crossings(d, protocol: IPProtocol.mobility)
        #expect(tunnels.count >= 18 && signalling.count >= 12)
        #expect((tunnels + signalling).allSatisfy { $0.0 == lma.address || $0.1 == lma.address })
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 })
        #expect(d.g.allSatisfy { $0.pipeline.totals[.decapsulationRefused] == 0 && $0.pipeline.totals[.sourceCheck] == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.rejected == 0 && $0.control.counters.malformed == 0 && $0.control.counters.timeouts == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.unexpected == 0 && $0.control.counters.unknownPeer == 0 })
    }

    /// The MN leaves D-GW2: its de-registration goes through the LMA to
    /// D-GW1, and the LMA's binding goes at once.
    @Test func detachThroughTheLMA() throws {
        let d = try Domain(lma: true)
        let lma = d.g[3]
        d.move(to: 0)
        d.move(to: 1)
        #expect(lma.tables.count == 1)
        d.sim.detach(d.mn, from: 1)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.count == 0)
        #expect(d.binding(at: 1, d.prefix(at: 1)) == nil, "de-registered: D-GW1 routes the prefix nowhere")
        #expect(d.g[1].control.sessions.isEmpty)
        #expect(lma.control.mobilityRecords.first?.serving == nil)
        // At D-GW3 later: the prefixes of both come back, through the LMA.
        d.move(to: 2)
        #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address))
        #expect(lma.tables.count == 2)
    }

    /// The serving gateway goes silent: when its registration runs out, the
    /// LMA's bindings go with the record; a refusing anchor gets none.
    @Test func bindingsEndWithTheRegistration() throws {
        let d = try Domain(lma: true) { $0.bindingLifetime = 40 }
        let lma = d.g[3]
        d.move(to: 0)
        d.move(to: 1)
        #expect(lma.tables.count == 1)
        // Refreshes keep it (through the LMA to D-GW1 too) for several lifetimes.
        d.sim.run(for: 150_000 * ms)
        #expect(lma.tables.count == 1 && d.roundTrip(d.address(at: 1)!.address))
        #expect(d.g[0].control.counters.accepted >= 4, "refreshes relayed to the anchor")
        d.sim.down = [d.g[1].coreMAC]
        d.sim.run(for: 60_000 * ms)
        #expect(lma.tables.count == 0)
        #expect(lma.control.counters.expired == 1)
    }

    /// Every frame of the tour decodes in tshark with no malformed packet
    /// or warning, tunnels included; the LMA's PBUs to the anchors name no
    /// Serving MAAR (the LMA is the serving gateway to them) and its PBA
    /// names each former anchor (Previous MAAR) with that anchor's DLIF.
    @Test func tsharkAcceptsTheTour() throws {
        let d = try Domain(lma: true)
        let lma = d.g[3].address
        d.move(to: 0)
        d.move(to: 1)
        d.move(to: 2)
        #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address))
        let r = try d.tshark(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
                              "-e", "ipv6.nxt"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(lines.count == d.sim.trace.count)
        for cols in lines {
            #expect(cols[0].isEmpty, "malformed: \(cols)")
            #expect(cols[1].split(separator: "|").compactMap { Int($0) }.allSatisfy { $0 < 0x0060_0000 }, "\(cols)")
        }
        #expect(lines.filter { $0[2].hasPrefix("41|") }.count >= 8, "IPv6-in-IPv6 frames decoded")
        let updates = d.sim.trace.map(\.frame).filter { isMobility($0, type: MobilityHeaderType.bindingUpdate) && source(of: $0) == lma }
        #expect(updates.count == 3 && updates.allSatisfy { !options(of: $0).contains { if case .servingMAAR = $0 { true } else { false } } })
        let answer = try #require(d.sim.trace.map(\.frame).last { isMobility($0, type: MobilityHeaderType.bindingAcknowledgement) && source(of: $0) == lma })
        let previous = options(of: answer).compactMap { if case .previousMAAR(let maar, _) = $0 { maar } else { nil } }
        #expect(previous == [d.g[0].address, d.g[1].address])
        let macs = options(of: answer).compactMap { if case .dlifLinkLayerAddress(let l) = $0 { l.mac } else { nil } }
        #expect(macs == [d.dlifMAC(at: 1), d.dlifMAC(at: 2)])
        let locals = options(of: answer).compactMap { if case .localPrefix(let l) = $0 { l } else { nil } }
        #expect(locals == [IPv6Prefix("2001:db8:1:aaaa::/64")!, IPv6Prefix("2001:db8:2:aaaa::/64")!])
    }

    /// LIPA across operators: a host of D-GW1's local network stays
    /// reachable from every address of the MN, through D-GW1's DLIF and
    /// the tunnels serving gateway -> LMA -> D-GW1; natively back for the
    /// serving gateway's own prefix. The routes go when the MN leaves.
    @Test func localNetworkThroughTheLMA() throws {
        let d = try Domain(lma: true)
        let lma = d.g[3]
        let host = SimulatedHost(name: "lipa", mac: MACAddress("02:bb:00:00:00:01")!, addresses: [IPv6Address("2001:db8:1:aaaa::10")!])
        let hostDLIF = MACAddress("02:d1:00:00:aa:aa")!
        try d.g[0].tables.attach(mn: host.mac, prefix: IPv6Prefix("2001:db8:1:aaaa::/64")!, dlifMAC: hostDLIF)
        host.routes = [(IPv6Prefix("::/0")!, hostDLIF)]
        d.sim.place(host, in: 0)
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        d.move(to: 1)
        let a2 = try #require(d.address(at: 2)).address
        let relayed = lma.pipeline.totals[.uplinkRelayed]
        #expect(d.roundTrip(a2, with: host), "from the new prefix")
        #expect(lma.pipeline.totals[.uplinkRelayed] == relayed + 1, "on from the LMA into D-GW1's tunnel")
        #expect(d.roundTrip(a1, with: host), "from the old prefix")
        d.move(to: 2)
        #expect(d.g[1].tables.localNetworkRoutes.isEmpty, "D-GW2 serves the MN no more")
        #expect(d.roundTrip(d.address(at: 3)!.address, with: host) && d.roundTrip(a2, with: host) && d.roundTrip(a1, with: host))
        d.sim.detach(d.mn, from: 2)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.localNetworkRoutes.isEmpty && d.g[2].tables.localNetworkRoutes.isEmpty)
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.pipeline.totals[.decapsulationRefused] == 0 })
    }

    /// Two operators: D-GW1 and D-GW2 with their CMD (relay), D-GW3 alone;
    /// every gateway registers with the LMA too. Within the first operator
    /// the CMD relays and the gateways tunnel to each other; into the
    /// second, the LMA relays and carries the traffic; back at D-GW1, the
    /// CMD brings D-GW2's prefix in directly and the LMA D-GW3's.
    @Test func twoOperatorsWithACMDAndAnLMA() throws {
        let d = try Domain(cmd: .relay, lma: true, operators: [1, 1, 2])
        let gw = d.g.map(\.address), cmd = d.g[3], lma = d.g[4]
        d.move(to: 0)
        d.move(to: 1)
        let a1 = try #require(d.address(at: 1)).address, a2 = try #require(d.address(at: 2)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1] && d.binding(at: 2, d.prefix(at: 1))?.anchor == gw[0],
                "one operator: a tunnel between its gateways")
        #expect(lma.tables.count == 0 && lma.control.counters.pbuSent == 0, "nothing for the LMA to relay")

        d.move(to: 2)
        let a3 = try #require(d.address(at: 3)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2) && d.roundTrip(a3))
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == lma.address && d.binding(at: 2, d.prefix(at: 2))?.serving == lma.address)
        #expect(d.binding(at: 3, d.prefix(at: 1))?.anchor == lma.address && d.binding(at: 3, d.prefix(at: 2))?.anchor == lma.address)
        #expect(lma.tables.binding(d.prefix(at: 1)!)?.serving == gw[2] && lma.tables.binding(d.prefix(at: 2)!)?.serving == gw[2])
        #expect(d.g[2].control.sessions.map(\.anchor) == [lma.address], "D-GW3 has no CMD: only the LMA")

        d.move(to: 0)
        #expect(d.address(at: 1)?.preferred == true)
        #expect(d.roundTrip(a1) && d.roundTrip(a2) && d.roundTrip(a3))
        #expect(d.binding(at: 2, d.prefix(at: 2))?.serving == gw[0], "D-GW2 tunnels to D-GW1 directly again")
        #expect(d.binding(at: 1, d.prefix(at: 2))?.anchor == gw[1])
        #expect(d.binding(at: 1, d.prefix(at: 3))?.anchor == lma.address && d.binding(at: 3, d.prefix(at: 3))?.serving == lma.address)
        #expect(lma.tables.bindings.map(\.binding.prefix) == [d.prefix(at: 3)!], "only D-GW3's prefix crosses operators")
        #expect(Set(d.g[0].control.sessions.map(\.anchor)) == [cmd.address, lma.address])
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 && $0.pipeline.totals[.decapsulationRefused] == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.rejected == 0 && $0.control.counters.timeouts == 0 && $0.control.counters.unexpected == 0 })
    }

    /// A static binding at the LMA (its file's `static_bindings`: D-GW1's
    /// prefix joined to D-GW2's tunnel) is in its records from the start,
    /// as if it had relayed it: when the MN registers at D-GW3, the LMA
    /// asks D-GW1 and the prefix follows the MN there, behind D-GW1's DLIF.
    @Test func staticRelayedBindingFollowsTheMN() throws {
        let gw1 = IPv6Address("2001:db8:ffff::1")!, gw2 = IPv6Address("2001:db8:ffff::2")!, lmaAddress = IPv6Address("2001:db8:ffff::200")!
        let mn = MACAddress("02:aa:00:00:00:01")!, dlif = MACAddress("02:d1:00:00:00:99")!
        let p = IPv6Prefix("2001:db8:1:99::/64")!  // in D-GW1's pool, kept out of what it allocates
        let d = try Domain(lma: true, configure: { c in
            if c.address == gw1 {
                c.access.reserved = [p]
                c.anchored = [AnchoredMN(mn: mn, prefix: p, dlifMAC: dlif, serving: .peer(lmaAddress))]
            }
            if c.role == .lma { c.relayed = [RelayedBinding(mn: mn, prefix: p, anchor: gw1, serving: gw2)] }
        }, pipeline: { c in
            if c.address == gw1 { c.bindings = [BindingEntry(mn: mn, prefix: p, anchor: nil, serving: lmaAddress, dlifMAC: dlif)] }
            if c.address == lmaAddress { c.bindings = [BindingEntry(mn: mn, prefix: p, anchor: gw1, serving: gw2, dlifMAC: dlif)] }
        })
        let lma = d.g[3], gw3 = d.g[2].address
        #expect(lma.control.mobilityRecords == [MobilityRecord(mn: mn, anchors: [Anchoring(gateway: gw1, prefix: p)], serving: gw2)])

        d.move(to: 2)
        #expect(lma.tables.binding(p)?.anchor == gw1 && lma.tables.binding(p)?.serving == gw3, "D-GW1's prefix now joined to D-GW3")
        #expect(d.binding(at: 3, p)?.anchor == lmaAddress && d.binding(at: 1, p)?.serving == lmaAddress)
        #expect(lma.control.mobilityRecords.first?.anchors.map(\.gateway) == [gw1, gw3] && lma.control.mobilityRecords.first?.serving == gw3)
        let old = try #require(d.mn.addresses.first { p.contains($0.address) }, "the MN has D-GW1's prefix at D-GW3")
        #expect(!old.preferred && old.router == dlif, "deprecated, behind the DLIF D-GW1 fixed")
        let new = try #require(d.address(at: 3))
        #expect(d.roundTrip(old.address) && d.roundTrip(new.address))
        #expect(lma.pipeline.totals[.uplinkRelayed] == 1 && lma.pipeline.totals[.downlinkRelayed] == 1)
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 && $0.pipeline.totals[.decapsulationRefused] == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.rejected == 0 && $0.control.counters.timeouts == 0 && $0.control.counters.unexpected == 0 })
    }

    /// The LMA restarts with what it saved (`state_file`): its records and
    /// the bindings it relayed, back in its data plane at start. The traffic
    /// between the operators flows on at once, and the next move goes on
    /// from there.
    @Test func restartedWithItsRecordsAndBindings() throws {
        let d = try Domain(lma: true)
        let gw = d.g.map(\.address), lma = d.g[3]
        d.move(to: 0)
        d.move(to: 1)
        let a1 = try #require(d.address(at: 1)).address
        let records = lma.control.mobilityRecords, relayed = lma.control.relayedBindings
        #expect(relayed == [RelayedBinding(mn: d.mn.mac, prefix: d.prefix(at: 1)!, anchor: gw[0], serving: gw[1])])
        try lma.restart(initialSequence: 50, configure: { c in
            c.records = records
            c.relayed = relayed
        }, pipeline: { p in
            p.bindings += relayed.map { BindingEntry(mn: $0.mn, prefix: $0.prefix, anchor: $0.anchor, serving: $0.serving) }
        })
        #expect(lma.control.mobilityRecords == records && lma.control.relayedBindings == relayed)
        #expect(d.roundTrip(a1), "relayed at once by the restarted LMA")

        d.move(to: 2)
        let a2 = try #require(d.address(at: 2)).address, a3 = try #require(d.address(at: 3)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2) && d.roundTrip(a3))
        #expect(lma.tables.binding(d.prefix(at: 1)!)?.serving == gw[2] && lma.tables.binding(d.prefix(at: 2)!)?.serving == gw[2])
        #expect(lma.control.relayedBindings.map(\.serving) == [gw[2], gw[2]])
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.control.counters.rejected == 0 && $0.control.counters.timeouts == 0 })
    }
}
