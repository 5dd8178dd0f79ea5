// The fallback live port: libpcap capture and injection on one interface
// (`dgw run --io pcap`), for interfaces or kernels where AF_PACKET rings are
// not available. Immediate mode, incoming frames only, non-blocking reads.

import CDGWShim
import CPcap
#if canImport(Glibc)
import Glibc
#endif

/// What `dgw run` needs of a live port: a descriptor to poll, batches of
/// received frames, batched sends. Workers are generic over it (no
/// existential on the hot path).
public protocol LivePort: AnyObject {
    var descriptor: Int32 { get }
    /// Calls `body` for frames received so far; returns how many.
    func receive(maxBlocks: Int, _ body: (ReceivedFrame) throws(PortError) -> Void) throws(PortError) -> Int
    /// Frames the kernel dropped since the last call because the port's
    /// receive ring or buffer was full (the gateway fell behind).
    func takeReceiveDrops() -> Int
    /// Sends up to 64 frames; returns how many went.
    func send(_ frames: UnsafePointer<UnsafeRawPointer?>, lengths: UnsafePointer<UInt32>, count: Int) throws(PortError) -> Int
}

extension AFPacketPort: LivePort {}

public final class PcapLivePort: LivePort {
    public let interface: String
    private let handle: OpaquePointer
    public let descriptor: Int32
    /// pcap's drop count is kept since the start: the part already reported.
    private var dropsReported: UInt32 = 0

    /// `snapLength`: the largest frame kept whole.
    public init(interface: String, promiscuous: Bool, snapLength: Int = 2048) throws(PortError) {
        self.interface = interface
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_create(interface, &errbuf) else {
            throw .pcap(operation: "interface \(interface)", message: String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        func check(_ rc: Int32, _ what: String) throws(PortError) {
            guard rc == 0 else {
                let message = rc == PCAP_ERROR_NO_SUCH_DEVICE ? "no such interface"
                    : rc == PCAP_ERROR_PERM_DENIED ? "needs CAP_NET_RAW (run as root)" : String(cString: pcap_geterr(h))
                pcap_close(h)
                throw .pcap(operation: "interface \(interface): \(what)", message: message)
            }
        }
        try check(pcap_set_snaplen(h, Int32(snapLength)), "snap length")
        try check(pcap_set_promisc(h, promiscuous ? 1 : 0), "promiscuous mode")
        try check(pcap_set_immediate_mode(h, 1), "immediate mode")
        try check(pcap_set_buffer_size(h, 8 << 20), "buffer size")
        _ = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let activated = pcap_activate(h)
        // Warnings (> 0) are not failures.
        try check(activated < 0 ? activated : 0, "activate")
        try check(pcap_setdirection(h, PCAP_D_IN), "direction (incoming only)")
        try check(pcap_setnonblock(h, 1, &errbuf), "non-blocking")
        guard pcap_datalink(h) == DLT_EN10MB else {
            pcap_close(h)
            throw .pcap(operation: "interface \(interface)", message: "not Ethernet")
        }
        handle = h
        descriptor = pcap_get_selectable_fd(h)
    }

    deinit { pcap_close(handle) }

    /// Up to 64 frames per block asked for.
    public func receive(maxBlocks: Int = 4, _ body: (ReceivedFrame) throws(PortError) -> Void) throws(PortError) -> Int {
        var frames = 0
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while frames < 64 * maxBlocks {
            let rc = pcap_next_ex(handle, &header, &data)
            if rc == 0 { break }  // nothing more for now
            guard rc == 1, let h = header?.pointee, let data else {
                throw .pcap(operation: "interface \(interface): receive", message: String(cString: pcap_geterr(handle)))
            }
            try body(ReceivedFrame(bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)), originalLength: Int(h.len),
                                   time: Int64(h.ts.tv_sec) * 1_000_000_000 + Int64(h.ts.tv_usec)))
            frames += 1
        }
        return frames
    }

    public func takeReceiveDrops() -> Int {
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return 0 }
        defer { dropsReported = stats.ps_drop }
        return Int(stats.ps_drop &- dropsReported)
    }

    public func send(_ frames: UnsafePointer<UnsafeRawPointer?>, lengths: UnsafePointer<UInt32>, count: Int) throws(PortError) -> Int {
        var sent = 0
        for i in 0..<count {
            if pcap_inject(handle, frames[i], Int(lengths[i])) < 0 {
                let e = dgw_errno()
                if e == EAGAIN || e == ENOBUFS { break }
                throw .pcap(operation: "interface \(interface): inject", message: String(cString: pcap_geterr(handle)))
            }
            sent += 1
        }
        return sent
    }
}
