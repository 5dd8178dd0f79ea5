import DGWControl
import DGWWire
import Testing

let mn = MACAddress("02:aa:00:00:00:01")!, other = MACAddress("02:aa:00:00:00:09")!
let here = MACAddress("02:d1:00:00:01:01")!, there = MACAddress("02:d2:00:00:01:01")!
let anchor2 = IPv6Address("2001:db8:ffff::2")!
let p1 = IPv6Prefix("2001:db8:1:1::/64")!, p2 = IPv6Prefix("2001:db8:2:7::/64")!, lipa = IPv6Prefix("2001:db8:aaaa::/48")!

func router(interval: Double = 10, validLifetime: Int = 86_400) -> AccessRouter {
    var c = AccessRouterConfiguration()
    c.interval = interval
    c.routerLifetime = 1800
    c.validLifetime = validLifetime
    c.preferredLifetime = 3600
    c.mtu = 1500
    c.dlifs = [DLIF(mn: mn, mac: here, anchor: nil, prefixes: [p1], localNetworks: [lipa]),
               DLIF(mn: mn, mac: there, anchor: anchor2, prefixes: [p2])]
    return AccessRouter(c)
}

/// An ND message from the MN in an Ethernet frame.
func fromMN(to mac: MACAddress, source: IPv6Address, destination: IPv6Address, _ message: ICMPv6Message, sender: MACAddress = mn) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 200)
    let n = b.withUnsafeMutableBytes { out -> Int in
        try! EthernetHeader(destination: mac, source: sender, etherType: EtherType.ipv6).emit(into: out)
        let length = try! message.emit(into: UnsafeMutableRawBufferPointer(rebasing: out[54...]), source: source, destination: destination)
        try! IPv6Header(payloadLength: length, nextHeader: IPProtocol.icmpv6, hopLimit: 255, source: source, destination: destination)
            .emit(into: UnsafeMutableRawBufferPointer(rebasing: out[14..<54]))
        return 54 + length
    }
    return Array(b[..<n])
}

/// The layers of a frame the router sent.
struct Sent {
    var eth: EthernetHeader
    var ip: IPv6Header
    var message: ICMPv6Message
    var options: [NDOption]

    init(_ frame: [UInt8]) throws {
        (eth, ip, message, options) = try frame.withUnsafeBytes { b in
            let e = try EthernetFrame(checking: b)
            let p = try IPv6Packet(checking: e.payload)
            let m = try ICMPv6Message.parse(try ICMPv6Packet(checking: p.payload), source: p.source, destination: p.destination)
            let options: [NDOption]
            switch m {
            case .routerAdvertisement(let ra): options = Array(ra.options)
            case .neighborAdvertisement(let na): options = Array(na.options)
            default: options = []
            }
            return (EthernetHeader(e), IPv6Header(p), m, options)
        }
    }
}

@Suite struct AccessRouterTests {
    @Test func linkLocalIsTheModifiedEUI64OfTheDLIFsMAC() {
        #expect(DLIF(mn: mn, mac: here, anchor: nil, prefixes: []).linkLocal == IPv6Address("fe80::d1:ff:fe00:101")!)
        #expect(DLIF(mn: mn, mac: MACAddress("00:11:22:33:44:55")!, anchor: nil, prefixes: []).linkLocal
                == IPv6Address("fe80::211:22ff:fe33:4455")!)
    }

    /// A multicast RS gets one RA from each of the MN's DLIFs: this gateway's
    /// prefix preferred, with its local network in a RIO; the other anchor's
    /// deprecated, at low preference.
    @Test func routerSolicitationIsAnsweredByEveryDLIFOfTheMN() throws {
        let r = router()
        let rs = fromMN(to: MACAddress(multicast: IPv6Address("ff02::2")!), source: IPv6Address("fe80::1")!,
                        destination: IPv6Address("ff02::2")!, .routerSolicitation(options: .none))
        let out = try rs.withUnsafeBytes { r.handle($0).frames }.map(Sent.init)
        try #require(out.count == 2)
        let mine = out[0], theirs = out[1]
        for (sent, mac) in [(mine, here), (theirs, there)] {
            #expect(sent.eth.source == mac && sent.eth.destination == mn)
            #expect(sent.ip.source == DLIF(mn: mn, mac: mac, anchor: nil, prefixes: []).linkLocal)
            #expect(sent.ip.destination == .allNodes && sent.ip.hopLimit == 255)
            #expect(sent.options.contains(.sourceLinkLayerAddress(LinkLayerAddress(mac))) && sent.options.contains(.mtu(1500)))
        }
        guard case .routerAdvertisement(let ra1) = mine.message, case .routerAdvertisement(let ra2) = theirs.message else {
            Issue.record("not RAs")
            return
        }
        #expect(ra1.preference == .medium && ra1.routerLifetime == 1800)
        #expect(ra2.preference == .low && ra2.routerLifetime == 1800)
        #expect(mine.options.contains(.prefixInformation(PrefixInformation(prefix: p1, validLifetime: 86_400, preferredLifetime: 3600))))
        #expect(mine.options.contains(.routeInformation(RouteInformation(prefix: lipa, lifetime: 1800))))
        #expect(theirs.options.contains(.prefixInformation(PrefixInformation(prefix: p2, validLifetime: 86_400, preferredLifetime: 0))))
        #expect(!theirs.options.contains { if case .routeInformation = $0 { return true }; return false })
        #expect(r.counters.routerSolicitations == 1 && r.counters.routerAdvertisements == 2)

        // Unicast to one DLIF: that one answers. Another MN: nobody.
        let unicast = fromMN(to: there, source: IPv6Address("fe80::1")!, destination: IPv6Address("ff02::2")!, .routerSolicitation(options: .none))
        #expect(try unicast.withUnsafeBytes { r.handle($0).frames }.map { try Sent($0).eth.source } == [there])
        let stranger = fromMN(to: MACAddress(multicast: IPv6Address("ff02::2")!), source: IPv6Address("fe80::9")!,
                              destination: IPv6Address("ff02::2")!, .routerSolicitation(options: .none), sender: other)
        #expect(stranger.withUnsafeBytes { r.handle($0).frames }.isEmpty)
    }

    /// NS for a DLIF's link-local address: an NA with its MAC; from :: (DAD)
    /// to all nodes, unsolicited; the MN's own DAD probe is left alone.
    @Test func neighborSolicitationsOfDLIFAddressesAreAnswered() throws {
        let r = router()
        let lla = DLIF(mn: mn, mac: here, anchor: nil, prefixes: []).linkLocal
        let mnLLA = IPv6Address("fe80::aa:ff:fe00:1")!
        let ns = fromMN(to: MACAddress(multicast: lla.solicitedNodeMulticast), source: mnLLA, destination: lla.solicitedNodeMulticast,
                        .neighborSolicitation(target: lla, options: .built([.sourceLinkLayerAddress(LinkLayerAddress(mn))])))
        let na = try #require(try ns.withUnsafeBytes { r.handle($0).frames }.map(Sent.init).first)
        #expect(na.eth.source == here && na.eth.destination == mn && na.ip.source == lla && na.ip.destination == mnLLA)
        guard case .neighborAdvertisement(let a) = na.message else { Issue.record("not an NA"); return }
        #expect(a.router && a.solicited && a.override && a.target == lla && na.options == [.targetLinkLayerAddress(LinkLayerAddress(here))])

        let probe = fromMN(to: MACAddress(multicast: lla.solicitedNodeMulticast), source: .unspecified, destination: lla.solicitedNodeMulticast,
                           .neighborSolicitation(target: lla, options: .none))
        let dad = try #require(try probe.withUnsafeBytes { r.handle($0).frames }.map(Sent.init).first)
        guard case .neighborAdvertisement(let d) = dad.message else { Issue.record("not an NA"); return }
        #expect(dad.ip.destination == .allNodes && !d.solicited)

        let own = fromMN(to: MACAddress(multicast: mnLLA.solicitedNodeMulticast), source: .unspecified, destination: mnLLA.solicitedNodeMulticast,
                         .neighborSolicitation(target: mnLLA, options: .none))
        #expect(own.withUnsafeBytes { r.handle($0).frames }.isEmpty)
        #expect(r.counters.neighborSolicitations == 3 && r.counters.neighborAdvertisements == 2 && r.counters.ignored == 1)
    }

    /// Unsolicited RAs: a burst of three a second apart from the first tick,
    /// then one every interval, each stamped with the time it was due.
    @Test func periodicAdvertisements() {
        let r = router(interval: 10)
        let s: Int64 = 1_000_000_000, t0: Int64 = 50 * s
        #expect(r.nextDeadline == .min, "the first tick is due at once")
        #expect(r.tick(t0).map(\.time) == [t0, t0])  // both DLIFs
        #expect(r.nextDeadline == t0 + s)
        #expect(r.tick(t0 + s / 2).isEmpty)
        #expect(r.tick(t0 + 2 * s).map(\.time) == [t0 + s, t0 + s, t0 + 2 * s, t0 + 2 * s])  // late: both due times
        #expect(r.nextDeadline == t0 + 12 * s)
        #expect(r.tick(t0 + 12 * s).count == 2)
        #expect(r.counters.routerAdvertisements == 8)
    }

    /// The other anchor's DLIF repeats its deprecated prefix in the burst,
    /// then only every third of the valid lifetime (each one makes a Linux
    /// MN briefly treat the address as preferred); its RAs in between still
    /// refresh it as a router. This gateway's prefix goes every time, and an
    /// RS gets everything.
    @Test func deprecatedPrefixesGoInTheBurstThenOnlyToStayValid() throws {
        let r = router(interval: 10, validLifetime: 60)
        let s: Int64 = 1_000_000_000, t0: Int64 = 50 * s
        #expect(r.deprecatedRefresh == 20 * s)
        func prefixes(at t: Int64) throws -> [MACAddress: [PrefixInformation]] {
            var seen: [MACAddress: [PrefixInformation]] = [:]
            for (_, frame) in r.tick(t) {
                let sent = try Sent(frame)
                seen[sent.eth.source, default: []] += sent.options.compactMap { if case .prefixInformation(let p) = $0 { p } else { nil } }
            }
            return seen
        }
        let preferred = PrefixInformation(prefix: p1, validLifetime: 60, preferredLifetime: 3600)
        let deprecated = PrefixInformation(prefix: p2, validLifetime: 60, preferredLifetime: 0)
        for t in [t0, t0 + s, t0 + 2 * s] {
            #expect(try prefixes(at: t) == [here: [preferred], there: [deprecated]], "burst at \(t / s) s")
        }
        #expect(try prefixes(at: t0 + 12 * s) == [here: [preferred], there: []])
        #expect(try prefixes(at: t0 + 22 * s) == [here: [preferred], there: [deprecated]], "20 s after the last one")
        #expect(try prefixes(at: t0 + 32 * s) == [here: [preferred], there: []])
        let rs = fromMN(to: there, source: IPv6Address("fe80::1")!, destination: IPv6Address("ff02::2")!, .routerSolicitation(options: .none))
        let answer = try #require(try rs.withUnsafeBytes { r.handle($0).frames }.map(Sent.init).first)
        #expect(answer.options.contains(.prefixInformation(deprecated)))
        // Shown again (a new binding), the DLIF starts a full burst.
        r.show(DLIF(mn: mn, mac: there, anchor: anchor2, prefixes: [p2]))
        #expect(try prefixes(at: t0 + 33 * s)[there] == [deprecated])
        #expect(try prefixes(at: t0 + 34 * s)[there] == [deprecated])
    }

    /// The burst's RA is built once; a DLIF shown again mid-burst (another
    /// prefix from the same anchor) sends what it says now, in a new burst.
    @Test func aDLIFChangedMidBurstAdvertisesItsNewPrefixes() throws {
        let r = router(interval: 10)
        let s: Int64 = 1_000_000_000, t0: Int64 = 50 * s
        func prefixes(at t: Int64) throws -> [[IPv6Prefix]] {
            try r.tick(t).map { try Sent($0.frame) }.filter { $0.eth.source == there }
                .map { $0.options.compactMap { if case .prefixInformation(let p) = $0 { p.prefix } else { nil } } }
        }
        let p3 = IPv6Prefix("2001:db8:3::/64")!
        #expect(try prefixes(at: t0) == [[p2]] && prefixes(at: t0 + s) == [[p2]])
        r.show(DLIF(mn: mn, mac: there, anchor: anchor2, prefixes: [p2, p3]))
        #expect(try prefixes(at: t0 + s + 1) == [[p2, p3]])
        #expect(try prefixes(at: t0 + 2 * s + 1) == [[p2, p3]] && prefixes(at: t0 + 3 * s + 1) == [[p2, p3]])
        #expect(try prefixes(at: t0 + 13 * s + 1) == [[]], "after the burst, not the deprecated prefixes")
    }

    /// An RS from an MN not seen before attaches it: the next free /64 of
    /// the pool (the same one when it comes back), this gateway's DLIF, an
    /// RA at once and the initial burst from the next tick; the pool used up,
    /// nobody else.
    @Test func attachFromTheFirstRouterSolicitation() throws {
        var c = AccessRouterConfiguration()
        c.prefixPool = IPv6Prefix("2001:db8:1::/63")!
        c.dlifs = [DLIF(mn: mn, mac: here, anchor: nil, prefixes: [IPv6Prefix("2001:db8:1::/64")!])]
        c.logicalMAC = { mn, _ in MACAddress(value: 0x02EE_0000_0000 | (mn.value & 0xFFFF_FFFF)) }
        c.localNetworks = [lipa]
        let r = AccessRouter(c)
        _ = r.tick(0)
        func rs(from sender: MACAddress) -> [UInt8] {
            fromMN(to: MACAddress(multicast: IPv6Address("ff02::2")!), source: .unspecified, destination: IPv6Address("ff02::2")!,
                   .routerSolicitation(options: .none), sender: sender)
        }
        let reply = rs(from: other).withUnsafeBytes { r.handle($0) }
        let dlifMAC = MACAddress("02:ee:00:00:00:09")!
        #expect(reply.attached == [Attachment(mn: other, prefix: IPv6Prefix("2001:db8:1:1::/64")!, dlifMAC: dlifMAC)])
        let ra = try Sent(try #require(reply.frames.first))
        #expect(reply.frames.count == 1 && ra.eth.source == dlifMAC && ra.eth.destination == other)
        #expect(ra.options.contains(.prefixInformation(PrefixInformation(prefix: IPv6Prefix("2001:db8:1:1::/64")!, validLifetime: 86_400,
                                                                        preferredLifetime: 3600))))
        #expect(ra.options.contains(.routeInformation(RouteInformation(prefix: lipa, lifetime: 1800))))
        #expect(r.nextDeadline == .min && r.dlifs.count == 2)
        #expect(r.tick(5).map { try! Sent($0.frame).eth.source } == [dlifMAC])  // its burst starts; the first DLIF is not due
        // Again: no second attachment.
        #expect(rs(from: other).withUnsafeBytes { r.handle($0) }.attached.isEmpty)
        // The pool (two /64s, one static) is used up.
        let third = MACAddress("02:aa:00:00:00:33")!
        let refused = rs(from: third).withUnsafeBytes { r.handle($0) }
        #expect(refused.attached.isEmpty && refused.frames.isEmpty)
        #expect(r.counters.attached == 1 && r.counters.poolExhausted == 1)
    }

    /// The DLIF MACs an anchor allocates: its address's last 16 bits, the
    /// prefix's index in the pool; distinct for every MN.
    @Test func allocatedDLIFMACsAreDistinct() {
        var c = AccessRouterConfiguration()
        let anchor = IPv6Address("2001:db8:ffff::7")!, pool = IPv6Prefix("2001:db8:100::/40")!
        c.prefixPool = pool
        c.logicalMAC = { _, prefix in DLIF.logicalMAC(anchor: anchor, pool: pool, prefix: prefix) }
        let r = AccessRouter(c)
        let macs = (0..<5000).compactMap { r.attach(MACAddress(value: 0x02AA_0000_0000 | UInt64($0)))?.dlifMAC }
        #expect(Set(macs).count == 5000)
        #expect(macs[0] == MACAddress("02:00:07:00:00:00")! && macs[4999] == MACAddress("02:00:07:00:13:87")!)
        #expect(macs.allSatisfy { $0.isLocallyAdministered && !$0.isMulticast })
    }

    /// A local network inside the pool is never handed out as an MN's prefix.
    @Test func thePoolSkipsTheLocalNetworks() {
        var c = AccessRouterConfiguration()
        c.prefixPool = IPv6Prefix("2001:db8:1::/62")!
        c.localNetworks = [IPv6Prefix("2001:db8:1:1::/64")!, IPv6Prefix("2001:db8:1:2:8000::/65")!]
        let r = AccessRouter(c)
        let got = (1...3).map { r.attach(MACAddress(value: 0x02AA_0000_0000 | UInt64($0)))?.prefix }
        #expect(got == [IPv6Prefix("2001:db8:1::/64")!, IPv6Prefix("2001:db8:1:3::/64")!, nil])
    }

    /// Whose a /64 of the pool is (for `move-prefix`, which names a prefix):
    /// only an MN's own allocation, skipped and reserved /64s nobody's; an
    /// MN that leaves keeps it and gets it again.
    @Test func eachAllocatedPrefixNamesItsMN() {
        var c = AccessRouterConfiguration()
        c.prefixPool = IPv6Prefix("2001:db8:1::/61")!
        c.localNetworks = [IPv6Prefix("2001:db8:1:1::/64")!]
        c.reserved = [IPv6Prefix("2001:db8:1:2::/64")!]
        let r = AccessRouter(c)
        let a = MACAddress("02:aa:00:00:00:01")!, b = MACAddress("02:aa:00:00:00:02")!
        #expect(r.attach(a)?.prefix == IPv6Prefix("2001:db8:1::/64")! && r.attach(b)?.prefix == IPv6Prefix("2001:db8:1:3::/64")!)
        #expect(r.mn(allocated: IPv6Prefix("2001:db8:1::/64")!) == a && r.mn(allocated: IPv6Prefix("2001:db8:1:3::/64")!) == b)
        for nobodys in ["2001:db8:1:1::/64", "2001:db8:1:2::/64", "2001:db8:1:4::/64", "2001:db8:2::/64", "2001:db8:1::/63",
                        "2001:db8:1:3::1/128"] {
            #expect(r.mn(allocated: IPv6Prefix(nobodys)!) == nil, "\(nobodys)")
        }
        r.hide(a)
        #expect(r.dlifs(of: a).isEmpty && r.allocation(of: a) == IPv6Prefix("2001:db8:1::/64")!)
        #expect(r.attach(a)?.prefix == IPv6Prefix("2001:db8:1::/64")! && r.dlifs(of: a).count == 1)
        #expect(r.attach(MACAddress("02:aa:00:00:00:03")!)?.prefix == IPv6Prefix("2001:db8:1:4::/64")!)
    }

    /// An MN shown another anchor's DLIF first (configured, or granted)
    /// gets its /64 here into the same record, kept when it leaves.
    @Test func anMNShownAnotherAnchorsDLIFKeepsItsAllocation() {
        var c = AccessRouterConfiguration()
        c.prefixPool = IPv6Prefix("2001:db8:1::/61")!
        c.dlifs = [DLIF(mn: mn, mac: there, anchor: anchor2, prefixes: [p2])]
        let r = AccessRouter(c)
        #expect(r.allocation(of: mn) == nil)
        #expect(r.attach(mn)?.prefix == IPv6Prefix("2001:db8:1::/64")!)
        #expect(r.allocation(of: mn) == IPv6Prefix("2001:db8:1::/64")! && r.dlifs(of: mn).count == 2)
        r.hide(mn)
        #expect(r.attach(mn)?.prefix == IPv6Prefix("2001:db8:1::/64")!)
        #expect(r.attach(other)?.prefix == IPv6Prefix("2001:db8:1:1::/64")!)
    }

    /// One anchor's DLIF hidden leaves the MN's others shown.
    @Test func hidingOneAnchorsDLIF() {
        let r = router()
        #expect(r.dlifs(of: mn).map(\.mac) == [here, there])
        r.hide(mn, anchor: IPv6Address("2001:db8:ffff::9")!)  // none of its
        #expect(r.dlifs(of: mn).count == 2)
        r.hide(mn, anchor: anchor2)
        #expect(r.dlifs(of: mn).map(\.mac) == [here])
        r.show(DLIF(mn: mn, mac: there, anchor: anchor2, prefixes: [p2]))
        r.hide(mn, anchor: nil)  // this gateway's
        #expect(r.dlifs(of: mn).map(\.mac) == [there])
        r.hide(mn)
        #expect(r.dlifs(of: mn).isEmpty && r.dlifCount == 0)
    }

    @Test func somethingElseIsIgnored() {
        let r = router()
        #expect([UInt8](repeating: 0xFF, count: 20).withUnsafeBytes { r.handle($0).frames }.isEmpty)
        let echo = fromMN(to: here, source: IPv6Address("fe80::1")!, destination: IPv6Address("fe80::2")!,
                          .echoRequest(identifier: 1, sequence: 1, data: .owned([1])))
        #expect(echo.withUnsafeBytes { r.handle($0).frames }.isEmpty)
        #expect(r.counters.ignored == 2)
    }
}
