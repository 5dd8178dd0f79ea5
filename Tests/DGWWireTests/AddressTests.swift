import DGWTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import DGWWire

@Suite struct AddressTests {
    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),   // first of two equal runs
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),          // the longest run
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), // a single zero group stays
        ("FE80::D1:1", "fe80::d1:1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    ])
    func rfc5952(input: String, text: String) {
        #expect(IPv6Address(input)?.description == text)
    }

    @Test(arguments: [":::", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "", "::1.2.3", "::256.1.1.1", "1:2:3:4:5:6:7::8:9"])
    func rejects(input: String) {
        #expect(IPv6Address(input) == nil)
    }

    /// Accepts exactly what the C library's inet_pton accepts, with the same
    /// value, over random strings near the grammar and mutated addresses.
    @Test func agreesWithInetPton() {
        var rng = SplitMix64(seed: 4291)
        let alphabet = Array(":::0123456789abcdefABCDEF..g".utf8)
        let seeds = ["2001:db8::1", "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8", "::", "fe80::d1:1", "1::8", "64:ff9b::192.0.2.33"]
        for n in 0..<200_000 {
            var bytes: [UInt8]
            if n % 2 == 0 {
                bytes = (0..<Int(rng.next() % 24)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            } else {
                bytes = Array(seeds[n / 2 % seeds.count].utf8)
                for _ in 0..<(1 + rng.next() % 3) {
                    let at = Int(rng.next() % UInt64(bytes.count + 1))
                    let c = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    switch rng.next() % 3 {
                    case 0: bytes.insert(c, at: at)
                    case 1: if at < bytes.count { bytes.remove(at: at) }
                    default: if at < bytes.count { bytes[at] = c }
                    }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            var raw = [UInt8](repeating: 0, count: 16)
            let expected = inet_pton(AF_INET6, text, &raw) == 1 ? raw.withUnsafeBytes { IPv6Address($0, at: 0) } : nil
            guard IPv6Address(text) == expected else {
                Issue.record("\"\(text)\": inet_pton \(String(describing: expected)), ours \(String(describing: IPv6Address(text)))")
                return
            }
        }
    }

    @Test func roundTripsBytes() {
        let a = addr("2001:db8:1:2:3:4:5:6")
        let bytes = emitted(16) { a.write(to: $0, at: 0); return 16 }
        #expect(bytes == [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6])
        #expect(with(bytes) { IPv6Address($0, at: 0) } == a)
    }

    @Test func multicastAndSolicitedNode() {
        #expect(addr("ff02::1").isMulticast)
        #expect(addr("fe80::1").isLinkLocal)
        #expect(!addr("fec0::1").isLinkLocal)
        #expect(addr("fe80::d1:1").solicitedNodeMulticast == addr("ff02::1:ffd1:1"))
        #expect(MACAddress(multicast: addr("ff02::1:ffd1:1")) == mac("33:33:ff:d1:00:01"))
    }

    @Test func macText() {
        #expect(mac("02:AA:00:00:00:01").description == "02:aa:00:00:00:01")
        #expect(MACAddress("02:aa:00:00:00") == nil)
        #expect(MACAddress("02:aa:00:00:00:1") == nil)
        #expect(mac("02:d1:00:00:01:01").isLocallyAdministered)
        #expect(mac("33:33:00:00:00:01").isMulticast)
        // Written into a message (an MN-ID): every digit, at an offset, nothing around it touched.
        var bytes = [UInt8](repeating: 0xEE, count: 21)
        bytes.withUnsafeMutableBytes { mac("09:af:5b:c0:e1:d7").writeText(to: $0, at: 2) }
        #expect(bytes[..<2] == [0xEE, 0xEE] && bytes[19...] == [0xEE, 0xEE])
        #expect(String(decoding: bytes[2..<19], as: UTF8.self) == "09:af:5b:c0:e1:d7")
    }

    @Test func prefixes() {
        let p = prefix("2001:db8:1:1::/64")
        #expect(p.contains(addr("2001:db8:1:1::100")))
        #expect(!p.contains(addr("2001:db8:1:2::100")))
        #expect(prefix("2001:db8::/29").contains(addr("2001:db8:7::1")))
        #expect(prefix("::/0").contains(addr("ffff::1")))
        #expect(IPv6Prefix("2001:db8::/129") == nil)
        #expect(IPv6Prefix("2001:db8::") == nil)
        #expect(addr("2001:db8:1:1:ffff::1").masked(to: 80) == addr("2001:db8:1:1:ffff::"))
        #expect(addr("2001:db8:1:1:ffff::1").masked(to: 0) == .unspecified)
        #expect(addr("2001:db8:1:1:ffff::1").masked(to: 128) == addr("2001:db8:1:1:ffff::1"))
    }

    @Test func linkLayerAddress() {
        let a = LinkLayerAddress(dlifMAC)
        #expect(a.description == "02:d1:00:00:01:01")
        #expect(a.mac == dlifMAC)
        let long = [UInt8](1...16)
        #expect(with(long) { LinkLayerAddress($0) }?.octets == long)
        #expect(with([UInt8](0...16)) { LinkLayerAddress($0) } == nil)
        // Written at an offset, of every length: its octets, nothing around them.
        for n in 0...16 {
            let octets = (0..<n).map { UInt8($0 + 1) &* 0x11 }
            let address = with(octets) { LinkLayerAddress($0) }!
            var bytes = [UInt8](repeating: 0xEE, count: n + 4)
            bytes.withUnsafeMutableBytes { address.write(to: $0, at: 3) }
            #expect(bytes == [0xEE, 0xEE, 0xEE] + octets + [0xEE], "\(n) octets")
        }
    }
}

@Suite struct ChecksumTests {
    /// An independent, naive RFC 1071 sum over 16-bit words.
    func naive(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i < bytes.count {
            let hi = UInt32(bytes[i]) << 8
            let lo = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            sum += hi | lo
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            i += 2
        }
        return ~UInt16(sum)
    }

    @Test func matchesNaiveSumAtEveryLength() {
        var rng = SystemRandomNumberGenerator()
        for n in 0..<200 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var c = InternetChecksum()
            with(bytes) { c.add($0) }
            #expect(c.value == naive(bytes), "length \(n)")
        }
    }

    /// Sums that fold to one's-complement zero either way (all 0xFF, all 0),
    /// and a message added in two parts (an even split), as the naive sum.
    @Test func extremesAndParts() {
        for n in 0..<40 {
            for fill in [UInt8(0xFF), 0x00, 0x80] {
                let bytes = [UInt8](repeating: fill, count: n)
                var c = InternetChecksum()
                with(bytes) { c.add($0) }
                #expect(c.value == naive(bytes), "\(n) x \(fill)")
            }
        }
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<97).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for split in stride(from: 0, through: 96, by: 2) {
            var c = InternetChecksum()
            with(Array(bytes[..<split])) { c.add($0) }
            with(Array(bytes[split...])) { c.add($0) }
            #expect(c.value == naive(bytes), "split at \(split)")
        }
    }

    @Test func rfc1071Example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        var c = InternetChecksum()
        with([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]) { c.add($0) }
        #expect(c.folded == 0xddf2)
    }

    /// The hash tables' hash of the address types spreads keys that differ
    /// in a few low or high bits (sequential MACs, a pool's /64s) over the
    /// buckets as a random function would (63% of 2^16 buckets hit by 2^16
    /// keys), and depends on the table's seed.
    @Test func addressHashesSpreadOverBuckets() {
        let n = 1 << 16
        func spread(_ hashes: [Int]) -> Double { Double(Set(hashes.map { $0 & (n - 1) }).count) / Double(n) }
        let low = (0..<n).map { MACAddress(value: 0x02AA_0000_0000 | UInt64($0))._rawHashValue(seed: 7) }
        let high = (0..<n).map { MACAddress(value: UInt64($0) << 32 | 0x01)._rawHashValue(seed: 7) }
        let pool = (0..<n).map {
            IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0DB8_0000_0000 | UInt64($0), low: 0), length: 64)._rawHashValue(seed: 7)
        }
        let hosts = (0..<n).map { IPv6Address(high: 0x2001_0DB8_0000_0001, low: UInt64($0))._rawHashValue(seed: 7) }
        for (name, hashes) in [("low MAC bits", low), ("high MAC bits", high), ("pool /64s", pool), ("interface ids", hosts)] {
            #expect(spread(hashes) > 0.6, "\(name): \(spread(hashes))")
        }
        let mac = MACAddress(value: 0x02AA_0000_0001)
        #expect(mac._rawHashValue(seed: 1) != mac._rawHashValue(seed: 2))
        let p = IPv6Prefix("2001:db8::/48")!, q = IPv6Prefix("2001:db8::/64")!
        #expect(p._rawHashValue(seed: 1) != q._rawHashValue(seed: 1), "the length counts")
        // Equal keys, equal hashes; and the tables work with them.
        var d: [MACAddress: Int] = [:]
        for k in 0..<1000 { d[MACAddress(value: UInt64(k) << 24)] = k }
        #expect(d.count == 1000 && d[MACAddress(value: 999 << 24)] == 999)
    }
}
