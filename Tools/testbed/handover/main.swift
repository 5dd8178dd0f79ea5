// dgw-testbed: the handover scenario with real Linux hosts (issue 7), and
// the traffic programs it runs inside the namespaces.
//
//   dgw-testbed scenario [--dgw PATH] [--cmd relay|locator|lma|none] [--attach trigger|traffic] [--svg FILE] [--json FILE] [--keep]
//   dgw-testbed tcp-sink --port P --out FILE          (on the CN)
//   dgw-testbed tcp-source --to ADDR --port P [--bytes N]   (on the MN)
//   dgw-testbed probe-send --to ADDR --port P [--rate HZ]   (on the CN)
//   dgw-testbed probe-recv --port P --out FILE        (on the MN)
//
// `scenario` needs root; it prints a report, exits 0 when every check
// passed, 1 when one failed, 2 when the testbed could not be built.

import DGWTestSupport
import Foundation
import Glibc

let usage = """
    usage: dgw-testbed scenario [--dgw PATH] [--cmd relay|locator|lma|none] [--attach trigger|traffic] [--svg FILE] [--json FILE] [--keep]
           dgw-testbed tcp-sink --port P --out FILE
           dgw-testbed tcp-source --to ADDR --port P [--bytes N]
           dgw-testbed probe-send --to ADDR --port P [--rate HZ]
           dgw-testbed probe-recv --port P --out FILE

    """

func fail(_ message: String, status: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data("dgw-testbed: \(message)\n".utf8))
    exit(status)
}

/// The command line: a command, `--name value` options, flags.
struct CommandLineArguments {
    let command: String
    var options: [String: String] = [:]
    var flags: Set<String> = []

    init(_ all: [String]) {
        var arguments = all
        guard let command = arguments.first else { fail(usage) }
        self.command = command
        arguments.removeFirst()
        while let a = arguments.first {
            arguments.removeFirst()
            guard a.hasPrefix("--") else { fail("unexpected argument \(a)\n\(usage)") }
            if a == "--keep" { flags.insert(a); continue }
            guard let v = arguments.first else { fail("\(a) needs a value") }
            arguments.removeFirst()
            options[a] = v
        }
    }

    func option(_ name: String) -> String {
        guard let v = options[name] else { fail("\(command) needs \(name)\n\(usage)") }
        return v
    }

    func number(_ name: String, default d: Int? = nil) -> Int {
        guard let text = options[name] else {
            guard let d else { fail("\(command) needs \(name)") }
            return d
        }
        guard let v = Int(text), v > 0 else { fail("\(name) \(text): not a positive number") }
        return v
    }
}

let cli = CommandLineArguments(Array(CommandLine.arguments.dropFirst()))
do {
    switch cli.command {
    case "tcp-sink":
        stopOnSignals()
        try tcpSink(port: cli.number("--port"), out: cli.option("--out"))
    case "tcp-source":
        stopOnSignals()
        try tcpSource(to: cli.option("--to"), port: cli.number("--port"), bytes: cli.options["--bytes"] == nil ? nil : cli.number("--bytes"))
    case "probe-send":
        stopOnSignals()
        try probeSend(to: cli.option("--to"), port: cli.number("--port"), rate: cli.number("--rate", default: 1000))
    case "probe-recv":
        stopOnSignals()
        try probeReceive(port: cli.number("--port"), out: cli.option("--out"))
    case "scenario":
        exit(runScenario(cli))
    default:
        fail("unknown command \(cli.command)\n\(usage)")
    }
} catch {
    fail("\(cli.command): \(error)", status: 1)
}

/// Builds the testbed, runs the scenario, always removes the testbed
/// (on SIGINT and SIGTERM too), reports.
func runScenario(_ cli: CommandLineArguments) -> Int32 {
    guard getuid() == 0 else { fail("the scenario needs root (network namespaces, AF_PACKET): run it with sudo, or as root") }
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let dgw = cli.options["--dgw"] ?? me.deletingLastPathComponent().appendingPathComponent("dgw").path
    guard FileManager.default.isExecutableFile(atPath: dgw) else { fail("no dgw at \(dgw) (build it, or give --dgw)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dgw-testbed-\(getpid())").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let cmd = cli.options["--cmd"] ?? "relay"
    guard ["relay", "locator", "lma", "none"].contains(cmd) else { fail("--cmd \(cmd): relay, locator, lma or none") }
    let attach = cli.options["--attach"] ?? "trigger"
    guard ["trigger", "traffic"].contains(attach) else { fail("--attach \(attach): trigger or traffic") }
    // Without a central node, traffic names only the anchor of the router the
    // MN talks to: the scenario's checks want every former anchor at each move.
    guard attach == "trigger" || cmd != "none" else { fail("--attach traffic needs --cmd relay, locator or lma") }
    let scenario = Scenario(dgw: dgw, dir: dir, cmdMode: cmd == "none" ? nil : cmd, attachOnTraffic: attach == "traffic")
    // SIGINT and SIGTERM: one thread waits for them and cleans up.
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    let namespaces = Plan.namespaces.map(scenario.ns)
    let waitFor = signals
    Thread {
        var s = waitFor
        var caught: Int32 = 0
        sigwait(&s, &caught)
        FileHandle.standardError.write(Data("dgw-testbed: interrupted, removing the testbed\n".utf8))
        for pid in children.withLock({ $0 }) { kill(pid, SIGKILL) }
        for n in namespaces { _ = try? sh("ip netns del \(n) 2>/dev/null || true") }
        exit(130)
    }.start()

    let started = monotonicNanoseconds()
    var built = true
    do {
        try scenario.run()
    } catch {
        built = !scenario.findings.checks.isEmpty
        scenario.findings.check(false, "the scenario stopped: \(error)")
    }
    scenario.remove()
    let left = ((try? sh("ip netns list")) ?? "").split(separator: "\n").filter { $0.hasPrefix(scenario.prefix) }
    scenario.findings.check(left.isEmpty, "no namespace left behind\(left.isEmpty ? "" : ": \(left.joined(separator: ", "))")")
    let running = children.withLock { $0 }.filter { kill($0, 0) == 0 && reap($0, block: false) == nil }
    scenario.findings.check(running.isEmpty, "no process left behind\(running.isEmpty ? "" : ": \(running)")")

    print(scenario.findings.text(started: started), terminator: "")
    if let path = cli.options["--json"] { try? Data((scenario.findings.json + "\n").utf8).write(to: URL(fileURLWithPath: path)) }
    if let path = cli.options["--svg"] {
        if let svg = timeline(capture: "\(dir)/mn.pcap", addresses: scenario.findings.addresses, handovers: scenario.findings.handovers,
                              clockOffset: scenario.clockOffset) {
            try? Data(svg.utf8).write(to: URL(fileURLWithPath: path))
            print("timeline: \(path)")
        } else {
            print("timeline: no capture to draw")
        }
    }
    if cli.flags.contains("--keep") { print("kept: \(dir)") } else { try? FileManager.default.removeItem(atPath: dir) }
    return scenario.findings.failures.isEmpty ? 0 : (built ? 1 : 2)
}
