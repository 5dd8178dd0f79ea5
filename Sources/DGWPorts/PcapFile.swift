import CPcap

/// One record of a capture file. `data` is valid until the next read.
public struct PcapRecord {
    /// Seconds and nanoseconds since the epoch.
    public var seconds: Int
    public var nanoseconds: Int
    /// Length on the wire (may exceed the captured bytes).
    public var originalLength: Int
    public var data: UnsafeRawBufferPointer
}

/// Reads pcap and pcapng files through libpcap, timestamps in nanoseconds.
public final class PcapFileReader {
    private let handle: OpaquePointer
    public let path: String
    /// libpcap's data-link type (DLT_*).
    public let dataLinkType: Int32

    public init(path: String) throws(PortError) {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf)
        else {
            throw .pcap(operation: "cannot read capture", message: String(decoding: errbuf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        handle = h
        self.path = path
        dataLinkType = pcap_datalink(h)
    }

    deinit { pcap_close(handle) }

    /// The next record, or nil at the end of the file.
    public func next() throws(PortError) -> PcapRecord? {
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

/// Writes a classic pcap file (nanosecond timestamps) through libpcap.
public final class PcapFileWriter {
    private let handle: OpaquePointer
    private let dumper: OpaquePointer
    public let path: String
    private var closed = false

    /// `dataLinkType` is a DLT_* value, 1 for Ethernet.
    public init(path: String, dataLinkType: Int32 = 1, snapLength: Int32 = 262_144) throws(PortError) {
        guard let h = pcap_open_dead_with_tstamp_precision(dataLinkType, snapLength,
                                                           UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            throw .pcap(operation: "pcap_open_dead", message: "out of memory")
        }
        guard let d = pcap_dump_open(h, path) else {
            let message = String(cString: pcap_geterr(h))
            pcap_close(h)
            throw .pcap(operation: "cannot write \(path)", message: message)
        }
        handle = h
        dumper = d
        self.path = path
    }

    public func write(_ bytes: UnsafeRawBufferPointer, seconds: Int, nanoseconds: Int,
                      originalLength: Int? = nil) {
        var header = pcap_pkthdr()
        header.ts.tv_sec = seconds
        header.ts.tv_usec = nanoseconds  // nanoseconds at nanosecond precision
        header.caplen = UInt32(bytes.count)
        header.len = UInt32(originalLength ?? bytes.count)
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
    }

    public func write(_ bytes: [UInt8], seconds: Int, nanoseconds: Int) {
        bytes.withUnsafeBytes { write($0, seconds: seconds, nanoseconds: nanoseconds) }
    }

    /// Flushes and closes; reports a failed flush (a full disk, say).
    public func close() throws(PortError) {
        guard !closed else { return }
        closed = true
        let failed = pcap_dump_flush(dumper) != 0
        pcap_dump_close(dumper)
        pcap_close(handle)
        if failed { throw .pcap(operation: "writing \(path)", message: "flush failed") }
    }

    deinit {
        if !closed {
            pcap_dump_close(dumper)
            pcap_close(handle)
        }
    }
}
