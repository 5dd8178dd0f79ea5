import CDGWShim
import CPcap
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One record of a capture file. `data` is valid until the next read.
public struct PcapRecord {
    /// Seconds and nanoseconds since the epoch.
    public var seconds: Int
    public var nanoseconds: Int
    /// Length on the wire (may exceed the captured bytes).
    public var originalLength: Int
    public var data: UnsafeRawBufferPointer
}

// Classic pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html):
//
//   file header, 24 bytes                  record header, 16 bytes
//   +0  magic (a1b2c3d4 us, a1b23c4d ns)     +0  seconds
//   +4  major 2, minor 4                     +4  micro- or nanoseconds
//   +8  reserved (thiszone, sigfigs)         +8  captured length
//   +16 snap length                          +12 original length
//   +20 link type (LINKTYPE_*)               +16 captured bytes
enum PcapLayout {
    static let fileHeader = 24
    static let recordHeader = 16
    static let magicMicro: UInt32 = 0xA1B2_C3D4
    static let magicNano: UInt32 = 0xA1B2_3C4D
    /// libpcap's largest snap length: a longer record is a corrupt file.
    static let maxCapture = 262_144
}

/// Reads pcap and pcapng files, timestamps in nanoseconds.
///
/// Classic pcap, the format of every capture the gateway writes and of
/// tcpdump's `-w`, is parsed here from large `read(2)` chunks, records
/// handed out in place (no per-record copy or call into stdio); pcapng
/// and anything else go through libpcap. libpcap opens every file first,
/// so its checks and messages, and its link-type mapping, apply to both.
public final class PcapFileReader {
    private var handle: OpaquePointer?
    public let path: String
    /// libpcap's data-link type (DLT_*).
    public let dataLinkType: Int32
    /// The classic-pcap reader's state, outside the object: the per-record
    /// path then costs no reference counting or exclusivity check.
    private let direct: UnsafeMutablePointer<DirectReader>?

    public init(path: String) throws(PortError) {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf)
        else {
            throw .pcap(operation: "cannot read capture", message: String(decoding: errbuf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.path = path
        dataLinkType = pcap_datalink(h)
        if path != "-", let d = try DirectReader(path: path) {
            direct = .allocate(capacity: 1)
            direct!.initialize(to: d)
            pcap_close(h)
        } else {
            direct = nil
            handle = h
        }
    }

    deinit {
        if let handle { pcap_close(handle) }
        if let direct {
            direct.pointee.close()
            direct.deinitialize(count: 1)
            direct.deallocate()
        }
    }

    /// The next record, or nil at the end of the file.
    public func next() throws(PortError) -> PcapRecord? {
        if let direct { return try direct.pointee.next() }
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            guard let h = header?.pointee, let data else { return nil }
            return PcapRecord(
                seconds: Int(h.ts.tv_sec), nanoseconds: Int(h.ts.tv_usec),
                originalLength: Int(h.len),
                data: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)))
        case PCAP_ERROR_BREAK:  // -2: end of file
            return nil
        default:
            throw .pcap(operation: "reading \(path)", message: String(cString: pcap_geterr(handle)))
        }
    }
}

/// Classic pcap records out of a buffer refilled by `read(2)`.
private struct DirectReader {
    static let chunk = 4 << 20
    static let capacity = chunk + PcapLayout.maxCapture + PcapLayout.recordHeader
    let path: String
    let fd: Int32
    let swapped: Bool
    let nanosecond: Bool
    let buffer: UnsafeMutableRawPointer
    /// Unread bytes are buffer[start..<end].
    var start = 0
    var end = 0
    var atEOF = false

    /// nil when the file is not classic pcap (libpcap reads it then).
    init?(path: String) throws(PortError) {
        let fd = Syscall.open(path)
        guard fd >= 0 else { throw .syscall(name: "open \(path)", errno: dgw_errno()) }
        var header = [UInt8](repeating: 0, count: PcapLayout.fileHeader)
        let got = header.withUnsafeMutableBytes { b in Result { () throws(PortError) in try Syscall.readFully(fd, b) } }
        guard case .success(let got) = got else {
            Glibc.close(fd)
            if case .failure(let e) = got { throw e }
            return nil
        }
        let magic = header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        let kinds: [UInt32: (Bool, Bool)] = [
            PcapLayout.magicMicro: (false, false), PcapLayout.magicNano: (false, true),
            PcapLayout.magicMicro.byteSwapped: (true, false), PcapLayout.magicNano.byteSwapped: (true, true),
        ]
        guard got == PcapLayout.fileHeader, let (swapped, nanosecond) = kinds[magic] else {
            Glibc.close(fd)
            return nil
        }
        self.path = path
        self.fd = fd
        self.swapped = swapped
        self.nanosecond = nanosecond
        buffer = .allocate(byteCount: Self.capacity, alignment: 64)
    }

    func close() {
        Glibc.close(fd)
        buffer.deallocate()
    }

    @inline(__always)
    func field(_ offset: Int) -> Int {
        let v = (buffer + offset).loadUnaligned(as: UInt32.self)
        return Int(swapped ? v.byteSwapped : v)
    }

    /// Makes `count` bytes available from `start`; false at the end of the file.
    mutating func fill(_ count: Int) throws(PortError) -> Bool {
        while end - start < count {
            if atEOF { return false }
            if Self.capacity - start < count || Self.capacity - end < Self.chunk / 2 {
                // Move the unread tail to the front before reading on.
                buffer.copyMemory(from: buffer + start, byteCount: end - start)
                end -= start
                start = 0
            }
            let n = try Syscall.read(fd, UnsafeMutableRawBufferPointer(start: buffer + end, count: Self.capacity - end))
            if n == 0 { atEOF = true }
            end += n
        }
        return true
    }

    @inline(__always)
    mutating func next() throws(PortError) -> PcapRecord? {
        if end - start < PcapLayout.recordHeader {
            guard try fill(PcapLayout.recordHeader) else {
                if end == start { return nil }
                throw .pcap(operation: "reading \(path)",
                            message: "truncated dump file; tried to read 16 header bytes, only got \(end - start)")
            }
        }
        let seconds = field(start), fraction = field(start + 4)
        let captured = field(start + 8), original = field(start + 12)
        guard captured <= PcapLayout.maxCapture else {
            throw .pcap(operation: "reading \(path)",
                        message: "invalid packet capture length \(captured), bigger than maximum of \(PcapLayout.maxCapture)")
        }
        let total = PcapLayout.recordHeader + captured
        if end - start < total {
            guard try fill(total) else {
                throw .pcap(operation: "reading \(path)",
                            message: "truncated dump file; tried to read \(captured) captured bytes, only got \(end - start - PcapLayout.recordHeader)")
            }
        }
        let data = UnsafeRawBufferPointer(start: buffer + start + PcapLayout.recordHeader, count: captured)
        start += total
        return PcapRecord(seconds: seconds, nanoseconds: nanosecond ? fraction : fraction * 1000,
                          originalLength: original, data: data)
    }
}

/// Writes a classic pcap file with nanosecond timestamps, records gathered
/// in a 1 MiB buffer and written with one `write(2)` per buffer; with
/// `writeBehind`, those writes run on a thread of their own (`WriteBehind`)
/// while the caller fills the next buffer.
public final class PcapFileWriter {
    static let bufferSize = 1 << 20
    public let path: String
    /// Outside the object, like the reader's: no exclusivity check per record.
    private let state: UnsafeMutablePointer<State>
    private let behind: WriteBehind?

    private struct State {
        let fd: Int32
        var buffer: UnsafeMutableRawPointer
        var used = 0
        var closed = false
    }

    /// `dataLinkType` is a DLT_* value, 1 for Ethernet.
    public init(path: String, dataLinkType: Int32 = 1, snapLength: Int = 262_144, writeBehind: Bool = false) throws(PortError) {
        let fd = Syscall.create(path)
        guard fd >= 0 else { throw .syscall(name: "cannot write \(path): open", errno: dgw_errno()) }
        self.path = path
        behind = writeBehind ? WriteBehind(fd: fd, size: Self.bufferSize) : nil
        let buffer = behind?.buffer ?? UnsafeMutableRawPointer.allocate(byteCount: Self.bufferSize, alignment: 64)
        // DLT and LINKTYPE values agree except for raw IP.
        let linkType = dataLinkType == 12 || dataLinkType == 14 ? 101 : UInt32(dataLinkType)
        let header: [UInt32] = [PcapLayout.magicNano, 2 | 4 << 16, 0, 0, UInt32(snapLength), linkType]
        header.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        state = .allocate(capacity: 1)
        state.initialize(to: State(fd: fd, buffer: buffer, used: PcapLayout.fileHeader))
    }

    /// Appends one record; a failed write (a full disk, say) is thrown here
    /// or by `close`.
    public func write(_ bytes: UnsafeRawBufferPointer, seconds: Int, nanoseconds: Int,
                      originalLength: Int? = nil) throws(PortError) {
        precondition(!state.pointee.closed, "write after close")
        let total = PcapLayout.recordHeader + bytes.count
        if state.pointee.used + total > Self.bufferSize { try flush() }
        let buffer = state.pointee.buffer
        if total > Self.bufferSize {
            // Larger than the buffer (not a frame the gateway makes): straight
            // out, after what the write-behind thread still holds.
            try behind?.drain()
            try record(into: buffer, bytes.count, seconds, nanoseconds, originalLength)
            try Syscall.writeAll(state.pointee.fd, UnsafeRawBufferPointer(start: buffer, count: PcapLayout.recordHeader))
            try Syscall.writeAll(state.pointee.fd, bytes)
            return
        }
        let at = buffer + state.pointee.used
        try record(into: at, bytes.count, seconds, nanoseconds, originalLength)
        if let from = bytes.baseAddress { dgw_copy_frame(at + PcapLayout.recordHeader, from, bytes.count) }
        state.pointee.used += total
    }

    @inline(__always)
    private func record(into p: UnsafeMutableRawPointer, _ count: Int, _ seconds: Int, _ nanoseconds: Int,
                        _ originalLength: Int?) throws(PortError) {
        guard (0...Int(UInt32.max)).contains(seconds), (0..<1_000_000_000).contains(nanoseconds) else {
            throw .pcap(operation: "writing \(path)", message: "time \(seconds).\(nanoseconds) does not fit a pcap record")
        }
        p.storeBytes(of: UInt32(truncatingIfNeeded: seconds), as: UInt32.self)
        (p + 4).storeBytes(of: UInt32(truncatingIfNeeded: nanoseconds), as: UInt32.self)
        (p + 8).storeBytes(of: UInt32(truncatingIfNeeded: count), as: UInt32.self)
        (p + 12).storeBytes(of: UInt32(truncatingIfNeeded: originalLength ?? count), as: UInt32.self)
    }

    public func write(_ bytes: [UInt8], seconds: Int, nanoseconds: Int) throws(PortError) {
        try bytes.withUnsafeBytes { b in Result { () throws(PortError) in try write(b, seconds: seconds, nanoseconds: nanoseconds) } }.get()
    }

    private func flush() throws(PortError) {
        let n = state.pointee.used
        guard n > 0 else { return }
        state.pointee.used = 0
        if let behind {
            state.pointee.buffer = try behind.handOver(count: n)
        } else {
            try Syscall.writeAll(state.pointee.fd, UnsafeRawBufferPointer(start: state.pointee.buffer, count: n))
        }
    }

    /// Writes what is buffered and closes; reports a failed write.
    public func close() throws(PortError) {
        guard !state.pointee.closed else { return }
        state.pointee.closed = true
        defer { Glibc.close(state.pointee.fd) }
        let flushed = Result { () throws(PortError) in try flush() }
        // Nothing may still be writing when the descriptor closes.
        try behind?.drain()
        try flushed.get()
    }

    deinit {
        if !state.pointee.closed {
            // Not closed by its owner: best effort, nothing to report to.
            _ = Result { () throws(PortError) in try flush() }
            _ = Result { () throws(PortError) in try behind?.drain() }
            Glibc.close(state.pointee.fd)
        }
        if behind == nil { state.pointee.buffer.deallocate() }
        state.deinitialize(count: 1)
        state.deallocate()
    }
}
