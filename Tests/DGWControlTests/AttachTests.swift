@testable import DGWControl
import DGWPipeline
import DGWSimulation
import DGWWire
import Testing

/// The MN-IDs (NAI) of the PBUs and PBAs in the trace, in order, with their type.
func identities(_ d: Domain) -> [(type: UInt8, id: String)] {
    d.sim.trace.compactMap { _, frame -> (UInt8, String)? in
        guard isMobility(frame, type: MobilityHeaderType.bindingUpdate) || isMobility(frame, type: MobilityHeaderType.bindingAcknowledgement)
        else { return nil }
        let (mh, source, destination) = mobilityHeader(frame)
        return mh.withUnsafeBytes { b in
            guard let packet = try? MobilityHeaderPacket(checking: b),
                  let message = try? MobilityMessage.parse(packet, source: source, destination: destination),
                  let (_, id) = message.options.mobileNodeIdentifier else { return nil }
            return (mh[2], String(decoding: Array(id), as: UTF8.self))
        }
    }
}

/// `frame` with its Ethernet destination (and source) changed.
func readdressed(_ frame: [UInt8], to destination: MACAddress, from source: MACAddress? = nil) -> [UInt8] {
    var f = frame
    f.withUnsafeMutableBytes { b in
        destination.write(to: b, at: 0)
        source?.write(to: b, at: 6)
    }
    return f
}

@Suite struct AttachTests {
    /// An MN that moves from D-GW1 to D-GW2 with no association event and
    /// no new RS keeps sending to the router it had (D-GW1's DLIF): D-GW2
    /// attaches it on that first frame (a /64, its DLIF), learns from the
    /// DLIF's logical MAC that D-GW1 anchors it and signals it there; the
    /// old prefix is then tunnelled and the new one advertised.
    @Test func movesInUnannouncedAndIsAttachedOnItsFirstFrame() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        d.sim.place(d.mn, in: 1)  // no trigger
        #expect(!d.roundTrip(a1), "the CN's datagram went to D-GW1's cell: the MN's first frame tells D-GW2 it is here")
        #expect(d.g[1].pipeline.totals[.puntedUnknownMN] == 1)
        #expect(d.g[1].control.router.counters.attachedOnTraffic == 1 && d.g[1].control.router.counters.attached == 1)
        d.sim.run(for: 50 * ms)
        // That first frame was held until the PBA showed D-GW1's DLIF here, then tunnelled: not lost.
        #expect(d.g[1].pipeline.totals[.heldForBinding] == 1 && d.g[1].pipeline.totals[.uplinkEncapsulated] == 1)
        #expect(d.cn.received.filter { $0.source == a1 }.count == 1)
        #expect(d.g[1].pipeline.totals[.unknownDestinationMAC] == 0 && !d.g[1].pipeline.holding)
        #expect(d.g[1].control.counters.pbuSent == 1 && d.g[0].control.counters.accepted == 1, "D-GW1 named by its DLIF's MAC")
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1])
        #expect(d.binding(at: 2, d.prefix(at: 1))?.anchor == gw[0])
        let a2 = try #require(d.address(at: 2))
        #expect(a2.preferred && d.address(at: 1)?.preferred == false)
        #expect(d.roundTrip(a1) && d.roundTrip(a2.address))
        // Later frames to a DLIF of the MN's are forwarded, not punted.
        #expect(d.g[1].pipeline.totals[.puntedUnknownMN] == 1)
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 })
    }

    /// Without a CMD, a first frame names one anchor (the router the MN
    /// was using); a frame to another anchor's DLIF (here: D-GW1's local
    /// network, routed by its RIO through D-GW1's DLIF) names the next.
    @Test func eachOldRouterTheMNTalksToNamesAnAnchor() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        d.move(to: 1, previous: [gw[0]])
        let a2 = try #require(d.address(at: 2)).address
        d.sim.run(for: 2_500 * ms)  // the rest of the RA bursts: D-GW2's DLIF (medium preference) the default router
        #expect(d.mn.defaultRouter == d.dlifMAC(at: 2))
        d.sim.place(d.mn, in: 2)  // no trigger
        _ = d.roundTrip(a2)
        d.sim.run(for: 50 * ms)
        #expect(d.g[2].control.sessions(of: d.mn.mac).map(\.anchor) == [gw[1]])
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1], "D-GW1 not told yet")
        // To D-GW1's local network: through D-GW1's DLIF (its RIO), which D-GW3 does not show yet.
        let lipa = IPv6Address("2001:db8:1:aaaa::5")!
        let up = try #require(d.mn.udp(from: a1, to: lipa, payload: [7]))
        #expect(up.withUnsafeBytes { MACAddress($0, at: 0) } == d.dlifMAC(at: 1))
        d.sim.send(up, from: d.mn)
        d.sim.run(for: 50 * ms)
        #expect(Set(d.g[2].control.sessions(of: d.mn.mac).map(\.anchor)) == [gw[0], gw[1]])
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2])
        let a3 = try #require(d.address(at: 3)).address
        #expect(d.roundTrip(a1) && d.roundTrip(a2) && d.roundTrip(a3))
        #expect(d.g[2].control.router.counters.attachedOnTraffic == 1)
    }

    /// With a CMD, the CMD names the former anchors of an MN attached on
    /// traffic, as for one attached by a trigger or an RS.
    @Test func attachedOnTrafficRegistersWithTheCMD() throws {
        for mode in [CMDMode.relay, .locator] {
            let d = try Domain(cmd: mode)
            let gw = d.g.map(\.address)
            d.move(to: 0)
            let a1 = try #require(d.address(at: 1)).address
            d.sim.place(d.mn, in: 1)
            _ = d.roundTrip(a1)
            d.sim.run(for: 50 * ms)
            #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1], "\(mode)")
            #expect(d.binding(at: 2, d.prefix(at: 1))?.anchor == gw[0], "\(mode)")
            #expect(d.roundTrip(a1), "\(mode)")
            #expect(d.g[3].control.mobilityRecords.first?.serving == gw[1], "\(mode)")
        }
    }

    /// An MN attached here that talks to a MAC no DLIF of its has is not
    /// attached again; a host whose frames match nothing and whose gateway
    /// gives no anchor for the MAC it talks to is attached with no PBU.
    @Test func strayFramesOfKnownMNsAndUnknownRouters() throws {
        let d = try Domain()
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        let stray = readdressed(try #require(d.mn.udp(from: a1, to: d.cnAddress, payload: [1])), to: MACAddress("02:0f:0f:0f:0f:0f")!)
        d.sim.send(stray, from: d.mn)
        d.sim.run(for: 10 * ms)
        #expect(d.g[0].pipeline.totals[.puntedUnknownMN] == 1)
        #expect(d.g[0].control.router.counters.attached == 1, "attached once, by the trigger")
        #expect(d.g[0].control.router.dlifs(of: d.mn.mac).count == 1)

        let other = SimulatedHost(name: "other", mac: MACAddress("02:aa:00:00:00:09")!)
        d.sim.place(other, in: 1)
        d.sim.send(readdressed(stray, to: MACAddress("02:0f:0f:0f:0f:0f")!, from: other.mac), from: other)
        d.sim.run(for: 50 * ms)
        #expect(d.g[1].control.router.counters.attachedOnTraffic == 1)
        #expect(d.g[1].control.counters.pbuSent == 0, "02:0f:0f:0f:0f:0f names no peer")
        #expect(other.address(in: try #require(d.g[1].control.router.allocation(of: other.mac))) != nil, "the new /64 advertised")
    }

    /// An MN that keeps talking to a DLIF MAC of an anchor that does not
    /// anchor it gets one PBU, refused, and not one per punted frame: the
    /// refusal holds the next back for `refusalMemory`; after it, one more.
    @Test func aRefusalHoldsBackThePBUsOfTheMNsTraffic() throws {
        let d = try Domain()
        let gw = d.g.map(\.address)
        d.move(to: 1)  // at D-GW2, which anchors it; D-GW1 never saw it
        let a2 = try #require(d.address(at: 2)).address
        let pool = try #require(d.g[0].controlConfiguration.access.prefixPool)
        let stranger = DLIF.logicalMAC(anchor: gw[0], pool: pool, prefix: IPv6Prefix("2001:db8:1:77::/64")!)
        let frame = readdressed(try #require(d.mn.udp(from: a2, to: d.cnAddress, payload: [1])), to: stranger)
        func talk(_ frames: Int) {
            for _ in 0..<frames {
                d.sim.send(frame, from: d.mn)
                d.sim.run(for: 100 * ms)
            }
        }
        talk(5)
        #expect(d.g[1].control.counters.pbuSent == 1 && d.g[1].control.counters.refused == 1)
        #expect(d.g[0].control.counters.rejected == 1, "D-GW1 does not anchor it")
        #expect(d.g[1].control.counters.heldBackAfterRefusal >= 3, "\(d.g[1].control.counters)")
        d.sim.run(for: ControlPlane.refusalMemory)
        talk(2)
        #expect(d.g[1].control.counters.pbuSent == 2 && d.g[1].control.counters.refused == 2, "asked again once the refusal is old")
        #expect(d.g[1].control.sessions(of: d.mn.mac).isEmpty)
    }

    /// Subscriber policy: a gateway with a subscriber list attaches only
    /// those MACs, whether by trigger, RS or traffic; the others are
    /// counted and get no prefix, DLIF or PBU.
    @Test func onlySubscribersAttach() throws {
        let outsider = MACAddress("02:aa:00:00:00:01")!  // the Domain's MN
        let d = try Domain { c in c.access.subscribers = [MACAddress("02:aa:00:00:00:02")!] }
        d.move(to: 0)
        #expect(d.mn.addresses.isEmpty && d.g[0].control.router.dlifs.isEmpty)
        #expect(d.g[0].control.router.counters.notSubscribed == 1)
        d.sim.place(d.mn, in: 1)
        let a = IPv6Address("2001:db8:1:5::1")!
        let host = SimulatedHost(name: "x", mac: outsider, addresses: [a])
        host.routes = [(IPv6Prefix("::/0")!, MACAddress("02:ff:00:01:00:00")!)]
        let frame = try #require(host.udp(from: a, to: d.cnAddress, payload: [1]))
        d.sim.send(frame, from: d.mn)
        d.sim.run(for: 50 * ms)
        #expect(d.g[1].control.router.counters.notSubscribed == 1 && d.g[1].control.router.counters.attachedOnTraffic == 0)
        #expect(d.g.allSatisfy { $0.control.counters.pbuSent == 0 && $0.control.router.allocation(of: outsider) == nil })
    }

    /// A subscriber's MN-ID is the NAI of its PBUs (its MAC stays the
    /// link-layer identifier), echoed in the PBA and relayed by the CMD;
    /// tshark reads it.
    @Test func subscriberIdentityIsTheMNID() throws {
        let id = "alice@dmm.example"
        for mode: CMDMode? in [nil, .relay] {
            let d = try Domain(cmd: mode) { c in c.identities = [MACAddress("02:aa:00:00:00:01")!: Array(id.utf8)] }
            let gw = d.g.map(\.address)
            d.move(to: 0)
            d.move(to: 1, previous: [gw[0]])
            #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[1])
            let seen = identities(d)
            #expect(seen.count >= 2 && seen.allSatisfy { $0.id == id }, "\(seen)")
            #expect(seen.contains { $0.type == MobilityHeaderType.bindingAcknowledgement })
            if mode != nil { #expect(d.g[3].control.mobilityRecords.first?.identity == Array(id.utf8)) }
            let t = try d.tshark(["-Y", "mipv6", "-T", "fields", "-e", "mip6.mnid.identifier"])
            #expect(t.status == 0, "\(t.stderr)")
            let lines = t.stdout.split(separator: "\n")
            #expect(!lines.isEmpty && lines.allSatisfy { $0 == id }, "\(t.stdout)")
        }
    }
}
