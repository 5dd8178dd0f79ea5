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
}
