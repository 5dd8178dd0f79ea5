// Issue 7's scenario, end to end with real Linux hosts: `dgw-testbed
// scenario` (three `dgw run`, a CMD in relay or locator mode, an
// inter-operator LMA (every gateway its own operator) or none, a CN,
// a LIPA host, a Linux MN moved between cells, each move announced by an
// attach trigger or, "/traffic", by nothing but the MN's own frames) must
// pass every one of its checks, and leave nothing behind.

import DGWTestSupport
import Foundation
import Testing

@Suite struct HandoverTestbedTests {
    /// One at a time: each builds its own namespaces, but the 1 kHz probe
    /// and the handover timing are better measured on a quiet machine.
    @Test(.serialized, arguments: ["relay", "locator", "lma", "none", "relay/traffic"])
    func mnMovesOneTwoThreeAndBackWithRealHosts(mode: String) throws {
        let cmd = String(mode.prefix { $0 != "/" }), onTraffic = mode.hasSuffix("/traffic")
        let testbed = builtExecutable("dgw-testbed")
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-testbed-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let r = try runProcess(testbed, ["scenario", "--dgw", dgw, "--cmd", cmd, "--json", report.path] + (onTraffic ? ["--attach", "traffic"] : []))
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any], "\(r.stdout)")
        let checks = try #require(json["checks"] as? [[String: Any]])
        for c in checks where c["ok"] as? Bool != true { Issue.record("\(c["check"] ?? "?")") }
        // The scenario's own checks, as listed: attach, three handovers, the return, TCP, probes, cleanup.
        #expect(checks.count >= (cmd == "none" ? 37 : cmd == "lma" ? 42 : 40) + (onTraffic ? 3 : 0), "\(checks.count) checks")
        // With no trigger, each of the three moves is the new gateway's attach on the MN's traffic.
        #expect(checks.filter { ($0["check"] as? String ?? "").contains("attached the MN on its traffic") }.count == (onTraffic ? 3 : 0))
        #expect(checks.contains { ($0["check"] as? String ?? "").contains("knows the MN's three anchors") } == (cmd != "none"))
        #expect(checks.contains { ($0["check"] as? String ?? "").contains("refuses an attach trigger") } == (cmd != "none"))
        #expect(checks.contains { ($0["check"] as? String ?? "").contains("has the LMA at one end") } == (cmd == "lma"))
        #expect(checks.contains { ($0["check"] as? String ?? "").hasPrefix("dgw check: the domain's \(cmd == "none" ? 3 : 4) configurations agree") },
                "the testbed's files checked together first")
        let handovers = try #require(json["handovers"] as? [[String: Any]])
        #expect(handovers.map { $0["name"] as? String } == ["dgw1 -> dgw2", "dgw2 -> dgw3", "dgw3 -> dgw1 (return)"])
        #expect(handovers.allSatisfy { $0["interruption_ms"] is Double && $0["signalling_ms"] is Double }, "\(handovers)")
        let left = try runProcess("/bin/sh", ["-c", "ip netns list"]).stdout
        #expect(!left.contains("dgwe"), "namespaces left: \(left)")
    }
}
