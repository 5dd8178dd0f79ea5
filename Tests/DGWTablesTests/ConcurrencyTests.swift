import DGWWire
import Foundation
import Synchronization
import Testing
@testable import DGWTables

@Suite struct QSBRTests {
    @Test func gracePeriodWaitsForOnlineReaders() throws {
        let q = QSBR()
        let a = try #require(q.register()), b = try #require(q.register())
        #expect(a != b)
        var freed = 0
        q.retire { freed += 1 }
        #expect(q.reclaim() == 0 && freed == 0)     // neither has reported
        q.quiescent(a)
        #expect(q.reclaim() == 0)                    // b still may hold a reference
        q.offline(b)                                 // an offline reader does not hold it up
        #expect(q.reclaim() == 1 && freed == 1)
        q.online(b)
        let t = q.start()
        #expect(!q.isComplete(t))
        q.quiescent(a); q.quiescent(b)
        #expect(q.isComplete(t))
        q.unregister(a); q.unregister(b)
        q.retire { freed += 1 }
        #expect(q.reclaim() == 1 && freed == 2 && q.pending == 0)
    }

    @Test func freesRunInRetirementOrder() throws {
        let q = QSBR()
        let r = try #require(q.register())
        var order: [Int] = []
        q.retire { order.append(1) }
        q.quiescent(r)
        q.retire { order.append(2) }                 // its grace period starts after the report
        #expect(q.reclaim() == 1 && order == [1])
        q.quiescent(r)
        #expect(q.reclaim() == 1 && order == [1, 2])
    }

    @Test func synchronizeWaitsForAnOnlineReaderToReport() throws {
        let q = QSBR()
        let reader = try #require(q.register())  // online, not reporting yet
        let done = Atomic<Bool>(false)
        let writer = Thread {
            q.synchronize()
            done.store(true, ordering: .releasing)
        }
        writer.start()
        usleep(50_000)
        let early = done.load(ordering: .acquiring)
        #expect(!early, "grace period ended with a reader that never reported")
        // The reader reports (as a worker would after each batch) until the writer is through.
        var rounds = 0
        while !done.load(ordering: .acquiring) && rounds < 5000 {
            q.quiescent(reader)
            usleep(1000)
            rounds += 1
        }
        let finished = done.load(ordering: .acquiring)
        #expect(finished)
        q.unregister(reader)
        q.synchronize()  // no reader left: returns at once
    }

    @Test func sixtyFourReadersAtMost() {
        let q = QSBR()
        let readers = (0..<64).compactMap { _ in q.register() }
        #expect(readers.count == 64)
        #expect(q.register() == nil)
        q.unregister(readers[10])
        #expect(q.register()?.index == 10)
    }
}

/// Readers look up flat out while the writer rewrites next hops, deletes and
/// re-adds routes, grows and rebuilds tables, and turns a /48 page dense and
/// back. Each answer must be one the key had at some moment during the
/// look-up, and freed memory (poisoned in debug builds) must never be seen.
@Suite struct ConcurrencyTests {
    static let stable = 200        // keys only ever re-valued
    static let flapping = 200      // keys deleted and re-added
    static let passes = 60

    static func key(_ i: Int) -> IPv6Address {
        // Stable keys in one /48, flapping ones in another (which goes dense and back).
        let page: UInt64 = i < stable ? 0x2001_0db8_0001_0000 : 0x2001_0db8_0002_0000
        return IPv6Address(high: page | UInt64(i), low: 0x1234)
    }
    static func prefix(_ i: Int) -> IPv6Prefix { IPv6Prefix(address: IPv6Address(high: key(i).high, low: 0), length: 64)! }
    /// Next hop of key i in pass g: both are recoverable from the value.
    static func value(_ i: Int, _ g: Int) -> UInt32 { UInt32(g + 1) << 16 | UInt32(i) }
    static let covering: UInt32 = 0xFFFE_0000

    @Test func readersSeeOldOrNewNeverGarbage() throws {
        let table = HNPTable(densePageThreshold: 150)
        try table.insert(IPv6Prefix("2001:db8:2::/48")!, nextHop: Self.covering)
        for i in 0..<(Self.stable + Self.flapping) { try table.insert(Self.prefix(i), nextHop: Self.value(i, 0)) }
        let generation = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let failures = Mutex<[String]>([])
        let lookups = Atomic<Int>(0)

        let readers = (0..<2).map { r in
            Thread {
                let me = table.qsbr.register()!
                var keys = [IPv6Address](repeating: .unspecified, count: 64)
                var results = [UInt32](repeating: 0, count: 64)
                var n = 0
                var seed = UInt64(r + 1) &* 0x9E37_79B9
                while !done.load(ordering: .acquiring) {
                    let g0 = generation.load(ordering: .acquiring)
                    for j in 0..<64 {
                        seed = seed &* 6_364_136_223_846_793_005 &+ 1
                        keys[j] = Self.key(Int(seed >> 33) % (Self.stable + Self.flapping))
                    }
                    keys.withUnsafeBufferPointer { k in results.withUnsafeMutableBufferPointer { table.lookup(k, into: $0) } }
                    let single = table.lookup(keys[0])
                    let g1 = generation.load(ordering: .acquiring)
                    for (j, v) in Array(zip(0..<64, results)) + [(0, single)] {
                        let i = Int(keys[j].high & 0xFFFF)
                        let ok: Bool
                        if i >= Self.stable && (v == Self.covering) {
                            ok = true                          // deleted at that moment: the /48 answers
                        } else {
                            let g = Int(v >> 16) - 1
                            ok = Int(v & 0xFFFF) == i && g >= g0 && g <= g1 + 1
                        }
                        if !ok { failures.withLock { $0.append("key \(i): \(String(v, radix: 16)) between passes \(g0) and \(g1)") } }
                    }
                    n += 65
                    table.qsbr.quiescent(me)
                }
                lookups.add(n, ordering: .relaxed)
                table.qsbr.unregister(me)
            }
        }
        readers.forEach { $0.start() }

        var churn: [IPv6Prefix] = []
        for g in 1...Self.passes {
            for i in 0..<Self.stable { try table.insert(Self.prefix(i), nextHop: Self.value(i, g)) }
            // The flapping page drops under a quarter of the threshold (sparse), then refills (dense).
            for i in Self.stable..<(Self.stable + Self.flapping) { table.remove(Self.prefix(i)) }
            for i in Self.stable..<(Self.stable + Self.flapping) { try table.insert(Self.prefix(i), nextHop: Self.value(i, g)) }
            // Unrelated routes of many lengths: tables appear, grow, rebuild and go.
            for k in 0..<300 {
                let p = IPv6Prefix(address: IPv6Address(high: 0x2400_0000_0000_0000 | UInt64(g * 1000 + k) << 20, low: UInt64(k)),
                                   length: [32, 40, 56, 64, 96, 128][k % 6])!
                try table.insert(p, nextHop: UInt32(k + 1))
                churn.append(p)
            }
            if g % 3 == 0 { for p in churn { table.remove(p) }; churn.removeAll() }
            generation.store(g, ordering: .releasing)
            table.reclaim()
        }
        done.store(true, ordering: .releasing)
        while readers.contains(where: { !$0.isFinished }) { usleep(1000) }
        table.reclaim()

        let found = failures.withLock { $0 }
        #expect(found.isEmpty, "\(found.count) bad answers, first: \(found.prefix(5))")
        #expect(lookups.load(ordering: .relaxed) > 10_000)
        #expect(table.qsbr.pending == 0, "deferred frees left: \(table.qsbr.pending)")
    }
}

/// The worker-to-control-plane ring, with its producer and consumer on two
/// threads (run under Thread Sanitizer by `make tsan-test`): every frame
/// arrives once, whole and in order, or is refused when the ring is full.
@Suite struct FrameRingConcurrencyTests {
    @Test func oneProducerOneConsumer() async throws {
        let ring = FrameRing(capacity: 64, slotSize: 64)
        let total = 200_000
        // Frame k: 8 to 63 bytes, each byte (k + index) mod 256, k in the first 4.
        func frame(_ k: Int) -> [UInt8] {
            var f = (0..<(8 + k % 56)).map { UInt8(truncatingIfNeeded: k &+ $0) }
            withUnsafeBytes(of: UInt32(k).littleEndian) { for j in 0..<4 { f[j] = $0[j] } }
            return f
        }
        async let produced: Int = {
            var refused = 0, k = 0
            while k < total {
                if frame(k).withUnsafeBytes({ ring.push($0) }) { k += 1 } else { refused += 1; await Task.yield() }
            }
            return refused
        }()
        var next = 0, corrupt = 0
        while next < total {
            if let ok = ring.pop({ b -> Bool in
                let k = Int(UInt32(littleEndian: b.loadUnaligned(as: UInt32.self)))
                return k == next && Array(b) == frame(k)
            }) {
                if !ok { corrupt += 1 }
                next += 1
            } else {
                await Task.yield()
            }
        }
        _ = await produced
        #expect(corrupt == 0)
        #expect(ring.pop { _ in 0 } == nil && ring.count == 0)
        #expect([UInt8](repeating: 0, count: 65).withUnsafeBytes { ring.push($0) } == false)  // longer than a slot
    }
}
