// dgw-bench signalling: handovers per second on one core, through the
// in-process harness (DGWSimulation): two whole gateways, data plane,
// control plane and tables, the signalling framed, punted by the pipeline
// and applied as `dgw run` does. N MNs (1M by default) attach at dgw1, and
// their bursts of RAs run out (not timed); each then moves to dgw2, one
// every virtual microsecond: dgw2 attaches it
// (prefix, DLIF), sends a PBU, dgw1 accepts it (its binding now served by
// dgw2, its DLIF hidden) and answers, dgw2 binds the old prefix to the
// tunnel and shows dgw1's DLIF. Both gateways tick every virtual
// millisecond, sending the RAs of the new DLIFs. A handover counts when
// dgw2's session is bound and both gateways' tables say so; any other
// outcome fails the run.
// Memory per MN: resident memory grown over setup and handovers, both
// gateways together, divided by N.

import CMallocCounter
import DGWControl
import DGWPipeline
import DGWSimulation
import DGWWire
import Foundation

func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
          let pages = Int(statm.split(separator: " ")[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Minor page faults so far: first touches of memory, which this VM makes
/// slow (3-5 us a 4 KiB page against well under 1 us on bare metal), and
/// which vary from run to run with what the host has backed already.
/// Not inlined: the timed loop's small arrays stay on the stack only while
/// the bench's function stays as small as it is (inlined, +1 malloc a handover).
@inline(never) func minorFaults() -> Int {
    var usage = rusage()
    return getrusage(RUSAGE_SELF.rawValue, &usage) == 0 ? Int(usage.ru_minflt) : 0
}

/// With `DGW_BENCH_PERF_CTL=FIFO` (perf record --control fifo:FIFO -D -1),
/// perf samples the timed section only, not the setup.
func perfControl(_ command: String) {
    guard let path = ProcessInfo.processInfo.environment["DGW_BENCH_PERF_CTL"],
          let fifo = FileHandle(forWritingAtPath: path) else { return }
    fifo.write(Data((command + "\n").utf8))
    try? fifo.close()
}

func signallingBench(mns n: Int) throws {
    let rss0 = residentBytes()
    // Pools of 2^28 /64s, room for the MNs.
    let sim = try Simulation.domain(gateways: 2, bindings: 2 * n + 1024) { c in  // dgw2: its prefix and the tunnelled one
        let me = c.address, pool = IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0DB8_0000_0000 | me.low << 28, low: 0), length: 36)
        c.access.prefixPool = pool
        c.access.logicalMAC = { _, prefix in DLIF.logicalMAC(anchor: me, pool: pool, prefix: prefix) }
        c.capacity = n
    }
    let g1 = sim.gateways[0], g2 = sim.gateways[1]
    func mn(_ i: Int) -> MACAddress { MACAddress(value: 0x02AA_0000_0000 | UInt64(i)) }
    var time: Int64 = 1_000_000_000
    var setupFrames = 0, accessFrames = 0

    for i in 0..<n {
        time += 1_000
        _ = g1.attach(mn(i), previous: [], time: time)
        if i % 1000 == 999 { setupFrames += g1.tick(time).count }
    }
    // Their attach bursts end before the timed part (RFC 4861 6.2.4: three
    // RAs a second apart): a handover's own RAs are the new DLIFs', not
    // those of its MN's attachment two virtual seconds earlier.
    let burstsEnd = time + Int64(AccessRouter.initialAdvertisements - 1) * AccessRouter.initialInterval
    while time < burstsEnd {
        time += 1_000_000
        setupFrames += g1.tick(time).count
    }
    let rssAttached = residentBytes()

    var unanswered = 0
    let mallocs0 = dgw_malloc_count()
    let faults0 = minorFaults()
    perfControl("enable")
    let start = seconds()
    for i in 0..<n {
        time += 1_000
        var answered = false
        for pbu in g2.attach(mn(i), previous: [g1.address], time: time) where pbu.port == .core {
            for pba in g1.receive(pbu.frame, on: .core, time: time) where pba.port == .core {
                accessFrames += g2.receive(pba.frame, on: .core, time: time).count
                answered = true
            }
        }
        if !answered { unanswered += 1 }
        if i % 1000 == 999 { accessFrames += g1.tick(time).count + g2.tick(time).count }
    }
    let elapsed = seconds() - start
    perfControl("disable")
    let mallocs = dgw_malloc_count() - mallocs0
    let faults = minorFaults() - faults0
    let rssMoved = residentBytes()

    // Every MN handed over, on both sides.
    let bound = g2.control.sessions.filter { $0.state == .bound && $0.anchor == g1.address }.count
    var tablesAgree = 0
    for i in 0..<n {
        guard let prefix = g1.control.router.allocation(of: mn(i)),
              g1.tables.binding(prefix)?.serving == g2.address,
              g2.tables.binding(prefix)?.anchor == g1.address else { continue }
        tablesAgree += 1
    }
    guard unanswered == 0, bound == n, tablesAgree == n, g1.refusedChanges == 0, g2.refusedChanges == 0 else {
        FileHandle.standardError.write(Data("""
            dgw-bench signalling: handovers failed: unanswered \(unanswered), bound \(bound), tables agreeing \(tablesAgree), \
            refused \(g1.refusedChanges)/\(g2.refusedChanges) of \(n)\n
            """.utf8))
        exit(1)
    }
    print(json(["suite": "signalling", "mns": n, "handovers": n,
                "handovers_per_s": (Double(n) / elapsed).rounded(), "us_per_handover": elapsed / Double(n) * 1e6,
                "mallocs_per_handover": Double(mallocs) / Double(n), "page_faults_per_handover": Double(faults) / Double(n),
                "memory_per_mn_attached_bytes": (rssAttached - rss0) / n,
                "memory_per_mn_handed_over_bytes": (rssMoved - rss0) / n,
                "access_frames_per_handover": Double(accessFrames) / Double(n), "setup_access_frames": setupFrames]))
}
