// dgw-bench replay: a capture of N core-side frames of one size through
// `dgw replay`, and `tcpdump -r IN -w OUT` on the same file, timed as whole
// processes in the same run.

import DGWPorts
import DGWTraffic
import Foundation

func replayBench(frames: Int, size: Int) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-bench-replay-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
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
    func timed(_ program: String, _ args: [String]) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let t0 = seconds()
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw BenchError(message: "\(program) failed") }
        return seconds() - t0
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
