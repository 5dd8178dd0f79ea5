// Commands and background programs for the scenario: `ip`, `sysctl` and
// friends run to completion; gateways, traffic and captures run in the
// background with their output in files. Children start with an empty
// signal mask and default dispositions (the scenario blocks SIGINT and
// SIGTERM for its cleanup thread; a child must not inherit that).

import DGWTestSupport
import Foundation
import Synchronization

/// Every child started, for the cleanup after an interruption.
let children = Mutex<[pid_t]>([])

struct ShellError: Error, CustomStringConvertible {
    let description: String
}

/// Spawns `arguments` with stdin from /dev/null and stdout, stderr to
/// files (or /dev/null), default signal handling; remembered in `children`.
func spawn(_ arguments: [String], stdout: String = "/dev/null", stderr: String = "/dev/null") throws -> pid_t {
    let pid = try spawnWithDefaultSignals(arguments, stdout: stdout, stderr: stderr)
    children.withLock { $0.append(pid) }
    return pid
}

/// Exit status of a finished child (128 + signal if killed); nil while it runs (`block`: wait).
func reap(_ pid: pid_t, block: Bool) -> Int32? {
    var s: Int32 = 0
    guard waitpid(pid, &s, block ? 0 : WNOHANG) == pid else { return nil }
    return s & 0x7F == 0 ? (s >> 8) & 0xFF : 128 + (s & 0x7F)
}

/// Runs `command` with /bin/sh to completion; throws with its stderr unless it exits 0.
@discardableResult
func sh(_ command: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.path
    let id = UUID().uuidString
    let out = "\(dir)/dgw-testbed-\(id).out", err = "\(dir)/dgw-testbed-\(id).err"
    defer { unlink(out); unlink(err) }
    let pid = try spawn(["/bin/sh", "-c", command], stdout: out, stderr: err)
    let status = reap(pid, block: true) ?? -1
    let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    guard status == 0 else {
        throw ShellError(description: "\(command): status \(status): \(((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    return output
}

/// A program running in the background, its output in DIR/NAME.out and .err.
final class Background {
    let name: String
    let pid: pid_t
    let out: String, err: String
    private(set) var status: Int32?

    init(_ name: String, _ arguments: [String], in dir: String) throws {
        self.name = name
        out = "\(dir)/\(name).out"
        err = "\(dir)/\(name).err"
        pid = try spawn(arguments, stdout: out, stderr: err)
    }

    var stdout: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

    var isRunning: Bool {
        if status == nil { status = reap(pid, block: false) }
        return status == nil
    }

    /// Waits until `text` shows in the output (stdout or stderr); false if it ends or time runs out first.
    func wait(for text: String, seconds: Double = 10) -> Bool {
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
    func stop(seconds: Double = 10) -> Int32 {
        if isRunning { kill(pid, SIGTERM) }
        let end = Date().addingTimeInterval(seconds)
        while isRunning && Date() < end { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            status = reap(pid, block: true)
        }
        return status ?? -1
    }
}

/// One request to a gateway's control socket (what `dgw ctl` sends), its answer.
func control(_ socketPath: String, _ request: String) throws -> String {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ShellError(description: "socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let path = Array(socketPath.utf8)
    guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { throw ShellError(description: "\(socketPath): path too long") }
    withUnsafeMutableBytes(of: &address.sun_path) { b in
        for (i, c) in path.enumerated() { b[i] = c }
        b[path.count] = 0
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else { throw ShellError(description: "\(socketPath): \(String(cString: strerror(errno)))") }
    let bytes = Array((request + "\n").utf8)
    guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
        throw ShellError(description: "\(socketPath): write failed")
    }
    var reply: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        reply += buffer[..<n]
    }
    let text = String(decoding: reply, as: UTF8.self)
    if text.hasPrefix("error:") { throw ShellError(description: "\(socketPath) \(request): \(text)") }
    return text
}
