// The HNP look-up workload of ../shared/bench/WORKLOAD.md (reference:
// anchors/workload.h): the same routes and keys in the same order, so the
// checksum equals the anchors'.

import DGWWire

public struct Workload: Sendable {
    public struct Route: Sendable { public var high: UInt64; public var length: Int; public var nextHop: UInt32 }

    public let kind: String
    public let hnpCount: Int
    public var routes: [Route] = []
    public var keys: [IPv6Address] = []

    /// xorshift64, state 0x9E3779B97F4A7C15.
    public struct Xorshift64 {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        public init() {}
        public mutating func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
    }

    public init(kind: String, hnps: Int, lookups: Int) {
        self.kind = kind
        hnpCount = hnps
        routes.reserveCapacity(hnps + 4096 + 16)
        let sparse = kind == "sparse"
        for i in 0..<hnps {
            let high: UInt64
            if sparse {
                // 32-bit multiply, as the C reference: a bijection on 32 bits.
                high = 0x2001_0db8 << 32 | UInt64(UInt32(truncatingIfNeeded: i) &* 2_654_435_761)
            } else {
                high = 0x2001_0db8 << 32 | UInt64(i % 16) << 20 | UInt64(i / 16)
            }
            routes.append(Route(high: high, length: 64, nextHop: UInt32(routes.count + 1)))
        }
        for j in 0..<4096 as Range<UInt64> {
            routes.append(Route(high: 0x2001_0db9 << 32 | j << 16, length: 48, nextHop: UInt32(routes.count + 1)))
        }
        for j in 0..<16 as Range<UInt64> {
            routes.append(Route(high: (0x2400 + j) << 48, length: 32, nextHop: UInt32(routes.count + 1)))
        }
        var rng = Xorshift64()
        keys.reserveCapacity(lookups)
        for _ in 0..<lookups {
            let r = rng.next()
            if r % 10 != 0 {
                let j = Int(rng.next() % UInt64(hnps))
                keys.append(IPv6Address(high: routes[j].high, low: rng.next()))
            } else {
                let high = rng.next()
                keys.append(IPv6Address(high: high, low: rng.next()))
            }
        }
    }

    public func prefix(_ r: Route) -> IPv6Prefix {
        IPv6Prefix(address: IPv6Address(high: r.high, low: 0), length: r.length)!
    }
}
