// Helpers shared by the test targets that run the project's executables and
// outside tools (tshark, cc).

import Foundation

/// The package root, from this file's path.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// Runs a program to completion; returns its status and both outputs.
@discardableResult
public func runProcess(_ program: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both before waiting: a full pipe would block the child. stderr
    // on a thread of its own, so that neither pipe can fill while we wait.
    let errData = Mutexed<Data>(Data())
    let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    reader.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData.get(), as: UTF8.self))
}

/// A tool on PATH, or nil.
public func which(_ tool: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// One of the package's executables, built beside the test bundle.
public func builtExecutable(_ name: String) -> String {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
        url.deleteLastPathComponent()
        let candidate = url.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return packageRoot.appendingPathComponent(".build/debug/\(name)").path
}

final class Mutexed<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
}

public struct SpawnError: Error, CustomStringConvertible {
    public let description: String
}

/// Starts `arguments` (a path, or a name on PATH) in the background, stdin
/// from /dev/null, stdout and stderr to files, with an empty signal mask
/// and default SIGTERM, SIGINT and SIGPIPE: the test runner (and the
/// testbed, for its cleanup thread) blocks signals a child must not inherit.
public func spawnWithDefaultSignals(_ arguments: [String], stdout: String, stderr: String) throws(SpawnError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t(), defaults = sigset_t()
    sigemptyset(&empty)
    sigemptyset(&defaults)
    for s in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    guard rc == 0 else { throw SpawnError(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))") }
    return pid
}

/// The exit status of a finished child (128 + signal if killed); nil while it runs (`block`: wait for it).
public func reap(_ pid: pid_t, block: Bool) -> Int32? {
    var s: Int32 = 0
    guard waitpid(pid, &s, block ? 0 : WNOHANG) == pid else { return nil }
    return s & 0x7F == 0 ? (s >> 8) & 0xFF : 128 + (s & 0x7F)
}

/// A program running in the background (a gateway, a capture, traffic),
/// its output in files; spawned with default signal handling. Stopped
/// when dropped, if still running.
public final class BackgroundProcess {
    public let pid: pid_t
    public let out: String, err: String
    public private(set) var status: Int32?

    public init(_ arguments: [String], stdout: String, stderr: String) throws(SpawnError) {
        out = stdout
        err = stderr
        pid = try spawnWithDefaultSignals(arguments, stdout: stdout, stderr: stderr)
    }

    public var stdout: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

    public var isRunning: Bool {
        if status == nil { status = reap(pid, block: false) }
        return status == nil
    }

    /// Waits until `text` shows in its output (stderr or stdout): false if it ends or time runs out first.
    public func wait(for text: String, seconds: Double = 10) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if stderr.contains(text) || stdout.contains(text) { return true }
            if !isRunning { return stderr.contains(text) || stdout.contains(text) }
            usleep(10_000)
        }
        return false
    }

    /// SIGTERM (SIGKILL after `seconds`), then the exit status.
    @discardableResult
    public func stop(seconds: Double = 10) -> Int32 {
        if isRunning { kill(pid, SIGTERM) }
        let end = Date().addingTimeInterval(seconds)
        while isRunning && Date() < end { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            status = reap(pid, block: true)
        }
        return status ?? -1
    }

    deinit { if isRunning { stop(seconds: 2) } }
}
