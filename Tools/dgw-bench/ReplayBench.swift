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
    /// Wall time of one run of `program`, spawned directly (posix_spawn,
    /// output to /dev/null) and reaped with waitpid.
    func timed(_ program: String, _ args: [String]) throws -> Double {
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
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let elapsed = seconds() - t0
        guard status == 0 else { throw BenchError(message: "\(program) failed (status \(status))") }
        return elapsed
    }
    // Best of three each, interleaved.
    var ours = Double.infinity, theirs = Double.infinity
    for _ in 0..<3 {
        ours = min(ours, try timed(dgw, ["replay", "--config", dir + "/gw.yaml", "--core", input,
                                         "--out-access", dir + "/oa.pcap", "--out-core", dir + "/oc.pcap"]))
        theirs = min(theirs, try timed(tcpdump, ["-r", input, "-w", dir + "/copy.pcap"]))
    }
    print(json(["suite": "replay", "frames": frames, "frame_bytes": size, "dgw_s": ours, "tcpdump_s": theirs,
                "ratio": ours / theirs, "dgw_mpps": Double(frames) / ours / 1e6, "tcpdump_mpps": Double(frames) / theirs / 1e6]))
}
