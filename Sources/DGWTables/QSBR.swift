// Quiescent-state-based reclamation, in the spirit of DPDK's rte_rcu_qsbr.
//
// Readers (data-plane workers) never lock or wait: after each batch they
// report a quiescent state, one relaxed-load and one release-store, meaning
// "I hold no reference into shared tables". The writer (control plane)
// unlinks an object, then either waits for a grace period (every online
// reader has reported after the unlink) or defers the free to a queue that
// `reclaim()` drains once the grace period is over.
//
// Token scheme: a global counter starts at 1; a grace period that starts
// bumps it to T; it is over when every reader's counter is 0 (offline) or
// at least T.

import Synchronization

/// A registered reader's slot.
public struct QSBRReader: Sendable, Hashable {
    public let index: Int
}

public final class QSBR: @unchecked Sendable {
    /// Readers are tracked in one 64-bit mask.
    public static let maxReaders = 64
    // Counters sit 64 bytes apart so that readers never share a cache line.
    @usableFromInline static let stride = 8

    @usableFromInline let token = Atomic<UInt64>(1)
    @usableFromInline let counters: UnsafeMutablePointer<Atomic<UInt64>>
    /// The readers' slots in use, one bit each. An atomic, not a Mutex: the
    /// standard library's Mutex locks with futexes that Thread Sanitizer
    /// does not see, which made concurrent unregisters look like a race.
    private let registered = Atomic<UInt64>(0)
    /// Writer only (like every writer call: the control plane's thread).
    /// No dynamic exclusivity checks (as HNPTable's books): `reclaim` runs
    /// after every binding change, and its check of this list cost about
    /// 75 instructions a call, 450 a handover.
    @exclusivity(unchecked) private var deferred: [(token: UInt64, free: () -> Void)] = []

    public init() {
        let n = Self.maxReaders * Self.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 8, alignment: 64)
        counters = raw.bindMemory(to: Atomic<UInt64>.self, capacity: n)
        for i in 0..<n { (counters + i).initialize(to: Atomic(0)) }
    }

    deinit {
        // Whatever is still deferred is freed now: no reader can outlive us.
        for d in deferred { d.free() }
        counters.deinitialize(count: Self.maxReaders * Self.stride)
        UnsafeMutableRawPointer(counters).deallocate()
    }

    // MARK: Readers

    /// A new reader, online. Nil when all slots are taken.
    public func register() -> QSBRReader? {
        var mask = registered.load(ordering: .sequentiallyConsistent)
        var index: Int
        repeat {
            guard mask != .max else { return nil }
            index = (~mask).trailingZeroBitCount
            let (exchanged, seen) = registered.compareExchange(expected: mask, desired: mask | 1 << UInt64(index),
                                                               ordering: .sequentiallyConsistent)
            if exchanged { break }
            mask = seen
        } while true
        let reader = QSBRReader(index: index)
        online(reader)
        return reader
    }

    public func unregister(_ reader: QSBRReader) {
        offline(reader)
        registered.bitwiseAnd(~(1 << UInt64(reader.index)), ordering: .sequentiallyConsistent)
    }

    /// Once per batch: no reference into shared tables is held past here.
    @inlinable
    public func quiescent(_ reader: QSBRReader) {
        let t = token.load(ordering: .relaxed)
        counters[reader.index &* Self.stride].store(t, ordering: .releasing)
    }

    /// The reader will block (in poll, say): grace periods stop waiting for it.
    @inlinable
    public func offline(_ reader: QSBRReader) {
        counters[reader.index &* Self.stride].store(0, ordering: .releasing)
    }

    /// Back from `offline`; shared tables may be read after this returns.
    @inlinable
    public func online(_ reader: QSBRReader) {
        let t = token.load(ordering: .acquiring)
        // Sequentially consistent, so the table reads after this cannot be
        // ordered before the writer sees us online (DPDK uses a full fence).
        counters[reader.index &* Self.stride].store(t, ordering: .sequentiallyConsistent)
    }

    // MARK: Writer

    /// Starts a grace period for everything unlinked before this call.
    public func start() -> UInt64 {
        token.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
    }

    /// True once every online reader has reported since `start()` gave `t`.
    public func isComplete(_ t: UInt64) -> Bool { t <= completed() }

    /// The latest token whose grace period is over (`isComplete(t)` is
    /// `t <= completed()`): one look at the readers for a whole queue.
    public func completed() -> UInt64 {
        var done = token.load(ordering: .acquiring)
        var m = registered.load(ordering: .sequentiallyConsistent)
        while m != 0 {
            let i = m.trailingZeroBitCount
            m &= m - 1
            let c = counters[i * Self.stride].load(ordering: .acquiring)
            if c != 0 { done = min(done, c) }
        }
        return done
    }

    /// Waits (yielding) for a grace period: the writer's blocking variant.
    public func synchronize() {
        let t = start()
        while !isComplete(t) { Thread_yield() }
    }

    /// Defers `free` until a grace period started now is over.
    public func retire(_ free: @escaping () -> Void) {
        let t = start()
        deferred.append((t, free))
    }

    /// Runs the deferred frees whose grace period is over; returns how many.
    @discardableResult
    public func reclaim() -> Int {
        guard !deferred.isEmpty else { return 0 }
        // Tokens increase along the queue: stop at the first not ready.
        let done = completed()
        var n = 0
        while n < deferred.count && deferred[n].token <= done { n += 1 }
        guard n > 0 else { return 0 }
        let ready = deferred[..<n].map(\.free)
        deferred.removeFirst(n)
        for free in ready { free() }
        return n
    }

    /// Deferred frees not yet run.
    public var pending: Int { deferred.count }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func Thread_yield() { sched_yield() }
#else
@usableFromInline func Thread_yield() {}
#endif
