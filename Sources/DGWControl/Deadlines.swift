// The control plane's timers (retransmissions, refreshes, expiries,
// advertisements) as one binary min-heap per kind, so that a tick costs
// what is due, not what exists: a gateway serving a million MNs ticks every
// millisecond.
//
// Lazy deletion: the owner keeps each thing's due time in its own record;
// an entry counts only while the owner says the keyed thing is still due
// then. Rescheduling is a push, cancelling is nothing, and stale entries
// fall out when they reach the top or when the heap is compacted. Ties
// pop in the order they were pushed, so replay stays deterministic.
//
// Four children per node: half the levels of a binary heap, so a pop from
// a million entries takes some 10 cache misses instead of 20, and the
// children it compares sit next to each other.

struct Deadlines<Key> {
    private struct Entry {
        var due: Int64
        var stamp: UInt64
        var key: Key
        func before(_ other: Entry) -> Bool { due != other.due ? due < other.due : stamp < other.stamp }
    }
    private var heap: [Entry] = []
    private var stamps: UInt64 = 0

    var count: Int { heap.count }

    /// Room for `n` entries at once: no copy of a million-entry heap while it fills.
    mutating func reserveCapacity(_ n: Int) { heap.reserveCapacity(n) }

    mutating func schedule(_ key: Key, at due: Int64) {
        heap.append(Entry(due: due, stamp: stamps, key: key))
        stamps &+= 1
        siftUp(heap.count - 1)
    }

    /// The earliest current deadline, dropping stale entries on top.
    mutating func earliest(isCurrent: (Key, Int64) -> Bool) -> Int64? {
        while let top = heap.first {
            if isCurrent(top.key, top.due) { return top.due }
            pop()
        }
        return nil
    }

    /// Takes the earliest current entry due by `time`.
    mutating func next(dueBy time: Int64, isCurrent: (Key, Int64) -> Bool) -> (key: Key, due: Int64)? {
        while let top = heap.first, top.due <= time {
            pop()
            if isCurrent(top.key, top.due) { return (top.key, top.due) }
        }
        return nil
    }

    /// Drops stale entries once they outnumber the live ones (`live`
    /// things, each due at most once), so rescheduling cannot grow the heap
    /// without bound.
    mutating func compact(live: Int, isCurrent: (Key, Int64) -> Bool) {
        guard heap.count > 1024, heap.count > 2 * live else { return }
        heap.removeAll { !isCurrent($0.key, $0.due) }
        for i in stride(from: (heap.count - 2) / 4, through: 0, by: -1) { siftDown(i) }
    }

    private mutating func pop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 4
            guard heap[i].before(heap[parent]) else { return }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let first = 4 * i + 1
            guard first < heap.count else { return }
            var m = i
            for c in first..<min(first + 4, heap.count) where heap[c].before(heap[m]) { m = c }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}
