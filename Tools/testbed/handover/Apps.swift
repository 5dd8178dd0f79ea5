// The traffic of the handover scenario, each a subcommand run inside a
// namespace (`ip netns exec NS dgw-testbed ...`): a verified TCP stream
// (source on the MN, sink on the CN) and a 1 kHz UDP probe (sender on the
// CN, receiver on the MN). SIGTERM ends each one cleanly; what it saw goes
// to a file or stdout for the scenario to judge.

import Foundation
import Synchronization

let stopRequested = Atomic<Bool>(false)

/// SIGTERM and SIGINT set `stopRequested` and interrupt blocking calls (no SA_RESTART).
func stopOnSignals() {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in stopRequested.store(true, ordering: .relaxed) }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    sigaction(SIGTERM, &action, nil)
    sigaction(SIGINT, &action, nil)
}

var stopping: Bool { stopRequested.load(ordering: .relaxed) }

func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// Byte `i` of every verified stream.
@inline(__always) func streamByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: (i &* 131) ^ (i >> 9)) }

struct AppError: Error, CustomStringConvertible {
    let description: String
    init(_ what: String, errno e: Int32 = errno) { description = "\(what): \(String(cString: strerror(e)))" }
    init(message: String) { description = message }
}

/// An IPv6 socket address for `address` (text) and `port`.
func socketAddress(_ address: String, _ port: Int) throws -> sockaddr_in6 {
    var a = sockaddr_in6()
    a.sin6_family = sa_family_t(AF_INET6)
    a.sin6_port = in_port_t(UInt16(port).bigEndian)
    guard inet_pton(AF_INET6, address, &a.sin6_addr) == 1 else { throw AppError(message: "not an IPv6 address: \(address)") }
    return a
}

func text(of a: sockaddr_in6) -> String {
    var a = a
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    inet_ntop(AF_INET6, &a.sin6_addr, &buffer, socklen_t(buffer.count))
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A line on stdout at once (the scenario reads it while this runs).
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

func withSockaddr<R>(_ a: inout sockaddr_in6, _ body: (UnsafeMutablePointer<sockaddr>, socklen_t) -> R) -> R {
    withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
}

/// Waits up to `ms` for `fd` to be readable; false on timeout or a signal.
func readable(_ fd: Int32, ms: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, ms) > 0
}

func listeningSocket(type: Int32, port: Int) throws -> Int32 {
    let fd = socket(AF_INET6, type, 0)
    guard fd >= 0 else { throw AppError("socket") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var a = try socketAddress("::", port)
    guard withSockaddr(&a, { bind(fd, $0, $1) }) == 0 else { throw AppError("bind [::]:\(port)") }
    if type == Int32(SOCK_STREAM.rawValue) { guard listen(fd, 16) == 0 else { throw AppError("listen") } }
    return fd
}

/// `tcp-sink --port P --out FILE`: accepts connections until SIGTERM and
/// checks every byte of each against the stream; one JSON line per
/// connection in FILE: peer, local address, bytes, first bad offset, how it ended.
func tcpSink(port: Int, out: String) throws {
    let fd = try listeningSocket(type: Int32(SOCK_STREAM.rawValue), port: port)
    let results = Mutex<[String]>([])
    let group = DispatchGroup()
    while !stopping {
        guard readable(fd, ms: 100) else { continue }
        var peer = sockaddr_in6()
        let c = withSockaddr(&peer) { p, _ in
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            return accept(fd, p, &length)
        }
        guard c >= 0 else { continue }
        var local = sockaddr_in6()
        _ = withSockaddr(&local) { p, _ in
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            return getsockname(c, p, &length)
        }
        let (peerText, localText) = (text(of: peer), text(of: local))
        group.enter()
        Thread {
            defer { group.leave() }
            var bytes = 0, badAt = -1, end = "open"
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                if stopping { break }
                guard readable(c, ms: 100) else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n == 0 { end = "eof"; break }
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    end = errno == ECONNRESET ? "reset" : "error \(errno)"
                    break
                }
                if badAt < 0 {
                    for k in 0..<n where buffer[k] != streamByte(bytes + k) {
                        badAt = bytes + k
                        break
                    }
                }
                bytes += n
            }
            close(c)
            results.withLock {
                $0.append("{\"peer\":\"\(peerText)\",\"local\":\"\(localText)\",\"bytes\":\(bytes),\"bad_at\":\(badAt),\"end\":\"\(end)\"}")
            }
        }.start()
    }
    group.wait()
    close(fd)
    try Data(results.withLock { $0 }.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: out))
}

/// `tcp-source --to ADDR --port P [--bytes N]`: connects, prints
/// `local ADDRESS` (the source address the MN's stack chose), then sends
/// the stream: N bytes as fast as it goes, or about 1 MB/s until SIGTERM.
/// Then closes its side, waits for the sink's, prints `sent N`. Any error
/// (a reset, a timeout) is printed and the exit status is 1.
func tcpSource(to address: String, port: Int, bytes total: Int?) throws {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw AppError("socket") }
    var to = try socketAddress(address, port)
    guard withSockaddr(&to, { connect(fd, $0, $1) }) == 0 else { throw AppError("connect [\(address)]:\(port)") }
    var local = sockaddr_in6()
    _ = withSockaddr(&local) { p, _ in
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        return getsockname(fd, p, &length)
    }
    say("local \(text(of: local))")
    var sent = 0
    var chunk = [UInt8](repeating: 0, count: total == nil ? 1000 : 16_384)
    while !stopping {
        if let total, sent >= total { break }
        let n = min(chunk.count, (total ?? .max) - sent)
        for k in 0..<n { chunk[k] = streamByte(sent + k) }
        var off = 0
        while off < n {
            let w = chunk.withUnsafeBytes { send(fd, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
            if w < 0 {
                if errno == EINTR { if stopping { break } else { continue } }
                throw AppError("send after \(sent + off) bytes")
            }
            off += w
        }
        sent += off
        if total == nil { usleep(1000) }
    }
    guard shutdown(fd, Int32(SHUT_WR)) == 0 else { throw AppError("shutdown") }
    // The sink closes when it has read everything.
    let end = monotonicNanoseconds() + 10_000_000_000
    var byte = [UInt8](repeating: 0, count: 256)
    while monotonicNanoseconds() < end {
        guard readable(fd, ms: 100) else { continue }
        let n = byte.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { break }
        if n < 0 && errno != EINTR { throw AppError("waiting for the sink's close") }
    }
    close(fd)
    say("sent \(sent)")
}

/// `probe-send --to ADDR --port P [--rate HZ]`: one datagram every 1/HZ s
/// (absolute deadlines on the monotonic clock), each with its sequence
/// number and send time, until SIGTERM; prints `sent N`.
func probeSend(to address: String, port: Int, rate: Int) throws {
    let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw AppError("socket") }
    var to = try socketAddress(address, port)
    let period = UInt64(1_000_000_000 / rate)
    var next = monotonicNanoseconds()
    var seq: UInt64 = 0
    var payload = [UInt8](repeating: 0, count: 16)
    while !stopping {
        var deadline = timespec(tv_sec: Int(next / 1_000_000_000), tv_nsec: Int(next % 1_000_000_000))
        if clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) != 0 { continue }
        let now = monotonicNanoseconds()
        withUnsafeBytes(of: seq.bigEndian) { payload.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: now.bigEndian) { payload.replaceSubrange(8..<16, with: $0) }
        _ = withSockaddr(&to) { a, l in payload.withUnsafeBytes { sendto(fd, $0.baseAddress, 16, 0, a, l) } }
        seq += 1
        next += period
    }
    close(fd)
    say("sent \(seq)")
}

/// `probe-recv --port P --out FILE`: records each probe (sequence number,
/// send time, receive time, in ns of the monotonic clock, which every
/// namespace shares) until SIGTERM, then writes them to FILE, one per line.
func probeReceive(port: Int, out: String) throws {
    let fd = try listeningSocket(type: Int32(SOCK_DGRAM.rawValue), port: port)
    var lines: [String] = []
    lines.reserveCapacity(200_000)
    var buffer = [UInt8](repeating: 0, count: 64)
    while !stopping {
        guard readable(fd, ms: 100) else { continue }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        let now = monotonicNanoseconds()
        guard n == 16 else { continue }
        let seq = buffer[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let sentAt = buffer[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        lines.append("\(seq) \(sentAt) \(now)\n")
    }
    close(fd)
    try Data(lines.joined().utf8).write(to: URL(fileURLWithPath: out))
}
