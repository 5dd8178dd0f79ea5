import DGWControl
import DGWPipeline
import DGWSimulation
import DGWWire
import Testing

/// Downlink that overtakes the PBA: the anchor tunnels to the new serving
/// gateway as soon as it accepts the PBU, and its answer reaches the
/// serving gateway's control plane later than that data reaches its data
/// plane (here: signalling 5 ms slower than data on the core). The serving
/// gateway holds such frames from a peer, tries them again when its tables
/// change, and drops them only when held `holdNanoseconds`.
@Suite struct HeldFramesTests {
    /// The MN at D-GW1 moves to D-GW2 while the CN sends to its D-GW1
    /// address once a millisecond for 40 ms; then 100 ms go by. Returns the
    /// payload bytes (the datagram's number) the MN got at that address.
    func handoverUnderDownlink(_ d: Domain) throws -> [UInt8] {
        d.sim.signallingLatency = 5 * ms
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        d.sim.move(d.mn, to: 1, previous: [d.g[0].address])
        let before = d.mn.received.count
        for i in 0..<40 {
            let datagram = try #require(d.cn.udp(from: d.cnAddress, to: a1, payload: [UInt8(i), 0xD0]))
            d.sim.send(datagram, fromCorrespondent: d.cn)
            d.sim.run(for: ms)
        }
        d.sim.run(for: 100 * ms)
        return d.mn.received.dropFirst(before).filter { $0.destination == a1 }.map { $0.payload[0] }
    }

    /// Between gateways directly, and through the inter-operator LMA (which
    /// holds the anchor's data ahead of the anchor's PBA too).
    @Test(arguments: [false, true])
    func downlinkAheadOfThePBAIsHeldThenDelivered(lma: Bool) throws {
        let d = try Domain(lma: lma)
        let got = try handoverUnderDownlink(d)
        let anchor = d.g[0].pipeline.totals, serving = d.g[1].pipeline.totals
        let tunnelled = anchor[.downlinkEncapsulated]
        #expect(tunnelled >= 25, "the anchor tunnelled from its binding on: \(tunnelled)")
        #expect(serving[.heldForBinding] > 0, "some overtook the PBA")
        if lma { #expect(d.g[3].pipeline.totals[.heldForBinding] > 0, "the LMA's relayed binding came after the anchor's data too") }
        #expect(d.g.allSatisfy { $0.pipeline.totals[.decapsulationRefused] == 0 && !$0.pipeline.holding })
        #expect(serving[.downlinkDecapsulated] == tunnelled, "every tunnelled datagram delivered")
        #expect(got.count == tunnelled && got == got.sorted(), "in order: \(got)")
        #expect(d.roundTrip(try #require(d.address(at: 1)).address))
        let decode = try d.tshark(["-Y", "_ws.malformed || _ws.expert.severity >= error"])
        #expect(decode.status == 0 && decode.stdout.isEmpty, "\(decode.stdout)")
    }

    /// The MN keeps sending from its D-GW1 address while it moves to D-GW2
    /// (one datagram a millisecond for 40 ms), to D-GW1's DLIF (which D-GW2
    /// does not show until the PBA) or, `viaNewRouter`, to D-GW2's own DLIF
    /// as its new default router (from a prefix D-GW2 binds only then).
    /// D-GW2 holds what comes before the PBA and tunnels it all once bound.
    /// Hold 0: those are lost.
    @Test(arguments: [Int64(50 * ms), 0], [false, true])
    func uplinkAheadOfThePBAIsHeldThenTunnelled(hold: Int64, viaNewRouter: Bool) throws {
        let d = try Domain(pipeline: { $0.holdNanoseconds = hold })
        d.sim.signallingLatency = 5 * ms
        d.move(to: 0)
        let a1 = try #require(d.address(at: 1)).address
        d.sim.move(d.mn, to: 1, previous: [d.g[0].address])
        d.sim.run(for: ms)  // D-GW2's first RA
        let router = try #require(viaNewRouter ? d.dlifMAC(at: 2) : d.dlifMAC(at: 1))
        let before = d.cn.received.count
        for i in 0..<40 {
            let datagram = try #require(d.mn.udp(from: a1, to: d.cnAddress, payload: [UInt8(i), 0xE0]))
            d.sim.send(readdressed(datagram, to: router), from: d.mn)
            d.sim.run(for: ms)
        }
        d.sim.run(for: 100 * ms)
        let got = d.cn.received.dropFirst(before).filter { $0.source == a1 }.map { $0.payload[0] }
        let serving = d.g[1].pipeline.totals
        let dropped = serving[.unknownDestinationMAC] + serving[.sourceCheck]
        if hold > 0 {
            #expect(serving[.heldForBinding] >= 5, "\(serving[.heldForBinding]) held")
            #expect(dropped == 0 && got == Array(0..<40), "every datagram, in order: \(got)")
        } else {
            // Dropped, or (within the rate for MACs unknown to a DLIF) handed to the control plane only.
            let early = dropped + serving[.puntedUnknownMN]
            #expect(serving[.heldForBinding] == 0 && early >= 5 && got.count == 40 - early, "\(early) not forwarded, got \(got)")
            #expect(viaNewRouter ? serving[.sourceCheck] >= 5 : serving[.sourceCheck] == 0)
        }
        #expect(serving[.uplinkEncapsulated] == got.count && !d.g[1].pipeline.holding)
    }

    /// Not held (hold 0): those frames are refused at once. Held 2 ms, less
    /// than the PBA takes: refused when their time is up, none lost uncounted.
    @Test(arguments: [Int64(0), 2 * ms])
    func framesHeldTooShortAreRefused(hold: Int64) throws {
        let d = try Domain(pipeline: { $0.holdNanoseconds = hold })
        let got = try handoverUnderDownlink(d)
        let tunnelled = d.g[0].pipeline.totals[.downlinkEncapsulated]
        let serving = d.g[1].pipeline.totals
        #expect(serving[.decapsulationRefused] > 0)
        #expect(hold == 0 ? serving[.heldForBinding] == 0 : serving[.heldForBinding] >= serving[.decapsulationRefused])
        #expect(serving[.downlinkDecapsulated] + serving[.decapsulationRefused] == tunnelled)
        #expect(got.count == serving[.downlinkDecapsulated])
        #expect(!d.g[1].pipeline.holding)
    }
}
