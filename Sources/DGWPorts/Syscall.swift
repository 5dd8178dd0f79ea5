import CDGWShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Errors at the I/O edge: which call failed and why.
public enum PortError: Error, Equatable, CustomStringConvertible {
    /// A syscall failed with `errno`.
    case syscall(name: String, errno: Int32)
    /// libpcap refused, with its own message.
    case pcap(operation: String, message: String)

    public var description: String {
        switch self {
        case .syscall(let name, let e): "\(name): \(String(cString: strerror(e))) (errno \(e))"
        case .pcap(let op, let message): "\(op): \(message)"
        }
    }
}

/// Syscalls wrapped once: EINTR retried, failures thrown with errno and
/// the call's name. The hot loop never sees errno.
public enum Syscall {
    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
    @inline(never)
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(PortError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                let e = dgw_errno()
                if e == EINTR { continue }
                throw .syscall(name: "write", errno: e)
            }
            done += n
        }
    }

    /// Reads what is there, up to `into.count` bytes (0 at the end of the
    /// file), retrying EINTR.
    @inline(never)
    public static func read(_ fd: Int32, _ into: UnsafeMutableRawBufferPointer) throws(PortError) -> Int {
        while true {
            let n = Glibc.read(fd, into.baseAddress, into.count)
            if n >= 0 { return n }
            let e = dgw_errno()
            if e != EINTR { throw .syscall(name: "read", errno: e) }
        }
    }

    /// Reads until `into` is full or the file ends; returns the bytes read.
    public static func readFully(_ fd: Int32, _ into: UnsafeMutableRawBufferPointer) throws(PortError) -> Int {
        var done = 0
        while done < into.count {
            let n = try read(fd, UnsafeMutableRawBufferPointer(rebasing: into[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Opens `path` read-only (close-on-exec); -1 with errno set on failure.
    public static func open(_ path: String) -> Int32 {
        while true {
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 || dgw_errno() != EINTR { return fd }
        }
    }

    /// Creates or truncates `path` for writing (mode 0644 before the umask);
    /// -1 with errno set on failure.
    public static func create(_ path: String) -> Int32 {
        while true {
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0 || dgw_errno() != EINTR { return fd }
        }
    }

    /// Pins the calling thread to `cpu`.
    @inline(never)
    public static func pinThread(to cpu: Int) throws(PortError) {
        guard dgw_pin_thread_to_cpu(Int32(cpu)) == 0 else {
            throw .syscall(name: "pthread_setaffinity_np", errno: dgw_errno())
        }
    }

    /// CPUs the calling thread may run on.
    @inline(never)
    public static func allowedCPUCount() throws(PortError) -> Int {
        let n = dgw_thread_allowed_cpu_count()
        guard n >= 0 else { throw .syscall(name: "pthread_getaffinity_np", errno: dgw_errno()) }
        return Int(n)
    }

    @inline(never)
    public static func firstAllowedCPU() throws(PortError) -> Int {
        let n = dgw_thread_first_allowed_cpu()
        guard n >= 0 else { throw .syscall(name: "pthread_getaffinity_np", errno: dgw_errno()) }
        return Int(n)
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    public static func monotonicNanoseconds() -> UInt64 { dgw_monotonic_ns() }

    /// CLOCK_REALTIME in nanoseconds since the epoch: the clock the
    /// kernel stamps received frames with.
    public static func realtimeNanoseconds() -> Int64 { Int64(dgw_realtime_ns()) }
}

/// Buffered output to a file descriptor (stdout for `dgw decode`): one
/// write per 64 KiB instead of one per line.
public struct BufferedOutput: ~Copyable {
    public let fd: Int32
    private var buffer: [UInt8] = []
    private let capacity: Int

    public init(fd: Int32, capacity: Int = 1 << 16) {
        self.fd = fd
        self.capacity = capacity
        buffer.reserveCapacity(capacity)
    }

    public mutating func write(_ s: String) throws(PortError) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= capacity { try flush() }
    }

    public mutating func flush() throws(PortError) {
        guard !buffer.isEmpty else { return }
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        let failure: PortError? = pending.withUnsafeBytes { b in
            do throws(PortError) { try Syscall.writeAll(fd, b); return nil } catch { return error }
        }
        if let failure { throw failure }
    }
}

/// An eventfd: a thread that has work for another wakes it at once rather
/// than let it find the work at its next periodic look (the workers wake
/// the control plane's thread when they hand it a frame).
public final class Wakeup: @unchecked Sendable {
    public let descriptor: Int32

    public init() throws(PortError) {
        let fd = dgw_eventfd()
        guard fd >= 0 else { throw .syscall(name: "eventfd", errno: dgw_errno()) }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// Wakes the waiter (never blocks; a full counter wakes it too).
    public func signal() {
        while dgw_eventfd_signal(descriptor) < 0 && dgw_errno() == EINTR {}
    }

    /// Waits until signalled or `milliseconds` pass, then clears the signal.
    public func wait(milliseconds: Int) {
        _ = try? StopSignal.poll([descriptor], milliseconds: milliseconds)
        while dgw_eventfd_drain(descriptor) < 0 && dgw_errno() == EINTR {}
    }
}
