import DGWConfig
import DGWTestSupport
import DGWWire
import Foundation
import Testing

/// `dgw check`: a domain's configurations read together. Each test breaks
/// one agreement of a consistent domain (two blue gateways peering and
/// signing to each other, a green one, their LMA) and expects exactly the
/// problem that says so, at its file and line.
@Suite struct DomainCheckTests {
    static let key = "00112233445566778899aabbccddeeff"

    /// A gateway's file: `extra` lines appended at the top level.
    static func gateway(_ name: String, _ n: Int, peers: [(String, Int)] = [], lma: Bool = true, auth: [(Int, String)] = [],
                        subscriber: String = "alice", extra: String = "") -> String {
        var y = """
            name: \(name)
            address: 2001:db8:ffff::\(n)
            access: { interface: acc0 }
            core: { interface: core0, prefix: 2001:db8:ffff::/64 }
            prefix_pool: 2001:db8:\(n)::/48
            subscribers:
              - { id: \(subscriber), macs: ["02:aa:00:00:00:01", "02:aa:00:00:00:02"] }

            """
        if !peers.isEmpty { y += "peers:\n" + peers.map { "  - { name: \($0.0), address: 2001:db8:ffff::\($0.1) }\n" }.joined() }
        if lma { y += "lma: 2001:db8:eeee::1\n" }
        if !auth.isEmpty { y += "auth:\n" + auth.map { "  - { peer: 2001:db8:ffff::\($0.0), spi: 256, key_hex: \"\($0.1)\" }\n" }.joined() }
        return y + extra
    }

    static func lma(operators: [String] = ["blue", "blue", "green"]) -> String {
        """
        name: lma
        role: lma
        address: 2001:db8:eeee::1
        core: { interface: core0, prefix: 2001:db8:eeee::/64 }
        peers:
          - { name: dgw1, address: 2001:db8:ffff::1, operator: \(operators[0]) }
          - { name: dgw2, address: 2001:db8:ffff::2, operator: \(operators[1]) }
          - { name: visited1, address: 2001:db8:ffff::3, operator: \(operators[2]) }

        """
    }

    static var domain: [String: String] {
        ["dgw1.yaml": gateway("dgw1", 1, peers: [("dgw2", 2)], auth: [(2, key)]),
         "dgw2.yaml": gateway("dgw2", 2, peers: [("dgw1", 1)], auth: [(1, key)]),
         "visited1.yaml": gateway("visited1", 3),
         "lma.yaml": lma()]
    }

    static func problems(_ files: [String: String]) throws -> [String] {
        let configs = try files.sorted { $0.key < $1.key }.map { try GatewayConfig.parse($0.value, file: $0.key) }
        return GatewayConfig.problems(of: configs).map(\.description)
    }

    static func with(_ changes: [String: String]) -> [String: String] { domain.merging(changes) { _, new in new } }

    @Test func aConsistentDomainAgrees() throws {
        #expect(try Self.problems(Self.domain) == [])
    }

    @Test func aPeerThatDoesNotListThisOneBack() throws {
        let p = try Self.problems(Self.with(["dgw2.yaml": Self.gateway("dgw2", 2, auth: [])]))
        #expect(p.contains { $0.hasPrefix("dgw1.yaml:9: peer dgw2 2001:db8:ffff::2 is dgw2 (dgw2.yaml), which does not list 2001:db8:ffff::1") }, "\(p)")
        #expect(p.contains { $0.hasPrefix("lma.yaml:7: dgw2 and dgw1 are both operator blue here") }, "\(p)")
    }

    @Test func keysOnOneSideOrDifferent() throws {
        let oneSide = try Self.problems(Self.with(["dgw2.yaml": Self.gateway("dgw2", 2, peers: [("dgw1", 1)])]))
        #expect(oneSide == [
            "dgw1.yaml:12: auth for 2001:db8:ffff::2: dgw2 (dgw2.yaml) has no key for 2001:db8:ffff::1, so it sends unsigned and this node drops it all",
            "dgw2.yaml:9: peer dgw1 2001:db8:ffff::1: dgw1 (dgw1.yaml) signs with a key for 2001:db8:ffff::2 that this node does not have (no auth entry), and drops what this node sends unsigned",
        ], "\(oneSide)")
        let different = try Self.problems(Self.with(["dgw2.yaml": Self.gateway("dgw2", 2, peers: [("dgw1", 1)], auth: [(1, "ff" + Self.key.dropFirst(2))])]))
        #expect(different == ["dgw1.yaml:12: auth for 2001:db8:ffff::2: key_hex differs in dgw2.yaml",
                              "dgw2.yaml:12: auth for 2001:db8:ffff::1: key_hex differs in dgw1.yaml"], "\(different)")
    }

    /// draft-bernardos section 5: the LMA's operators against the peering.
    @Test func operatorsAtTheLMAAgainstThePeering() throws {
        let split = try Self.problems(Self.with(["lma.yaml": Self.lma(operators: ["blue", "red", "green"])]))
        #expect(split == ["lma.yaml:7: dgw2 and dgw1 are peers of each other (dgw2.yaml, dgw1.yaml) but of different operators here (red, blue): their MNs' prefixes would be relayed through this LMA and tunnelled directly too"], "\(split)")
        let merged = try Self.problems(Self.with(["lma.yaml": Self.lma(operators: ["blue", "blue", "blue"])]))
        #expect(merged.count == 2 && merged.allSatisfy { $0.hasPrefix("lma.yaml:8: visited1 and ") && $0.contains("are both operator blue here") }, "\(merged)")
        let unregistered = try Self.problems(Self.with(["visited1.yaml": Self.gateway("visited1", 3, lma: false)]))
        #expect(unregistered == [
            "lma.yaml:8: peer visited1 2001:db8:ffff::3 is visited1 (visited1.yaml), which does not list 2001:db8:eeee::1 among its peers: it drops what this node sends",
            "visited1.yaml:1: lma (lma.yaml) has this gateway among its peers, but its lma is not set: it registers no MN there",
        ], "\(unregistered)")
    }

    @Test func rolesModesPoolsNamesAndMNIDs() throws {
        var cmdDomain = Self.domain
        cmdDomain["dgw1.yaml"] = Self.gateway("dgw1", 1, peers: [("dgw2", 2)], lma: false, auth: [(2, Self.key)],
                                              extra: "cmd: 2001:db8:ffff::100\ncmd_mode: relay\n")
        cmdDomain["cmd.yaml"] = """
            name: cmd
            role: cmd
            address: 2001:db8:ffff::100
            core: { interface: core0, prefix: 2001:db8:ffff::/64 }
            cmd_mode: locator
            peers:
              - { name: dgw2, address: 2001:db8:ffff::2 }

            """
        cmdDomain["lma.yaml"] = nil
        cmdDomain["visited1.yaml"] = nil
        cmdDomain["dgw2.yaml"] = Self.gateway("dgw2", 2, peers: [("dgw1", 1)], lma: false, auth: [(1, Self.key)],
                                              extra: "cmd: 2001:db8:ffff::100\ncmd_mode: locator\n")
        let cmd = try Self.problems(cmdDomain)
        #expect(cmd == [
            "dgw1.yaml:12: cmd 2001:db8:ffff::100 is cmd (cmd.yaml), which does not list 2001:db8:ffff::1 among its peers: it drops what this node sends",
            "dgw1.yaml:13: cmd_mode relay is not the CMD's (locator in cmd.yaml): a gateway and its CMD must agree",
        ], "\(cmd)")
        let wrongRole = try Self.problems(Self.with(["dgw1.yaml": Self.gateway("dgw1", 1, peers: [("dgw2", 2)], auth: [(2, Self.key)])
            .replacingOccurrences(of: "lma: 2001:db8:eeee::1", with: "lma: 2001:db8:ffff::3")]))
        #expect(wrongRole.contains("dgw1.yaml:10: lma 2001:db8:ffff::3 is visited1 (visited1.yaml), whose role is dgw, not lma"), "\(wrongRole)")
        let overlap = try Self.problems(Self.with(["visited1.yaml": Self.gateway("visited1", 3).replacingOccurrences(of: "2001:db8:3::/48", with: "2001:db8::/32")]))
        #expect(overlap == ["visited1.yaml:5: prefix_pool 2001:db8::/32 overlaps dgw1 (dgw1.yaml)'s 2001:db8:1::/48: two anchors would allocate one /64",
                            "visited1.yaml:5: prefix_pool 2001:db8::/32 overlaps dgw2 (dgw2.yaml)'s 2001:db8:2::/48: two anchors would allocate one /64"], "\(overlap)")
        let named = try Self.problems(Self.with(["visited1.yaml": Self.gateway("dgw2", 3)]))
        #expect(named.contains("visited1.yaml:1: name dgw2 is dgw2.yaml's too") && named.contains { $0.contains("is named dgw2 in visited1.yaml") }, "\(named)")
        let bob = try Self.problems(Self.with(["visited1.yaml": Self.gateway("visited1", 3, subscriber: "bob")]))
        #expect(bob == [
            "visited1.yaml:7: 02:aa:00:00:00:01 is subscriber bob here and alice in dgw1.yaml:7: an anchor refuses a move of its prefix under another MN-ID",
            "visited1.yaml:7: 02:aa:00:00:00:02 is subscriber bob here and alice in dgw1.yaml:7: an anchor refuses a move of its prefix under another MN-ID",
        ], "\(bob)")
    }
}
