import DGWWire

/// Runs `body` over the bytes of `array` (kept alive for the call).
func with<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try array.withUnsafeBytes(body)
}

/// Bytes written by `body` into a zeroed buffer of `capacity`, cut to the
/// length it returns.
func emitted(_ capacity: Int = 4096, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> [UInt8] {
    var out = [UInt8](repeating: 0, count: capacity)
    let n = try out.withUnsafeMutableBytes(body)
    return Array(out[..<n])
}

func addr(_ s: String) -> IPv6Address { IPv6Address(s)! }
func prefix(_ s: String) -> IPv6Prefix { IPv6Prefix(s)! }
func mac(_ s: String) -> MACAddress { MACAddress(s)! }

let mnAddress = addr("2001:db8:1:1::100")
let cnAddress = addr("2001:db8:cccc::1")
let anchor1 = addr("2001:db8:ffff::1")
let anchor2 = addr("2001:db8:ffff::2")
let mnLinkLocal = addr("fe80::aa:ff:fe00:1")
let dlifLinkLocal = addr("fe80::d1:1")
let mnMAC = mac("02:aa:00:00:00:01")
let dlifMAC = mac("02:d1:00:00:01:01")

/// The upper-layer bytes of an IPv6 fixture (after the 40-octet header).
func upper(_ packet: [UInt8]) -> [UInt8] { Array(packet[40...]) }
