import DGWWire
import Testing
@testable import DGWTables

/// The obvious longest-prefix match: a linear scan.
struct NaiveLPM {
    var routes: [IPv6Prefix: UInt32] = [:]

    func lookup(_ a: IPv6Address) -> UInt32 {
        var best: (Int, UInt32) = (-1, 0)
        for (p, nh) in routes where Int(p.length) > best.0 && p.contains(a) { best = (Int(p.length), nh) }
        return best.1
    }
}

struct Xorshift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}

func masked(_ high: UInt64, _ low: UInt64, _ length: Int) -> IPv6Prefix {
    IPv6Prefix(address: IPv6Address(high: high, low: low).masked(to: length), length: length)!
}

@Suite struct HNPTableTests {
    @Test func basicLongestMatch() throws {
        let t = HNPTable()
        try t.insert(IPv6Prefix("2001:db8::/32")!, nextHop: 1)
        try t.insert(IPv6Prefix("2001:db8:1::/48")!, nextHop: 2)
        try t.insert(IPv6Prefix("2001:db8:1:1::/64")!, nextHop: 3)
        try t.insert(IPv6Prefix("2001:db8:1:1::100/128")!, nextHop: 4)
        try t.insert(IPv6Prefix("2001:db8:1:1:8000::/65")!, nextHop: 5)
        #expect(t.lookup(IPv6Address("2001:db8:1:1::100")!) == 4)
        #expect(t.lookup(IPv6Address("2001:db8:1:1::101")!) == 3)
        #expect(t.lookup(IPv6Address("2001:db8:1:1:8000::1")!) == 5)
        #expect(t.lookup(IPv6Address("2001:db8:1:2::1")!) == 2)
        #expect(t.lookup(IPv6Address("2001:db8:2::1")!) == 1)
        #expect(t.lookup(IPv6Address("2001:db9::1")!) == 0)
        try t.insert(IPv6Prefix("::/0")!, nextHop: 9)
        #expect(t.lookup(IPv6Address("2001:db9::1")!) == 9)
        #expect(t.count == 6)
        #expect(t.nextHop(exactly: IPv6Prefix("2001:db8:1::/48")!) == 2)
        #expect(t.nextHop(exactly: IPv6Prefix("2001:db8:1::/49")!) == nil)
        // Host bits of an inserted prefix are ignored.
        try t.insert(IPv6Prefix("2001:db8:1::ffff/48")!, nextHop: 7)
        #expect(t.nextHop(exactly: IPv6Prefix("2001:db8:1::/48")!) == 7)
        #expect(t.count == 6)
        #expect(t.remove(IPv6Prefix("2001:db8:1:1::/64")!))
        #expect(!t.remove(IPv6Prefix("2001:db8:1:1::/64")!))
        #expect(t.lookup(IPv6Address("2001:db8:1:1::101")!) == 7)
        #expect(throws: TableError.invalidNextHop) { try t.insert(IPv6Prefix("::/0")!, nextHop: 0) }
        #expect(throws: TableError.invalidNextHop) { try t.insert(IPv6Prefix("::/0")!, nextHop: .max) }
    }

    /// Random inserts, replaces, deletes and lookups at every prefix length,
    /// against the linear scan. Prefixes share a few bit patterns so that
    /// they nest and collide.
    @Test(arguments: [1, 2, 3])
    func differentialAgainstNaiveModel(seed: UInt64) throws {
        var rng = Xorshift(state: 0x1234_5678 &* seed | 1)
        let t = HNPTable(densePageThreshold: 64)  // low, so pages come and go
        var model = NaiveLPM()
        var inserted: [IPv6Prefix] = []  // in order, so a seed replays exactly
        let bases: [(UInt64, UInt64)] = (0..<6).map { _ in (rng.next(), rng.next()) }
        func randomAddress() -> IPv6Address {
            let (h, l) = bases[Int(rng.next() % 6)]
            // Flip a few low bits of each half, so addresses share long prefixes.
            return IPv6Address(high: h ^ (rng.next() & (rng.next() % 2 == 0 ? 0xFFFF : 0xFF_FFFF_FFFF)), low: l ^ (rng.next() & 0xFFFF))
        }
        func randomPrefix() -> IPv6Prefix {
            let r = rng.next() % 10
            let length = r < 5 ? 64 : r < 7 ? 48 : Int(rng.next() % 129)
            let a = randomAddress()
            return masked(a.high, a.low, length)
        }
        for step in 0..<6000 {
            switch rng.next() % 10 {
            case 0..<5:
                let p = randomPrefix()
                let nh = UInt32(truncatingIfNeeded: rng.next() % 1_000_000 + 1)
                try t.insert(p, nextHop: nh)
                model.routes[p] = nh
                inserted.append(p)
            case 5..<7:
                let p: IPv6Prefix
                if !inserted.isEmpty && rng.next() % 4 != 0 {
                    p = inserted[Int(rng.next() % UInt64(inserted.count))]
                } else {
                    p = randomPrefix()
                }
                #expect(t.remove(p) == (model.routes.removeValue(forKey: p) != nil), "step \(step)")
            default:
                for _ in 0..<8 {
                    let a = rng.next() % 8 == 0 ? IPv6Address(high: rng.next(), low: rng.next()) : randomAddress()
                    let expected = model.lookup(a)
                    #expect(t.lookup(a) == expected, "step \(step): \(a)")
                }
            }
            if step % 500 == 0 {
                #expect(t.count == model.routes.count)
                for (p, nh) in model.routes { #expect(t.nextHop(exactly: p) == nh) }
            }
        }
        // A batch gives what single look-ups give.
        let keys = (0..<1000).map { _ in randomAddress() }
        var results = [UInt32](repeating: 0, count: keys.count)
        keys.withUnsafeBufferPointer { k in results.withUnsafeMutableBufferPointer { t.lookup(k, into: $0) } }
        for (k, r) in zip(keys, results) { #expect(r == model.lookup(k)) }
        #expect(t.qsbr.pending == 0)  // no reader registered: frees run at once
    }

    @Test func densePagesAndBack() throws {
        let t = HNPTable(densePageThreshold: 100)
        let base: UInt64 = 0x2001_0db8_0001_0000
        for i in 0..<300 { try t.insert(masked(base | UInt64(i), 0, 64), nextHop: UInt32(i + 1)) }
        #expect(t.snapshot.pointee.pageCount == 1)
        for i in 0..<300 { #expect(t.lookup(IPv6Address(high: base | UInt64(i), low: 42)) == UInt32(i + 1)) }
        #expect(t.lookup(IPv6Address(high: base | 300, low: 0)) == 0)
        for i in 0..<290 { #expect(t.remove(masked(base | UInt64(i), 0, 64))) }
        #expect(t.snapshot.pointee.pageCount == 0)
        for i in 290..<300 { #expect(t.lookup(IPv6Address(high: base | UInt64(i), low: 1)) == UInt32(i + 1)) }
        #expect(t.count == 10)
    }

    @Test func bytesForSparseHNPsStayCompact() throws {
        let t = HNPTable()
        for i in 0..<100_000 as Range<UInt64> {
            try t.insert(masked(0x2001_0db8 << 32 | ((i &* 2_654_435_761) & 0xFFFF_FFFF), 0, 64), nextHop: UInt32(i + 1))
        }
        // 16-byte slots at most half full after growth: at most 32 bytes a route, here 262,144 slots.
        #expect(t.bytesUsed <= 100_000 * 48)
        #expect(t.count == 100_000)
    }
}

@Suite struct MACTableTests {
    @Test func insertLookupRemoveAndGrow() throws {
        let t = MACTable()
        for i in 1...50_000 as ClosedRange<UInt64> { try t.insert(MACAddress(value: 0x02d1_0000_0000 | i), dlif: UInt32(i)) }
        #expect(t.count == 50_000)
        for i in stride(from: 1, through: 50_000, by: 97) as StrideThrough<UInt64> {
            #expect(t.lookup(MACAddress(value: 0x02d1_0000_0000 | i)) == UInt32(i))
        }
        #expect(t.lookup(MACAddress(value: 0x02d1_0000_0000)) == 0)
        #expect(t.remove(MACAddress(value: 0x02d1_0000_0007)))
        #expect(t.lookup(MACAddress(value: 0x02d1_0000_0007)) == 0)
        try t.insert(MACAddress(value: 0x02d1_0000_0007), dlif: 99)
        #expect(t.lookup(MACAddress(value: 0x02d1_0000_0007)) == 99)
        #expect(t.qsbr.pending == 0)
    }
}
