// The control plane's small inline books: the last sequence number per
// serving gateway, and the DLIF slots of one MN.

@testable import DGWControl
import DGWTestSupport
import DGWWire
import Testing

@Suite struct BooksTests {
    @Test func lastSequencesPerGateway() {
        let g = (1...4).map { IPv6Address(high: 0x2001_0DB8_FFFF_0000, low: UInt64($0)) }
        var last = LastSequences()
        #expect(last[g[0]] == nil)
        for (i, gateway) in g.enumerated() { last[gateway] = UInt16(10 * (i + 1)) }
        #expect(g.map { last[$0] } == [10, 20, 30, 40])
        last[g[2]] = 31
        last[g[0]] = nil
        #expect(g.map { last[$0] } == [nil, 20, 31, 40])
        last[g[0]] = 11
        #expect(g.map { last[$0] } == [11, 20, 31, 40])
        // Equal whatever the order they were learned in.
        var other = LastSequences()
        for (gateway, s) in zip(g.reversed(), [40, 31, 20, 11] as [UInt16]) { other[gateway] = s }
        #expect(last == other)
        other[g[1]] = 21
        #expect(last != other)
    }

    @Test func slotListKeepsOrderAndRemovesWhatMatches() {
        var list = SlotList()
        #expect(list.isEmpty && Array(list).isEmpty)
        for s in [5, 9, 2, 7] { list.append(s) }
        #expect(Array(list) == [5, 9, 2, 7])
        var removed: [Int] = []
        list.removeAll(where: { $0 == 9 || $0 == 7 }) { removed.append($0) }
        #expect(removed == [9, 7] && Array(list) == [5, 2])
        list.removeAll(where: { _ in true }) { removed.append($0) }
        #expect(list.isEmpty && removed == [9, 7, 5, 2])
        #expect(Array(SlotList(3)) == [3])
    }

    /// The records by MN, against a dictionary of them: made, changed in
    /// place, replaced and removed (at the index found by key, the last
    /// record moving into the hole) in a seeded random order.
    @Test func recordBookAgreesWithADictionary() {
        var book = RecordBook(), model: [MACAddress: IPv6Prefix] = [:]
        book.reserveCapacity(16)
        var rng = SplitMix64(seed: 6)
        func prefix(_ n: UInt64) -> IPv6Prefix { IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0DB8_0000_0000 | n << 16, low: 0), length: 64) }
        for step in 0..<4000 {
            let mn = MACAddress(value: 0x02AA_0000_0000 | rng.next() % 40), p = prefix(UInt64(step))
            switch rng.next() % 4 {
            case 0:
                if let i = book.index(forKey: mn) { book.values[i] = MNRecord(allocation: p) } else { book.append(mn, MNRecord(allocation: p)) }
                model[mn] = p
            case 1:
                book.values[book.index(forKey: mn) ?? book.append(mn, MNRecord())].allocation = p
                model[mn] = p
            default:
                if let i = book.index(forKey: mn) { book.remove(at: i) }
                model[mn] = nil
            }
            #expect(book.count == model.count && book.values.count == model.count)
            for (mn, p) in model {
                let i = book.index(forKey: mn)
                #expect(i.map { book.values[$0].allocation } == p, "step \(step): \(mn)")
            }
            #expect(book.index(forKey: mn).flatMap { book.values[$0].allocation } == model[mn])
        }
    }

    /// The MAC-to-position table against a dictionary: growing from 8
    /// slots, MNs added, moved and removed at random (removals shift probe
    /// runs back, wrapping round the end), with a seed of 0 (every MAC
    /// hashed unkeyed) and a drawn one; a copy keeps what it held.
    @Test(arguments: [0, 0x5EED_0F_D6_A7E] as [UInt64]) func positionIndexAgreesWithADictionary(seed: UInt64) throws {
        var index = PositionIndex(seed: seed), model: [MACAddress: Int32] = [:]
        var rng = SplitMix64(seed: seed ^ 19)
        var snapshot: (PositionIndex, [MACAddress: Int32])?
        for step in 0..<30_000 {
            let mn = MACAddress(value: 0x02AA_0000_0000 | (rng.next() % 3000) * 0x1_0001)
            if rng.next() % 3 == 0 {
                index.remove(mn)
                model[mn] = nil
            } else {
                index.set(mn, Int32(step))
                model[mn] = Int32(step)
            }
            #expect(index[mn] == model[mn] && index.count == model.count, "step \(step)")
            if step % 5000 == 4999 {
                for (mn, p) in model where index[mn] != p { Issue.record("step \(step): \(mn) at \(index[mn].map(String.init) ?? "nowhere"), not \(p)") }
                if snapshot == nil { snapshot = (index, model) }
            }
        }
        let (copy, then) = try #require(snapshot)
        #expect(copy.count == then.count)
        for (mn, p) in then where copy[mn] != p { Issue.record("the copy: \(mn) at \(copy[mn].map(String.init) ?? "nowhere"), not \(p)") }
        var reserved = PositionIndex(seed: seed)
        reserved.reserveCapacity(1000)
        for i in 0..<1000 { reserved.set(MACAddress(value: UInt64(i)), Int32(i)) }
        #expect((0..<1000).allSatisfy { reserved[MACAddress(value: UInt64($0))] == Int32($0) } && reserved[MACAddress(value: 1000)] == nil)
    }
}

/// What a PBA grants, read from its options: from the anchor itself one
/// grant; from a CMD one per Previous MAAR, in the order last named (a
/// former anchor named again takes the options that follow), its own
/// Home Network Prefix echo granting nothing.
@Suite struct GrantsTests {
    let mn = MACAddress("02:aa:00:00:00:01")!
    let a1 = IPv6Address("2001:db8:ffff::1")!, a2 = IPv6Address("2001:db8:ffff::2")!, cmd = IPv6Address("2001:db8:ffff::100")!
    let p1 = IPv6Prefix("2001:db8:1::/64")!, p1b = IPv6Prefix("2001:db8:1:1::/64")!, p2 = IPv6Prefix("2001:db8:2::/64")!
    let own = IPv6Prefix("2001:db8:3::/64")!, lipa = IPv6Prefix("2001:db8:aaaa::/64")!
    let m1 = MACAddress("02:d1:00:00:00:01")!, ll1 = IPv6Address("fe80::1:1")!
    func logical(_ anchor: IPv6Address, _ mn: MACAddress) -> MACAddress { MACAddress(value: 0x0200_0000_0000 | anchor.low & 0xFF) }

    @Test func fromTheAnchorItself() {
        let options: [MobilityOption] = [.anchoredPrefix(p1), .localPrefix(lipa), .dlifLinkLocalAddress(ll1),
                                         .dlifLinkLayerAddress(LinkLayerAddress(m1))]
        let (grants, previous) = ControlPlane.grants(in: .built(options), from: a1, viaCMD: false, mn: mn, logicalMAC: logical)
        #expect(grants == [AnchorGrant(anchor: a1, prefixes: [p1],
                                       dlif: DLIF(mn: mn, mac: m1, anchor: a1, prefixes: [p1], localNetworks: [lipa], linkLocal: ll1))])
        #expect(previous.isEmpty)
        // No DLIF options: the anchor's logical MAC and its EUI-64 link-local.
        let bare = ControlPlane.grants(in: .built([.anchoredPrefix(p1)]), from: a1, viaCMD: false, mn: mn, logicalMAC: logical).grants
        #expect(bare.map(\.dlif) == [DLIF(mn: mn, mac: logical(a1, mn), anchor: a1, prefixes: [p1])])
    }

    @Test func fromACMDOnePerFormerAnchor() {
        let options: [MobilityOption] = [.homeNetworkPrefix(own), .dlifLinkLayerAddress(LinkLayerAddress(m1)),
                                         .previousMAAR(maar: a1, prefix: p1), .dlifLinkLayerAddress(LinkLayerAddress(m1)),
                                         .previousMAAR(maar: a2, prefix: p2), .localPrefix(lipa),
                                         .previousMAAR(maar: a1, prefix: p1b), .dlifLinkLocalAddress(ll1), .anchoredPrefix(p1)]
        let (grants, previous) = ControlPlane.grants(in: .built(options), from: cmd, viaCMD: true, mn: mn, logicalMAC: logical)
        #expect(previous == [a2, a1])
        #expect(grants == [
            AnchorGrant(anchor: a2, prefixes: [p2], dlif: DLIF(mn: mn, mac: logical(a2, mn), anchor: a2, prefixes: [p2], localNetworks: [lipa])),
            AnchorGrant(anchor: a1, prefixes: [p1, p1b], dlif: DLIF(mn: mn, mac: m1, anchor: a1, prefixes: [p1, p1b], linkLocal: ll1)),
        ])
        // Nothing but the CMD's echo of this gateway's prefix: no grant.
        let none = ControlPlane.grants(in: .built([.homeNetworkPrefix(own)]), from: cmd, viaCMD: true, mn: mn, logicalMAC: logical)
        #expect(none.grants.isEmpty && none.previous.isEmpty)
    }
}
