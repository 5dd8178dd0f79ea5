// Network namespaces for the live tests: made by the test, always removed.
// Two gateways on one core link (a bridge in the correspondent's namespace,
// where the capture is taken), each with one MN on its access link:
//
//   mn1 ── acc0 [gw1] core0 ──┐
//                              br0 [cn]  (CN 2001:db8:ffff::10; capture on b1, gw1's bridge port)
//   mn2 ── acc0 [gw2] core0 ──┘
//
// MN1's prefix is anchored and served at gw1; MN2's is anchored at gw1 and
// served at gw2, so its traffic crosses the gw2-gw1 tunnel both ways.

import DGWTestSupport
import Foundation
import Testing

let dgw = builtExecutable("dgw")

enum Net {
    static let gw1 = "2001:db8:ffff::1", gw2 = "2001:db8:ffff::2", cn = "2001:db8:ffff::10"
    /// MN1 configures itself from gw1's RAs (SLAAC, the modified EUI-64 of its MAC);
    /// MN2 is set up by hand, as a host without RAs would be.
    static let h1 = "2001:db8:1:1:aa:ff:fe00:1", h2 = "2001:db8:1:2::100"
    static let mn1MAC = "02:aa:00:00:00:01", mn2MAC = "02:aa:00:00:00:02"
    static let dlif1 = "02:d1:00:00:01:01", dlif2 = "02:d1:00:00:01:02"
    static let core1MAC = "02:dd:00:00:00:01", core2MAC = "02:dd:00:00:00:02"
}

struct ShellError: Error, CustomStringConvertible {
    let description: String
}

/// Runs `ip`, `sh` and friends; throws with the command and its stderr on failure.
@discardableResult
func sh(_ command: String) throws -> String {
    let r = try runProcess("/bin/sh", ["-c", command])
    guard r.status == 0 else { throw ShellError(description: "\(command): status \(r.status): \(r.stderr)") }
    return r.stdout
}

final class Testbed {
    let prefix: String
    let dir: URL
    /// Namespaces a test added on the core link (`addCoreNode`).
    private var added: [String] = []

    func ns(_ name: String) -> String { "\(prefix)-\(name)" }
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    init() throws {
        prefix = "dgwt\(getpid() % 100_000)"
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        remove()
        do { try build() } catch {
            remove()
            throw error
        }
    }

    private func build() throws {
        for n in ["mn1", "mn2", "gw1", "gw2", "cn"] {
            try sh("ip netns add \(ns(n)) && ip -n \(ns(n)) link set lo up")
        }
        try sh("ip -n \(ns("cn")) link add br0 type bridge && ip -n \(ns("cn")) link set br0 up")
        for (i, mn, mnMAC, dlif, h, coreMAC) in [(1, "mn1", Net.mn1MAC, Net.dlif1, Net.h1, Net.core1MAC),
                                                  (2, "mn2", Net.mn2MAC, Net.dlif2, Net.h2, Net.core2MAC)] {
            let gw = ns("gw\(i)")
            try sh("ip link add mn0 netns \(ns(mn)) type veth peer name acc0 netns \(gw)")
            try sh("ip link add core0 netns \(gw) type veth peer name b\(i) netns \(ns("cn"))")
            try sh("ip -n \(ns(mn)) link set mn0 address \(mnMAC) up && ip -n \(gw) link set acc0 up")
            try sh("ip -n \(gw) link set core0 address \(coreMAC) up")
            try sh("ip -n \(ns("cn")) link set b\(i) master br0 up")
            if i == 2 {
                // MN2 by hand: its address, and its DLIF as router, as a host ignoring RAs would have them.
                try sh("ip netns exec \(ns(mn)) sysctl -qw net.ipv6.conf.mn0.accept_ra=0")
                try sh("ip -n \(ns(mn)) -6 addr add \(h)/64 dev mn0 nodad")
                try sh("ip -n \(ns(mn)) -6 neigh add fe80::1 lladdr \(dlif) dev mn0 nud permanent")
                try sh("ip -n \(ns(mn)) -6 route add default via fe80::1 dev mn0")
            }
        }
        try sh("ip -n \(ns("cn")) -6 addr add \(Net.cn)/64 dev br0 nodad")
        try sh("ip -n \(ns("cn")) -6 route add 2001:db8:1::/48 via \(Net.gw1) dev br0")
        // Until the bridge's link-local address has passed DAD, the CN's
        // kernel does not answer Neighbor Solicitations: wait for it (1-2 s).
        let end = Date().addingTimeInterval(5)
        while Date() < end, !(try sh("ip -n \(ns("cn")) -6 addr show dev br0 tentative")).isEmpty { usleep(50_000) }
    }

    /// Waits (up to 10 s) until MN1 has configured itself from gw1's RAs:
    /// its address past DAD and a default route through gw1's DLIF.
    func waitForMN1() throws {
        let end = Date().addingTimeInterval(10)
        var addresses = "", routes = ""
        while Date() < end {
            addresses = try sh("ip -n \(ns("mn1")) -6 addr show dev mn0 scope global")
            routes = try sh("ip -n \(ns("mn1")) -6 route show default")
            if addresses.contains(Net.h1), !addresses.contains("tentative"), routes.contains("via fe80::") { return }
            usleep(100_000)
        }
        throw ShellError(description: "MN1 did not configure itself from the RAs: \(addresses) \(routes)")
    }

    /// `dgw run` of gw1 with its configuration (and `arguments`), once it
    /// forwards and MN1 has configured itself from its RAs.
    func startGateway1(_ arguments: String...) throws -> Background {
        let config = path("gw1.yaml")
        try Data(self.config(gateway: 1).utf8).write(to: URL(fileURLWithPath: config))
        let g = try Background([ip, "netns", "exec", ns("gw1"), dgw, "run", "--config", config] + arguments,
                               output: dir.appendingPathComponent("gw1"))
        try #require(g.wait(for: "forwarding between"), "\(g.stderr)")
        try waitForMN1()
        return g
    }

    /// One more node on the core link (an LMA, a CMD): namespace `name`,
    /// its `core0` with `mac` on the bridge.
    func addCoreNode(_ name: String, mac: String) throws {
        added.append(name)
        try sh("ip netns add \(ns(name)) && ip -n \(ns(name)) link set lo up")
        try sh("ip link add core0 netns \(ns(name)) type veth peer name b\(name) netns \(ns("cn"))")
        try sh("ip -n \(ns(name)) link set core0 address \(mac) up && ip -n \(ns("cn")) link set b\(name) master br0 up")
    }

    /// Removes the namespaces (and with them every interface) and the files.
    func remove() {
        for n in ["mn1", "mn2", "gw1", "gw2", "cn"] + added { _ = try? runProcess("/bin/sh", ["-c", "ip netns del \(ns(n)) 2>/dev/null"]) }
    }

    deinit {
        remove()
        try? FileManager.default.removeItem(at: dir)
    }

    func config(gateway i: Int) -> String {
        let common = """
            core: { interface: core0, prefix: 2001:db8:ffff::/64, mac: "\(i == 1 ? Net.core1MAC : Net.core2MAC)" }
            prefix_pool: 2001:db8:\(i)::/48
            peers:
              - { name: dgw\(3 - i), address: \(i == 1 ? Net.gw2 : Net.gw1) }
            neighbors:
              - { address: \(i == 1 ? Net.gw2 : Net.gw1), mac: "\(i == 1 ? Net.core2MAC : Net.core1MAC)" }
            control: \(path("gw\(i).sock"))
            metrics: 127.0.0.1:9464

            """
        if i == 1 {
            return "name: dgw1\naddress: \(Net.gw1)\naccess: { interface: acc0 }\n" + common + """
                static_bindings:
                  - { mn: "\(Net.mn1MAC)", prefix: 2001:db8:1:1::/64, anchor: self, serving: self, dlif_mac: "\(Net.dlif1)" }
                  - { mn: "\(Net.mn2MAC)", prefix: 2001:db8:1:2::/64, anchor: self, serving: \(Net.gw2), dlif_mac: "\(Net.dlif2)" }

                """
        }
        return "name: dgw2\naddress: \(Net.gw2)\naccess: { interface: acc0 }\n" + common + """
            static_bindings:
              - { mn: "\(Net.mn2MAC)", prefix: 2001:db8:1:2::/64, anchor: \(Net.gw1), serving: self, dlif_mac: "\(Net.dlif2)" }

            """
    }
}

/// A program running in the background (a gateway, a capture), its output
/// in OUTPUT.out and OUTPUT.err.
typealias Background = BackgroundProcess

extension BackgroundProcess {
    convenience init(_ arguments: [String], output: URL) throws {
        try self.init(arguments, stdout: output.appendingPathExtension("out").path, stderr: output.appendingPathExtension("err").path)
    }
}
