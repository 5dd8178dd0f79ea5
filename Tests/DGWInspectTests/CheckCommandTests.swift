import DGWTestSupport
import Foundation
import Testing

/// `dgw check FILE...` as a user runs it: 0 and one line when the files
/// agree, 1 and one `file:line: reason` per problem, 2 when a file is
/// refused on its own (with its line and column).
@Suite struct CheckCommandTests {
    static func gateway(_ n: Int, peer: Int, key: String) -> String {
        """
        name: dgw\(n)
        address: 2001:db8:ffff::\(n)
        access: { interface: acc0 }
        core: { interface: core0, prefix: 2001:db8:ffff::/64 }
        prefix_pool: 2001:db8:\(n)::/48
        peers:
          - { name: dgw\(peer), address: 2001:db8:ffff::\(peer) }
        auth:
          - { peer: 2001:db8:ffff::\(peer), spi: 256, key_hex: "\(key)" }

        """
    }

    @Test func agreesDisagreesOrRefuses() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-check-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ name: String, _ text: String) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let key = "00112233445566778899aabbccddeeff"
        let one = try write("dgw1.yaml", Self.gateway(1, peer: 2, key: key))
        let two = try write("dgw2.yaml", Self.gateway(2, peer: 1, key: key))
        let agree = try runProcess(dgwBinary, ["check", one, two])
        #expect(agree.status == 0 && agree.stdout == "2 configurations agree: dgw1, dgw2\n", "\(agree.stdout)\(agree.stderr)")

        let alone = try runProcess(dgwBinary, ["check", one])
        #expect(alone.status == 0 && alone.stdout == "1 configuration, valid: dgw1\n", "\(alone.stdout)\(alone.stderr)")

        let other = try write("dgw2.yaml", Self.gateway(2, peer: 1, key: "ff" + key.dropFirst(2)))
        let disagree = try runProcess(dgwBinary, ["check", one, other])
        #expect(disagree.status == 1)
        #expect(disagree.stdout == "\(one):9: auth for 2001:db8:ffff::2: key_hex differs in \(other)\n\(other):9: auth for 2001:db8:ffff::1: key_hex differs in \(one)\n",
                "\(disagree.stdout)")

        let bad = try write("bad.yaml", Self.gateway(3, peer: 1, key: key).replacingOccurrences(of: "prefix_pool:", with: "prefix_poool:"))
        let refused = try runProcess(dgwBinary, ["check", one, bad])
        #expect(refused.status == 2 && refused.stdout.isEmpty)
        #expect(refused.stderr.contains("\(bad):5:1: unknown key 'prefix_poool'"), "\(refused.stderr)")
    }
}
