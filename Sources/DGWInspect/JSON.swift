// A small JSON writer: objects and arrays written in order, straight into
// bytes. Enough for one line per frame; no Foundation.

public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    // One flag per open container: has it got a member yet?
    private var needsComma: [Bool] = []

    public init() { bytes.reserveCapacity(512) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separator() {
        if let last = needsComma.last {
            if last { bytes.append(UInt8(ascii: ",")) }
            needsComma[needsComma.count - 1] = true
        }
    }

    private mutating func key(_ k: String) {
        separator()
        quoted(k)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func quoted(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for u in s.utf8 {
            switch u {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += Array("\\u00".utf8) + [hex[Int(u >> 4)], hex[Int(u & 0xF)]]
            default: bytes.append(u)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func raw(_ s: String) { bytes += Array(s.utf8) }

    // Containers
    public mutating func beginObject(_ k: String? = nil) {
        if let k { key(k) } else { separator() }
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }

    public mutating func endObject() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray(_ k: String? = nil) {
        if let k { key(k) } else { separator() }
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }

    public mutating func endArray() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    // Members of an object
    public mutating func field(_ k: String, _ v: String) { key(k); quoted(v) }
    public mutating func field<I: BinaryInteger>(_ k: String, _ v: I) { key(k); raw(String(v)) }
    public mutating func field(_ k: String, _ v: Bool) { key(k); raw(v ? "true" : "false") }
    public mutating func field(_ k: String, _ v: Double) { key(k); raw(v.isFinite ? String(v) : "null") }

    // Elements of an array
    public mutating func element(_ v: String) { separator(); quoted(v) }
    public mutating func element<I: BinaryInteger>(_ v: I) { separator(); raw(String(v)) }
}
