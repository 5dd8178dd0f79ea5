import DGWControl
import DGWGateway
import DGWPipeline
import DGWWire
import Testing

/// `GatewayTables.apply` makes the control plane's frames ready in the
/// effects' own lists: access frames due no earlier than now, signalling
/// framed for its next hop, or held for a hop whose MAC is not known with
/// that hop's solicitation in its place, or handed back as unresolved.
@Suite struct AppliedEffectsTests {
    let me = IPv6Address("2001:db8:ffff::1")!, known = IPv6Address("2001:db8:ffff::2")!
    let unknown = IPv6Address("2001:db8:ffff::3")!, offLink = IPv6Address("2001:db8:eeee::9")!
    let coreMAC = MACAddress("02:00:00:00:ff:01")!, knownMAC = MACAddress("02:00:00:00:ff:02")!

    func tables() throws -> GatewayTables {
        try GatewayTables(PipelineConfiguration(address: me, coreMAC: coreMAC, coreMTU: 1500, corePrefix: IPv6Prefix("2001:db8:ffff::/64")!,
                                                coreGateway: nil, bindings: [], neighbors: [(known, knownMAC)]))
    }

    /// A signalling packet as the control plane hands it over: room for the
    /// Ethernet header, then `tag` standing for the packet.
    func packet(to destination: IPv6Address, _ tag: UInt8) -> CorePacket {
        CorePacket(destination: destination, frame: [UInt8](repeating: 0, count: CorePacket.headroom) + [tag, tag])
    }

    @Test func framesAreMadeReadyInPlace() throws {
        let t = try tables()
        var e = ControlEffects()
        e.access = [(time: 5, frame: [1]), (time: 30, frame: [2])]
        e.core = [packet(to: unknown, 0xA1), packet(to: known, 0xB1), packet(to: offLink, 0xC1), packet(to: unknown, 0xA2),
                  packet(to: known, 0xB2)]
        let applied = t.apply(&e, time: 10)
        #expect(e.access.map(\.time) == [10, 30] && e.access.map(\.frame) == [[1], [2]])
        // The first packet to the unknown hop: held, its solicitation in its
        // place; the second: held, none (one went out this second).
        try #require(e.core.count == 3)
        let solicitation = e.core[0].frame
        #expect(Array(solicitation[0..<6]) == MACAddress(multicast: unknown.solicitedNodeMulticast).octets)
        #expect(Array(solicitation[6..<12]) == coreMAC.octets && solicitation[12] == 0x86 && solicitation[13] == 0xDD)
        #expect(solicitation[14 + 6] == IPProtocol.icmpv6 && solicitation[54] == 135, "a Neighbor Solicitation")
        #expect(solicitation.withUnsafeBytes { IPv6Address($0, at: 54 + 8) } == unknown, "for the unknown hop")
        for (frame, tag) in zip(e.core.dropFirst().map(\.frame), [UInt8(0xB1), 0xB2]) {
            #expect(frame == knownMAC.octets + coreMAC.octets + [0x86, 0xDD, tag, tag])
        }
        #expect(applied.refused.isEmpty && applied.unresolved.map(\.destination) == [offLink])
        // The hop answers: both held packets go, framed for it, in order.
        let unknownMAC = MACAddress("02:00:00:00:ff:03")!
        #expect(t.neighbors.learn(unknown, unknownMAC))
        let released = t.releaseHeld(time: 20)
        #expect(released.expired == 0)
        #expect(released.frames == [0xA1, 0xA2].map { unknownMAC.octets + coreMAC.octets + [0x86, 0xDD, $0, $0] })
    }
}
