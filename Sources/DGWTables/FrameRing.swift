// A single-producer, single-consumer ring of frames: how a worker hands the
// frames it punts to the control plane's thread without a lock (DPDK's
// rte_ring in its SP/SC mode, reduced to what that needs). Fixed slots,
// each frame copied in; the producer never waits (a full ring refuses and
// the caller counts it), the consumer never waits (an empty ring says so).

import Synchronization

public final class FrameRing: @unchecked Sendable {
    public let capacity: Int
    public let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int>
    /// Monotonic counters: the next slot to read (consumer's), to write (producer's).
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)

    /// `capacity` is rounded up to a power of two; frames longer than
    /// `slotSize` are refused.
    public init(capacity: Int, slotSize: Int = 2048) {
        var c = 1
        while c < max(capacity, 1) { c <<= 1 }
        self.capacity = c
        self.slotSize = slotSize
        storage = .allocate(byteCount: c * slotSize, alignment: 64)
        lengths = .allocate(capacity: c)
        lengths.initialize(repeating: 0, count: c)
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
    }

    /// Producer side: copies `frame` in; false when the ring is full or the frame too long.
    public func push(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard frame.count <= slotSize else { return false }
        let t = tail.load(ordering: .relaxed)
        // Acquire: the consumer is done with the slot it gave back.
        guard t &- head.load(ordering: .acquiring) < capacity else { return false }
        let i = t & (capacity - 1)
        if let base = frame.baseAddress { (storage + i * slotSize).copyMemory(from: base, byteCount: frame.count) }
        lengths[i] = frame.count
        // Release: the frame is in place before the consumer can see it.
        tail.store(t &+ 1, ordering: .releasing)
        return true
    }

    /// Consumer side: hands the oldest frame to `body` (valid during the
    /// call), then frees its slot; false when the ring is empty.
    public func pop<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let h = head.load(ordering: .relaxed)
        guard h != tail.load(ordering: .acquiring) else { return nil }
        let i = h & (capacity - 1)
        let result = body(UnsafeRawBufferPointer(start: storage + i * slotSize, count: lengths[i]))
        head.store(h &+ 1, ordering: .releasing)
        return result
    }

    /// Frames waiting (a snapshot; exact only on the consumer's thread).
    public var count: Int { tail.load(ordering: .acquiring) &- head.load(ordering: .acquiring) }
}
