// The handover scenario of issue 7 with real Linux hosts, in network
// namespaces that it makes and always removes:
//
//                     core link (bridge br0 in the CN's namespace)
//        ┌──────────────────┬──────────────────┬─────────────────┐
//   core0 [gw1] acc0   core0 [gw2] acc0   core0 [gw3] acc0      CN 2001:db8:ffff::10, CMD or LMA ::100
//               │                  │                  │          (routes each pool to its
//             cell1              cell2              cell3         gateway, forwards: the
//          ┌────┴────┐                                            core's router)
//        LIPA host   MN  (its one port moved from cell to cell: the "air" namespace)
//
// Three `dgw run`, a CMD (`dgw run`, role cmd, relay or locator; or none:
// the attach trigger then names the former anchors) or an inter-operator
// LMA (role lma: each gateway an operator of its own, only the LMA their
// peer, every tunnel through it), a correspondent, a host on D-GW1's local network
// 2001:db8:aaaa::/48 (bound statically on D-GW1's access link), and a
// mobile node: a plain Linux host, default settings but
// accept_ra_rt_info_max_plen=64. A handover re-masters the MN's port to
// another cell's bridge and sends that gateway the attach trigger, as an
// access point's association would; the MN's own stack does the rest.

import DGWControl
import DGWPorts
import DGWTestSupport
import DGWWire
import Foundation

enum Plan {
    static func gateway(_ i: Int) -> String { "2001:db8:ffff::\(i)" }
    static func pool(_ i: Int) -> IPv6Prefix { IPv6Prefix("2001:db8:\(i)::/48")! }
    static let cn = "2001:db8:ffff::10"
    static let cmd = "2001:db8:ffff::100"
    static let mnMAC = "02:aa:00:00:00:01", lipaMAC = "02:bb:00:00:00:01"
    static let lipaNetwork = IPv6Prefix("2001:db8:aaaa::/48")!
    static let lipaPrefix = "2001:db8:aaaa::/64"
    /// The LMA's static binding: an MN of dgw2's served at dgw3 (no host; its state only).
    static let relayedMAC = "02:aa:00:00:00:77", relayedPrefix = "2001:db8:2:77::/64"
    static let tcpPort = 5001, probePort = 9000
    static let namespaces = ["gw1", "gw2", "gw3", "cn", "mn", "lipa", "air", "cmd"]
}

/// What the run found: each check, each handover's numbers, the gateways' state.
struct Findings {
    struct Handover {
        var name: String
        var to: Int
        /// Monotonic ns: port moved, trigger answered, old anchors bound to the new gateway.
        var moved: UInt64 = 0, triggered: UInt64 = 0, bound: UInt64 = 0
        /// Monotonic ns: the new gateway shows a DLIF for each former anchor (their RA bursts start).
        var shown: UInt64 = 0
        /// From the core capture: first PBU after the move to the last PBA of this handover (ms).
        var signallingMs: Double?
        var interruptionMs: Double?
        var probesLost = 0
        var newConnectionSource = ""
    }
    var checks: [(ok: Bool, what: String)] = []
    /// The CMD's mode, nil: none.
    var cmd: String?
    var handovers: [Handover] = []
    var gateways: [(name: String, bindings: String, counters: String)] = []
    var tcp: String = ""
    var probesSent = 0, probesReceived = 0
    /// The MN's address from each gateway's pool, and the LIPA host's.
    var addresses: [(label: String, address: IPv6Address)] = []

    mutating func check(_ ok: Bool, _ what: String) { checks.append((ok, what)) }
    var failures: [String] { checks.filter { !$0.ok }.map(\.what) }
}

final class Scenario {
    let prefix = "dgwe\(getpid() % 100_000)"
    let dir: String
    let dgw: String
    let tool: String
    /// "relay" or "locator" (RFC 8885 CMD), "lma" (an inter-operator LMA), nil: neither.
    let cmdMode: String?
    var isLMA: Bool { cmdMode == "lma" }
    /// No attach trigger at a move: the new gateway attaches the MN on its
    /// first frame to its old router (a DLIF of the gateway it left), and
    /// the CMD (or LMA) names its former anchors.
    let attachOnTraffic: Bool
    /// The central node, for the report.
    var central: String { isLMA ? "LMA" : "CMD (\(cmdMode ?? "none"))" }
    var findings = Findings()
    private var started: [BackgroundProcess] = []
    /// Realtime minus monotonic (ns), to place capture timestamps.
    let clockOffset: Int64

    init(dgw: String, dir: String, cmdMode: String?, attachOnTraffic: Bool = false) {
        self.dgw = dgw
        self.dir = dir
        self.cmdMode = cmdMode
        self.attachOnTraffic = attachOnTraffic
        findings.cmd = cmdMode
        tool = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        let mono = monotonicNanoseconds()
        clockOffset = Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(mono)
    }

    func ns(_ name: String) -> String { "\(prefix)-\(name)" }
    func socket(_ i: Int) -> String { "\(dir)/gw\(i).sock" }
    var cmdSocket: String { "\(dir)/cmd.sock" }
    func inNamespace(_ name: String, _ arguments: [String]) -> [String] { ["ip", "netns", "exec", ns(name)] + arguments }

    func start(_ name: String, in namespace: String, _ arguments: [String]) throws -> BackgroundProcess {
        let b = try background(name, inNamespace(namespace, arguments), in: dir)
        started.append(b)
        return b
    }

    // MARK: Topology

    func build() throws {
        for n in Plan.namespaces { try sh("ip netns add \(ns(n)) && ip -n \(ns(n)) link set lo up") }
        // The "air" only carries frames: no IPv6 of its own (its bridges would solicit routers and attach).
        try sh("ip netns exec \(ns("air")) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        try sh("ip -n \(ns("cn")) link add br0 type bridge mcast_snooping 0 && ip -n \(ns("cn")) link set br0 up")
        for i in 1...3 {
            let gw = ns("gw\(i)")
            try sh("ip -n \(ns("air")) link add cell\(i) type bridge mcast_snooping 0 && ip -n \(ns("air")) link set cell\(i) up")
            try sh("ip link add acc0 netns \(gw) type veth peer name a\(i) netns \(ns("air"))")
            try sh("ip link add core0 netns \(gw) type veth peer name c\(i) netns \(ns("cn"))")
            try sh("ip -n \(ns("air")) link set a\(i) master cell\(i) up && ip -n \(gw) link set acc0 up && ip -n \(gw) link set core0 up")
            try sh("ip -n \(ns("cn")) link set c\(i) master br0 up")
        }
        // The CMD: on the core only.
        try sh("ip link add core0 netns \(ns("cmd")) type veth peer name cm netns \(ns("cn"))")
        try sh("ip -n \(ns("cn")) link set cm master br0 up && ip -n \(ns("cmd")) link set core0 up")
        // The MN: defaults, but routes from RIOs up to /64 (RFC 4191).
        try sh("ip link add mn0 netns \(ns("mn")) type veth peer name m0 netns \(ns("air"))")
        try sh("ip -n \(ns("mn")) link set mn0 address \(Plan.mnMAC)")
        try sh("ip netns exec \(ns("mn")) sysctl -qw net.ipv6.conf.mn0.accept_ra_rt_info_max_plen=64")
        try sh("ip -n \(ns("air")) link set m0 master cell1 up && ip -n \(ns("mn")) link set mn0 up")
        // The local network's host, on D-GW1's access link.
        try sh("ip link add eth0 netns \(ns("lipa")) type veth peer name l0 netns \(ns("air"))")
        try sh("ip -n \(ns("lipa")) link set eth0 address \(Plan.lipaMAC)")
        try sh("ip -n \(ns("air")) link set l0 master cell1 up && ip -n \(ns("lipa")) link set eth0 up")
        // The CN, the core's router: each pool through its gateway.
        try sh("ip -n \(ns("cn")) -6 addr add \(Plan.cn)/64 dev br0 nodad")
        try sh("ip netns exec \(ns("cn")) sysctl -qw net.ipv6.conf.all.forwarding=1")
        for i in 1...3 { try sh("ip -n \(ns("cn")) -6 route add \(Plan.pool(i)) via \(Plan.gateway(i)) dev br0") }
        // The hosts keep their default offloads: veth hands the gateways'
        // packet sockets TCP and UDP whose checksum was left to a NIC that
        // does not exist, and 64 KB TCP segmentation-offload super-frames;
        // the gateways complete the checksums and cut the super-frames into
        // packets, as the NIC would have.
        let end = Date().addingTimeInterval(5)
        while Date() < end, !(try sh("ip -n \(ns("cn")) -6 addr show dev br0 tentative")).isEmpty { usleep(50_000) }
    }

    func config(_ i: Int) -> String {
        // Across operators, the LMA is the only peer.
        let peers = isLMA ? "  - { name: lma, address: \(Plan.cmd) }"
            : (1...3).filter { $0 != i }.map { "  - { name: dgw\($0), address: \(Plan.gateway($0)) }" }.joined(separator: "\n")
        var yaml = """
            name: dgw\(i)
            address: \(Plan.gateway(i))
            access: { interface: acc0 }
            core: { interface: core0, prefix: 2001:db8:ffff::/64, gateway: \(Plan.cn) }
            prefix_pool: \(Plan.pool(i))
            peers:
            \(peers)
            control: \(socket(i))
            ra: { interval_s: 3 }

            """
        if isLMA {
            yaml += "lma: \(Plan.cmd)\n"
        } else if let cmdMode {
            yaml += "cmd: \(Plan.cmd)\ncmd_mode: \(cmdMode)\n"
        }
        if i == 1 {
            yaml += """
                local_networks:
                  - { prefix: \(Plan.lipaNetwork), via: access }
                static_bindings:
                  - { mn: "\(Plan.lipaMAC)", prefix: \(Plan.lipaPrefix), anchor: self, serving: self }

                """
        }
        return yaml
    }

    /// The CMD's (or the LMA's) configuration: the three gateways are its peers.
    func cmdConfig(mode: String) -> String {
        """
        name: \(isLMA ? "lma" : "cmd")
        \(isLMA ? "role: lma" : "role: cmd\ncmd_mode: \(mode)")
        address: \(Plan.cmd)
        core: { interface: core0, prefix: 2001:db8:ffff::/64, gateway: \(Plan.cn) }
        peers:
        \((1...3).map { "  - { name: dgw\($0), address: \(Plan.gateway($0)) }" }.joined(separator: "\n"))
        control: \(cmdSocket)
        \(isLMA ? "static_bindings:\n  - { mn: \"\(Plan.relayedMAC)\", prefix: \(Plan.relayedPrefix), anchor: \(Plan.gateway(2)), serving: \(Plan.gateway(3)) }\n" : "")
        """
    }

    /// Removes every namespace (and with them interfaces and bridges) and stops what still runs.
    func remove() {
        for b in started where b.isRunning { b.stop(seconds: 3) }
        for n in Plan.namespaces { _ = try? sh("ip netns del \(ns(n)) 2>/dev/null || true") }
    }

    // MARK: Looking at the hosts

    struct HostAddress {
        var address: IPv6Address
        /// Its preferred lifetime has not run out.
        var preferred: Bool
        /// The kernel's IFA_F_DEPRECATED, which source address selection
        /// reads: Linux clears it on each RA for the prefix, deprecating or
        /// not, and sets it again only when its address worker runs (which
        /// waits for the RTNL lock), so for a while an address whose
        /// lifetime says deprecated can still be chosen.
        var deprecated: Bool
        var tentative: Bool

        var text: String { "\(address)" + (deprecated ? " deprecated" : preferred ? "" : " preferred 0 (not yet flagged deprecated)") }
    }

    func addresses(_ namespace: String, _ device: String) throws -> [HostAddress] {
        let json = try sh("ip -n \(ns(namespace)) -j -6 addr show dev \(device) scope global")
        guard let links = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return [] }
        return links.flatMap { ($0["addr_info"] as? [[String: Any]]) ?? [] }.compactMap { a in
            guard let text = a["local"] as? String, let address = IPv6Address(text) else { return nil }
            return HostAddress(address: address, preferred: (a["preferred_life_time"] as? Int ?? 0) > 0,
                               deprecated: a["deprecated"] as? Bool == true, tentative: a["tentative"] != nil)
        }
    }

    /// Waits for a usable (past DAD) address of the host in `prefix`.
    func waitForAddress(_ namespace: String, _ device: String, in prefix: IPv6Prefix, seconds: Double = 10) throws -> IPv6Address {
        let end = Date().addingTimeInterval(seconds)
        var seen: [HostAddress] = []
        while Date() < end {
            seen = try addresses(namespace, device)
            if let a = seen.first(where: { prefix.contains($0.address) && !$0.tentative }) { return a.address }
            usleep(20_000)
        }
        throw ShellError(description: "\(namespace) got no address in \(prefix) in \(Int(seconds)) s (has \(seen.map { "\($0.address)" }))")
    }

    /// The router the MN's kernel picks for `destination`.
    func route(to destination: IPv6Address) throws -> String {
        let json = try sh("ip -n \(ns("mn")) -j -6 route get \(destination)")
        let routes = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        return routes?.first?["gateway"] as? String ?? "(direct)"
    }

    func ping(from namespace: String, _ destination: IPv6Address, count: Int = 3) -> Bool {
        (try? sh("ip netns exec \(ns(namespace)) ping -6 -n -q -c \(count) -i 0.2 -W 2 \(destination)")) != nil
    }

    func bindings(_ i: Int) -> String { (try? control(socket(i), "bindings")) ?? "" }
    func lmaBindings() -> String { (try? control(cmdSocket, "bindings")) ?? "" }

    /// Polls until `condition` holds (true) or `seconds` pass (false).
    func poll(seconds: Double, every micros: UInt32 = 2_000, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            usleep(micros)
        }
        return condition()
    }

    // MARK: The run

    func run() throws {
        try build()
        var gateways: [BackgroundProcess] = []
        var database: BackgroundProcess?
        // The domain's files, checked together first (`dgw check`).
        var files: [String] = []
        if let cmdMode {
            files.append("\(dir)/cmd.yaml")
            try Data(cmdConfig(mode: cmdMode).utf8).write(to: URL(fileURLWithPath: files[0]))
        }
        for i in 1...3 {
            files.append("\(dir)/gw\(i).yaml")
            try Data(config(i).utf8).write(to: URL(fileURLWithPath: files.last!))
        }
        let check = try sh("\(dgw) check \(files.joined(separator: " ")) 2>&1; echo \"status $?\"")
        findings.check(check.hasSuffix("agree: \(cmdMode == nil ? "" : isLMA ? "lma, " : "cmd, ")dgw1, dgw2, dgw3\nstatus 0\n"),
                       "dgw check: the domain's \(files.count) configurations agree (\(check.split(separator: "\n").first ?? ""))")
        if cmdMode != nil {
            let path = files[0]
            let c = try start("cmd", in: "cmd", [dgw, "run", "--config", path])
            guard c.wait(for: isLMA ? "inter-operator LMA" : "central mobility database") else {
                throw ShellError(description: "the \(central) did not start: \(c.stderr)")
            }
            database = c
        }
        for i in 1...3 {
            let g = try start("gw\(i)", in: "gw\(i)", [dgw, "run", "--config", "\(dir)/gw\(i).yaml"])
            guard g.wait(for: "forwarding between") else { throw ShellError(description: "dgw\(i) did not start: \(g.stderr)") }
            gateways.append(g)
        }
        let tcpdump = try sh("command -v tcpdump").trimmingCharacters(in: .whitespacesAndNewlines)
        let mnCapture = try start("mn-capture", in: "mn", [tcpdump, "-n", "--immediate-mode", "-i", "mn0", "-w", "\(dir)/mn.pcap", "ip6"])
        let coreCapture = try start("core-capture", in: "cn", [tcpdump, "-n", "--immediate-mode", "-i", "br0", "-w", "\(dir)/core.pcap", "ip6"])
        for c in [mnCapture, coreCapture] {
            guard c.wait(for: "listening on") else { throw ShellError(description: "tcpdump did not start: \(c.stderr)") }
        }
        let sink = try start("tcp-sink", in: "cn", [tool, "tcp-sink", "--port", "\(Plan.tcpPort)", "--out", "\(dir)/tcp.jsonl"])
        let receiver = try start("probe-recv", in: "mn", [tool, "probe-recv", "--port", "\(Plan.probePort)", "--out", "\(dir)/probes.txt"])

        // Attach at D-GW1: SLAAC from its DLIF's RA burst.
        _ = try control(socket(1), "attach \(Plan.mnMAC)")
        let a1 = try waitForAddress("mn", "mn0", in: Plan.pool(1))
        let lipaHost = try waitForAddress("lipa", "eth0", in: Plan.lipaNetwork)
        findings.check(true, "MN attached at dgw1 with \(a1) by SLAAC; the LIPA host has \(lipaHost)")
        findings.addresses = [("MN @dgw1 \(a1)", a1), ("LIPA host \(lipaHost)", lipaHost)]
        findings.check(ping(from: "mn", lipaHost), "the LIPA host answers the MN at dgw1")
        let lipaRouter = try route(to: lipaHost)
        findings.check(lipaRouter.hasPrefix("fe80::"), "the MN reaches the local network through dgw1's DLIF (\(lipaRouter), from the RIO)")

        let sender = try start("probe-send", in: "cn", [tool, "probe-send", "--to", "\(a1)", "--port", "\(Plan.probePort)", "--rate", "1000"])
        let stream = try start("tcp-stream", in: "mn", [tool, "tcp-source", "--to", Plan.cn, "--port", "\(Plan.tcpPort)"])
        guard stream.wait(for: "local ") else { throw ShellError(description: "the TCP stream did not connect: \(stream.stderr)") }
        findings.check(stream.stdout.contains("local \(a1)\n"), "the TCP stream starts from \(a1)")
        usleep(1_000_000)

        var anchors: [Int] = [1]
        for (name, to) in [("dgw1 -> dgw2", 2), ("dgw2 -> dgw3", 3), ("dgw3 -> dgw1 (return)", 1)] {
            let previous = anchors.filter { $0 != to }
            var h = Findings.Handover(name: name, to: to)
            h.moved = monotonicNanoseconds()
            try sh("ip -n \(ns("air")) link set m0 master cell\(to)")
            // With a CMD (an LMA), the gateway learns the former anchors from it.
            // On traffic: no trigger; the MN's uplink (its TCP stream) to the
            // router it had does it.
            if !attachOnTraffic {
                _ = try control(socket(to), (["attach", Plan.mnMAC] + (cmdMode == nil ? previous.map(Plan.gateway) : [])).joined(separator: " "))
            }
            h.triggered = monotonicNanoseconds()
            // Every former anchor (and, on the return, D-GW1 itself) has the
            // MN's prefix there bound to `to` (through an LMA: to the LMA,
            // which binds it on to `to`).
            let bound = poll(seconds: 5) {
                previous.allSatisfy { p in
                    isLMA ? bindings(p).contains("\(Plan.mnMAC) 2001:db8:\(p)::/64 anchor self serving \(Plan.cmd)")
                        && lmaBindings().contains("\(Plan.mnMAC) 2001:db8:\(p)::/64 anchor \(Plan.gateway(p)) serving \(Plan.gateway(to)) dlif")
                        : bindings(p).contains("\(Plan.mnMAC) 2001:db8:\(p)::/64 anchor self serving \(Plan.gateway(to))")
                }
                    && (!anchors.contains(to) || bindings(to).contains("\(Plan.mnMAC) 2001:db8:\(to)::/64 anchor self serving self"))
            }
            h.bound = monotonicNanoseconds()
            if attachOnTraffic {
                let counters = (try? control(socket(to), "counters json")) ?? ""
                let control = ((try? JSONSerialization.jsonObject(with: Data(counters.utf8))) as? [String: Any])?["control"] as? [String: Int] ?? [:]
                let onTraffic = control["attached_on_traffic"] ?? 0
                findings.check(onTraffic >= 1, "\(name): dgw\(to) attached the MN on its traffic, with no trigger (attached_on_traffic \(onTraffic))")
            }
            findings.check(bound, "\(name): the former anchors \(previous.map { "dgw\($0)" }) tunnel the MN's prefixes to dgw\(to)\(isLMA ? " through the LMA" : "")")
            // The anchors (or the LMA) bind before their PBAs reach `to`,
            // which shows a DLIF for each former anchor as its PBA arrives
            // and starts that DLIF's burst of RAs then.
            let dlifsShown = poll(seconds: 5) {
                let rows = bindings(to).split(separator: "\n")
                return previous.allSatisfy { p in
                    rows.contains { $0.hasPrefix("\(Plan.mnMAC) 2001:db8:\(p)::/64 anchor ") && $0.contains(" serving self dlif ") }
                }
            }
            h.shown = monotonicNanoseconds()
            findings.check(dlifsShown, "\(name): dgw\(to) shows the MN a DLIF for each of \(previous.map { "dgw\($0)" })")
            let current = try waitForAddress("mn", "mn0", in: Plan.pool(to))
            if !anchors.contains(to) { findings.addresses.insert(("MN @dgw\(to) \(current)", current), at: findings.addresses.count - 1) }
            // What the gateways advertised: the lifetimes. What source
            // selection will read: the kernel's flags as well.
            func advertised(flags: Bool) -> Bool {
                guard let all = try? addresses("mn", "mn0") else { return false }
                return all.allSatisfy { a in
                    Plan.pool(to).contains(a.address) ? a.preferred && (!flags || !a.deprecated) : !a.preferred && (!flags || a.deprecated)
                }
                    && previous.allSatisfy { p in all.contains { Plan.pool(p).contains($0.address) } }
            }
            func settled() -> Bool { advertised(flags: true) }
            let ok = poll(seconds: 5, every: 20_000) { advertised(flags: false) }
            let shown = (try? addresses("mn", "mn0")) ?? []
            findings.check(ok, "\(name): the MN prefers \(current); the addresses of \(previous.map { "dgw\($0)" }) show as deprecated "
                           + "(\(shown.map(\.text).joined(separator: ", ")))")
            // Linux clears an address's deprecated flag on each RA that
            // deprecates it, until its address worker runs (held up while
            // the RTNL lock is busy, as when other tests delete namespaces);
            // a connection opened then may take the old prefix. The gateway
            // repeats deprecated prefixes only in the burst of a DLIF just
            // shown, so the new connection waits for the bursts of the
            // DLIFs shown in this handover to end, and the flags to settle.
            let burst = Double(AccessRouter.initialAdvertisements - 1) * Double(AccessRouter.initialInterval) / 1e9
            let burstOver = Double(h.shown) / 1e9 + burst + 0.3
            let now = Double(monotonicNanoseconds()) / 1e9
            if now < burstOver { usleep(UInt32((burstOver - now) * 1e6)) }
            // Settled at every look for half a second, flags included: an
            // address worker held up past the burst shows as a flag not yet
            // set again (the lifetimes alone looked settled then, and a
            // connection once went from the deprecated prefix).
            var settledSince: UInt64?
            let waitStarted = monotonicNanoseconds()
            let steady = poll(seconds: 15, every: 20_000) {
                guard settled() else { settledSince = nil; return false }
                let now = monotonicNanoseconds()
                if settledSince == nil { settledSince = now }
                return now - settledSince! >= 500_000_000
            }
            // A new connection uses the new gateway's prefix.
            let opened = monotonicNanoseconds()
            let fresh = try start("tcp-new-\(to)-\(anchors.count)", in: "mn",
                                  [tool, "tcp-source", "--to", Plan.cn, "--port", "\(Plan.tcpPort)", "--bytes", "200000"])
            let finished = poll(seconds: 10, every: 10_000) { !fresh.isRunning }
            let source = fresh.stdout.split(separator: "\n").first { $0.hasPrefix("local ") }.map { String($0.dropFirst(6)) } ?? ""
            h.newConnectionSource = source
            let fromNewPrefix = finished && fresh.status == 0 && fresh.stdout.contains("sent 200000") && IPv6Address(source).map(Plan.pool(to).contains) == true
            // When it is not, what the MN's stack had to choose from, and its routers, for the record.
            let state = fromNewPrefix ? "" : "; addresses \(steady ? "settled" : "not settled")"
                + String(format: " when opened, %.2f s after the bursts", Double(opened - waitStarted) / 1e9)
                + String(format: " (DLIFs shown %.0f ms after the anchors bound)", Double(Int64(h.shown) - Int64(h.bound)) / 1e6)
                + "; MN: " + ((try? addresses("mn", "mn0")) ?? []).map(\.text).joined(separator: ", ")
                + "; routers: " + ((try? sh("ip -n \(ns("mn")) -6 route show default")) ?? "").split(separator: "\n").joined(separator: " | ")
            findings.check(fromNewPrefix, "\(name): a new TCP connection goes from \(source.isEmpty ? "nowhere" : source) (\(fresh.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))\(state)")
            // The local network of D-GW1 through the same router (DLIF) as at D-GW1.
            let answered = ping(from: "mn", lipaHost)
            // When it does not, the MN's route and source for it, for the record.
            let path = answered ? "" : " (" + ((try? sh("ip -n \(ns("mn")) -6 route get \(lipaHost)")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) + ")"
            findings.check(answered, "\(name): the LIPA host answers the MN\(path)")
            let router = try route(to: lipaHost)
            findings.check(router == lipaRouter, "\(name): the local network still goes through dgw1's DLIF (\(router))")
            if !anchors.contains(to) { anchors.append(to) }
            findings.handovers.append(h)
            usleep(1_000_000)
        }

        // Back at D-GW1: its prefix preferred again, no tunnel for it, none left elsewhere.
        let final = (try? addresses("mn", "mn0")) ?? []
        findings.check(final.contains { $0.address == a1 && $0.preferred }, "back at dgw1, \(a1) is preferred again")
        findings.check(bindings(1).contains("\(Plan.mnMAC) 2001:db8:1::/64 anchor self serving self"), "dgw1 serves its own prefix natively again")
        for i in [2, 3] {
            let b = bindings(i)
            findings.check(!b.contains("2001:db8:1::/64") && !b.contains("local-network"),
                           "dgw\(i) no longer tunnels dgw1's prefix nor routes its local network")
        }
        if let cmdMode {
            // The CMD knows the three prefixes of the MN and that dgw1 serves it.
            let known = (try? control(cmdSocket, "bindings")) ?? ""
            findings.check((1...3).allSatisfy { known.contains("\(Plan.mnMAC) 2001:db8:\($0)::/64 anchor \(Plan.gateway($0)) serving \(Plan.gateway(1))") },
                           "the \(central) knows the MN's three anchors and that dgw1 serves it")
            if isLMA {
                // Its static binding, in its data plane and in its records from the start.
                let relayed = "\(Plan.relayedMAC) \(Plan.relayedPrefix) anchor \(Plan.gateway(2)) serving \(Plan.gateway(3))"
                findings.check(known.contains(relayed + " dlif") && known.contains(relayed + "\n"),
                               "the LMA's static binding is bound and in its records")
            }
            // It has no access link: an attach trigger there is refused, not queued.
            var refusal = ""
            do { refusal = try control(cmdSocket, "attach \(Plan.mnMAC)") } catch { refusal = "\(error)" }
            findings.check(refusal.contains("attach refused: \(isLMA ? "an LMA" : "a CMD") serves no MN"),
                           "the \(central) refuses an attach trigger (\(refusal.trimmingCharacters(in: .whitespacesAndNewlines)))")
            let counters = (try? control(cmdSocket, "counters json")) ?? ""
            findings.gateways.append((isLMA ? "lma" : "cmd", known, counters))
            if isLMA {
                // The traffic between the operators crossed the LMA, both ways.
                let actions = ((try? JSONSerialization.jsonObject(with: Data(counters.utf8))) as? [String: Any])?["actions"] as? [String: Int] ?? [:]
                findings.check((actions["uplink_relayed"] ?? 0) > 0 && (actions["downlink_relayed"] ?? 0) > 0,
                               "the LMA relayed traffic both ways (\(actions["uplink_relayed"] ?? 0) up, \(actions["downlink_relayed"] ?? 0) down)")
            }
        }

        // Stop the traffic; read what it saw.
        findings.check(stream.stop() == 0, "the TCP stream ends without error (\(stream.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
        let sentBytes = stream.stdout.split(separator: "\n").first { $0.hasPrefix("sent ") }.flatMap { Int($0.dropFirst(5)) } ?? -1
        sender.stop()
        findings.probesSent = sender.stdout.split(separator: "\n").first { $0.hasPrefix("sent ") }.flatMap { Int($0.dropFirst(5)) } ?? 0
        receiver.stop()
        sink.stop()
        let connections = ((try? String(contentsOfFile: "\(dir)/tcp.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let long = connections.first { ($0["peer"] as? String).flatMap(IPv6Address.init) == a1 && ($0["bytes"] as? Int ?? 0) == sentBytes }
        findings.tcp = "the stream sent \(sentBytes) bytes; the CN saw \(connections.count) connections: "
            + connections.map { "\($0["peer"] ?? "?") \($0["bytes"] ?? 0) B \($0["end"] ?? "?")\(($0["bad_at"] as? Int ?? -1) >= 0 ? " CORRUPT" : "")" }
            .joined(separator: ", ")
        findings.check(long != nil && long?["bad_at"] as? Int == -1 && long?["end"] as? String == "eof",
                       "the TCP connection from \(a1) survived the three handovers: every byte received, verified, closed cleanly")
        findings.check(connections.allSatisfy { $0["end"] as? String == "eof" && $0["bad_at"] as? Int == -1 }, "no TCP reset and no corrupted byte")

        for c in [mnCapture, coreCapture] { c.stop() }
        for i in 1...3 {
            let counters = (try? control(socket(i), "counters json")) ?? ""
            findings.gateways.append(("dgw\(i)", bindings(i), counters))
        }
        var segmented = 0, segments = 0, completed = 0
        for (i, g) in gateways.enumerated() {
            let status = g.stop()
            findings.check(status == 0, "dgw\(i + 1) stops cleanly on SIGTERM (status \(status))")
            let summary = (try? JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as? [String: Any]) ?? [:]
            segmented += summary["superframes_segmented"] as? Int ?? 0
            segments += summary["segments_from_superframes"] as? Int ?? 0
            completed += summary["checksums_completed"] as? Int ?? 0
        }
        // The hosts' offloads at work: without them the checks above prove less.
        findings.check(segmented > 0 && segments > segmented && completed > 0,
                       "the gateways cut \(segmented) segmentation-offload super-frames into \(segments) packets and completed \(completed) checksums")
        if let database {
            let status = database.stop()
            findings.check(status == 0, "the \(central) stops cleanly on SIGTERM (status \(status))")
        }
        analyseProbes()
        analyseSignalling()
    }

    // MARK: Analysis

    /// Per handover: the longest stretch of probes (to the MN's first
    /// address) sent without one arriving, from half a second before the
    /// move to three seconds after, and the probes lost there.
    func analyseProbes() {
        let lines = ((try? String(contentsOfFile: "\(dir)/probes.txt", encoding: .utf8)) ?? "").split(separator: "\n")
        let probes = lines.compactMap { l -> (seq: UInt64, sent: UInt64)? in
            let f = l.split(separator: " ")
            guard f.count == 3, let s = UInt64(f[0]), let t = UInt64(f[1]) else { return nil }
            return (s, t)
        }.sorted { $0.seq < $1.seq }
        findings.probesReceived = probes.count
        for k in findings.handovers.indices {
            let h = findings.handovers[k]
            let from = h.moved - 500_000_000, to = h.moved + 3_000_000_000
            let window = probes.filter { $0.sent >= from && $0.sent < to }
            var gap: UInt64 = 0, lost = 0
            for (a, b) in zip(window, window.dropFirst()) {
                gap = max(gap, b.sent - a.sent)
                lost += Int(b.seq - a.seq - 1)
            }
            let resumed = window.contains { $0.sent > h.bound }
            findings.handovers[k].interruptionMs = resumed ? max(0, Double(gap) / 1e6 - 1) : nil
            findings.handovers[k].probesLost = lost
            findings.check(resumed, "\(h.name): the 1 kHz probe to the MN's first address resumes")
        }
    }

    /// Per handover, from the core capture: the first PBU after the move to the last PBA within two seconds.
    func analyseSignalling() {
        guard let reader = try? PcapFileReader(path: "\(dir)/core.pcap") else { return }
        var messages: [(time: UInt64, type: UInt8)] = []
        while let r = try? reader.next() {
            let d = r.data
            guard d.count > 14 + 40 + 3, d[12] == 0x86, d[13] == 0xDD, d[14 + 6] == IPProtocol.mobility else { continue }
            let real = Int64(r.seconds) * 1_000_000_000 + Int64(r.nanoseconds)
            messages.append((UInt64(real - clockOffset), d[14 + 40 + 2]))
        }
        for k in findings.handovers.indices {
            let h = findings.handovers[k]
            let mine = messages.filter { $0.time >= h.moved && $0.time < h.moved + 2_000_000_000 }
            if let pbu = mine.first(where: { $0.type == 5 }), let pba = mine.last(where: { $0.type == 6 }), pba.time >= pbu.time {
                findings.handovers[k].signallingMs = Double(pba.time - h.moved) / 1e6
            }
        }
        if let tshark = try? sh("command -v tshark").trimmingCharacters(in: .whitespacesAndNewlines), !tshark.isEmpty {
            for capture in ["core.pcap", "mn.pcap"] {
                let bad = (try? sh("\(tshark) -r \(dir)/\(capture) -Y '_ws.malformed || _ws.expert.severity >= error' -T fields -e frame.number")) ?? "tshark failed"
                findings.check(bad.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                               "tshark finds nothing malformed in \(capture)\(bad.isEmpty ? "" : " (frames \(bad.split(separator: "\n").prefix(5).joined(separator: " ")))")")
            }
            if isLMA {
                // Across operators no gateway tunnels or signals to another: the LMA is at one end of each.
                let direct = (try? sh("\(tshark) -r \(dir)/core.pcap -Y '(mipv6 || ipv6.nxt == 41) && !(ipv6.addr == \(Plan.cmd))' -T fields -e frame.number")) ?? "tshark failed"
                let tunnelled = (try? sh("\(tshark) -r \(dir)/core.pcap -Y 'ipv6.nxt == 41' -T fields -e frame.number")) ?? ""
                findings.check(direct.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && !tunnelled.isEmpty,
                               "every tunnelled packet and every PBU and PBA on the core has the LMA at one end "
                               + "(\(tunnelled.split(separator: "\n").count) tunnelled\(direct.isEmpty ? "" : "; not: frames \(direct.split(separator: "\n").prefix(5).joined(separator: " "))"))")
            }
            let signalling = (try? sh("\(tshark) -r \(dir)/core.pcap -Y mipv6 -T fields -e mip6.mhtype")) ?? ""
            findings.check(signalling.split(separator: "\n").count >= 6, "tshark decodes the PBUs and PBAs on the core (\(signalling.split(separator: "\n").count) messages)")
        }
    }
}
