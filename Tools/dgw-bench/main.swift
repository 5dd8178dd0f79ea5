// dgw-bench: the project's benchmarks as one tool, one JSON line per run.
//   dgw-bench lpm --workload dense|sparse [--routes N] [--lookups N]
//   dgw-bench lpm-churn --workload dense|sparse [--routes N] [--updates-per-s N] [--seconds S]
//   dgw-bench pipeline [--bindings N] [--frames N]
//   dgw-bench signalling [--mns N]      (default 1M MNs handed over between two gateways)
//   dgw-bench replay [--frames N] [--size BYTES] [--keep DIR]
//                                       (default 10M frames of 78 bytes; --keep leaves
//                                        the capture and config in DIR, for profiling)
// --routes is the number of HNPs (the anchors' argument); "routes" in the
// output counts every route installed (HNPs, 4,096 /48s, 16 /32s).
// Build in release: swift build -c release --product dgw-bench

import DGWTables
import DGWTraffic
import DGWWire
import Foundation
import Synchronization

func seconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

struct Options {
    var command = ""
    var workload = "dense"
    var hnps = 1 << 20
    var lookups = 1 << 24
    var updatesPerSecond = 100_000
    var duration = 3.0
    var frames = 1 << 24
    var size = 78
    var keep: String?
    var mns = 1 << 20

    init(_ args: [String]) throws {
        var i = 1
        guard args.count > 1 else { throw UsageError() }
        command = args[1]
        i = 2
        while i < args.count {
            let flag = args[i]
            guard i + 1 < args.count else { throw UsageError() }
            let value = args[i + 1]
            switch flag {
            case "--workload":
                guard value == "dense" || value == "sparse" else { throw UsageError() }
                workload = value
            case "--routes": hnps = try positive(value)
            case "--lookups": lookups = try positive(value)
            case "--updates-per-s": updatesPerSecond = try positive(value)
            case "--seconds": duration = Double(try positive(value))
            case "--bindings": hnps = try positive(value)
            case "--frames": frames = try positive(value)
            case "--size": size = try positive(value)
            case "--keep": keep = value
            case "--mns": mns = try positive(value)
            default: throw UsageError()
            }
            i += 2
        }
    }

    func positive(_ s: String) throws -> Int {
        guard let v = Int(s), v > 0 else { throw UsageError() }
        return v
    }
}

struct UsageError: Error {}

func json(_ pairs: KeyValuePairs<String, Any>) -> String {
    "{" + pairs.map { k, v in
        let value: String
        switch v {
        case let s as String: value = "\"\(s)\""
        case let d as Double: value = String(format: "%.3f", d)
        default: value = "\(v)"
        }
        return "\"\(k)\":\(value)"
    }.joined(separator: ",") + "}"
}

/// Installs the workload's routes; returns the table and inserts per second.
func build(_ w: Workload, qsbr: QSBR) throws -> (HNPTable, Double) {
    let prefixes = w.routes.map { w.prefix($0) }
    let table = HNPTable(qsbr: qsbr)
    let t0 = seconds()
    for (p, r) in zip(prefixes, w.routes) { try table.insert(p, nextHop: r.nextHop) }
    let t1 = seconds()
    return (table, Double(w.routes.count) / (t1 - t0))
}

/// Looks up every key in batches of 64, reporting a quiescent state after
/// each; returns (seconds, checksum).
func lookAll(_ table: HNPTable, _ keys: [IPv6Address], _ reader: QSBRReader) -> (Double, UInt64) {
    var results = [UInt32](repeating: 0, count: 64)
    var sum: UInt64 = 0
    let t0 = seconds()
    keys.withUnsafeBufferPointer { all in
        results.withUnsafeMutableBufferPointer { out in
            var i = 0
            while i + 64 <= all.count {
                table.lookup(UnsafeBufferPointer(rebasing: all[i..<(i + 64)]), into: out)
                for v in out { sum &+= UInt64(v) }
                table.qsbr.quiescent(reader)
                i += 64
            }
        }
    }
    return (seconds() - t0, sum)
}

func lpm(_ o: Options) throws {
    let w = Workload(kind: o.workload, hnps: o.hnps, lookups: o.lookups)
    let qsbr = QSBR()
    let (table, insertsPerSecond) = try build(w, qsbr: qsbr)
    let reader = qsbr.register()!
    _ = lookAll(table, w.keys, reader)  // warm up
    var best = Double.infinity
    var checksum: UInt64 = 0
    for _ in 0..<3 {
        let (t, sum) = lookAll(table, w.keys, reader)
        best = min(best, t)
        checksum = sum
    }
    let looked = w.keys.count / 64 * 64
    print(json(["suite": "lpm", "workload": o.workload, "routes": w.routes.count, "lookups": looked,
                "mlps": Double(looked) / best / 1e6, "ns_per_lookup": best * 1e9 / Double(looked),
                "inserts_per_s": insertsPerSecond.rounded(), "bytes": table.bytesUsed, "checksum": checksum]))
}

/// One reader thread looks up flat out; the writer applies updates at a
/// fixed rate (half next-hop changes, a quarter adds of new /64s, a quarter
/// deletes of those), and the reader's rate is compared with a quiet run.
func churn(_ o: Options) throws {
    let w = Workload(kind: o.workload, hnps: o.hnps, lookups: 1 << 20)
    let qsbr = QSBR()
    let (table, _) = try build(w, qsbr: qsbr)
    let stop = Atomic<Bool>(false)
    let measured = Mutex<(Int, Double)>((0, 0))

    func runReader() -> Thread {
        Thread {
            let reader = qsbr.register()!
            var n = 0
            let t0 = seconds()
            while !stop.load(ordering: .relaxed) {
                _ = lookAll(table, w.keys, reader)
                n += w.keys.count
            }
            measured.withLock { $0 = (n, seconds() - t0) }
            qsbr.unregister(reader)
        }
    }
    func measure(updating: Bool) throws -> (Double, Double) {
        stop.store(false, ordering: .relaxed)
        let thread = runReader()
        thread.start()
        var updates = 0
        let t0 = seconds()
        var rng = Workload.Xorshift64()
        var added: [IPv6Prefix] = []
        while seconds() - t0 < o.duration {
            if updating {
                // Pace to the target rate in slices of 1 ms.
                let due = Int((seconds() - t0) * Double(o.updatesPerSecond))
                while updates < due {
                    let r = rng.next()
                    switch r % 4 {
                    case 0, 1:
                        let route = w.routes[Int(rng.next() % UInt64(w.hnpCount))]
                        try table.insert(w.prefix(route), nextHop: UInt32(truncatingIfNeeded: rng.next() % 1_000_000 + 1))
                    case 2:
                        let p = IPv6Prefix(address: IPv6Address(high: 0x2001_0dba << 32 | rng.next() & 0xFFFF_FFFF, low: 0), length: 64)!
                        try table.insert(p, nextHop: 7)
                        added.append(p)
                    default:
                        if let p = added.popLast() { table.remove(p) }
                    }
                    updates += 1
                }
                table.reclaim()
            }
            usleep(1000)
        }
        let elapsed = seconds() - t0
        stop.store(true, ordering: .relaxed)
        while !thread.isFinished { usleep(1000) }
        let (n, t) = measured.withLock { $0 }
        return (Double(n) / t / 1e6, Double(updates) / elapsed)
    }
    let (quiet, _) = try measure(updating: false)
    let (busy, rate) = try measure(updating: true)
    table.reclaim()
    print(json(["suite": "lpm-churn", "workload": o.workload, "routes": w.routes.count,
                "quiet_mlps": quiet, "churn_mlps": busy, "ratio": busy / quiet,
                "updates_per_s": rate.rounded(), "pending_frees": qsbr.pending]))
}

do {
    let o = try Options(CommandLine.arguments)
    switch o.command {
    case "lpm": try lpm(o)
    case "lpm-churn": try churn(o)
    case "pipeline": try pipelineBench(bindings: o.hnps, frames: o.frames)
    case "signalling": try signallingBench(mns: o.mns)
    case "replay": try replayBench(frames: o.frames == 1 << 24 ? 10_000_000 : o.frames, size: o.size, keep: o.keep)
    default: throw UsageError()
    }
} catch is UsageError {
    FileHandle.standardError.write(Data("""
        usage: dgw-bench lpm --workload dense|sparse [--routes N] [--lookups N]
               dgw-bench lpm-churn --workload dense|sparse [--routes N] [--updates-per-s N] [--seconds S]
               dgw-bench pipeline [--bindings N] [--frames N]
               dgw-bench signalling [--mns N]
               dgw-bench replay [--frames N] [--size BYTES] [--keep DIR]

        """.utf8))
    exit(2)
}
