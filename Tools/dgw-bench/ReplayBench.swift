// dgw-bench replay: a capture of N core-side frames of one size through
// `dgw replay`, and `tcpdump -r IN -w OUT` on the same file, timed as whole
// processes in the same run.

import DGWPorts
import DGWTraffic
import Foundation

func replayBench(frames: Int, size: Int, keep: String?) throws {
    let dir = keep ?? FileManager.default.temporaryDirectory.appendingPathComponent("dgw-bench-replay-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { if keep == nil { try? FileManager.default.removeItem(atPath: dir) } }
    // 10,000 MNs: the configuration loads in a fraction of a second.
    var plan = TrafficPlan(mns: 10_000)
    plan.frameSize = size
    try Data(plan.yaml.utf8).write(to: URL(fileURLWithPath: dir + "/gw.yaml"))
    // Core-side frames only, so that both tools read one and the same file.
    let input = dir + "/in.pcap"
    let writer = try PcapFileWriter(path: input)
    var generator = TrafficPlan.Generator(plan)
    var n = 0
    while n < frames {
        let (toAccess, bytes) = generator.frame()
        if toAccess { continue }
        let t = 1_764_000_000_000_000_000 + n * 100
        try writer.write(bytes, seconds: t / 1_000_000_000, nanoseconds: t % 1_000_000_000)
        n += 1
    }
    try writer.close()
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    let dgw = here.appendingPathComponent("dgw").path
    guard FileManager.default.isExecutableFile(atPath: dgw) else {
        throw BenchError(message: "no dgw beside dgw-bench (swift build -c release --product dgw)")
    }
    guard let tcpdump = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw BenchError(message: "tcpdump is not installed")
    }
    /// Wall time and CPU time (user and system, all threads) of one run of
    /// `program`, spawned directly (posix_spawn, output to /dev/null) and
    /// reaped with wait4.
    func timed(_ program: String, _ args: [String]) throws -> (wall: Double, cpu: Double) {
        // The same start for both: no earlier output to overwrite, and the
        // page cache's dirty pages of the last run already written back.
        for out in ["/oa.pcap", "/oc.pcap", "/copy.pcap"] { unlink(dir + out) }
        sync()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([program] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let t0 = seconds()
        guard posix_spawn(&pid, program, &actions, nil, argv, environ) == 0 else {
            throw BenchError(message: "cannot start \(program)")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let elapsed = seconds() - t0
        guard status == 0 else { throw BenchError(message: "\(program) failed (status \(status))") }
        func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (elapsed, s(usage.ru_utime) + s(usage.ru_stime))
    }
    // Best of three each, interleaved. dgw writes its two outputs on threads
    // of their own: its CPU time (all threads) is reported beside its wall time.
    var ours = (wall: Double.infinity, cpu: Double.infinity), theirs = ours
    for _ in 0..<3 {
        let a = try timed(dgw, ["replay", "--config", dir + "/gw.yaml", "--core", input,
                                "--out-access", dir + "/oa.pcap", "--out-core", dir + "/oc.pcap"])
        let b = try timed(tcpdump, ["-r", input, "-w", dir + "/copy.pcap"])
        ours = (min(ours.wall, a.wall), min(ours.cpu, a.cpu))
        theirs = (min(theirs.wall, b.wall), min(theirs.cpu, b.cpu))
    }
    print(json(["suite": "replay", "frames": frames, "frame_bytes": size, "dgw_s": ours.wall, "tcpdump_s": theirs.wall,
                "ratio": ours.wall / theirs.wall, "dgw_mpps": Double(frames) / ours.wall / 1e6, "tcpdump_mpps": Double(frames) / theirs.wall / 1e6,
                "dgw_cpu_s": ours.cpu, "tcpdump_cpu_s": theirs.cpu, "cpu_ratio": ours.cpu / theirs.cpu]))
}
