import Crypto
@testable import DGWControl
import DGWSimulation
import DGWWire
import Testing

let hmacSHA256: HMACSHA256 = { key, data in Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key))) }

/// The key both ends of a pair of nodes share (`salt` makes a wrong one).
func pairKey(_ a: IPv6Address, _ b: IPv6Address, salt: String = "") -> SignallingKey {
    let (x, y) = (min(a.low, b.low), max(a.low, b.low))
    return SignallingKey(spi: UInt32(256 + x * 1000 + y), secret: Array("dgw key \(x)-\(y)\(salt) sixteen+".utf8))
}

/// Every peer of the node keyed, as `auth:` does.
func keyed(_ c: inout ControlPlaneConfiguration) {
    for p in c.peers { c.keys[p] = pairKey(c.address, p) }
    c.hmacSHA256 = hmacSHA256
}

/// The frame's Mobility Header, its IPv6 source and destination.
func mobilityHeader(_ frame: [UInt8]) -> (mh: [UInt8], source: IPv6Address, destination: IPv6Address) {
    frame.withUnsafeBytes { (Array($0[54...]), IPv6Address($0, at: 22), IPv6Address($0, at: 38)) }
}

/// The frame with one octet of its Mobility Header changed and the checksum redone.
func tampered(_ frame: [UInt8], at offset: Int) -> [UInt8] {
    var f = frame
    f[54 + offset] ^= 0x01
    return rewriteSource(f, to: mobilityHeader(f).source)
}

@Suite struct AuthenticationTests {
    /// With a key between every pair, the tour 1 -> 2 -> 3 works as
    /// without; every PBU and PBA ends with a message identifier and an
    /// authentication option (MN-HA, the pair's SPI) whose HMAC-SHA256,
    /// recomputed here over source | destination | header to the SPI with
    /// the checksum zero, matches; identifiers grow per sender; tshark
    /// decodes them with no warning.
    @Test func signedHandoverTour() throws {
        let d = try Domain(configure: keyed)
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        d.move(to: 2, previous: [gw[0], gw[1]])
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2])
        #expect(d.binding(at: 2, d.prefix(at: 2))?.serving == gw[2])
        #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address))
        var signed = 0
        var lastIdentifier: [IPv6Address: UInt64] = [:]
        for (_, frame) in d.sim.trace where isMobility(frame, type: MobilityHeaderType.bindingUpdate)
            || isMobility(frame, type: MobilityHeaderType.bindingAcknowledgement) {
            let (mh, source, destination) = mobilityHeader(frame)
            try mh.withUnsafeBytes { b in
                let packet = try MobilityHeaderPacket(checking: b)
                let trailer = try #require(MobilityAuthenticationTrailer(packet))
                let key = pairKey(source, destination)
                #expect(trailer.subtype == MobilityAuthenticationSubtype.mnHA && trailer.spi == key.spi)
                var covered = Array(source.octets) + Array(destination.octets) + Array(mh[..<trailer.dataOffset])
                covered[36] = 0
                covered[37] = 0
                #expect(Array(mh[trailer.dataOffset...]) == hmacSHA256(key.secret, covered))
                let id = try #require(try MobilityMessage.parse(unverified: packet).options.messageIdentifier)
                #expect(id > lastIdentifier[source] ?? 0, "identifiers grow per sender")
                lastIdentifier[source] = id
            }
            signed += 1
        }
        #expect(signed == 6, "PBU and PBA for 1 -> 2, two of each for 2 -> 3")
        for g in d.g { #expect(g.control.counters.unauthenticated == 0 && g.control.counters.replayed == 0) }
        let r = try d.tshark(["-Y", "mipv6", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-e", "_ws.malformed",
                              "-e", "_ws.expert.severity", "-e", "mip6.auth.mobility_spi", "-e", "mip6.mseg_id.timestamp"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 6)
        for line in lines {
            let cols = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(cols.count == 4)
            #expect(cols[0].isEmpty, "malformed: \(line)")
            #expect(cols[1].split(separator: "|").compactMap { Int($0) }.allSatisfy { $0 < 0x0060_0000 }, "below warning: \(line)")
            #expect(UInt32(cols[2]).map { $0 >= 256 } == true && !cols[3].isEmpty, "\(line)")
        }
    }

    /// At the anchor, a signed PBU is refused unanswered when replayed as
    /// captured, changed in one octet, sent with no authentication, or
    /// with another SPI; the binding stays where it was.
    @Test func replayedTamperedAndUnsignedPBUsAreDropped() throws {
        let d = try Domain(configure: keyed)
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        let pbu = try #require(d.sim.trace.first { isMobility($0.frame, type: MobilityHeaderType.bindingUpdate) }?.frame)
        d.move(to: 2, previous: [gw[0], gw[1]])
        let anchor = d.g[0]
        let before = anchor.control.counters
        func refused(_ frame: [UInt8]) -> Bool { anchor.receive(frame, on: .core, time: d.sim.now).isEmpty }

        #expect(refused(pbu), "replayed")
        #expect(anchor.control.counters.replayed == before.replayed + 1)
        #expect(refused(tampered(pbu, at: 11)), "lifetime changed")
        #expect(refused(tampered(pbu, at: 20)), "an option changed")
        #expect(refused(tampered(pbu, at: mobilityHeader(pbu).mh.count - 1)), "authenticator changed")
        #expect(anchor.control.counters.unauthenticated == before.unauthenticated + 3)

        // Unsigned, and signed with another SPI, both with a fresh identifier.
        let fresh = BindingUpdate(sequence: 900, flags: [.acknowledge, .homeRegistration, .proxyRegistration, .distributedGateway],
                                  lifetime: 900, options: .built([.mobileNodeLinkLayerIdentifier(.owned(d.mn.mac.octets)),
                                                                  .handoffIndicator(3), .accessTechnologyType(3)]))
        let wrongSPI = MobilityMessage.bindingUpdate(fresh).appending([
            .messageIdentifier(.max), .authentication(subtype: 1, spi: 7, data: .owned([UInt8](repeating: 0, count: 32)))])
        for message in [MobilityMessage.bindingUpdate(fresh), wrongSPI] {
            let packet = try #require(ControlPlane.packet(message, from: gw[1], to: gw[0]))
            var frame: [UInt8] = anchor.coreMAC.octets
            frame += d.g[1].coreMAC.octets
            frame += [0x86, 0xDD]
            frame += packet.bytes
            #expect(refused(frame))
        }
        #expect(anchor.control.counters.unauthenticated == before.unauthenticated + 5)
        #expect(anchor.control.counters.accepted == before.accepted && anchor.control.counters.rejected == before.rejected)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2], "the binding stays with D-GW3")
        #expect(d.roundTrip(d.address(at: 1)!.address))
    }

    /// Keys that differ at the two ends: the anchor drops every PBU, the
    /// serving gateway gives up after max_attempts, and the old prefix is
    /// not tunnelled.
    @Test func mismatchedKeysStopTheHandover() throws {
        let d = try Domain { c in
            keyed(&c)
            if c.address.low == 1 { c.keys[IPv6Address("2001:db8:ffff::2")!] = pairKey(c.address, IPv6Address("2001:db8:ffff::2")!, salt: "x") }
        }
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        d.sim.run(for: 60_000 * ms)
        #expect(d.g[0].control.counters.unauthenticated == 5)
        #expect(d.g[0].control.counters.accepted == 0)
        #expect(d.g[1].control.counters.timeouts == 1)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving != gw[1])
    }

    /// Through the CMD (relay and locator), every hop signed.
    @Test(arguments: [CMDMode.relay, .locator])
    func signedThroughTheCMD(_ mode: CMDMode) throws {
        let d = try Domain(cmd: mode, configure: keyed)
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1)
        d.move(to: 2)
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[2] && d.binding(at: 2, d.prefix(at: 2))?.serving == gw[2])
        #expect(d.roundTrip(d.address(at: 1)!.address))
        for g in d.g { #expect(g.control.counters.unauthenticated == 0 && g.control.counters.replayed == 0, "\(g.name)") }
        let signed = d.sim.trace.filter { isMobility($0.frame, type: MobilityHeaderType.bindingUpdate) || isMobility($0.frame, type: MobilityHeaderType.bindingAcknowledgement) }
        #expect(!signed.isEmpty && signed.allSatisfy { f in
            mobilityHeader(f.frame).mh.withUnsafeBytes { b in (try? MobilityHeaderPacket(checking: b)).flatMap(MobilityAuthenticationTrailer.init) != nil }
        })
    }

    /// Through the inter-operator LMA (each gateway an operator of its
    /// own): each hop signed with its own pair's key (gateway to LMA, LMA
    /// to gateway), checked here over that hop's addresses; the tour works
    /// as unsigned. With a wrong key between D-GW2 and the LMA, the LMA
    /// drops D-GW2's PBUs and D-GW1's prefix is not handed over.
    @Test func signedThroughTheLMA() throws {
        let d = try Domain(lma: true, configure: keyed)
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        d.move(to: 2, previous: [gw[0], gw[1]])
        #expect(d.binding(at: 1, d.prefix(at: 1))?.serving == gw[3], "D-GW1's tunnel goes to the LMA")
        #expect(d.binding(at: 3, d.prefix(at: 1))?.anchor == gw[3])
        #expect(d.roundTrip(d.address(at: 1)!.address) && d.roundTrip(d.address(at: 2)!.address))
        for g in d.g { #expect(g.control.counters.unauthenticated == 0 && g.control.counters.replayed == 0, "\(g.name)") }
        var hops: Set<[IPv6Address]> = []
        for (_, frame) in d.sim.trace where isMobility(frame, type: MobilityHeaderType.bindingUpdate)
            || isMobility(frame, type: MobilityHeaderType.bindingAcknowledgement) {
            let (mh, source, destination) = mobilityHeader(frame)
            try mh.withUnsafeBytes { b in
                let trailer = try #require(MobilityAuthenticationTrailer(try MobilityHeaderPacket(checking: b)))
                let key = pairKey(source, destination)
                var covered = Array(source.octets) + Array(destination.octets) + Array(mh[..<trailer.dataOffset])
                covered[36] = 0
                covered[37] = 0
                #expect(trailer.spi == key.spi && Array(mh[trailer.dataOffset...]) == hmacSHA256(key.secret, covered))
            }
            hops.insert([source, destination])
        }
        #expect(hops.allSatisfy { $0.contains(gw[3]) } && hops.count == 6, "every PBU and PBA to or from the LMA: \(hops)")

        let wrong = try Domain(lma: true) { c in
            keyed(&c)
            let lma = IPv6Address("2001:db8:ffff::200")!
            if c.address.low == 2 { c.keys[lma] = pairKey(c.address, lma, salt: "x") }
        }
        wrong.move(to: 0)
        wrong.move(to: 1, previous: [gw[0]])
        wrong.sim.run(for: 60_000 * ms)
        #expect(wrong.g[3].control.counters.unauthenticated == 5, "\(wrong.g[3].control.counters)")
        #expect(wrong.g[0].control.counters.pbuReceived == 0 && wrong.g[1].control.counters.timeouts == 1)
        #expect(wrong.binding(at: 1, wrong.prefix(at: 1))?.serving == nil, "still served at D-GW1 as far as it knows")
    }

    /// Identifiers are the sending time (RFC 4285's NTP-format timestamp):
    /// a restarted sender's keep growing; a restarted receiver, which has
    /// forgotten the last one it accepted, still refuses a captured PBU
    /// older than its replay window (`stale`); so does any receiver whose
    /// clock is further than the window from the sender's.
    @Test func restartsAndTheReplayWindow() throws {
        let d = try Domain(configure: keyed)
        let gw = d.g.map(\.address)
        d.move(to: 0)
        d.move(to: 1, previous: [gw[0]])
        let captured = try #require(d.sim.trace.last { isMobility($0.frame, type: MobilityHeaderType.bindingUpdate) })
        let (mh, _, _) = mobilityHeader(captured.frame)
        let stamp = try mh.withUnsafeBytes { b in try #require(try MobilityMessage.parse(unverified: try MobilityHeaderPacket(checking: b)).options.messageIdentifier) }
        #expect(stamp >> 32 == UInt64(captured.time / 1_000_000_000 + 2_208_988_800), "seconds since 1900 at sending")
        // The sender restarts: its next PBU is above the last (the clock moved on).
        try d.g[1].restart(initialSequence: 100)
        d.move(to: 1, previous: [gw[0]])
        #expect(d.g[0].control.counters.replayed == 0 && d.g[0].control.counters.stale == 0)
        #expect(d.g[1].control.sessions.map(\.state) == [.bound])
        // The receiver restarts 10 s later: the captured PBU is refused all the same.
        d.sim.run(for: 10_000 * ms)
        try d.g[0].restart()
        #expect(d.g[0].receive(captured.frame, on: .core, time: d.sim.now).isEmpty)
        #expect(d.g[0].control.counters.stale == 1 && d.g[0].control.counters.accepted == 0)
        // Clocks 8 s apart (the window is 7 s): each side's signalling refused.
        let skewed = try Domain { c in
            keyed(&c)
            if c.address.low == 2 { c.clockOffset = 8_000_000_000 }
        }
        skewed.move(to: 0)
        skewed.move(to: 1, previous: [gw[0]])
        #expect(skewed.g[0].control.counters.stale == 1 && skewed.g[1].control.sessions.map(\.state) != [.bound])
    }
}
