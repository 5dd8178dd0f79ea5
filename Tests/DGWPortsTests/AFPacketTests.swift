// AF_PACKET receive rings on a real veth pair (root; the pair is made
// and removed by the test).

import DGWPorts
import DGWTestSupport
import Foundation
import Testing

@Suite(.serialized) struct AFPacketTests {
    /// What the host itself sends out of the interface never reaches the
    /// ring, also when the sockets share a PACKET_FANOUT group (whose hook
    /// ignores PACKET_IGNORE_OUTGOING): a gateway with several workers
    /// once took its own kernel's Router Solicitation for an MN's and
    /// attached it. The replies, which come in, do reach it.
    @Test(.enabled(if: getuid() == 0, "needs root"), arguments: [0, 0x3D17])
    func framesSentByTheHostStayOutOfTheRing(fanoutGroup: Int) throws {
        let a = "dgwpo\(getpid() % 10_000)", b = a + "p"
        func ip(_ args: String) throws {
            let r = try runProcess("/usr/sbin/ip", args.split(separator: " ").map(String.init))
            #expect(r.status == 0, "ip \(args): \(r.stderr)")
        }
        _ = try? runProcess("/usr/sbin/ip", ["link", "del", a])
        try ip("link add \(a) address 02:00:00:00:5a:01 type veth peer name \(b) address 02:00:00:00:5a:02")
        defer { _ = try? runProcess("/usr/sbin/ip", ["link", "del", a]) }
        try ip("-6 addr add fe80::5a:1/64 dev \(a) nodad")
        try ip("-6 addr add fe80::5a:2/64 dev \(b) nodad")
        try ip("link set \(a) up")
        try ip("link set \(b) up")
        var options = AFPacketOptions()
        options.fanoutGroup = fanoutGroup
        let ports = try (0..<(fanoutGroup == 0 ? 1 : 2)).map { _ in try AFPacketPort(interface: a, options: options) }
        let ping = try runProcess("/usr/bin/ping", ["-6", "-c", "3", "-i", "0.2", "-W", "1", "fe80::5a:2%\(a)"])
        #expect(ping.status == 0, "\(ping.stdout) \(ping.stderr)")
        usleep(50_000)
        var sources: [UInt64] = []
        let end = Date().addingTimeInterval(0.5)
        while Date() < end {
            for port in ports {
                _ = try port.receive { f in
                    guard f.bytes.count >= 12 else { return }
                    sources.append((6..<12).reduce(0) { $0 << 8 | UInt64(f.bytes[$1]) })
                }
            }
            usleep(10_000)
        }
        #expect(sources.contains(0x0200_0000_5A02), "the replies come in")
        #expect(!sources.contains(0x0200_0000_5A01), "nothing this host sent: \(sources.map { String($0, radix: 16) })")
    }

    /// A gateway that falls behind loses frames in the kernel, before any
    /// counter of its own sees them: the port reports them (PACKET_STATISTICS)
    /// so that `receive_ring_full` can say so. A ring of one small block,
    /// never read while 60 frames arrive: every frame is either in the ring
    /// or reported dropped, once.
    @Test(.enabled(if: getuid() == 0, "needs root"))
    func framesTheFullRingLostAreReported() throws {
        let a = "dgwpr\(getpid() % 10_000)", b = a + "p"
        func run(_ tool: String, _ args: String) throws {
            let r = try runProcess(tool, args.split(separator: " ").map(String.init))
            #expect(r.status == 0, "\(tool) \(args): \(r.stderr)")
        }
        _ = try? runProcess("/usr/sbin/ip", ["link", "del", a])
        try run("/usr/sbin/ip", "link add \(a) address 02:00:00:00:5b:01 type veth peer name \(b) address 02:00:00:00:5b:02")
        defer { _ = try? runProcess("/usr/sbin/ip", ["link", "del", a]) }
        // No kernel IPv6 on the pair: nothing but the test's frames on it.
        for n in [a, b] { try run("/usr/sbin/sysctl", "-qw net.ipv6.conf.\(n).disable_ipv6=1") }
        try run("/usr/sbin/ip", "link set \(a) up")
        try run("/usr/sbin/ip", "link set \(b) up")
        var small = AFPacketOptions()
        small.blockSize = 4096
        small.blockCount = 1
        small.frameSize = 2048
        small.retireMilliseconds = 1
        let port = try AFPacketPort(interface: a, options: small)
        var sendOnly = AFPacketOptions()
        sendOnly.blockCount = 0
        let sender = try AFPacketPort(interface: b, options: sendOnly)
        #expect(port.takeReceiveDrops() == 0)
        var frame = [UInt8](repeating: 0, count: 200)
        frame.replaceSubrange(0..<14, with: [0x02, 0, 0, 0, 0x5B, 0x01, 0x02, 0, 0, 0, 0x5B, 0x02, 0x88, 0xB5])
        let total = 60
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 8)
        defer { bytes.deallocate() }
        bytes.copyBytes(from: frame)
        var pointer: UnsafeRawPointer? = UnsafeRawPointer(bytes.baseAddress)
        var length = UInt32(frame.count)
        var sent = 0
        for _ in 0..<total { sent += try sender.send(&pointer, lengths: &length, count: 1) }
        #expect(sent == total)
        usleep(20_000)
        let dropped = port.takeReceiveDrops()
        var received = 0
        _ = try port.receive { _ in received += 1 }
        #expect(dropped > 0, "one 4 KiB block cannot hold 60 frames of 200 bytes")
        #expect(received + dropped == total, "received \(received), dropped \(dropped)")
        #expect(port.takeReceiveDrops() == 0, "each drop is reported once")
    }
}
