// Big-endian field access over raw buffers, the one error type of the wire
// layer, and `RawBytes`, a byte string that is borrowed when parsed (no
// allocation) and owned when built by the control plane.

/// Why a frame did not parse. `reason` is the stable name used in `dgw
/// decode` output and, later, in drop counters.
public enum WireError: Error, Equatable, Sendable {
    case truncated                 // fewer bytes than the header needs
    case badLength                 // a length field that is impossible
    case badChecksum
    case badVersion                // IPv6 header whose version is not 6
    case payloadLengthBeyondFrame  // IPv6 payload length past the captured frame
    case zeroLengthNDOption        // RFC 4861 4.6: length 0 is invalid
    case optionOverrun             // an option runs past its container
    case badOptionLength           // a known option with the wrong length
    case badPrefixLength           // prefix length above 128 (or above what the option carries)
    case misplacedHopByHop         // RFC 8200 4.3: only right after the IPv6 header
    case tooManyHeaders            // extension-header chain longer than we walk
    case bufferTooSmall            // emit: the output buffer cannot hold the message

    public var reason: String {
        switch self {
        case .truncated: "truncated"
        case .badLength: "bad_length"
        case .badChecksum: "bad_checksum"
        case .badVersion: "bad_version"
        case .payloadLengthBeyondFrame: "payload_length_beyond_frame"
        case .zeroLengthNDOption: "zero_length_nd_option"
        case .optionOverrun: "option_overrun"
        case .badOptionLength: "bad_option_length"
        case .badPrefixLength: "bad_prefix_length"
        case .misplacedHopByHop: "misplaced_hop_by_hop"
        case .tooManyHeaders: "too_many_headers"
        case .bufferTooSmall: "buffer_too_small"
        }
    }
}

// Views check their length once at construction; after that these reads are
// in bounds by construction (the buffer's own debug checks still apply).
// Public for the pipeline's fast path, which rewrites frames pass 1 checked.
extension UnsafeRawBufferPointer {
    @inlinable @inline(__always)
    func u8(_ offset: Int) -> UInt8 { self[offset] }

    @inlinable @inline(__always)
    public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func u64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The bytes `range` as a buffer of their own (no copy).
    @inlinable @inline(__always)
    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[range])
    }

    @inlinable @inline(__always)
    func slice(from start: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[start...])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    func put8(_ value: UInt8, at offset: Int) { self[offset] = value }

    @inlinable @inline(__always)
    public func put16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable @inline(__always)
    public func put32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inlinable @inline(__always)
    public func put64(_ value: UInt64, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inlinable @inline(__always)
    func zero(_ range: Range<Int>) {
        for i in range { self[i] = 0 }
    }

    @inlinable @inline(__always)
    func copy(_ bytes: UnsafeRawBufferPointer, to offset: Int) {
        guard bytes.count > 0 else { return }
        UnsafeMutableRawBufferPointer(rebasing: self[offset..<(offset + bytes.count)])
            .copyMemory(from: bytes)
    }

    @inlinable @inline(__always)
    func slice(_ range: Range<Int>) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[range])
    }
}

/// A run of bytes inside a message: borrowed from the parsed buffer (valid
/// only while that buffer is) or owned. Parsing never allocates; call
/// `owned()` to keep one past the buffer's life.
public enum RawBytes {
    case borrowed(UnsafeRawBufferPointer)
    case owned([UInt8])

    public static let empty = RawBytes.owned([])

    @inlinable
    public var count: Int {
        switch self {
        case .borrowed(let b): b.count
        case .owned(let a): a.count
        }
    }

    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .borrowed(let b): try body(b)
        case .owned(let a): try a.withUnsafeBytes(body)
        }
    }

    public func owned() -> RawBytes { .owned(Array(self)) }
}

extension RawBytes: @unchecked Sendable {}

extension RawBytes: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(i: Int) -> UInt8 {
        switch self {
        case .borrowed(let b): b[i]
        case .owned(let a): a[i]
        }
    }
}

extension RawBytes: Equatable {
    public static func == (a: RawBytes, b: RawBytes) -> Bool { a.elementsEqual(b) }
}

extension RawBytes: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: UInt8...) { self = .owned(elements) }
}

/// Lower-case hex of a byte sequence, for diagnostics and `dgw decode`.
public func hexString<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for b in bytes {
        out.append(AddressText.hexCharacter(b >> 4))
        out.append(AddressText.hexCharacter(b & 0xF))
    }
    return String(decoding: out, as: UTF8.self)
}

/// Zeroes to copy a new frame from (`[UInt8](zeroed:)`), room for a jumbo frame.
private let zeroedCapacity = 16_384
nonisolated(unsafe) private let zeroes: UnsafeRawBufferPointer = {  // never written after this
    let z = UnsafeMutableRawBufferPointer.allocate(byteCount: zeroedCapacity, alignment: 64)
    z.initializeMemory(as: UInt8.self, repeating: 0)
    return UnsafeRawBufferPointer(z)
}()

extension Array where Element == UInt8 {
    /// `count` zero octets, a frame to be written in place. A copy of
    /// zeroes is specialized for octets where `init(repeating:count:)`
    /// takes the standard library's unspecialized path, whose generic
    /// metadata look-up costs some 350 instructions a frame (callgrind).
    public init(zeroed count: Int) {
        if count <= zeroedCapacity {
            self.init(UnsafeRawBufferPointer(rebasing: zeroes[0..<count]))
        } else {
            self.init(repeating: 0, count: count)
        }
    }
}
