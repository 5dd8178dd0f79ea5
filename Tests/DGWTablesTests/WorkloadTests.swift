import DGWWire
import Foundation
import Testing
@testable import DGWTables
import DGWTestSupport
import DGWTraffic

/// The HNP workload of ../shared/bench/WORKLOAD.md at reduced size: our
/// table's checksum against a linear-scan model, and against the C anchor.
@Suite struct WorkloadTests {
    static let hnps = 512, lookups = 4000

    static func checksum(_ table: HNPTable, _ w: Workload) -> UInt64 {
        var results = [UInt32](repeating: 0, count: w.keys.count)
        w.keys.withUnsafeBufferPointer { k in results.withUnsafeMutableBufferPointer { table.lookup(k, into: $0) } }
        return results.reduce(0) { $0 &+ UInt64($1) }
    }

    @Test(arguments: ["dense", "sparse"])
    func checksumMatchesLinearScan(kind: String) throws {
        let w = Workload(kind: kind, hnps: Self.hnps, lookups: Self.lookups)
        let table = HNPTable(densePageThreshold: 16)  // dense pools do turn into pages here
        var model = NaiveLPM()
        for r in w.routes {
            try table.insert(w.prefix(r), nextHop: r.nextHop)
            model.routes[w.prefix(r)] = r.nextHop
        }
        let expected = w.keys.reduce(UInt64(0)) { $0 &+ UInt64(model.lookup($1)) }
        #expect(Self.checksum(table, w) == expected)
        #expect(expected > 0)
        if kind == "dense" { #expect(table.snapshot.pointee.pageCount == 16) }
    }

    /// The C reference run with the same sizes prints the same checksum: our
    /// port of the workload is exact. Tests/Anchors holds a verbatim copy of
    /// ../shared/bench/anchors/{lpm6_hash_limit.c,workload.h}, so a clone
    /// without ../shared still checks it.
    @Test(arguments: ["dense", "sparse"])
    func checksumMatchesTheCAnchor(kind: String) throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Anchors/lpm6_hash_limit.c").path
        let binary = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-lpm6-hash-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: binary) }
        #expect(try runProcess("/usr/bin/cc", ["-O2", source, "-o", binary]).status == 0)
        let out = try runProcess(binary, [kind, String(Self.hnps), String(Self.lookups)]).stdout
        let theirs = out.split(separator: " ").first { $0.hasPrefix("checksum=") }.map { UInt64($0.dropFirst(9).trimmingCharacters(in: .whitespacesAndNewlines)) }
        let w = Workload(kind: kind, hnps: Self.hnps, lookups: Self.lookups)
        let table = HNPTable()
        for r in w.routes { try table.insert(w.prefix(r), nextHop: r.nextHop) }
        // The anchor looks up whole batches of 32 only.
        var ours: UInt64 = 0
        var results = [UInt32](repeating: 0, count: w.keys.count)
        w.keys.withUnsafeBufferPointer { k in results.withUnsafeMutableBufferPointer { table.lookup(k, into: $0) } }
        for v in results[..<(w.keys.count / 32 * 32)] { ours &+= UInt64(v) }
        #expect(theirs == ours, "anchor printed: \(out)")
    }
}
