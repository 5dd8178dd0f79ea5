import DGWControl
import DGWPipeline
import DGWSimulation
import DGWWire
import Foundation
import Testing

/// A multi-interface MN (draft-seite 4.4): subscriber "alice" owns two
/// MACs, interface A (the Domain's `mn`) in D-GW1's cell and interface B in
/// D-GW2's; `move-prefix` moves the traffic of one of its prefixes to the
/// other interface, through the tunnel between the two gateways.
@Suite struct MultiInterfaceTests {
    static let b = MACAddress("02:aa:00:00:00:02")!

    /// The domain with both interfaces attached; `identities(gateway)`
    /// gives a gateway's subscriber list (alice's two MACs by default).
    /// `cmd`, `lma`: the domain with a CMD, or the LMA's of `LMATests` (each
    /// gateway an operator of its own, the LMA g[3] their only peer).
    static func domain(lifetime: Int = 3600, signed: Bool = false, cmd: CMDMode? = nil, lma: Bool = false,
                       identities: (IPv6Address) -> [MACAddress: String] = { _ in [MACAddress("02:aa:00:00:00:01")!: "alice", b: "alice"] })
        throws -> (Domain, SimulatedHost) {
        let d = try Domain(cmd: cmd, lma: lma) { c in
            c.bindingLifetime = lifetime
            c.identities = identities(c.address).mapValues { Array($0.utf8) }
            if signed { keyed(&c) }
        }
        let host = SimulatedHost(name: "mn-if2", mac: b)
        d.sim.add(host)
        d.move(to: 0)
        d.sim.move(host, to: 1)
        d.sim.run(for: 50 * ms)
        return (d, host)
    }

    /// One datagram each way between `host` at `address` and the correspondent.
    static func roundTrip(_ d: Domain, _ host: SimulatedHost, _ address: IPv6Address) -> Bool {
        let payload: [UInt8] = [0x4D, 0x50, UInt8(truncatingIfNeeded: d.sim.now / ms)]
        let hostBefore = host.received.count, cnBefore = d.cn.received.count
        guard let up = host.udp(from: address, to: d.cnAddress, payload: payload),
              let down = d.cn.udp(from: d.cnAddress, to: address, payload: payload) else { return false }
        d.sim.send(up, from: host)
        d.sim.send(down, fromCorrespondent: d.cn)
        d.sim.run(for: 20 * ms)
        return d.cn.received.dropFirst(cnBefore).contains { $0.source == address && $0.payload == payload }
            && host.received.dropFirst(hostBefore).contains { $0.destination == address && $0.payload == payload }
    }

    /// D-GW2 moves A's prefix to B: D-GW1 tunnels it to D-GW2, which shows
    /// D-GW1's DLIF to B with it; refreshes keep it there; moved back from
    /// D-GW2, D-GW1 delivers it to A again.
    @Test func movePrefixToTheOtherInterfaceAndBack() throws {
        let (d, b) = try Self.domain(lifetime: 40)
        let gw = d.g.map(\.address)
        let p1 = try #require(d.prefix(at: 1))
        let a1 = try #require(d.address(at: 1)).address
        #expect(d.roundTrip(a1))

        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        let atAnchor = try #require(d.binding(at: 1, p1))
        #expect(atAnchor.mn == Self.b && atAnchor.serving == gw[1] && atAnchor.anchor == nil)
        let atServing = try #require(d.binding(at: 2, p1))
        #expect(atServing.mn == Self.b && atServing.anchor == gw[0])
        #expect(d.g[1].control.sessions(of: Self.b).map(\.state) == [.bound])
        #expect(d.g[1].control.sessions(of: Self.b).first?.moved == p1)
        // B is shown D-GW1's DLIF with the prefix (deprecated, as any anchor's but the serving one's).
        let b1 = try #require(b.address(in: p1))
        #expect(!b1.preferred && b1.router == d.dlifMAC(at: 1))
        #expect(Self.roundTrip(d, b, b1.address))
        #expect(d.g[0].pipeline.totals[.downlinkEncapsulated] >= 1 && d.g[0].pipeline.totals[.uplinkDecapsulated] >= 1)
        // A is still attached at D-GW1, with its own address there; the prefix's traffic is B's.
        #expect(d.g[0].control.anchoredRecord(of: d.mn.mac)?.serving == .here)
        #expect(!d.roundTrip(a1))
        // So D-GW1 deprecates the prefix on A's DLIF: A's new flows leave it alone.
        #expect(d.address(at: 1)?.preferred == false, "deprecated on A while moved")
        #expect(d.address(at: 1)?.router == d.dlifMAC(at: 1))

        // Refreshed (HI 5) every 32 s, and accepted: still B's after two minutes.
        d.sim.run(for: 120_000 * ms)
        #expect(d.binding(at: 1, p1)?.mn == Self.b && d.g[0].control.counters.rejected == 0)
        #expect(d.g[1].control.counters.pbuSent >= 4)

        // Back to A, from D-GW2 (where A is not): de-registered, D-GW1 delivers it to A.
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 1)
        d.sim.run(for: 50 * ms)
        let back = try #require(d.binding(at: 1, p1))
        #expect(back.mn == d.mn.mac && back.serving == nil && back.anchor == nil)
        #expect(d.binding(at: 2, p1) == nil && d.g[1].control.sessions(of: Self.b).isEmpty)
        #expect(b.address(in: p1) != nil, "B keeps the address until its valid lifetime ends")
        #expect(d.address(at: 1)?.preferred == true, "preferred on A again")
        #expect(d.roundTrip(a1))
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 })
    }

    /// Taken back at the anchor (`move-prefix` to A at D-GW1): D-GW1 tells
    /// D-GW2 at once with a Binding Revocation Indication (RFC 5846), and
    /// D-GW2 removes its tunnel and D-GW1's DLIF for B and acknowledges;
    /// no refresh is refused later. Signed, with `auth:` keys, like PBUs and PBAs.
    @Test(arguments: [false, true])
    func takenBackAtTheAnchorIsRevoked(signed: Bool) throws {
        let (d, b) = try Self.domain(lifetime: 40, signed: signed)
        let gw = d.g.map(\.address)
        let p1 = try #require(d.prefix(at: 1))
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1)?.mn == Self.b)
        #expect(d.address(at: 1)?.preferred == false)
        #expect(d.g[1].control.router.dlifs(of: Self.b).contains { $0.anchor == gw[0] })
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0)
        #expect(d.binding(at: 1, p1)?.mn == d.mn.mac && d.binding(at: 1, p1)?.serving == nil)
        #expect(d.roundTrip(d.address(at: 1)!.address))
        #expect(d.address(at: 1)?.preferred == true, "taken back: preferred on A again")
        #expect(d.binding(at: 2, p1) == nil && d.g[1].control.sessions(of: Self.b).isEmpty, "revoked at once")
        #expect(!d.g[1].control.router.dlifs(of: Self.b).contains { $0.anchor == gw[0] }, "D-GW1's DLIF no longer shown to B")
        #expect(d.g[0].control.counters.revocationsSent == 1 && d.g[1].control.counters.revoked == 1)
        d.sim.run(for: 40_000 * ms)
        #expect(d.g[0].control.counters.rejected == 0 && d.g[1].control.counters.refused == 0, "no refresh to refuse")
        #expect(d.binding(at: 1, p1)?.mn == d.mn.mac)
        #expect(b.address(in: p1) != nil)
        // Taken back again with nothing moved: refused by the ctl, nothing sent.
        #expect(throws: MoveRefusal.self) { try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0) }
        #expect(d.g[0].control.counters.revocationsSent == 1)
        #expect(d.g.allSatisfy { $0.control.counters.unexpected == 0 && $0.refusedChanges == 0 && $0.control.counters.unauthenticated == 0 },
                "signed both ways when keyed")
        guard !signed else { return }  // a signed indication sent again is a replay, dropped as such
        // The indication again: that binding does not exist (any more), and D-GW2 says so (status 128).
        let bri = try #require(d.sim.trace.map(\.frame).first { $0.count > 56 && $0[20] == IPProtocol.mobility && $0[56] == MobilityHeaderType.bindingRevocation })
        let answer = try #require(d.g[1].receive(bri, on: .core, time: d.sim.now).first { $0.port == .core })
        #expect(answer.frame[56] == MobilityHeaderType.bindingRevocation && answer.frame[60] == BindingRevocationType.acknowledgement)
        #expect(answer.frame[61] == BindingRevocationStatus.bindingDoesNotExist && d.g[1].control.counters.unexpected == 1)
    }

    /// Both interfaces at D-GW1: A's prefix moves to B there with no tunnel
    /// and no signalling, on B's own DLIF (preferred there, deprecated on
    /// A's); taken back to A the other way round; and when B leaves while
    /// it holds the prefix, the prefix goes back to A.
    @Test func bothInterfacesOnOneGateway() throws {
        let d = try Domain { c in c.identities = [MACAddress("02:aa:00:00:00:01")!: Array("alice".utf8), Self.b: Array("alice".utf8)] }
        let b = SimulatedHost(name: "mn-if2", mac: Self.b)
        d.sim.add(b)
        d.move(to: 0)
        d.sim.move(b, to: 0)
        d.sim.run(for: 50 * ms)
        let p1 = try #require(d.prefix(at: 1))
        let a1 = try #require(d.address(at: 1)).address
        let ownB = try #require(d.g[0].control.router.allocation(of: Self.b))
        #expect(d.roundTrip(a1) && b.address(in: p1) == nil)

        try d.sim.movePrefix(p1, of: "alice", to: Self.b, at: 0)
        d.sim.run(for: 50 * ms)
        let moved = try #require(d.binding(at: 1, p1))
        #expect(moved.mn == Self.b && moved.serving == nil && moved.anchor == nil, "delivered to B here, no tunnel")
        let bDLIF = try #require(d.g[0].control.router.dlifs(of: Self.b).first { $0.anchor == nil })
        #expect(bDLIF.prefixes == [ownB, p1] && d.g[0].tables.binding(p1) != nil)
        let b1 = try #require(b.address(in: p1))
        #expect(b1.preferred && b1.router == bDLIF.mac, "preferred on B, from its own DLIF")
        #expect(d.address(at: 1)?.preferred == false, "deprecated on A")
        #expect(Self.roundTrip(d, b, b1.address) && !d.roundTrip(a1))
        #expect(d.g[0].control.counters.pbuSent == 0 && d.g.allSatisfy { $0.control.counters.pbuReceived == 0 }, "no signalling")
        #expect(throws: MoveRefusal.self) { try d.sim.movePrefix(p1, of: "alice", to: Self.b, at: 0) }

        // Back to A: preferred there again, deprecated on B.
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1)?.mn == d.mn.mac)
        #expect(d.address(at: 1)?.preferred == true && b.address(in: p1)?.preferred == false)
        #expect(d.roundTrip(a1) && !Self.roundTrip(d, b, b1.address))

        // To B again, then B leaves: the prefix is A's again.
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, at: 0)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1)?.mn == Self.b && b.address(in: p1)?.preferred == true)
        d.sim.detach(b, from: 0)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1)?.mn == d.mn.mac && d.address(at: 1)?.preferred == true)
        #expect(d.roundTrip(a1))
        // B's probe after the take-back failed the source check (A's, while
        // moved, went to a DLIF MAC no binding had: held, not refused).
        #expect(d.g[0].pipeline.totals[.sourceCheck] == 1 && d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 },
                "\(DropReason.allCases.map { ($0.name, d.g[0].pipeline.totals[$0]) }.filter { $0.1 > 0 })")
    }

    /// Both interfaces at D-GW2, A's prefix anchored at D-GW1 (A came from
    /// there): the move goes to D-GW1 as usual, and D-GW2 delivers the
    /// prefix to B through the same tunnel.
    @Test func bothInterfacesAwayFromTheAnchor() throws {
        let (d, b) = try Self.domain(lifetime: 40)
        let gw = d.g.map(\.address)
        let p1 = try #require(d.prefix(at: 1))
        let a1 = try #require(d.address(at: 1)).address
        d.move(to: 1, previous: [gw[0]])
        #expect(d.roundTrip(a1))
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1)?.mn == Self.b && d.binding(at: 1, p1)?.serving == gw[1])
        #expect(d.binding(at: 2, p1)?.mn == Self.b && d.binding(at: 2, p1)?.anchor == gw[0])
        let b1 = try #require(b.address(in: p1))
        #expect(Self.roundTrip(d, b, b1.address))
        // Refreshes of both sessions keep it with B.
        d.sim.run(for: 120_000 * ms)
        #expect(d.binding(at: 2, p1)?.mn == Self.b && d.binding(at: 1, p1)?.mn == Self.b)
        #expect(Self.roundTrip(d, b, b1.address))
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.control.counters.rejected == 0 })
    }

    /// Moved on from B at D-GW2 to a third interface C at D-GW3: the anchor
    /// revokes D-GW2's binding as it grants the prefix to D-GW3.
    @Test func movedOnToAThirdInterfaceRevokesTheFirst() throws {
        let c = MACAddress("02:aa:00:00:00:03")!
        let (d, _) = try Self.domain(lifetime: 40) { _ in [MACAddress("02:aa:00:00:00:01")!: "alice", Self.b: "alice", c: "alice"] }
        let gw = d.g.map(\.address)
        let third = SimulatedHost(name: "mn-if3", mac: c)
        d.sim.add(third)
        d.sim.move(third, to: 2)
        d.sim.run(for: 50 * ms)
        let p1 = try #require(d.prefix(at: 1))
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 2, p1)?.mn == Self.b)
        try d.sim.movePrefix(p1, of: "alice", to: c, anchor: gw[0], at: 2)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1)?.mn == c && d.binding(at: 1, p1)?.serving == gw[2])
        #expect(d.binding(at: 2, p1) == nil && d.g[1].control.sessions(of: Self.b).isEmpty, "revoked")
        #expect(d.binding(at: 3, p1)?.mn == c)
        #expect(d.g[0].control.counters.revocationsSent == 1 && d.g[1].control.counters.revoked == 1)
        let c1 = try #require(third.address(in: p1))
        #expect(Self.roundTrip(d, third, c1.address))
    }

    /// A's own interface hands over to D-GW3 while its prefix is with B at
    /// D-GW2: the prefix follows A, and D-GW1 revokes D-GW2's binding.
    @Test func ownInterfaceHandingOverRevokesTheMove() throws {
        let (d, _) = try Self.domain(lifetime: 40)
        let gw = d.g.map(\.address)
        let p1 = try #require(d.prefix(at: 1))
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 2, p1)?.mn == Self.b)
        d.move(to: 2, previous: [gw[0]])
        #expect(d.binding(at: 1, p1)?.serving == gw[2] && d.binding(at: 1, p1)?.mn == d.mn.mac)
        #expect(d.binding(at: 2, p1) == nil && d.g[1].control.sessions(of: Self.b).isEmpty, "revoked")
        #expect(d.g[0].control.counters.revocationsSent == 1 && d.g[1].control.counters.revoked == 1)
        #expect(d.roundTrip(d.address(at: 1)!.address))
    }

    /// What move-prefix refuses, with why; and an anchor whose subscriber
    /// list does not give the prefix's owner the PBU's MN-ID refuses the move.
    @Test func refusals() throws {
        let (d, _) = try Self.domain()
        let gw = d.g.map(\.address)
        let p1 = try #require(d.prefix(at: 1)), p2 = try #require(d.g[1].control.router.allocation(of: Self.b))
        func refusal(_ body: () throws -> Void) -> String? {
            do { try body() } catch { return (error as? MoveRefusal)?.description ?? "\(error)" }
            return nil
        }
        #expect(refusal { try d.sim.movePrefix(p1, of: "bob", to: Self.b, anchor: gw[0], at: 1) }?.contains("not an interface of subscriber bob") == true)
        #expect(refusal { try d.sim.movePrefix(p1, of: "alice", to: Self.b, at: 1) }?.contains("which gateway anchors") == true)
        #expect(refusal { try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: IPv6Address("2001:db8:ffff::9")!, at: 1) }?
            .contains("not a peer") == true)
        #expect(refusal { try d.sim.movePrefix(p2, of: "alice", to: Self.b, at: 1) }?.contains("is with 02:aa:00:00:00:02 already") == true)
        #expect(refusal { try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0) }?.contains("already") == true)
        #expect(refusal { try d.sim.movePrefix(p2, of: "alice", to: d.mn.mac, at: 1) }?
            .contains("is anchored here: run move-prefix where 02:aa:00:00:00:01 is attached") == true)
        #expect(refusal { try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 2) }?.contains("not attached here") == true)
        #expect(d.g.allSatisfy { $0.control.counters.pbuSent == 0 })

        // D-GW1 knows A as bob's: D-GW2's PBU for alice is refused (status 155), nothing moves.
        let (e, _) = try Self.domain { $0 == gw[0] ? [Self.e0: "bob"] : [Self.e0: "alice", Self.b: "alice"] }
        let q1 = try #require(e.prefix(at: 1))
        try e.sim.movePrefix(q1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        e.sim.run(for: 50 * ms)
        #expect(e.g[0].control.counters.rejected == 1 && e.g[1].control.counters.refused == 1)
        #expect(e.binding(at: 1, q1)?.mn == e.mn.mac && e.binding(at: 1, q1)?.serving == nil)
        #expect(e.binding(at: 2, q1) == nil && e.g[1].control.sessions.isEmpty)
    }
    static let e0 = MACAddress("02:aa:00:00:00:01")!

    /// A plain handover's stale refresh (RFC 5213 HI 5): the MN went back
    /// to D-GW1 and D-GW2 was not told; D-GW2's refresh is refused instead
    /// of taking the MN's prefix away from it again.
    @Test func refreshFromAGatewayNoLongerServingIsRefused() throws {
        let d = try Domain { $0.bindingLifetime = 40 }
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        let p1 = try #require(d.prefix(at: 1)), a1 = try #require(d.address(at: 1)).address
        #expect(d.binding(at: 1, p1)?.serving == gw[1])
        d.move(to: 0)  // no former anchors named: D-GW2 hears nothing
        #expect(d.binding(at: 1, p1)?.serving == nil)
        d.sim.run(for: 40_000 * ms)
        #expect(d.g[0].control.counters.rejected == 1 && d.g[1].control.counters.refused == 1)
        #expect(d.binding(at: 1, p1)?.serving == nil && d.binding(at: 2, p1) == nil)
        #expect(d.roundTrip(a1))
    }

    /// tshark reads the move: a PBU with Handoff Indicator 2 and the moved
    /// prefix as Home Network Prefix, then refreshes with HI 5.
    @Test func tsharkReadsTheMove() throws {
        let (d, _) = try Self.domain(lifetime: 40)
        let p1 = try #require(d.prefix(at: 1))
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: d.g[0].address, at: 1)
        d.sim.run(for: 40_000 * ms)
        let r = try d.tshark(["-Y", "mip6.mhtype == 5", "-T", "fields", "-E", "occurrence=a", "-e", "_ws.malformed",
                              "-e", "mip6.hi", "-e", "mip6.nemo.mnp.mnp", "-e", "mip6.mnid.identifier"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(lines.count >= 2, "\(r.stdout)")
        #expect(lines.allSatisfy { $0.count >= 4 && $0[0].isEmpty && $0[3] == "alice" })
        #expect(lines.map { $0[1] }.prefix(2) == ["2", "5"], "\(r.stdout)")
        #expect(lines.prefix(2).allSatisfy { $0[2] == "\(p1.address)" }, "\(r.stdout)")
        // Taken back at D-GW1: the Binding Revocation Indication and its Acknowledgement.
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0)
        d.sim.run(for: 50 * ms)
        let br = try d.tshark(["-Y", "mip6.mhtype == 16", "-T", "fields", "-E", "occurrence=a", "-e", "_ws.malformed",
                               "-e", "mip6.bri_br.type", "-e", "mip6.bri_r.trigger", "-e", "mip6.bri_status", "-e", "mip6.bri_ip",
                               "-e", "mip6.nemo.mnp.mnp", "-e", "mip6.mnid.identifier", "-e", "ipv6.src", "-e", "mip6.bri_ap"])
        #expect(br.status == 0, "\(br.stderr)")
        let g1 = d.g[0].address, g2 = d.g[1].address
        #expect(br.stdout.split(separator: "\n").map(String.init) == [
            "\t1\t3\t\t1\t\(p1.address)\talice\t\(g1)\t",
            "\t2\t\t0\t\t\(p1.address)\talice\t\(g2)\t1",
        ], "\(br.stdout)")
    }

    /// With a CMD, the move still goes gateway to gateway; B's refreshes to
    /// the CMD name no move as a former anchor of B's (which the CMD would
    /// then relay B's own refreshes to, and that anchor refuse).
    @Test(arguments: [CMDMode.relay, .locator])
    func movedWithACMD(mode: CMDMode) throws {
        let (d, b) = try Self.domain(lifetime: 40, cmd: mode)
        let gw = d.g.map(\.address), cmd = d.g[3]
        let p1 = try #require(d.prefix(at: 1))
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 120_000 * ms)
        #expect(d.binding(at: 1, p1).map { $0.mn == Self.b && $0.serving == gw[1] } == true)
        #expect(Self.roundTrip(d, b, try #require(b.address(in: p1)).address))
        #expect(cmd.control.mobilityRecords.first { $0.mn == Self.b }?.anchors.map(\.gateway) == [gw[1]])
        #expect(d.g.allSatisfy { $0.control.counters.rejected == 0 && $0.control.counters.refused == 0 && $0.control.counters.unexpected == 0 })
    }

    /// A move through the LMA when the anchor does not answer: the LMA
    /// gives up after its attempts and refuses D-GW2, which ends the move;
    /// an LMA restarted from its state (`state_file`) knows the moves it
    /// relayed: the refreshes go on to the anchor, and the anchor's
    /// Revocation reaches D-GW2.
    @Test func acrossOperatorsUnansweredOrAfterALMARestart() throws {
        let (d, b) = try Self.domain(lifetime: 40, lma: true)
        let gw = d.g.map(\.address), lma = d.g[3]
        let p1 = try #require(d.prefix(at: 1))
        d.sim.down = [d.g[0].coreMAC]
        let pbusBefore = d.g[1].control.counters.pbuSent
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 10_000 * ms)
        #expect(lma.control.counters.timeouts == 1 && d.g[1].control.counters.refused == 1)
        #expect(!d.g[1].control.sessions(of: Self.b).contains { $0.moved != nil } && d.binding(at: 2, p1) == nil)
        #expect(lma.tables.binding(p1) == nil && d.g[1].control.counters.timeouts == 0, "refused by the LMA before D-GW2 gave up")
        // The LMA gave up as D-GW2 sent its fourth PBU: the refusal of the third
        // crossed it (unexpected there), and the fourth was refused at once.
        #expect(d.g[1].control.counters.unexpected == 1 && d.g[1].control.counters.pbuSent - pbusBefore == 4)
        d.sim.down = []

        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.binding(p1)?.serving == gw[1])
        let records = lma.control.mobilityRecords, relayed = lma.control.relayedBindings
        #expect(relayed == [RelayedBinding(mn: Self.b, prefix: p1, anchor: gw[0], serving: gw[1])])
        try lma.restart(initialSequence: 500, configure: { c in
            c.records = records
            c.relayed = relayed
        }, pipeline: { p in
            p.bindings += relayed.map { BindingEntry(mn: $0.mn, prefix: $0.prefix, anchor: $0.anchor, serving: $0.serving) }
        })
        #expect(lma.control.mobilityRecords == records, "a move is no anchor of B's")
        let b1 = try #require(b.address(in: p1))
        #expect(Self.roundTrip(d, b, b1.address), "relayed at once by the restarted LMA")
        d.sim.run(for: 80_000 * ms)
        #expect(d.binding(at: 1, p1)?.mn == Self.b && lma.tables.binding(p1)?.serving == gw[1])
        #expect(d.g[1].control.counters.refused == 1 && d.g[0].control.counters.rejected == 0, "refreshed through the restarted LMA")
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.binding(p1) == nil && d.binding(at: 2, p1) == nil && d.g[1].control.counters.revoked == 1)
        #expect(lma.control.mobilityRecords.first { $0.mn == Self.b }?.anchors.map(\.gateway) == [gw[1]])
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 } && d.g.map(\.control.counters.unexpected) == [0, 1, 0, 0])
        // Moved again, a first move for the restarted LMA: it finds the anchor among its records.
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.binding(p1)?.serving == gw[1] && d.binding(at: 1, p1)?.mn == Self.b && d.binding(at: 2, p1)?.mn == Self.b)
        #expect(lma.control.counters.rejected == 0 && Self.roundTrip(d, b, b1.address))
    }

    /// The interfaces at two operators' gateways (each gateway an operator
    /// of its own, the LMA g[3] their only peer): the move goes through the
    /// LMA (draft-bernardos section 5), which relays the PBUs and PBAs both
    /// ways, finds the prefix's anchor in its records, and binds the prefix
    /// between D-GW1's tunnel and D-GW2's; refreshes follow it; ended from
    /// D-GW2, and taken back at D-GW1, whose Revocation the LMA passes on.
    /// Every tunnel and message has the LMA at one end; tshark reads them all.
    @Test func movedAcrossOperatorsThroughTheLMA() throws {
        let (d, b) = try Self.domain(lifetime: 40, lma: true)
        let gw = d.g.map(\.address), lma = d.g[3]
        let p1 = try #require(d.prefix(at: 1)), a1 = try #require(d.address(at: 1)).address

        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        let atAnchor = try #require(d.binding(at: 1, p1))
        #expect(atAnchor.mn == Self.b && atAnchor.serving == lma.address && atAnchor.anchor == nil, "D-GW1 tunnels it to the LMA")
        let atLMA = try #require(lma.tables.binding(p1))
        #expect(atLMA.anchor == gw[0] && atLMA.serving == gw[1])
        let atServing = try #require(d.binding(at: 2, p1))
        #expect(atServing.mn == Self.b && atServing.anchor == lma.address, "D-GW2 tunnels it to the LMA")
        #expect(d.g[1].control.sessions(of: Self.b).first { $0.moved == p1 }.map { $0.anchor == gw[0] && $0.state == .bound } == true)
        let b1 = try #require(b.address(in: p1))
        #expect(!b1.preferred && b1.router == d.dlifMAC(at: 1), "B is shown D-GW1's DLIF, as D-GW1 fixed it")
        #expect(Self.roundTrip(d, b, b1.address))
        #expect(lma.pipeline.totals[.uplinkRelayed] >= 1 && lma.pipeline.totals[.downlinkRelayed] >= 1)
        #expect(d.address(at: 1)?.preferred == false, "deprecated on A while moved")

        // Refreshed through the LMA (HI 5 both legs): still B's after two minutes.
        d.sim.run(for: 120_000 * ms)
        #expect(d.binding(at: 1, p1)?.mn == Self.b && lma.tables.binding(p1)?.serving == gw[1])
        #expect(d.g[0].control.counters.accepted >= 4 && d.g[1].control.counters.refused == 0)
        #expect(d.g[0].control.counters.rejected == 0)
        #expect(lma.control.mobilityRecords.first { $0.mn == Self.b }?.anchors.map(\.gateway) == [gw[1]],
                "B's refreshes to the LMA name no move as a former anchor")
        #expect(Self.roundTrip(d, b, b1.address))

        // Ended from D-GW2: the de-registration goes through the LMA, which unbinds it.
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 1)
        d.sim.run(for: 50 * ms)
        #expect(d.binding(at: 1, p1).map { $0.mn == d.mn.mac && $0.serving == nil } == true)
        #expect(lma.tables.binding(p1) == nil && d.binding(at: 2, p1) == nil)
        #expect(!d.g[1].control.sessions(of: Self.b).contains { $0.moved != nil })
        #expect(d.roundTrip(a1))

        // Moved again, then taken back at D-GW1: its Revocation goes to the
        // LMA, which unbinds the prefix and passes it on to D-GW2.
        try d.sim.movePrefix(p1, of: "alice", to: Self.b, anchor: gw[0], at: 1)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.binding(p1)?.serving == gw[1] && d.binding(at: 2, p1) != nil)
        try d.sim.movePrefix(p1, of: "alice", to: d.mn.mac, at: 0)
        d.sim.run(for: 50 * ms)
        #expect(lma.tables.binding(p1) == nil && d.binding(at: 2, p1) == nil)
        #expect(!d.g[1].control.router.dlifs(of: Self.b).contains { $0.anchor == gw[0] }, "D-GW1's DLIF no longer shown to B")
        #expect(d.g[0].control.counters.revocationsSent == 1 && lma.control.counters.revocationsSent == 1)
        #expect(lma.control.counters.revoked == 1 && d.g[1].control.counters.revoked == 1)
        #expect(d.roundTrip(a1))
        d.sim.run(for: 40_000 * ms)
        #expect(d.g[1].control.counters.refused == 0, "no refresh left to refuse")
        // B's own registration at the LMA went on through all of it.
        #expect(lma.control.mobilityRecords.first { $0.mn == Self.b }?.serving == gw[1])

        let tunnels = LMATests().crossings(d, protocol: IPProtocol.ipv6), signalling = LMATests().crossings(d, protocol: IPProtocol.mobility)
        #expect((tunnels + signalling).allSatisfy { $0.0 == lma.address || $0.1 == lma.address })
        #expect(d.g.allSatisfy { $0.refusedChanges == 0 && $0.unresolvedSignalling == 0 })
        #expect(d.g.allSatisfy { $0.control.counters.unexpected == 0 && $0.control.counters.malformed == 0 && $0.control.counters.timeouts == 0 })
        #expect(d.g.allSatisfy { $0.pipeline.totals[.decapsulationRefused] == 0 && $0.pipeline.totals[.sourceCheck] == 0 })
        let decode = try d.tshark(["-Y", "_ws.malformed || _ws.expert.severity >= error"])
        #expect(decode.status == 0 && decode.stdout.isEmpty, "\(decode.stdout)")
        // Both legs of the first move: HI 2 and the prefix, D-GW2 to the LMA and the LMA to D-GW1.
        let r = try d.tshark(["-Y", "mip6.mhtype == 5 && mip6.hi == 2", "-T", "fields", "-e", "ipv6.src", "-e", "ipv6.dst",
                              "-e", "mip6.nemo.mnp.mnp", "-e", "mip6.mnid.identifier"])
        #expect(r.stdout.split(separator: "\n").prefix(2).map(String.init) == [
            "\(gw[1])\t\(lma.address)\t\(p1.address)\talice", "\(lma.address)\t\(gw[0])\t\(p1.address)\talice",
        ], "\(r.stdout)")
    }
}
