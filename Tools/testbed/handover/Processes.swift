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

/// A program running in the background, its output in DIR/NAME.out and
/// .err; remembered in `children` for the cleanup after an interruption.
func background(_ name: String, _ arguments: [String], in dir: String) throws -> BackgroundProcess {
    let b = try BackgroundProcess(arguments, stdout: "\(dir)/\(name).out", stderr: "\(dir)/\(name).err")
    children.withLock { $0.append(b.pid) }
    return b
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
