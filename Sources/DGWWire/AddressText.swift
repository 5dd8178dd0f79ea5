// Address text parsed byte by byte: a configuration with a million
// bindings holds millions of addresses, and String splitting made reading
// it slower than forwarding a capture.

/// Parsers over the UTF-8 bytes of address text; nil on anything malformed.
public enum AddressText {
    /// The lower-case hexadecimal digit of `n` (0-15), as ASCII: computed,
    /// no table (a MAC's text goes into every PBU and PBA).
    @inlinable @inline(__always)
    public static func hexCharacter(_ n: UInt8) -> UInt8 { n < 10 ? 0x30 + n : 0x57 + n }

    /// Runs `parser` over the contiguous UTF-8 of `text` (a copy only for
    /// the rare string without contiguous storage).
    @inlinable
    public static func parse<T>(_ text: some StringProtocol, _ parser: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        if let r = text.utf8.withContiguousStorageIfAvailable(parser) { return r }
        return Array(text.utf8).withUnsafeBufferPointer(parser)
    }

    @inlinable
    static func hexDigit(_ c: UInt8) -> UInt64? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(c &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(c &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(c &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }

    /// "02:aa:00:00:00:01" or "02-aa-00-00-00-01": six two-digit hex octets.
    public static func mac(_ b: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard b.count == 17 else { return nil }
        var v: UInt64 = 0
        for i in 0..<6 {
            let at = 3 * i
            if i > 0 && b[at - 1] != UInt8(ascii: ":") && b[at - 1] != UInt8(ascii: "-") { return nil }
            guard let h = hexDigit(b[at]), let l = hexDigit(b[at + 1]) else { return nil }
            v = v << 8 | h << 4 | l
        }
        return v
    }

    /// Any RFC 4291 section 2.2 form: eight groups, "::" once for one or
    /// more zero groups, and optionally a dotted IPv4 tail.
    public static func ipv6(_ b: UnsafeBufferPointer<UInt8>) -> IPv6Address? {
        let n = b.count
        guard n >= 2, n <= 45 else { return nil }
        var groups = SIMD8<UInt16>()
        var count = 0, gap = -1, i = 0
        let colon = UInt8(ascii: ":")
        if b[0] == colon {
            guard b[1] == colon else { return nil }
            gap = 0
            i = 2
        }
        while i < n {
            let start = i
            var value: UInt64 = 0
            while i < n, i - start < 5, let d = hexDigit(b[i]) {
                value = value << 4 | d
                i += 1
            }
            if i < n && b[i] == UInt8(ascii: ".") {
                // The dotted IPv4 tail: the last 32 bits.
                guard count <= 6, let v4 = ipv4(UnsafeBufferPointer(rebasing: b[start..<n])) else { return nil }
                groups[count] = UInt16(v4 >> 16)
                groups[count + 1] = UInt16(truncatingIfNeeded: v4)
                count += 2
                i = n
                break
            }
            guard i > start, i - start <= 4, count < 8 else { return nil }
            groups[count] = UInt16(value)
            count += 1
            if i == n { break }
            guard b[i] == colon, i + 1 < n else { return nil }
            i += 1
            if b[i] == colon {
                guard gap < 0 else { return nil }
                gap = count
                i += 1
            }
        }
        if gap >= 0 {
            guard count < 8 else { return nil }
            // Slide the groups after the gap to the end.
            let tail = count - gap
            for k in 0..<tail { groups[7 - k] = groups[count - 1 - k] }
            for k in gap..<(8 - tail) { groups[k] = 0 }
        } else {
            guard count == 8 else { return nil }
        }
        var high: UInt64 = 0, low: UInt64 = 0
        for k in 0..<4 { high = high << 16 | UInt64(groups[k]) }
        for k in 4..<8 { low = low << 16 | UInt64(groups[k]) }
        return IPv6Address(high: high, low: low)
    }

    /// "192.0.2.1": four decimal octets of one to three digits.
    static func ipv4(_ b: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var v: UInt32 = 0, octets = 0, i = 0
        while octets < 4 {
            let start = i
            var octet: UInt32 = 0
            while i < b.count, i - start < 3, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) {
                octet = octet * 10 + UInt32(b[i] - UInt8(ascii: "0"))
                i += 1
            }
            // No leading zeros: "010" is octal to some readers (inet_pton agrees).
            guard i > start, octet <= 255, i - start == 1 || b[start] != UInt8(ascii: "0") else { return nil }
            v = v << 8 | octet
            octets += 1
            if octets < 4 {
                guard i < b.count, b[i] == UInt8(ascii: ".") else { return nil }
                i += 1
            }
        }
        return i == b.count ? v : nil
    }

    /// "2001:db8:1:1::/64": an address, '/', a length of 0 to 128.
    public static func prefix(_ b: UnsafeBufferPointer<UInt8>) -> IPv6Prefix? {
        guard let slash = b.firstIndex(of: UInt8(ascii: "/")), let address = ipv6(UnsafeBufferPointer(rebasing: b[..<slash]))
        else { return nil }
        let digits = b[(slash + 1)...]
        guard (1...3).contains(digits.count) else { return nil }
        var length = 0
        for c in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { return nil }
            length = length * 10 + Int(c - UInt8(ascii: "0"))
        }
        return IPv6Prefix(address: address, length: length)
    }
}
