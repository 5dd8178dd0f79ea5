// The HNP table in package-benchmark: look-ups (no allocation allowed),
// inserts and churn. The full-size comparison with DPDK is
// Tools/compare-lpm.sh; these track regressions at a size that runs fast.

import Benchmark
import DGWTables
import DGWWire

/// 65,536 dense /64s in 16 pools (the WORKLOAD.md layout), 256 /48s, 4 /32s.
func makeRoutes() -> [(IPv6Prefix, UInt32)] {
    var routes: [(IPv6Prefix, UInt32)] = []
    for i in 0..<65_536 as Range<UInt64> {
        let high: UInt64 = 0x2001_0db8 << 32 | (i % 16) << 20 | i / 16
        routes.append((IPv6Prefix(address: IPv6Address(high: high, low: 0), length: 64)!, UInt32(routes.count + 1)))
    }
    for j in 0..<256 as Range<UInt64> {
        routes.append((IPv6Prefix(address: IPv6Address(high: 0x2001_0db9 << 32 | j << 16, low: 0), length: 48)!, UInt32(routes.count + 1)))
    }
    for j in 0..<4 as Range<UInt64> {
        routes.append((IPv6Prefix(address: IPv6Address(high: (0x2400 + j) << 48, low: 0), length: 32)!, UInt32(routes.count + 1)))
    }
    return routes
}

/// 64 keys: 58 inside installed /64s, 6 random.
func makeKeys(_ routes: [(IPv6Prefix, UInt32)]) -> [IPv6Address] {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
    return (0..<64).map { k in
        k % 10 == 9 ? IPv6Address(high: next(), low: next())
                    : IPv6Address(high: routes[Int(next() % 65_536)].0.address.high, low: next())
    }
}

let benchmarks: @Sendable () -> Void = {
    let routes = makeRoutes()
    let keys = makeKeys(routes)
    let table = HNPTable()
    for (p, nh) in routes { try! table.insert(p, nextHop: nh) }
    let reader = table.qsbr.register()!

    let noAllocations = Benchmark.Configuration(
        metrics: [.mallocCountTotal], scalingFactor: .kilo, maxDuration: .seconds(1),
        thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p100: 0])])
    let timed = Benchmark.Configuration(metrics: [.wallClock, .throughput], scalingFactor: .kilo, maxDuration: .seconds(2))

    // Allocated once, outside every measured sample.
    let out = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: 64)
    let k = UnsafeMutableBufferPointer<IPv6Address>.allocate(capacity: 64)
    _ = k.initialize(from: keys)

    func lookUpBatches(_ benchmark: Benchmark) {
        for _ in benchmark.scaledIterations {
            table.lookup(UnsafeBufferPointer(k), into: out)
            table.qsbr.quiescent(reader)
            blackHole(out[0])
        }
    }

    Benchmark("Allocations of a batch of 64 HNP look-ups", configuration: noAllocations) { lookUpBatches($0) }
    Benchmark("Time to look up a batch of 64 HNPs", configuration: timed) { lookUpBatches($0) }

    Benchmark("Time to look up one HNP", configuration: timed) { benchmark in
        for i in benchmark.scaledIterations { blackHole(table.lookup(keys[i & 63])) }
    }

    Benchmark("Time to install 65,796 routes", configuration: .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(2))) { benchmark in
        for _ in benchmark.scaledIterations {
            let t = HNPTable()
            for (p, nh) in routes { try! t.insert(p, nextHop: nh) }
            blackHole(t.count)
        }
    }

    // Churn: one next-hop change, one add and one delete per iteration.
    Benchmark("Time to apply 3 updates (change, add, delete)", configuration: timed) { benchmark in
        var x: UInt64 = 1
        for i in benchmark.scaledIterations {
            x = x &* 6_364_136_223_846_793_005 &+ 1
            try! table.insert(routes[Int(x >> 48)].0, nextHop: UInt32(i & 0xFFFF) + 1)
            let extra = IPv6Prefix(address: IPv6Address(high: 0x2001_0dba << 32 | UInt64(i & 0xFFFF), low: 0), length: 64)!
            try! table.insert(extra, nextHop: 7)
            table.remove(extra)
        }
        table.reclaim()
    }
}
