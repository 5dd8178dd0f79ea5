import CDGWShim
import Dispatch
import Synchronization

/// Full buffers written to a file, in order, on a thread of its own: the
/// kernel's copy into the page cache (about half of a long replay's time)
/// then runs beside the caller's work instead of inside it.
///
/// The caller fills one buffer while up to `depth - 1` others are written.
/// Buffers are used round-robin and written first in, first out, so the one
/// the caller gets next is always the oldest handed over, already written.
/// The first failed write is reported by the next hand-over or by `drain`;
/// nothing after it is written (no hole in the file).
final class WriteBehind: @unchecked Sendable {
    static let depth = 4
    let fd: Int32
    let size: Int
    /// `depth` buffers of `size` bytes, one allocation.
    private let storage: UnsafeMutableRawPointer
    private let queue = DispatchQueue(label: "dgw.write-behind")
    /// Buffers written back (the caller holds one more).
    private let writable = DispatchSemaphore(value: depth - 1)
    private let failure = Mutex<PortError?>(nil)
    /// The caller's buffer; touched by the caller only.
    private var current = 0

    init(fd: Int32, size: Int) {
        self.fd = fd
        self.size = size
        storage = .allocate(byteCount: Self.depth * size, alignment: 4096)
    }

    deinit {
        // The queue's blocks hold self until they run: nothing is in flight here.
        storage.deallocate()
    }

    /// The buffer the caller fills.
    var buffer: UnsafeMutableRawPointer { storage + current * size }

    /// Queues the first `count` bytes of `buffer` and returns the next
    /// buffer to fill, waiting only while `depth - 1` are still in flight.
    func handOver(count: Int) throws(PortError) -> UnsafeMutableRawPointer {
        if let e = failure.withLock({ $0 }) { throw e }
        let index = current
        queue.async { [self] in
            defer { writable.signal() }
            guard failure.withLock({ $0 == nil }) else { return }
            do throws(PortError) {
                try Syscall.writeAll(fd, UnsafeRawBufferPointer(start: storage + index * size, count: count))
            } catch {
                failure.withLock { $0 = error }
            }
        }
        writable.wait()
        current = (current + 1) % Self.depth
        return buffer
    }

    /// Waits until everything handed over is written; throws the first failure.
    func drain() throws(PortError) {
        queue.sync {}
        if let e = failure.withLock({ $0 }) { throw e }
    }
}
