// A live port: an AF_PACKET socket on one interface, a TPACKET_V3 receive
// ring (the kernel hands over blocks of frames, retired when full or after
// a timeout) and batched transmit with sendmmsg, bypassing the qdisc.

import CDGWShim
#if canImport(Glibc)
import Glibc
#endif

/// Ring geometry and socket options of an AF_PACKET port.
public struct AFPacketOptions: Sendable {
    /// Bytes per ring block (a multiple of the page size).
    public var blockSize = 1 << 16
    /// 0: a send-only socket (no ring; `receive` sees nothing). A block is
    /// retired after `retireMilliseconds` even if not full, so the ring
    /// holds at least blockCount x retireMilliseconds of traffic.
    public var blockCount = 128
    /// The largest frame the ring holds, its TPACKET header included.
    public var frameSize = 2048 + 128
    /// A block that is not full is handed over after this long.
    public var retireMilliseconds = 1
    /// Receive frames for every MAC: the DLIFs' logical MACs are not the interface's.
    public var promiscuous = false
    /// Join this PACKET_FANOUT_HASH group (several workers on one interface); 0: none.
    public var fanoutGroup = 0
    /// PACKET_VNET_HDR: each received frame comes with the virtio-net
    /// header saying how its sender left segmentation and checksum to a NIC
    /// (`ReceivedFrame.virtioNetHeader`), so that segmentation-offload
    /// super-frames can be cut into packets; sending is unchanged.
    public var offloadHeaders = true

    public init() {}
}

/// One received frame: valid until its block is released.
public struct ReceivedFrame {
    public var bytes: UnsafeRawBufferPointer
    /// Length on the wire (more than `bytes.count` if the ring cut it).
    public var originalLength: Int
    /// Kernel receive time, nanoseconds since the epoch.
    public var time: Int64
    /// The frame carried an 802.1Q tag that the kernel took off (it is not
    /// in `bytes`): the gateway forwards untagged frames only.
    public var vlanTagged: Bool
    /// The sender left the TCP/UDP checksum to a NIC that does not exist
    /// (a local socket or a veth with TX offload): the frame carries only
    /// the pseudo-header's sum until completed (`completeTransportChecksum`).
    public var checksumNotReady: Bool
    /// The frame's virtio-net header (10 bytes, DGWWire's VirtioNetHeader)
    /// when the port asked for them (`AFPacketOptions.offloadHeaders`).
    public var virtioNetHeader: UnsafeRawBufferPointer?

    @inlinable
    public init(bytes: UnsafeRawBufferPointer, originalLength: Int, time: Int64, vlanTagged: Bool = false,
                checksumNotReady: Bool = false, virtioNetHeader: UnsafeRawBufferPointer? = nil) {
        self.bytes = bytes
        self.originalLength = originalLength
        self.time = time
        self.vlanTagged = vlanTagged
        self.checksumNotReady = checksumNotReady
        self.virtioNetHeader = virtioNetHeader
    }

    /// A segmentation-offload super-frame (the header's gso_type is not
    /// NONE): one frame standing for a train of TCP or UDP segments.
    /// (Octet 1 is gso_type; DGWWire's VirtioNetField has the layout.)
    @inlinable public var isSuperFrame: Bool { virtioNetHeader.map { $0[1] != 0 } ?? false }
}

public final class AFPacketPort {
    public let interface: String
    /// The socket and ring, outside the object: no exclusivity check per frame.
    private let port: UnsafeMutablePointer<dgw_afpacket>

    /// Opens the socket and maps the ring. Errors name the interface and
    /// the step: a missing interface, missing CAP_NET_RAW, a bad geometry.
    public init(interface: String, options: AFPacketOptions = AFPacketOptions()) throws(PortError) {
        self.interface = interface
        port = .allocate(capacity: 1)
        var o = dgw_afpacket_options(
            block_size: UInt32(options.blockSize), block_count: UInt32(options.blockCount),
            frame_size: UInt32(options.frameSize), retire_ms: UInt32(options.retireMilliseconds),
            promiscuous: options.promiscuous ? 1 : 0, fanout_group: Int32(options.fanoutGroup),
            vnet_hdr: options.offloadHeaders ? 1 : 0)
        var stage: UnsafePointer<CChar>?
        guard dgw_afpacket_open(interface, &o, port, &stage) == 0 else {
            // Every stored property is set: deinit runs and frees `port`
            // (dgw_afpacket_open left it closed).
            let e = dgw_errno()
            let step = stage.map { String(cString: $0) } ?? "open"
            switch (step, e) {
            case ("if_nametoindex", _): throw .syscall(name: "interface \(interface): no such interface", errno: ENODEV)
            case (_, EPERM): throw .syscall(name: "interface \(interface): \(step) needs CAP_NET_RAW (run as root)", errno: e)
            default: throw .syscall(name: "interface \(interface): \(step)", errno: e)
            }
        }
    }

    deinit {
        dgw_afpacket_close(port)
        port.deallocate()
    }

    /// The socket, for poll.
    public var descriptor: Int32 { port.pointee.fd }

    /// Calls `body` for each frame of each block the kernel has handed over,
    /// then gives the blocks back; at most `maxBlocks` blocks per call.
    /// Returns the number of frames seen. `body` must copy what it keeps.
    @inlinable
    public func receive(maxBlocks: Int = 4, _ body: (ReceivedFrame) throws(PortError) -> Void) throws(PortError) -> Int {
        var frames = 0
        var blocks = 0
        guard ring.pointee.block_count > 0 else { return 0 }
        let offloadHeaders = ring.pointee.vnet_hdr != 0
        while blocks < maxBlocks, let block = dgw_afpacket_block(ring) {
            var h = dgw_afpacket_first(block)
            for _ in 0..<Int(dgw_afpacket_block_frames(block)) {
                guard let hdr = h else { break }
                if dgw_afpacket_outgoing(hdr) != 0 {  // sent by this host, not received
                    h = dgw_afpacket_next(hdr)
                    continue
                }
                let data = UnsafeRawPointer(dgw_afpacket_data(hdr))
                let time = Int64(hdr.pointee.tp_sec) * 1_000_000_000 + Int64(hdr.pointee.tp_nsec)
                do {
                    try body(ReceivedFrame(bytes: UnsafeRawBufferPointer(start: data, count: Int(hdr.pointee.tp_snaplen)),
                                           originalLength: Int(hdr.pointee.tp_len), time: time,
                                           vlanTagged: hdr.pointee.tp_status & UInt32(TP_STATUS_VLAN_VALID) != 0,
                                           checksumNotReady: hdr.pointee.tp_status & UInt32(TP_STATUS_CSUMNOTREADY) != 0,
                                           virtioNetHeader: offloadHeaders ? UnsafeRawBufferPointer(start: dgw_afpacket_vnet_hdr(hdr), count: 10) : nil))
                } catch {
                    dgw_afpacket_release(ring, block)
                    throw error
                }
                frames += 1
                h = dgw_afpacket_next(hdr)
            }
            dgw_afpacket_release(ring, block)
            blocks += 1
        }
        return frames
    }

    @usableFromInline var ring: UnsafeMutablePointer<dgw_afpacket> { port }

    /// Frames the kernel dropped since the last call because the receive
    /// ring was full (the gateway fell behind); 0 if it cannot tell.
    public func takeReceiveDrops() -> Int {
        var drops: UInt32 = 0
        return dgw_afpacket_take_drops(port, &drops) == 0 ? Int(drops) : 0
    }

    /// Sends up to 64 frames with sendmmsg; returns how many went (a full
    /// transmit queue sends fewer). Throws only when none could be sent
    /// for a reason other than a full queue.
    public func send(_ frames: UnsafePointer<UnsafeRawPointer?>, lengths: UnsafePointer<UInt32>, count: Int) throws(PortError) -> Int {
        guard count > 0 else { return 0 }
        let n = dgw_afpacket_send(port, frames, lengths, Int32(min(count, 64)))
        if n < 0 {
            let e = dgw_errno()
            if e == EAGAIN || e == ENOBUFS { return 0 }
            throw .syscall(name: "interface \(interface): sendmmsg", errno: e)
        }
        return Int(n)
    }
}

/// Interface state the gateway changes at start and puts back at exit.
public enum Interfaces {
    public static func mac(_ name: String) throws(PortError) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: 6)
        guard dgw_interface_mac(name, &mac) == 0 else { throw .syscall(name: "interface \(name): SIOCGIFHWADDR", errno: dgw_errno()) }
        return mac
    }

    public static func isUp(_ name: String) throws(PortError) -> Bool {
        var flags: Int32 = 0
        guard dgw_interface_flags(name, &flags) == 0 else {
            let e = dgw_errno()
            throw .syscall(name: e == ENODEV ? "interface \(name): no such interface" : "interface \(name): SIOCGIFFLAGS", errno: e)
        }
        return flags & Int32(IFF_UP) != 0
    }

    public static func setUp(_ name: String, _ up: Bool) throws(PortError) {
        var flags: Int32 = 0
        guard dgw_interface_flags(name, &flags) == 0 else { throw .syscall(name: "interface \(name): SIOCGIFFLAGS", errno: dgw_errno()) }
        let f = up ? flags | Int32(IFF_UP) : flags & ~Int32(IFF_UP)
        guard dgw_interface_set_flags(name, f) == 0 else { throw .syscall(name: "interface \(name): SIOCSIFFLAGS", errno: dgw_errno()) }
    }

    /// net.ipv6.conf.NAME.disable_ipv6 (true: the kernel has no IPv6 on it).
    public static func ipv6Disabled(_ name: String) throws(PortError) -> Bool {
        let path = "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6"
        let fd = Syscall.open(path)
        guard fd >= 0 else { throw .syscall(name: "read \(path)", errno: dgw_errno()) }
        defer { close(fd) }
        var b = [UInt8](repeating: 0, count: 4)
        let n = try b.withUnsafeMutableBytes { buffer in Result { () throws(PortError) in try Syscall.read(fd, buffer) } }.get()
        return n > 0 && b[0] == UInt8(ascii: "1")
    }

    public static func setIPv6Disabled(_ name: String, _ disabled: Bool) throws(PortError) {
        let path = "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6"
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .syscall(name: "write \(path)", errno: dgw_errno()) }
        defer { close(fd) }
        try Array((disabled ? "1\n" : "0\n").utf8).withUnsafeBytes { b in Result { () throws(PortError) in try Syscall.writeAll(fd, b) } }.get()
    }
}

/// SIGINT and SIGTERM as a flag the loops look at.
public enum StopSignal {
    public static func install() throws(PortError) {
        guard dgw_install_stop_handlers() == 0 else { throw .syscall(name: "sigaction", errno: dgw_errno()) }
    }

    public static var requested: Bool { dgw_stop_requested() != 0 }

    /// Waits up to `milliseconds` for one of `descriptors` to be readable;
    /// true if one is. A signal (EINTR) is a wake-up, not an error.
    @discardableResult
    public static func poll(_ descriptors: [Int32], milliseconds: Int) throws(PortError) -> Bool {
        let n = descriptors.withUnsafeBufferPointer { dgw_poll_readable($0.baseAddress, Int32($0.count), Int32(milliseconds)) }
        if n < 0 {
            let e = dgw_errno()
            if e != EINTR { throw .syscall(name: "poll", errno: e) }
        }
        return n > 0
    }
}
