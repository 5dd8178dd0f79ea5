// The control plane's timers (retransmissions, refreshes, expiries,
// advertisements), one structure per kind, so that a tick costs what is
// due, not what exists: a gateway serving a million MNs ticks every
// millisecond.
//
// Lazy deletion: the owner keeps each thing's due time in its own record;
// an entry counts only while the owner says the keyed thing is still due
// then. Rescheduling is a push, cancelling is nothing, and stale entries
// fall out when they reach the front or when the structure is compacted.
// Ties pop in the order they were pushed, so replay stays deterministic.
//
// Nearly every push is "now plus a fixed delay" (the next RA of a burst, or
// of the period; a refresh; an expiry), so pushes come in a few runs that
// are each already in time order: each run is a FIFO lane, pushed and
// popped at its ends in O(1) with no cache miss, where a heap of two
// million advertisement deadlines missed the cache at each of its levels
// on every pop. A push joins the lane whose last entry is the latest not
// after it (patience sorting's best fit); one that fits no lane, with all
// lanes taken, goes to a four-ary heap. A pop takes the earliest of the
// lanes' fronts and the heap's top, by (due, push order): the same order
// a single heap gives.

struct Deadlines<Key> {
    private struct Entry {
        var due: Int64
        var stamp: UInt64
        var key: Key
        func before(_ other: Entry) -> Bool { due != other.due ? due < other.due : stamp < other.stamp }
    }

    /// Entries in time order, the front at `head`.
    private struct Lane {
        var entries: [Entry] = []
        var head = 0
        var isEmpty: Bool { head == entries.count }
        var front: Entry? { isEmpty ? nil : entries[head] }
        var last: Entry? { isEmpty ? nil : entries[entries.count - 1] }
        var count: Int { entries.count - head }

        mutating func popFront() {
            head += 1
            if head == entries.count {
                entries.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 4096 && head * 2 >= entries.count {
                entries.removeFirst(head)  // each entry moved at most once per halving: O(1) a pop
                head = 0
            }
        }
    }

    /// More lanes cost a comparison each per pop; fewer send more to the heap.
    static var maxLanes: Int { 8 }
    private var lanes: [Lane] = []
    private var heap: [Entry] = []
    private var stamps: UInt64 = 0
    private var reserved = 0

    var count: Int { heap.count + lanes.reduce(0) { $0 + $1.count } }

    /// Room for `n` entries at once in any lane that opens: no copy of a
    /// million entries while one fills (address space only, until used).
    mutating func reserveCapacity(_ n: Int) {
        reserved = n
        for i in lanes.indices { lanes[i].entries.reserveCapacity(n) }
    }

    mutating func schedule(_ key: Key, at due: Int64) {
        let e = Entry(due: due, stamp: stamps, key: key)
        stamps &+= 1
        // The lane whose last entry is the latest not after `e`; else an
        // empty lane; else a new one; else the heap.
        var best = -1, empty = -1
        for i in lanes.indices {
            guard let last = lanes[i].last else {
                if empty < 0 { empty = i }
                continue
            }
            if last.due <= due && (best < 0 || lanes[best].last!.due < last.due) { best = i }
        }
        if best < 0 { best = empty }
        if best < 0 && lanes.count < Self.maxLanes {
            var lane = Lane()
            lane.entries.reserveCapacity(reserved)
            lanes.append(lane)
            best = lanes.count - 1
        }
        if best >= 0 {
            lanes[best].entries.append(e)
        } else {
            heap.append(e)
            siftUp(heap.count - 1)
        }
    }

    /// The earliest current deadline, dropping stale entries in front.
    mutating func earliest(isCurrent: (Key, Int64) -> Bool) -> Int64? {
        while let (source, top) = first() {
            if isCurrent(top.key, top.due) { return top.due }
            pop(source)
        }
        return nil
    }

    /// Takes the earliest current entry due by `time`.
    mutating func next(dueBy time: Int64, isCurrent: (Key, Int64) -> Bool) -> (key: Key, due: Int64)? {
        while let (source, top) = first(), top.due <= time {
            pop(source)
            if isCurrent(top.key, top.due) { return (top.key, top.due) }
        }
        return nil
    }

    /// Drops stale entries once they outnumber the live ones (`live`
    /// things, each due at most once), so rescheduling cannot grow the
    /// structure without bound.
    mutating func compact(live: Int, isCurrent: (Key, Int64) -> Bool) {
        let n = count
        guard n > 1024, n > 2 * live else { return }
        for i in lanes.indices {
            let head = lanes[i].head
            lanes[i].entries.removeSubrange(..<head)
            lanes[i].head = 0
            lanes[i].entries.removeAll { !isCurrent($0.key, $0.due) }  // stays in order
        }
        heap.removeAll { !isCurrent($0.key, $0.due) }
        for i in stride(from: (heap.count - 2) / 4, through: 0, by: -1) { siftDown(i) }
    }

    /// The earliest entry and where it is: a lane's index, or -1 for the heap.
    private func first() -> (source: Int, entry: Entry)? {
        var best: (source: Int, entry: Entry)? = heap.first.map { (-1, $0) }
        for i in lanes.indices {
            guard let f = lanes[i].front else { continue }
            if best == nil || f.before(best!.entry) { best = (i, f) }
        }
        return best
    }

    private mutating func pop(_ source: Int) {
        if source >= 0 {
            lanes[source].popFront()
            return
        }
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
