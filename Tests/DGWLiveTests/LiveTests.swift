import DGWTestSupport
import Foundation
import Testing

let ip = which("ip") ?? "/usr/sbin/ip"

/// JSON object of the last line of `text`.
func lastJSON(_ text: String) throws -> [String: Any] {
    let line = text.split(separator: "\n").last.map(String.init) ?? ""
    return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(text)")
}

/// Flood-pings `address` `count` times from namespace `ns`: (transmitted, received).
func ping(from ns: String, _ address: String, count: Int) throws -> (transmitted: Int, received: Int, output: String) {
    let out = try sh("ip netns exec \(ns) ping -6 -n -q -f -c \(count) -w 30 \(address) || true")
    let line = out.split(separator: "\n").first { $0.contains("packets transmitted") } ?? ""
    let numbers = line.split(separator: ",").map { $0.split(separator: " ").first.flatMap { Int($0) } ?? -1 }
    return (numbers.first ?? -1, numbers.dropFirst().first ?? -1, out)
}

/// `tshark -r FILE -Y FILTER -T fields -e FIELD...`, one array per frame.
func tsharkFields(_ file: String, _ filter: String, _ fields: [String], options: [String] = []) throws -> [[String]] {
    let tshark = try #require(which("tshark"), "tshark is not installed")
    let r = try runProcess(tshark, ["-n", "-r", file, "-Y", filter, "-T", "fields", "-E", "occurrence=a"] + options + fields.flatMap { ["-e", $0] })
    #expect(r.status == 0, "\(r.stderr)")
    return r.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
}

/// Live forwarding between network namespaces (root; the namespaces are
/// removed whatever happens). Serialized: they share the namespace names.
@Suite(.serialized) struct LiveTests {
    init() throws {
        try #require(getuid() == 0, "the live tests make network namespaces: run them as root")
    }

    /// Two gateways (gw1 with two workers) and a few thousand pings: MN1
    /// natively through gw1, MN2 through the gw2-gw1 tunnel both ways,
    /// checked at the core link with tshark and in each gateway's counters.
    @Test func forwardsNativelyAndThroughTheTunnelBothWays() throws {
        let bed = try Testbed()
        var gateways: [Background] = []
        for i in 1...2 {
            let config = bed.path("gw\(i).yaml")
            try Data(bed.config(gateway: i).utf8).write(to: URL(fileURLWithPath: config))
            // gw1 with two workers: PACKET_FANOUT across them, one neighbour table.
            let g = try Background([ip, "netns", "exec", bed.ns("gw\(i)"), dgw, "run", "--config", config, "--workers", i == 1 ? "2" : "1"],
                                   output: bed.dir.appendingPathComponent("gw\(i)"))
            gateways.append(g)
            try #require(g.wait(for: "forwarding between"), "gw\(i) did not start: \(g.stderr)")
        }
        // MN1 has nothing set by hand: gw1's access router brings it up (RA, SLAAC). It learns the
        // DLIF's MAC from the RAs; a Neighbor Solicitation for the DLIF's address, sent by hand
        // (the kernel's own depends on timing), must be answered (an NA, counted below).
        try bed.waitForMN1()
        let dlifLLA = "fe80::d1:ff:fe00:101"  // the modified EUI-64 of Net.dlif1
        try sh("""
            ip netns exec \(bed.ns("mn1")) python3 -c '
            import socket
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            target = socket.inet_pton(socket.AF_INET6, "\(dlifLLA)")
            ns = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + target + bytes([1, 1]) + bytes.fromhex("\(Net.mn1MAC.replacingOccurrences(of: ":", with: ""))")
            s.sendto(ns, ("ff02::1:ff00:101", 0, 0, socket.if_nametoindex("mn0")))'
            """)
        let capture = bed.path("core.pcap")
        let tcpdump = try #require(which("tcpdump"))
        let dump = try Background([ip, "netns", "exec", bed.ns("cn"), tcpdump, "-n", "--immediate-mode", "-B", "32768", "-i", "b1", "-w", capture, "ip6"],
                                  output: bed.dir.appendingPathComponent("tcpdump"))
        try #require(dump.wait(for: "listening on"), "\(dump.stderr)")

        let count = 1500
        for mn in ["mn1", "mn2"] {
            // The first one may go while the CN's MAC is being resolved.
            let r = try ping(from: bed.ns(mn), Net.cn, count: count)
            #expect(r.received == count && r.transmitted <= count + 1, "\(mn): \(r.output)")
        }
        #expect(dump.stop() == 0)

        // The control socket, while they run: counters (published every 100 ms), bindings, DLIFs, neighbours.
        usleep(250_000)
        let socket = bed.path("gw1.sock")
        let counters = try runProcess(dgw, ["ctl", "--socket", socket, "counters", "--json"])
        #expect(counters.status == 0, "\(counters.stderr)")
        let live = try lastJSON(counters.stdout)
        #expect((live["actions"] as? [String: Int])?["uplink_native", default: 0] ?? 0 >= count, "\(live)")
        let bindings = try runProcess(dgw, ["ctl", "--socket", socket, "bindings"])
        #expect(bindings.stdout.contains("\(Net.mn2MAC) 2001:db8:1:2::/64 anchor self serving \(Net.gw2) dlif \(Net.dlif2)"), "\(bindings.stdout)")
        let dlifs = try runProcess(dgw, ["ctl", "--socket", socket, "dlifs", "--json"])
        #expect(dlifs.stdout == "[{\"mn\":\"\(Net.mn1MAC)\",\"dlif_mac\":\"\(Net.dlif1)\",\"anchor\":\"self\"}]\n", "\(dlifs.stdout)")
        let cnMAC = try sh("ip -n \(bed.ns("cn")) -o link show br0").split(separator: " ").drop { $0 != "link/ether" }.dropFirst().first.map(String.init) ?? "?"
        let neighbors = try runProcess(dgw, ["ctl", "--socket", socket, "neighbors"])
        #expect(neighbors.stdout.contains("\(Net.cn) \(cnMAC)") && neighbors.stdout.contains("\(Net.gw2) \(Net.core2MAC)"), "\(neighbors.stdout)")
        // The Prometheus endpoint (in gw1's namespace, on its loopback).
        let scrape = try sh("ip netns exec \(bed.ns("gw1")) python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics').read().decode())\"")
        let nativeLine = scrape.split(separator: "\n").first { $0.hasPrefix("dgw_actions_total{action=\"uplink_native\"}") }
        #expect(nativeLine.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } ?? 0 >= count, "\(scrape)")
        #expect(scrape.contains("# TYPE dgw_frames_in_total counter"), "\(scrape)")
        let noState = try runProcess(dgw, ["ctl", "--socket", socket, "save"])
        #expect(noState.status == 2 && noState.stderr.contains("save refused: no state_file in the configuration"), "\(noState.stderr)")
        let nobody = try runProcess(dgw, ["ctl", "--socket", bed.path("nobody.sock"), "counters"])
        #expect(nobody.status == 2 && nobody.stderr.contains("cannot connect"), "\(nobody.stderr)")
        var summaries: [[String: Any]] = []
        for (i, g) in gateways.enumerated() {
            #expect(g.stop() == 0, "gw\(i + 1): \(g.stderr)")
            summaries.append(try lastJSON(g.stdout))
        }
        let a1 = try #require(summaries[0]["actions"] as? [String: Int]), a2 = try #require(summaries[1]["actions"] as? [String: Int])
        #expect(a1["uplink_native", default: 0] >= count && a1["downlink_delivered", default: 0] >= count, "\(a1)")
        #expect(a1["uplink_decapsulated", default: 0] >= count && a1["downlink_encapsulated", default: 0] >= count, "\(a1)")
        #expect(a2["uplink_encapsulated", default: 0] >= count && a2["downlink_decapsulated", default: 0] >= count, "\(a2)")
        #expect(summaries.allSatisfy { $0["transmit_failed"] as? Int == 0 })
        let control1 = try #require(summaries[0]["control"] as? [String: Int])
        #expect(control1["router_advertisements", default: 0] >= 3 && control1["neighbor_advertisements", default: 0] >= 1, "\(control1)")
        #expect(!FileManager.default.fileExists(atPath: socket))  // removed at exit

        // On gw1's core port (b1, a bridge port sees what the bridge forwards): MN2's echo requests in the tunnel gw2 -> gw1 (outer hop limit 64, inner 63:
        // gw2 forwarded it once); the replies in the tunnel gw1 -> gw2 (the CN's 64, minus gw1's hop).
        let up = try tsharkFields(capture, "ipv6.src == \(Net.gw2) && ipv6.dst == \(Net.gw1) && icmpv6.type == 128", ["ipv6.hlim", "ipv6.src"])
        #expect(up.count >= count && up.allSatisfy { $0 == ["64,63", "\(Net.gw2),\(Net.h2)"] }, "\(up.prefix(3))")
        let down = try tsharkFields(capture, "ipv6.src == \(Net.gw1) && ipv6.dst == \(Net.gw2) && icmpv6.type == 129", ["ipv6.hlim", "ipv6.dst"])
        #expect(down.count >= count && down.allSatisfy { $0 == ["64,63", "\(Net.gw2),\(Net.h2)"] }, "\(down.prefix(3))")
        // Natively at the CN: MN1's requests after one hop (63), MN2's after two (62), no outer header.
        let native1 = try tsharkFields(capture, "ipv6.src == \(Net.h1) && icmpv6.type == 128", ["ipv6.hlim"])
        #expect(native1.count >= count && native1.allSatisfy { $0 == ["63"] }, "\(native1.prefix(3))")
        let native2 = try tsharkFields(capture, "ipv6.src == \(Net.h2) && !(ipv6.nxt == 41) && icmpv6.type == 128", ["ipv6.hlim"])
        #expect(native2.count >= count && native2.allSatisfy { $0 == ["62"] }, "\(native2.prefix(3))")
        #expect(try tsharkFields(capture, "_ws.malformed || _ws.expert.severity >= error", ["frame.number"]).isEmpty)
    }

    /// An MN nobody configured, at a gateway with no binding for it: its RS
    /// attaches it (a /64 from the pool, a DLIF, RAs), it configures itself
    /// by SLAAC and reaches the CN through gw1. `onTraffic`: an MN that
    /// sends no RS (as one that moved in still talking to its old router):
    /// its first unicast frame, to a router MAC gw1 does not have, attaches
    /// it instead.
    @Test(arguments: [false, true]) func anMNAttachesAndForwards(onTraffic: Bool) throws {
        let bed = try Testbed()
        let config = bed.path("gw1.yaml")
        // gw1 without MN1's static binding (MN2's stays: its prefix is never handed out).
        let yaml = bed.config(gateway: 1).split(separator: "\n").filter { !$0.contains(Net.mn1MAC) }.joined(separator: "\n") + "\n"
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: config))
        let mn1 = bed.ns("mn1")
        // No RS from MN1 from before gw1 listens: its stack retransmits the
        // one of its link's coming up every few seconds, and one arriving
        // once gw1 runs would attach it by RS instead (seen in CI).
        if onTraffic { try sh("ip netns exec \(mn1) sysctl -qw net.ipv6.conf.mn0.router_solicitations=0") }
        let g = try Background([ip, "netns", "exec", bed.ns("gw1"), dgw, "run", "--config", config],
                               output: bed.dir.appendingPathComponent("gw1"))
        try #require(g.wait(for: "forwarding between"), "\(g.stderr)")
        if onTraffic {
            // No RS; a route through its old router (a MAC gw1 has not shown), and a packet for it.
            try sh("ip -n \(mn1) link set mn0 down && ip -n \(mn1) link set mn0 up")
            try sh("ip -n \(mn1) -6 neigh replace fe80::99 lladdr 02:99:00:00:00:99 dev mn0 nud permanent")
            try sh("ip -n \(mn1) -6 route add 2001:db8:99::/64 via fe80::99 dev mn0")
            usleep(300_000)
            #expect(try sh("ip -n \(mn1) -6 addr show dev mn0 scope global").isEmpty, "no RS, no RA: no address yet")
            _ = try? sh("ip netns exec \(mn1) ping -6 -n -c 3 -i 0.2 -W 1 2001:db8:99::1")
        } else {
            // The link comes up again, as on association with the cell: the MN solicits at once.
            try sh("ip -n \(bed.ns("mn1")) link set mn0 down && ip -n \(bed.ns("mn1")) link set mn0 up")
        }
        // 2001:db8:1:2::/64 is MN2's: the first free /64 of 2001:db8:1::/48 is 2001:db8:1::/64.
        let address = "2001:db8:1:0:aa:ff:fe00:1"  // (RFC 5952: one zero group is not shortened)
        let end = Date().addingTimeInterval(10)
        var shown = ""
        while Date() < end {
            shown = try sh("ip -n \(bed.ns("mn1")) -6 addr show dev mn0 scope global")
            if shown.contains(address), !shown.contains("tentative") { break }
            usleep(100_000)
        }
        #expect(shown.contains(address) && !shown.contains("tentative"), "\(shown) \(g.stderr)")
        let r = try ping(from: bed.ns("mn1"), Net.cn, count: 100)
        let dlifs = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "dlifs"])
        #expect(dlifs.stdout.hasPrefix("\(Net.mn1MAC) dlif 02:"), "\(dlifs.stdout)")  // shown by `dgw ctl` too
        let bindings = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "bindings"])
        #expect(bindings.stdout.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor self serving self"), "\(bindings.stdout)")
        #expect(g.stop() == 0, "\(g.stderr)")
        #expect(r.received == 100, "\(r.output)")
        let summary = try lastJSON(g.stdout)
        #expect((summary["control"] as? [String: Int])?["attached"] == 1, "\(summary)")
        #expect((summary["control"] as? [String: Int])?["attached_on_traffic"] == (onTraffic ? 1 : nil), "\(summary)")
        #expect(g.stderr.contains("\(Net.mn1MAC) attached: 2001:db8:1::/64"), "\(g.stderr)")
    }

    /// Handover signalling between two live gateways: MN1 attaches at gw1
    /// (RS, SLAAC); `dgw ctl attach --mn MN1 --previous gw1` at gw2 (what an
    /// access point's association would send) makes gw2 send a PBU to gw1
    /// over the core, gw1 answers with a PBA, and both install the binding:
    /// MN1's prefix tunnelled between them, the CN's pings to MN1 encapsulated
    /// by gw1 toward gw2. PBU and PBA, signed with the `auth:` keys, checked
    /// with tshark on the core link. Then `dgw ctl move-prefix` at gw2 for
    /// a second interface of MN1's subscriber: refused by the ctl for a
    /// stranger; sent (HI 2) for the subscriber, and refused by gw1, whose
    /// subscriber list does not have it (status 155).
    @Test func handoverSignallingBetweenLiveGateways() throws {
        let bed = try Testbed()
        var gateways: [Background] = []
        for i in 1...2 {
            let config = bed.path("gw\(i).yaml")
            var yaml = bed.config(gateway: i)
            if i == 1 { yaml = yaml.split(separator: "\n").filter { !$0.contains(Net.mn1MAC) }.joined(separator: "\n") + "\n" }
            // No static neighbours: the PBU waits for gw1's advertisement, solicited at once.
            yaml = yaml.split(separator: "\n").filter { !$0.contains("neighbors:") && !$0.contains("- { address:") }.joined(separator: "\n") + "\n"
            // Signalling authenticated both ways (RFC 4285 option, HMAC-SHA256).
            yaml += "auth:\n  - { peer: \(i == 1 ? Net.gw2 : Net.gw1), spi: 4660, key_hex: \"000102030405060708090a0b0c0d0e0f1011\" }\n"
            if i == 2 { yaml += "subscribers:\n  - { id: alice, macs: [\"\(Net.mn1MAC)\", \"02:aa:00:00:00:99\"] }\n" }
            try Data(yaml.replacingOccurrences(of: "metrics: 127.0.0.1:9464\n", with: "").utf8).write(to: URL(fileURLWithPath: config))
            let g = try Background([ip, "netns", "exec", bed.ns("gw\(i)"), dgw, "run", "--config", config],
                                   output: bed.dir.appendingPathComponent("gw\(i)"))
            gateways.append(g)
            try #require(g.wait(for: "forwarding between"), "gw\(i) did not start: \(g.stderr)")
        }
        try sh("ip -n \(bed.ns("mn1")) link set mn0 down && ip -n \(bed.ns("mn1")) link set mn0 up")
        let address = "2001:db8:1:0:aa:ff:fe00:1"
        // MN1 stays on gw1's link while gw2 claims it, so a Router
        // Solicitation from it after the handover would rightly take it back
        // to gw1. Linux sends one when its link-local address passes DAD
        // (whether or not an RA came first) and repeats it until an RA
        // answers one: wait for both addresses to pass DAD, then let it
        // solicit no more.
        let end = Date().addingTimeInterval(10)
        var shown = ""
        while Date() < end {
            shown = try sh("ip -n \(bed.ns("mn1")) -6 addr show dev mn0")
            if shown.contains(address), shown.contains("scope link"), !shown.contains("tentative") { break }
            usleep(100_000)
        }
        #expect(shown.contains(address) && !shown.contains("tentative"), "\(shown)")
        try sh("ip netns exec \(bed.ns("mn1")) sysctl -qw net.ipv6.conf.mn0.router_solicitations=0")
        usleep(300_000)
        let capture = bed.path("core.pcap")
        let tcpdump = try #require(which("tcpdump"))
        let dump = try Background([ip, "netns", "exec", bed.ns("cn"), tcpdump, "-n", "--immediate-mode", "-i", "b1", "-w", capture, "ip6"],
                                  output: bed.dir.appendingPathComponent("tcpdump"))
        try #require(dump.wait(for: "listening on"), "\(dump.stderr)")

        let attach = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "attach", "--mn", Net.mn1MAC, "--previous", Net.gw1])
        #expect(attach.status == 0 && attach.stdout.contains("attach \(Net.mn1MAC) queued"), "\(attach.stdout) \(attach.stderr)")
        var b1 = "", b2 = ""
        let bound = Date().addingTimeInterval(5)
        while Date() < bound {
            b1 = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "bindings"]).stdout
            b2 = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "bindings"]).stdout
            if b1.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor self serving \(Net.gw2)"),
               b2.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor \(Net.gw1) serving self") { break }
            usleep(50_000)
        }
        #expect(b1.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor self serving \(Net.gw2)"), "gw1: \(b1)")
        #expect(b2.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor \(Net.gw1) serving self"), "gw2: \(b2)")
        // gw2 attached MN1 with a prefix of its own too.
        #expect(b2.contains("\(Net.mn1MAC) 2001:db8:2::/64 anchor self serving self"), "gw2: \(b2)")
        // The CN's pings to MN1's first address now go into the tunnel to gw2 (no answer: MN1 is not in gw2's cell).
        _ = try? ping(from: bed.ns("cn"), address, count: 5)
        let counters = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "counters", "--json"])
        let c = try #require(try JSONSerialization.jsonObject(with: Data(counters.stdout.utf8)) as? [String: Any])
        #expect((c["actions"] as? [String: Int])?["downlink_encapsulated"] ?? 0 >= 4, "\(c)")
        #expect((c["signalling"] as? [String: Int])?["accepted"] == 1, "\(c)")
        #expect((c["signalling"] as? [String: Int])?["unauthenticated"] == nil, "\(c)")

        let ctl = ["ctl", "--socket", bed.path("gw2.sock")]
        let stranger = try runProcess(dgw, ctl + ["move-prefix", "--mn", "bob", "--prefix", "2001:db8:1::/64",
                                                                     "--to", "02:aa:00:00:00:99", "--anchor", Net.gw1])
        #expect(stranger.status == 2 && stranger.stderr.contains("move-prefix refused: 02:aa:00:00:00:99 is not an interface of subscriber bob"),
                "\(stranger.stdout) \(stranger.stderr)")
        _ = try runProcess(dgw, ctl + ["attach", "--mn", "02:aa:00:00:00:99"])
        usleep(100_000)
        let move = try runProcess(dgw, ctl + ["move-prefix", "--mn", "alice", "--prefix", "2001:db8:1::/64",
                                                                 "--to", "02:aa:00:00:00:99", "--anchor", Net.gw1])
        #expect(move.status == 0 && move.stdout.contains("move-prefix 2001:db8:1::/64 of alice to 02:aa:00:00:00:99 under way"),
                "\(move.stdout) \(move.stderr)")
        usleep(300_000)
        _ = dump.stop()
        for (i, g) in gateways.enumerated() { #expect(g.stop() == 0, "gw\(i + 1): \(g.stderr)") }
        let signalling = try lastJSON(gateways[1].stdout)["signalling"] as? [String: Int]
        #expect(signalling?["pba_received"] == 2 && signalling?["pbu_retransmitted"] == nil, "sent once gw1 answered the solicitation: \(String(describing: signalling))")
        #expect(signalling?["refused"] == 1, "the move: \(String(describing: signalling))")
        let rows = try tsharkFields(capture, "mipv6", ["mip6.mhtype", "ipv6.src", "_ws.malformed", "_ws.expert.severity", "mip6.ba.status",
                                                       "mip6.auth.mobility_spi", "mip6.hi", "mip6.nemo.mnp.mnp"])
        #expect(rows.map { $0[0] } == ["5", "6", "5", "6"], "\(rows)")
        #expect(rows.map { $0[5] } == ["4660", "4660", "4660", "4660"], "all signed: \(rows)")
        #expect(rows.map { $0[1] } == [Net.gw2, Net.gw1, Net.gw2, Net.gw1])
        #expect(rows.allSatisfy { $0[2].isEmpty && $0[3].split(separator: ",").compactMap { Int($0) }.allSatisfy { $0 < 0x0060_0000 } })
        #expect(rows.map { $0[4] } == ["", "0", "", "155"], "\(rows)")
        #expect(rows.map { $0[6] } == ["3", "", "2", ""] && rows[2][7] == "2001:db8:1::", "\(rows)")
    }

    /// The libpcap port (`--io pcap`): MN1's pings natively through gw1.
    @Test func forwardsWithLibpcap() throws {
        let bed = try Testbed()
        let g = try bed.startGateway1("--io", "pcap")
        let count = 500
        let r = try ping(from: bed.ns("mn1"), Net.cn, count: count)
        #expect(g.stop() == 0, "\(g.stderr)")
        #expect(r.received == count && r.transmitted <= count + 1, "\(r.output) \(g.stdout)")
        let summary = try lastJSON(g.stdout)
        let actions = try #require(summary["actions"] as? [String: Int])
        #expect(summary["transmit_failed"] as? Int == 0, "\(summary)")
        #expect(actions["uplink_native", default: 0] >= count && actions["downlink_delivered", default: 0] >= count, "\(actions)")
        let refused = try runProcess(ip, ["netns", "exec", bed.ns("gw1"), dgw, "run", "--config", bed.path("gw1.yaml"), "--io", "pcap", "--workers", "2"])
        #expect(refused.status != 0 && refused.stderr.contains("libpcap has no fanout"), "\(refused.stderr)")
    }

    /// Junk from the wire (random bytes, cut IPv6 headers, bad ND, VLAN
    /// tags, oversized frames) on both ports: counted under named drop
    /// reasons, and the gateway goes on forwarding.
    @Test func junkFromTheWireIsCountedAndForwardingGoesOn() throws {
        let bed = try Testbed()
        let g = try bed.startGateway1()
        // 2,000 frames of junk into each port, from the MN's side and the core's.
        let junk = """
            import random, socket, struct
            random.seed(7)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((IFACE, 0))
            dst = bytes.fromhex(DST.replace(":", "")); src = bytes.fromhex("02aa00000001")
            for i in range(2000):
                kind = i % 5
                if kind == 0: f = bytes(random.getrandbits(8) for _ in range(random.randint(14, 300)))
                elif kind == 1: f = dst + src + b"\\x86\\xdd" + bytes(random.getrandbits(8) for _ in range(random.randint(0, 39)))
                elif kind == 2: f = dst + src + b"\\x86\\xdd" + bytes([0x60, 0, 0, 0, 0, 8, 58, 255]) + bytes(32) + bytes([133, 0, 0, 0]) + bytes(4)
                elif kind == 3: f = dst + src + b"\\x81\\x00\\x00\\x05\\x86\\xdd" + bytes(60)
                else: f = dst + src + b"\\x86\\xdd" + bytes([0x60, 0, 0, 0, 0xff, 0xff, 17, 64]) + bytes(32) + bytes(random.randint(0, 200))
                s.send(f)
            """
        for (ns, iface, dst) in [(bed.ns("mn1"), "mn0", Net.dlif1), (bed.ns("cn"), "br0", Net.core1MAC)] {
            let script = junk.replacingOccurrences(of: "IFACE", with: "\"\(iface)\"").replacingOccurrences(of: "DST", with: "\"\(dst)\"")
            try sh("ip netns exec \(ns) python3 -c '\(script)'")
        }
        let r = try ping(from: bed.ns("mn1"), Net.cn, count: 200)
        #expect(r.received == 200, "\(r.output)")
        #expect(g.stop() == 0, "\(g.stderr)")
        let summary = try lastJSON(g.stdout)
        let drops = try #require(summary["drops"] as? [String: Int])
        #expect(drops["malformed", default: 0] >= 1000 && drops["vlan_tagged", default: 0] >= 800, "\(drops) \(summary)")
        #expect((summary["actions"] as? [String: Int])?["uplink_native"] ?? 0 >= 200)
    }

    /// Segmentation-offload super-frames, as a veth with TSO or a NIC with
    /// GRO hands them over: written by hand with a virtio-net header on
    /// MN1's packet socket (TCP over IPv6, 3,123 bytes in segments of 1,000;
    /// UDP over IPv6, 2,500 in datagrams of 1,200; TCP over IPv4), the
    /// kernel passes them to gw1's access port whole. On the core: the
    /// packets MN1's NIC would have sent, checked by tshark.
    @Test func superFramesAreCutIntoPackets() throws {
        let bed = try Testbed()
        let g = try bed.startGateway1()
        // gw1 learns the CN's MAC (frames to an unresolved next hop are dropped while it asks).
        #expect(try ping(from: bed.ns("mn1"), Net.cn, count: 3).received == 3)
        let capture = bed.path("core.pcap")
        let tcpdump = try #require(which("tcpdump"))
        let dump = try Background([ip, "netns", "exec", bed.ns("cn"), tcpdump, "-n", "--immediate-mode", "-i", "b1", "-w", capture, "ip6 and (tcp port 5001 or udp port 5002)"],
                                  output: bed.dir.appendingPathComponent("tcpdump"))
        try #require(dump.wait(for: "listening on"), "\(dump.stderr)")
        // The transport checksum holds the pseudo-header's sum only (NEEDS_CSUM), as Linux leaves it.
        let script = """
            import socket, struct
            def fold(b):
                if len(b) % 2: b += bytes(1)
                s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
                while s >> 16: s = (s & 0xFFFF) + (s >> 16)
                return s
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
            s.bind(("mn0", 0))
            eth = bytes.fromhex("\(Net.dlif1.replacingOccurrences(of: ":", with: ""))") + bytes.fromhex("\(Net.mn1MAC.replacingOccurrences(of: ":", with: ""))")
            sa = socket.inet_pton(socket.AF_INET6, "\(Net.h1)"); da = socket.inet_pton(socket.AF_INET6, "\(Net.cn)")
            def v6(proto, l4, payload, gso, size, off):
                n = len(l4) + len(payload)
                l4 = bytearray(l4); l4[off:off + 2] = struct.pack("!H", fold(sa + da + struct.pack("!I3xB", n, proto)))
                ip = struct.pack("!IHBB", 0x60000000, n, proto, 64) + sa + da
                return struct.pack("=BBHHHH", 1, gso, 54 + len(l4), size, 54, off) + eth + bytes([0x86, 0xDD]) + ip + bytes(l4) + payload
            data = bytes((i * 7) & 0xFF for i in range(3123))
            s.send(v6(6, struct.pack("!HHIIBBHHH", 40000, 5001, 1000, 1, 0x50, 0x18, 65535, 0, 0), data, 4, 1000, 16))
            s.send(v6(17, struct.pack("!HHHH", 40001, 5002, 8 + 2500, 0), bytes(range(250)) * 10, 5, 1200, 6))
            ip4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 20 + 3000, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
            tcp4 = struct.pack("!HHIIBBHHH", 40002, 5001, 1, 1, 0x50, 0x18, 65535, 0, 0)
            s.send(struct.pack("=BBHHHH", 1, 1, 54, 1000, 34, 16) + eth + bytes([0x08, 0x00]) + ip4 + tcp4 + bytes(3000))
            """
        try sh("ip netns exec \(bed.ns("mn1")) python3 -c '\(script)'")
        usleep(300_000)
        #expect(dump.stop() == 0)
        #expect(g.stop() == 0, "\(g.stderr)")
        let summary = try lastJSON(g.stdout)
        #expect(summary["superframes_segmented"] as? Int == 2 && summary["segments_from_superframes"] as? Int == 7, "\(summary)")
        #expect((summary["drops"] as? [String: Int])?["not_ipv6", default: 0] ?? 0 >= 1, "\(summary)")
        let checks = ["-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.relative_sequence_numbers:FALSE"]
        let tcp = try tsharkFields(capture, "tcp.srcport == 40000", ["tcp.seq", "tcp.len", "tcp.flags", "tcp.checksum.status", "ipv6.plen", "ipv6.hlim"], options: checks)
        #expect(tcp == [["1000", "1000", "0x0010", "1", "1020", "63"], ["2000", "1000", "0x0010", "1", "1020", "63"],
                        ["3000", "1000", "0x0010", "1", "1020", "63"], ["4000", "123", "0x0018", "1", "143", "63"]], "\(tcp)")
        let udp = try tsharkFields(capture, "udp.srcport == 40001", ["udp.length", "udp.checksum.status"], options: checks)
        #expect(udp == [["1208", "1"], ["1208", "1"], ["108", "1"]], "\(udp)")
        // What gw1 sent (the CN's answers, resets with the checksum left to its offload, are not ours).
        let bad = try tsharkFields(capture, "ipv6.src == \(Net.h1) && (_ws.malformed || _ws.expert.severity >= error)", ["frame.number", "_ws.expert.message"], options: checks)
        #expect(bad.isEmpty, "\(bad)")
    }

    /// Takes the interfaces over and gives them back on SIGTERM; refuses a
    /// bad configuration, a missing interface and a missing privilege.
    @Test func startStopRestoreAndRefusals() throws {
        let bed = try Testbed()
        let gw = bed.ns("gw1")
        let config = bed.path("gw1.yaml")
        try Data(bed.config(gateway: 1).utf8).write(to: URL(fileURLWithPath: config))
        try sh("ip -n \(gw) link set acc0 down")
        func state() throws -> (ipv6Disabled: String, up: Bool) {
            (try sh("ip netns exec \(gw) cat /proc/sys/net/ipv6/conf/acc0/disable_ipv6").trimmingCharacters(in: .whitespacesAndNewlines),
             try sh("ip -n \(gw) -o link show acc0").contains("<BROADCAST,MULTICAST,UP"))
        }
        #expect(try state() == ("0", false))
        let g = try Background([ip, "netns", "exec", gw, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("gw"))
        try #require(g.wait(for: "forwarding between"), "\(g.stderr)")
        #expect(try state() == ("1", true))
        #expect(g.stop() == 0)
        #expect(try state() == ("0", false))
        let summary = try lastJSON(g.stdout)
        let restored = try #require(summary["interfaces_restored"] as? [String])
        #expect(Set(restored) == ["acc0: link set down", "acc0: kernel IPv6 re-enabled", "core0: kernel IPv6 re-enabled"])
        #expect(g.stderr.contains("acc0: kernel IPv6 disabled") && g.stderr.contains("acc0: link set up"))

        let bad = bed.path("bad.yaml")
        try Data((bed.config(gateway: 1) + "bogus: 1\n").utf8).write(to: URL(fileURLWithPath: bad))
        let r1 = try runProcess(ip, ["netns", "exec", gw, dgw, "run", "--config", bad])
        #expect(r1.status == 2 && r1.stderr.contains("bad.yaml:") && r1.stderr.contains("unknown key 'bogus'"), "\(r1.stderr)")
        let missing = bed.path("missing.yaml")
        try Data(bed.config(gateway: 1).replacingOccurrences(of: "interface: acc0", with: "interface: nope0").utf8)
            .write(to: URL(fileURLWithPath: missing))
        let r2 = try runProcess(ip, ["netns", "exec", gw, dgw, "run", "--config", missing])
        #expect(r2.status == 2 && r2.stderr.contains("nope0: no such interface"), "\(r2.stderr)")
        if let setpriv = which("setpriv") {
            let r3 = try runProcess(ip, ["netns", "exec", gw, setpriv, "--bounding-set", "-net_raw", dgw, "run", "--config", config])
            #expect(r3.status == 2 && r3.stderr.contains("needs CAP_NET_RAW"), "\(r3.stderr)")
        }
        // Nothing was changed by the refusals.
        #expect(try state() == ("0", false))
    }

    /// An LMA's records and relayed bindings across a restart
    /// (`state_file`): read at start (a record that ran out while it was
    /// stopped left out; the binding back in its data plane), written again
    /// at stop with the same expiry on the wall clock; a damaged file is
    /// refused with its line.
    @Test func anLMAKeepsItsRecordsAcrossARestart() throws {
        let bed = try Testbed()
        let ns = bed.ns("gw1"), state = bed.path("lma.state")
        let config = try Self.lmaConfiguration(bed, state: state)
        let expires = (Int64(Date().timeIntervalSince1970) + 3600) * 1_000_000_000
        let kept = "{\"mn\":\"02:aa:00:00:00:05\",\"anchors\":[{\"gateway\":\"\(Net.gw1)\",\"prefix\":\"2001:db8:1:5::/64\"}],"
            + "\"serving\":\"\(Net.gw2)\",\"expires_unix_ns\":\(expires),"
            + "\"relayed\":[{\"prefix\":\"2001:db8:1:5::/64\",\"anchor\":\"\(Net.gw1)\",\"serving\":\"\(Net.gw2)\"}]}"
        let ranOut = "{\"mn\":\"02:aa:00:00:00:06\",\"anchors\":[{\"gateway\":\"\(Net.gw1)\",\"prefix\":\"2001:db8:1:6::/64\"}],\"expires_unix_ns\":1000}"
        try Data((kept + "\n" + ranOut + "\n").utf8).write(to: URL(fileURLWithPath: state))

        let lma = try Background([ip, "netns", "exec", ns, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma"))
        try #require(lma.wait(for: "inter-operator LMA on"), "\(lma.stderr)")
        let bindings = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
        let binding = "02:aa:00:00:00:05 2001:db8:1:5::/64 anchor \(Net.gw1) serving \(Net.gw2)"
        #expect(bindings.contains(binding + " dlif") && bindings.contains(binding + "\n"), "bound and in the records: \(bindings)")
        #expect(!bindings.contains("02:aa:00:00:00:06"), "ran out while stopped: \(bindings)")
        // A checkpoint (`dgw ctl save`), then a crash: the next start finds what the checkpoint saved.
        let save = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "save"])
        #expect(save.status == 0 && save.stdout == "1 record(s) saved to \(state)\n", "\(save.stdout)\(save.stderr)")
        #expect(try String(contentsOfFile: state, encoding: .utf8).split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: state + ".journal.old") && FileManager.default.fileExists(atPath: state + ".journal"),
                "the journal set aside by the checkpoint is gone once the file is written; a new one goes on")
        kill(lma.pid, SIGKILL)
        _ = lma.stop()
        let again = try Background([ip, "netns", "exec", ns, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma2"))
        try #require(again.wait(for: "inter-operator LMA on"), "\(again.stderr)")
        let restored = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
        #expect(restored.contains(binding + " dlif") && restored.contains(binding + "\n"), "after the crash: \(restored)")

        // A live gateway (gw2, operator green) registers an MN with the LMA:
        // the change is in the LMA's journal at once, and a crash with no
        // checkpoint since does not lose it.
        let gw2 = try Background([ip, "netns", "exec", bed.ns("gw2"), dgw, "run", "--config", try Self.gatewayOfTheLMA(bed)],
                                 output: bed.dir.appendingPathComponent("gw2"))
        try #require(gw2.wait(for: "forwarding between"), "\(gw2.stderr)")
        let attach = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "attach", "--mn", "02:aa:00:00:00:07"])
        #expect(attach.status == 0, "\(attach.stderr)")
        let registered = "02:aa:00:00:00:07 2001:db8:2::/64 anchor \(Net.gw2) serving \(Net.gw2)"
        var records = ""
        for _ in 0..<100 where !records.contains(registered) {
            usleep(20_000)
            records = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
        }
        #expect(records.contains(registered), "registered at the LMA: \(records)")
        let journal = try String(contentsOfFile: state + ".journal", encoding: .utf8)
        #expect(journal.hasSuffix("\n") && journal.contains("\"mn\":\"02:aa:00:00:00:07\""), "journalled: \(journal)")
        #expect(gw2.stop() == 0)
        kill(again.pid, SIGKILL)
        _ = again.stop()
        let third = try Background([ip, "netns", "exec", ns, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma3"))
        try #require(third.wait(for: "inter-operator LMA on"), "\(third.stderr)")
        let fromJournal = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
        #expect(fromJournal.contains(registered) && fromJournal.contains(binding + " dlif"), "after a crash, from the journal: \(fromJournal)")
        #expect(third.stderr.contains("2 record(s) from \(state)"), "\(third.stderr)")
        #expect(try String(contentsOfFile: state + ".journal", encoding: .utf8).isEmpty, "written afresh at start, an empty journal begun")
        // Stopped: the file has both records (05, 07), and no journal is left.
        #expect(third.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: state + ".journal") && !FileManager.default.fileExists(atPath: state + ".journal.old"))

        let lines = try String(contentsOfFile: state, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == 2, "\(lines)")
        let saved = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(saved["mn"] as? String == "02:aa:00:00:00:05" && saved["serving"] as? String == "\(Net.gw2)")
        #expect(abs(((saved["expires_unix_ns"] as? NSNumber)?.int64Value ?? 0) - expires) < 1_000_000_000, "the same expiry: \(saved)")
        #expect((saved["relayed"] as? [[String: String]]) == [["prefix": "2001:db8:1:5::/64", "anchor": "\(Net.gw1)", "serving": "\(Net.gw2)"]])
        #expect(!FileManager.default.fileExists(atPath: state + ".new"))

        try Data((kept + "\n{\"mn\": 5}\n").utf8).write(to: URL(fileURLWithPath: state))
        let damaged = try runProcess(ip, ["netns", "exec", ns, dgw, "run", "--config", config])
        #expect(damaged.status == 2 && damaged.stderr.contains("lma.state:2: mn is not a MAC address"), "\(damaged.stderr)")
        // A journal: a line replaces the MN's, "gone" removes it, a last
        // line cut short by a crash is left out; a damaged line before the
        // last is refused with its line.
        try Data((kept + "\n").utf8).write(to: URL(fileURLWithPath: state))
        try Data("{\"mn\":\"02:aa:00:00:00:05\",\"gone\":true}\n\(ranOut.replacingOccurrences(of: "1000", with: "\(expires)"))\n{\"mn\":\"02:aa:0"
            .utf8).write(to: URL(fileURLWithPath: state + ".journal"))
        let fourth = try Background([ip, "netns", "exec", ns, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma4"))
        try #require(fourth.wait(for: "inter-operator LMA on"), "\(fourth.stderr)")
        let replayed = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
        #expect(!replayed.contains("02:aa:00:00:00:05") && replayed.contains("02:aa:00:00:00:06 2001:db8:1:6::/64 anchor \(Net.gw1) serving none"),
                "\(replayed)")
        #expect(fourth.stop() == 0)
        try Data("{\"mn\":\"02:aa:0\n\(kept)\n".utf8).write(to: URL(fileURLWithPath: state + ".journal"))
        let badJournal = try runProcess(ip, ["netns", "exec", ns, dgw, "run", "--config", config])
        #expect(badJournal.status == 2 && badJournal.stderr.contains("lma.state.journal:1: not a JSON object"), "\(badJournal.stderr)")
    }

    /// An LMA in gw1's namespace between gw1 (operator blue) and gw2
    /// (green), keeping its records in `state`.
    static func lmaConfiguration(_ bed: Testbed, state: String, extra: String = "") throws -> String {
        let config = bed.path("lma.yaml")
        try Data("""
            name: lma
            role: lma
            address: 2001:db8:ffff::200
            core: { interface: core0, prefix: 2001:db8:ffff::/64 }
            peers:
              - { name: a, address: \(Net.gw1), operator: blue }
              - { name: b, address: \(Net.gw2), operator: green }
            control: \(bed.path("lma.sock"))
            state_file: \(state)
            neighbors:
              - { address: \(Net.gw2), mac: "\(Net.core2MAC)" }
            \(extra)

            """.utf8).write(to: URL(fileURLWithPath: config))
        return config
    }

    /// gw2, whose MNs register with the LMA above.
    static func gatewayOfTheLMA(_ bed: Testbed) throws -> String {
        let config = bed.path("gw2.yaml")
        try Data("""
            name: dgw2
            address: \(Net.gw2)
            access: { interface: acc0 }
            core: { interface: core0, prefix: 2001:db8:ffff::/64, mac: "\(Net.core2MAC)" }
            prefix_pool: 2001:db8:2::/48
            peers:
              - { name: lma, address: 2001:db8:ffff::200 }
            lma: 2001:db8:ffff::200
            neighbors:
              - { address: 2001:db8:ffff::200, mac: "\(Net.core1MAC)" }
            control: \(bed.path("gw2.sock"))

            """.utf8).write(to: URL(fileURLWithPath: config))
        return config
    }

    /// The journal folded into the state file while the LMA runs, once it
    /// holds `state_journal_limit` bytes (1 here) and as many as the file:
    /// the first registration's line at once, later ones when they
    /// outweigh the file. The journal set aside for it goes; a crash after
    /// it finds every record in the file and what is left of the journal.
    @Test func anLMAFoldsItsJournalIntoItsFile() throws {
        let bed = try Testbed()
        let ns = bed.ns("gw1"), state = bed.path("lma.state"), journal = state + ".journal"
        let config = try Self.lmaConfiguration(bed, state: state, extra: "state_journal_limit: 1")
        let lma = try Background([ip, "netns", "exec", ns, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma"))
        try #require(lma.wait(for: "inter-operator LMA on"), "\(lma.stderr)")
        let gw2 = try Background([ip, "netns", "exec", bed.ns("gw2"), dgw, "run", "--config", try Self.gatewayOfTheLMA(bed)],
                                 output: bed.dir.appendingPathComponent("gw2"))
        try #require(gw2.wait(for: "forwarding between"), "\(gw2.stderr)")
        func size(_ file: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? -1 }
        func text(_ file: String) -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
        /// Waits until the journal is folded in as far as the rule says.
        func settled() -> Bool {
            for _ in 0..<200 {
                if !FileManager.default.fileExists(atPath: journal + ".old"), size(journal) >= 0, size(journal) < max(1, size(state)) { return true }
                usleep(10_000)
            }
            return false
        }
        func compactions() throws -> [String: Int] {
            let counters = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "counters", "--json"]).stdout
            return try #require(try lastJSON(counters)["state_file"] as? [String: Int], "\(counters)")
        }
        func attach(_ mn: String) throws {
            let r = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "attach", "--mn", mn])
            #expect(r.status == 0, "\(r.stderr)")
            var records = ""
            for _ in 0..<100 where !records.contains(mn) {
                usleep(20_000)
                records = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
            }
            #expect(records.contains(mn), "registered at the LMA: \(records)")
        }
        #expect(size(state) == 0 && size(journal) == 0, "an empty file and journal to begin with")
        try attach("02:aa:00:00:00:07")
        #expect(settled(), "file \(size(state)) bytes, journal \(size(journal))")
        #expect(text(state).contains("\"mn\":\"02:aa:00:00:00:07\"") && size(journal) == 0, "folded in at once: \(text(state))")
        #expect(try compactions() == ["compactions": 1, "compactions_failed": 0])
        #expect(lma.wait(for: "journal of \(size(state)) bytes folded in, 1 record(s) in \(size(state)) bytes"), "\(lma.stderr)")

        // 08's line (166 bytes: its prefix is 2001:db8:2:1::/64) outweighs the
        // file (07's, 164): folded in. 09's does not outweigh the two: journalled.
        for mn in ["02:aa:00:00:00:08", "02:aa:00:00:00:09"] { try attach(mn) }
        #expect(settled(), "file \(size(state)) bytes, journal \(size(journal))")
        #expect(try compactions() == ["compactions": 2, "compactions_failed": 0])
        let inFile = text(state), inJournal = text(journal)
        #expect(inFile.split(separator: "\n").map { $0.contains("02:aa:00:00:00:07") || $0.contains("02:aa:00:00:00:08") } == [true, true],
                "\(inFile)")
        #expect(inJournal.split(separator: "\n").count == 1 && inJournal.contains("\"mn\":\"02:aa:00:00:00:09\""), "\(inJournal)")

        // (Built with --sanitize=thread: the compactions' thread raced with nothing.)
        #expect(!lma.stderr.contains("ThreadSanitizer"), "\(lma.stderr)")
        // A crash now: the next start has the three records, from the file and the journal.
        kill(lma.pid, SIGKILL)
        _ = lma.stop()
        let again = try Background([ip, "netns", "exec", ns, dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma2"))
        try #require(again.wait(for: "inter-operator LMA on"), "\(again.stderr)")
        #expect(again.stderr.contains("3 record(s) from \(state)"), "\(again.stderr)")
        #expect(gw2.stop() == 0)
        #expect(again.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: journal) && text(state).split(separator: "\n").count == 3)
    }

    /// The LMA's disk fills up while it journals: a line cut short by the
    /// full disk is cut back to the last whole line, so the lines written
    /// once there is room again do not follow half a line, and the next
    /// start reads every record the journal holds (it would refuse a
    /// damaged line). The state file and its journal on a tmpfs of 64 KiB:
    /// after the first registration, a file takes every free page, so the
    /// journal's first page is all it has; the registration whose line
    /// crosses into a second page is not journalled (logged).
    @Test func anLMAJournalOnAFullDiskKeepsWholeLines() throws {
        let bed = try Testbed()
        let disk = bed.path("disk")
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        _ = try sh("mount -t tmpfs -o size=64k dgw-test-disk \(disk)")
        defer { _ = try? sh("umount -l \(bed.path("disk"))") }
        let state = disk + "/lma.state", journal = state + ".journal", filler = disk + "/filler"
        let config = try Self.lmaConfiguration(bed, state: state)
        var lma = try Background([ip, "netns", "exec", bed.ns("gw1"), dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma"))
        try #require(lma.wait(for: "inter-operator LMA on"), "\(lma.stderr)")
        let gw2 = try Background([ip, "netns", "exec", bed.ns("gw2"), dgw, "run", "--config", try Self.gatewayOfTheLMA(bed)],
                                 output: bed.dir.appendingPathComponent("gw2"))
        try #require(gw2.wait(for: "forwarding between"), "\(gw2.stderr)")
        func lines() -> [Substring] { ((try? String(contentsOfFile: journal, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false) }
        func register(_ i: Int) throws -> String {
            let mn = String(format: "02:aa:00:00:01:%02x", i)
            #expect(try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "attach", "--mn", mn]).status == 0)
            var records = ""
            for _ in 0..<100 where !records.contains(mn) {
                usleep(20_000)
                records = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
            }
            #expect(records.contains(mn), "registered at the LMA: \(records)")
            usleep(20_000)  // its journal line, written after the step
            return mn
        }
        _ = try register(0)
        #expect(lines().count == 2, "one line: \(lines())")
        // Every free page taken (dd stops at "No space left on device").
        _ = try? sh("dd if=/dev/zero of=\(filler) bs=4096 2>/dev/null")
        var registered = 1, lost: String?
        while lost == nil && registered < 40 {
            let mn = try register(registered)
            registered += 1
            if lma.stderr.contains("change(s) not written") { lost = mn }
        }
        let cut = try #require(lost, "the disk never filled: \(lines().count) lines")
        let text = (try? String(contentsOfFile: journal, encoding: .utf8)) ?? ""
        #expect(text.hasSuffix("\n") && lines().count == registered, "\(registered - 1) whole lines, nothing of \(cut)'s: \(text.suffix(300))")
        #expect(lma.stderr.contains("\(journal): 1 change(s) not written"), "\(lma.stderr)")

        // Room again: the next line follows the last whole one.
        _ = try sh("rm \(filler)")
        _ = try register(registered)
        registered += 1
        #expect(lines().count == registered && lines().dropLast().allSatisfy { $0.hasPrefix("{\"mn\":") && $0.hasSuffix("}") },
                "\(lines().suffix(3))")
        #expect(!lines().contains { $0.contains(cut) })
        // A crash now: the next start reads the journal whole, every record but the one lost.
        kill(lma.pid, SIGKILL)
        _ = lma.stop()
        lma = try Background([ip, "netns", "exec", bed.ns("gw1"), dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma2"))
        try #require(lma.wait(for: "inter-operator LMA on"), "\(lma.stderr)")
        #expect(lma.stderr.contains("\(registered - 1) record(s) from \(state)"), "\(lma.stderr)")
        #expect(gw2.stop() == 0)
        #expect(lma.stop() == 0)
    }

    /// draft-seite 4.4 across operators, live: alice's interface A (MN1) at
    /// gw1 (operator blue), interface B (MN2) at gw2 (green), the LMA in a
    /// namespace of its own on the core link, the only peer of both.
    /// `move-prefix` at gw2 moves A's prefix to B through the LMA: B
    /// configures an address in it from gw1's DLIF shown at gw2, and pings
    /// the CN from it, through gw2-LMA-gw1 both ways. Taken back at gw1,
    /// the Revocation goes through the LMA to gw2, and A pings from it
    /// again. tshark reads the signalling and the tunnels at the LMA's
    /// port of the bridge.
    @Test func aPrefixMovedAcrossOperatorsThroughALiveLMA() throws {
        let bed = try Testbed()
        let lmaAddress = "2001:db8:ffff::200", lmaMAC = "02:dd:00:00:02:00"
        try bed.addCoreNode("lma", mac: lmaMAC)
        // MN2 from RAs this time, as MN1.
        let mn2 = bed.ns("mn2")
        try sh("ip -n \(mn2) -6 route del default via fe80::1 dev mn0 && ip -n \(mn2) -6 neigh del fe80::1 dev mn0"
            + " && ip -n \(mn2) -6 addr del \(Net.h2)/64 dev mn0 && ip netns exec \(mn2) sysctl -qw net.ipv6.conf.mn0.accept_ra=1")
        let alice = "subscribers:\n  - { id: alice, macs: [\"\(Net.mn1MAC)\", \"\(Net.mn2MAC)\"] }\n"
        var configs: [String] = []
        for i in 1...2 {
            let config = bed.path("gw\(i).yaml")
            try Data(("""
                name: dgw\(i)
                address: \(i == 1 ? Net.gw1 : Net.gw2)
                access: { interface: acc0 }
                core: { interface: core0, prefix: 2001:db8:ffff::/64, mac: "\(i == 1 ? Net.core1MAC : Net.core2MAC)" }
                prefix_pool: 2001:db8:\(i)::/48
                peers:
                  - { name: lma, address: \(lmaAddress) }
                lma: \(lmaAddress)
                neighbors:
                  - { address: \(lmaAddress), mac: "\(lmaMAC)" }
                control: \(bed.path("gw\(i).sock"))

                """ + alice).utf8).write(to: URL(fileURLWithPath: config))
            configs.append(config)
        }
        let lmaConfig = bed.path("lma.yaml")
        try Data("""
            name: lma
            role: lma
            address: \(lmaAddress)
            core: { interface: core0, prefix: 2001:db8:ffff::/64, mac: "\(lmaMAC)" }
            peers:
              - { name: dgw1, address: \(Net.gw1), operator: blue }
              - { name: dgw2, address: \(Net.gw2), operator: green }
            neighbors:
              - { address: \(Net.gw1), mac: "\(Net.core1MAC)" }
              - { address: \(Net.gw2), mac: "\(Net.core2MAC)" }
            control: \(bed.path("lma.sock"))

            """.utf8).write(to: URL(fileURLWithPath: lmaConfig))
        let check = try runProcess(dgw, ["check", lmaConfig] + configs)
        #expect(check.status == 0 && check.stdout == "3 configurations agree: lma, dgw1, dgw2\n", "\(check.stdout)\(check.stderr)")

        let lma = try Background([ip, "netns", "exec", bed.ns("lma"), dgw, "run", "--config", lmaConfig], output: bed.dir.appendingPathComponent("lma"))
        try #require(lma.wait(for: "inter-operator LMA on"), "\(lma.stderr)")
        var gateways: [Background] = []
        for i in 1...2 {
            let g = try Background([ip, "netns", "exec", bed.ns("gw\(i)"), dgw, "run", "--config", configs[i - 1]],
                                   output: bed.dir.appendingPathComponent("gw\(i)"))
            gateways.append(g)
            try #require(g.wait(for: "forwarding between"), "gw\(i): \(g.stderr)")
        }
        // Each interface attaches at its gateway (its Router Solicitation) and configures an address from the RAs.
        func addresses(_ ns: String) throws -> String { try sh("ip -n \(ns) -6 addr show dev mn0 scope global") }
        func waitFor(_ address: String, in ns: String) throws -> String {
            var shown = ""
            for _ in 0..<100 {
                shown = try addresses(ns)
                if shown.contains(address + "/64"), !shown.contains("tentative") { break }
                usleep(100_000)
            }
            return shown
        }
        let a = "2001:db8:1:0:aa:ff:fe00:1", b = "2001:db8:2:0:aa:ff:fe00:2", bMoved = "2001:db8:1:0:aa:ff:fe00:2"
        for n in ["mn1", "mn2"] { try sh("ip -n \(bed.ns(n)) link set mn0 down && ip -n \(bed.ns(n)) link set mn0 up") }
        #expect(try waitFor(a, in: bed.ns("mn1")).contains(a), "A from gw1")
        #expect(try waitFor(b, in: mn2).contains(b), "B from gw2")
        // Both registered at the LMA (each gateway's MN its own).
        var records = ""
        for _ in 0..<100 where !(records.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor \(Net.gw1)") && records.contains("\(Net.mn2MAC) 2001:db8:2::/64 anchor \(Net.gw2)")) {
            usleep(50_000)
            records = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
        }
        #expect(records.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor \(Net.gw1)") && records.contains("\(Net.mn2MAC) 2001:db8:2::/64 anchor \(Net.gw2)"),
                "\(records)")

        let capture = bed.path("core.pcap")
        let tcpdump = try #require(which("tcpdump"))
        let dump = try Background([ip, "netns", "exec", bed.ns("cn"), tcpdump, "-n", "--immediate-mode", "-i", "blma", "-w", capture, "ip6"],
                                  output: bed.dir.appendingPathComponent("tcpdump"))
        try #require(dump.wait(for: "listening on"), "\(dump.stderr)")
        let move = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "move-prefix", "--mn", "alice", "--prefix", "2001:db8:1::/64",
                                        "--to", Net.mn2MAC, "--anchor", Net.gw1])
        #expect(move.status == 0, "\(move.stdout) \(move.stderr)")
        var atLMA = "", atGW1 = "", atGW2 = ""
        for _ in 0..<100 {
            atLMA = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
            atGW1 = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "bindings"]).stdout
            atGW2 = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "bindings"]).stdout
            if atLMA.contains("\(Net.mn2MAC) 2001:db8:1::/64 anchor \(Net.gw1) serving \(Net.gw2) dlif"),
               atGW1.contains("\(Net.mn2MAC) 2001:db8:1::/64 anchor self serving \(lmaAddress)"),
               atGW2.contains("\(Net.mn2MAC) 2001:db8:1::/64 anchor \(lmaAddress) serving self") { break }
            usleep(50_000)
        }
        #expect(atLMA.contains("\(Net.mn2MAC) 2001:db8:1::/64 anchor \(Net.gw1) serving \(Net.gw2) dlif"), "the LMA binds it between the tunnels: \(atLMA)")
        #expect(atGW1.contains("\(Net.mn2MAC) 2001:db8:1::/64 anchor self serving \(lmaAddress)"), "gw1 tunnels it to the LMA: \(atGW1)")
        #expect(atGW2.contains("\(Net.mn2MAC) 2001:db8:1::/64 anchor \(lmaAddress) serving self"), "gw2 tunnels it to the LMA: \(atGW2)")
        // B configures an address in A's prefix from gw1's DLIF at gw2, deprecated (new flows keep B's own).
        let shown = try waitFor(bMoved, in: mn2)
        #expect(shown.contains(bMoved + "/64") && shown.contains("deprecated"), "\(shown)")
        // One ping first: gw1 drops the first packet for the CN while it resolves the CN's address (counted, `neighbor_unresolved`).
        let first = try sh("ip netns exec \(mn2) ping -6 -n -c 1 -W 2 -I \(bMoved) \(Net.cn) || true").contains("1 received") ? 1 : 0
        let pings = try sh("ip netns exec \(mn2) ping -6 -n -c 5 -i 0.2 -W 2 -I \(bMoved) \(Net.cn) || true")
        #expect(pings.contains("5 packets transmitted, 5 received"), "\(pings)")

        // Taken back at the anchor (`move-prefix` to A at gw1): its Binding Revocation
        // goes through the LMA to gw2; the prefix is A's again, at gw1.
        let back = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "move-prefix", "--mn", "alice", "--prefix", "2001:db8:1::/64",
                                        "--to", Net.mn1MAC])
        #expect(back.status == 0, "\(back.stdout) \(back.stderr)")
        for _ in 0..<100 {
            atLMA = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
            atGW1 = try runProcess(dgw, ["ctl", "--socket", bed.path("gw1.sock"), "bindings"]).stdout
            atGW2 = try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "bindings"]).stdout
            if !atLMA.contains("2001:db8:1::/64 anchor \(Net.gw1) serving \(Net.gw2)"), !atGW2.contains("2001:db8:1::/64"),
               atGW1.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor self serving self") { break }
            usleep(50_000)
        }
        #expect(!atLMA.contains("2001:db8:1::/64 anchor \(Net.gw1) serving \(Net.gw2)"), "unbound at the LMA: \(atLMA)")
        #expect(!atGW2.contains("2001:db8:1::/64"), "gone from gw2: \(atGW2)")
        #expect(atGW1.contains("\(Net.mn1MAC) 2001:db8:1::/64 anchor self serving self"), "A's again: \(atGW1)")
        let aPings = try sh("ip netns exec \(bed.ns("mn1")) ping -6 -n -c 3 -i 0.2 -W 2 -I \(a) \(Net.cn) || true")
        #expect(aPings.contains("3 packets transmitted, 3 received"), "\(aPings)")
        usleep(200_000)
        _ = dump.stop()
        for (i, g) in gateways.enumerated() { #expect(g.stop() == 0, "gw\(i + 1): \(g.stderr)") }
        #expect(lma.stop() == 0, "\(lma.stderr)")
        // Each registered its MN, gw2 the move; the LMA relayed it, and passed gw1's
        // Revocation on to gw2; nothing refused, lost or unexpected.
        let expected: [(drops: [String: Int], signalling: [String: Int])] = [
            (["neighbor_unresolved": 1], ["pbu_sent": 1, "pba_received": 1, "pbu_received": 1, "accepted": 1, "pba_sent": 1, "revocations_sent": 1]),
            ([:], ["pbu_sent": 2, "pba_received": 2, "revoked": 1]),
            ([:], ["pbu_received": 3, "accepted": 3, "pba_sent": 3, "pbu_sent": 1, "pba_received": 1, "revocations_sent": 1, "revoked": 1]),
        ]
        for (i, out) in [gateways[0].stdout, gateways[1].stdout, lma.stdout].enumerated() {
            let summary = try lastJSON(out)
            let drops = (summary["drops"] as? [String: Int] ?? [:]).filter { $0.key != "punted_to_control_plane" }
            #expect(drops == expected[i].drops && summary["signalling"] as? [String: Int] == expected[i].signalling, "\(["gw1", "gw2", "lma"][i]): \(summary)")
        }

        // The signalling: gw2's PBU to the LMA, relayed to gw1, gw1's PBA to the LMA, passed back to gw2;
        // then gw1's Revocation Indication to the LMA, passed on to gw2 and acknowledged both ways.
        let signalling = try tsharkFields(capture, "mipv6", ["mip6.mhtype", "ipv6.src", "ipv6.dst", "mip6.hi", "mip6.ba.status", "_ws.malformed",
                                                             "mip6.bri_br.type", "mip6.bri_status"])
        #expect(signalling.map { "\($0[0]) \($0[1])>\($0[2])" } == ["5 \(Net.gw2)>\(lmaAddress)", "5 \(lmaAddress)>\(Net.gw1)",
                                                                       "6 \(Net.gw1)>\(lmaAddress)", "6 \(lmaAddress)>\(Net.gw2)",
                                                                       "16 \(Net.gw1)>\(lmaAddress)", "16 \(lmaAddress)>\(Net.gw2)",
                                                                       "16 \(lmaAddress)>\(Net.gw1)", "16 \(Net.gw2)>\(lmaAddress)"], "\(signalling)")
        #expect(signalling.map { $0[3] } == ["2", "2", "", "", "", "", "", ""] && signalling.map { $0[4] } == ["", "", "0", "0", "", "", "", ""],
                "\(signalling)")
        #expect(signalling.map { $0[6] } == ["", "", "", "", "1", "1", "2", "2"] && signalling.map { $0[7] } == ["", "", "", "", "", "", "0", "0"],
                "indications, then acknowledgements with status 0: \(signalling)")
        #expect(signalling.allSatisfy { $0[5].isEmpty }, "\(signalling)")
        // The pings, each leg in its tunnel to or from the LMA: the outer header, then the inner.
        let echoes = try tsharkFields(capture, "(icmpv6.type == 128 || icmpv6.type == 129) && ipv6.addr == \(lmaAddress)",
                                      ["icmpv6.type", "ipv6.src", "ipv6.dst"])
        let legs = Set(echoes.map { "\($0[0]) \($0[1]) \($0[2])" })
        #expect(legs == ["128 \(Net.gw2),\(bMoved) \(lmaAddress),\(Net.cn)", "128 \(lmaAddress),\(bMoved) \(Net.gw1),\(Net.cn)",
                         "129 \(Net.gw1),\(Net.cn) \(lmaAddress),\(bMoved)", "129 \(lmaAddress),\(Net.cn) \(Net.gw2),\(bMoved)"],
                "\(legs)")
        #expect(echoes.count == 2 * (6 + 5 + first), "6 requests and their replies, two tunnels each: \(echoes.count)")
    }

    /// `state_sync`: each step's journal lines flushed to the disk, seen
    /// as the LMA's `fsync` calls (strace): the file and its directory when
    /// written at start, then one per registration journalled; none for
    /// the journal without it.
    @Test(arguments: [true, false]) func anLMAFlushesItsJournalWhenAsked(sync: Bool) throws {
        let bed = try Testbed()
        let config = try Self.lmaConfiguration(bed, state: bed.path("lma.state"), extra: sync ? "state_sync: true" : "")
        let strace = try #require(which("strace"), "strace is not installed")
        let trace = bed.path("lma.strace")
        // (Killed with strace, should the test stop early: strace would leave it running.)
        let lma = try Background([ip, "netns", "exec", bed.ns("gw1"), strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", trace,
                                  "setpriv", "--pdeathsig", "KILL", dgw, "run", "--config", config], output: bed.dir.appendingPathComponent("lma"))
        try #require(lma.wait(for: "inter-operator LMA on"), "\(lma.stderr)")
        let gw2 = try Background([ip, "netns", "exec", bed.ns("gw2"), dgw, "run", "--config", try Self.gatewayOfTheLMA(bed)],
                                 output: bed.dir.appendingPathComponent("gw2"))
        try #require(gw2.wait(for: "forwarding between"), "\(gw2.stderr)")
        func flushes() -> Int { ((try? String(contentsOfFile: trace, encoding: .utf8)) ?? "").components(separatedBy: "fsync(").count - 1 }
        #expect(flushes() == 2, "the file written at start, and its directory")
        for (i, mn) in ["02:aa:00:00:00:07", "02:aa:00:00:00:08"].enumerated() {
            #expect(try runProcess(dgw, ["ctl", "--socket", bed.path("gw2.sock"), "attach", "--mn", mn]).status == 0)
            var records = ""
            for _ in 0..<100 where !records.contains(mn) {
                usleep(20_000)
                records = try runProcess(dgw, ["ctl", "--socket", bed.path("lma.sock"), "bindings"]).stdout
            }
            usleep(50_000)
            #expect(records.contains(mn) && flushes() == 2 + (sync ? i + 1 : 0), "\(flushes()) fsync calls after \(mn)'s registration")
        }
        #expect(gw2.stop() == 0)
        // Stopped itself (strace, stopped, would leave it running untraced): strace then exits with its status.
        let traced = try sh("pgrep -P \(lma.pid)").split(separator: "\n").compactMap { Int32($0) }
        #expect(traced.count == 1, "\(traced)")
        for pid in traced { kill(pid, SIGTERM) }
        #expect(lma.stop() == 0, "\(lma.stderr)")
    }
}
