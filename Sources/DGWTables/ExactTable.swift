// An open-addressing exact-match table with lock-free readers, the building
// block of the HNP table and the logical-MAC table.
//
// Layout: `capacity` slots of `stride` 64-bit words, in one allocation:
// one or two key words, then the value word. Value 0 = empty (ends a probe),
// `tombstone` = deleted (probe goes on). Linear probing from a Fibonacci
// hash of the key.
//
// Concurrency (one writer, any number of readers):
// - a slot's key is written once, before its value (release); readers load
//   the value first (acquire), so a non-empty value always comes with its
//   key. A slot's key never changes while the table is published: deleting
//   leaves a tombstone that only the same key may revive. Reusing a slot for
//   another key would let a reader pair an old key with a new value.
// - changing a value is one store: readers see the old or the new one.
// - when tombstones and entries fill the table past `maxLoad`, the writer
//   builds a new table and publishes it; the old one is freed through QSBR.

import Glibc
import Synchronization
import CDGWShim

@usableFromInline
struct ExactTable {
    @usableFromInline static let empty: UInt64 = 0
    @usableFromInline static let tombstone: UInt64 = .max
    /// Entries plus tombstones may fill this share before a rebuild.
    static let maxLoad = 0.6

    @usableFromInline let slots: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let mask: Int
    @usableFromInline let shift: UInt64
    /// 2 for 64-bit keys, 3 for 128-bit keys.
    @usableFromInline let stride: Int
    let capacity: Int

    /// `capacity` is rounded up to a power of two (at least 8).
    init(capacity: Int, wide: Bool) {
        var c = 8
        while c < capacity { c <<= 1 }
        self.capacity = c
        mask = c - 1
        shift = UInt64(64 - c.trailingZeroBitCount)
        stride = wide ? 3 : 2
        let words = c * stride
        // Zeroed by calloc (every slot empty: an all-zero Atomic<UInt64> is
        // Atomic(0)), so a table sized for a million MNs costs the pages
        // its entries land on, not all of them at once. 16-octet alignment
        // keeps a two-word slot within one cache line.
        guard let raw = calloc(words, 8) else { fatalError("no memory for a table of \(c) slots") }
        slots = raw.bindMemory(to: Atomic<UInt64>.self, capacity: words)
    }

    /// Frees the memory: only after a grace period once unpublished.
    func free() {
        #if DEBUG
        // Poison first: a reader still in here would see impossible values.
        for i in 0..<(capacity * stride) { slots[i].store(0xDEAD_DEAD_DEAD_DEAD, ordering: .relaxed) }
        #endif
        slots.deinitialize(count: capacity * stride)
        Glibc.free(UnsafeMutableRawPointer(slots))
    }

    var bytes: Int { capacity * stride * 8 }

    @inlinable @inline(__always)
    func home(_ high: UInt64, _ low: UInt64) -> Int {
        // Fibonacci hashing: the top bits of the product are well mixed.
        let h = (high ^ (low &* 0xC2B2_AE3D_27D4_EB4F)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: h >> shift)
    }

    @inlinable @inline(__always)
    func prefetch(slot: Int) {
        dgw_prefetch(UnsafeRawPointer(slots + slot &* stride))
    }

    /// The value of `key` (high, and low for wide tables), 0 if absent.
    @inlinable @inline(__always)
    func find(_ high: UInt64, _ low: UInt64 = 0) -> UInt64 {
        find(high, low, from: home(high, low))
    }

    @inlinable @inline(__always)
    func find(_ high: UInt64, _ low: UInt64, from start: Int) -> UInt64 {
        var i = start
        // At most `capacity` probes; the writer keeps empty slots, so a
        // probe stops long before.
        for _ in 0...mask {
            let base = slots + i &* stride
            let v = base[stride &- 1].load(ordering: .acquiring)
            if v == Self.empty { return 0 }
            if v != Self.tombstone && base[0].load(ordering: .relaxed) == high
                && (stride == 2 || base[1].load(ordering: .relaxed) == low) {
                return v
            }
            i = (i &+ 1) & mask
        }
        return 0
    }

    enum Insertion { case replaced, revived, added }

    /// Writer only. Sets `key` to `value` (not 0, not tombstone). The caller
    /// has checked there is room (`needsRebuild` after counting).
    func insert(_ high: UInt64, _ low: UInt64, value: UInt64) -> Insertion {
        precondition(value != Self.empty && value != Self.tombstone)
        var i = home(high, low)
        while true {
            let base = slots + i * stride
            let v = base[stride - 1].load(ordering: .relaxed)
            if v == Self.empty {
                base[0].store(high, ordering: .relaxed)
                if stride == 3 { base[1].store(low, ordering: .relaxed) }
                base[stride - 1].store(value, ordering: .releasing)
                return .added
            }
            if base[0].load(ordering: .relaxed) == high && (stride == 2 || base[1].load(ordering: .relaxed) == low) {
                base[stride - 1].store(value, ordering: .releasing)
                return v == Self.tombstone ? .revived : .replaced
            }
            i = (i + 1) & mask
        }
    }

    /// Writer only. Leaves a tombstone; returns false if the key was absent.
    func remove(_ high: UInt64, _ low: UInt64) -> Bool {
        var i = home(high, low)
        while true {
            let base = slots + i * stride
            let v = base[stride - 1].load(ordering: .relaxed)
            if v == Self.empty { return false }
            if v != Self.tombstone && base[0].load(ordering: .relaxed) == high
                && (stride == 2 || base[1].load(ordering: .relaxed) == low) {
                base[stride - 1].store(Self.tombstone, ordering: .releasing)
                return true
            }
            i = (i + 1) & mask
        }
    }

    /// Every live (key, value), for rebuilding.
    func forEach(_ body: (UInt64, UInt64, UInt64) -> Void) {
        for i in 0..<capacity {
            let base = slots + i * stride
            let v = base[stride - 1].load(ordering: .relaxed)
            if v != Self.empty && v != Self.tombstone {
                body(base[0].load(ordering: .relaxed), stride == 3 ? base[1].load(ordering: .relaxed) : 0, v)
            }
        }
    }

    /// Would `used` slots (entries plus tombstones) overfill it?
    func isOverfull(used: Int) -> Bool { Double(used) > Double(capacity) * Self.maxLoad }

    /// Capacity for `live` entries right after a rebuild: at most half full.
    static func capacity(for live: Int) -> Int {
        var c = 8
        while live * 2 > c { c <<= 1 }
        return c
    }
}

/// Writer-side owner of one published `ExactTable`: counts entries and
/// tombstones and rebuilds the table when they fill it. A rebuild hands the
/// old table back; the caller publishes the new one, then retires the old.
/// Its counts are the one writer's (no dynamic exclusivity checks).
final class GrowingTable {
    @exclusivity(unchecked) private(set) var table: ExactTable
    @exclusivity(unchecked) private(set) var live = 0
    @exclusivity(unchecked) private var used = 0
    let wide: Bool

    init(wide: Bool, capacity: Int = 8) {
        self.wide = wide
        table = ExactTable(capacity: capacity, wide: wide)
    }

    var bytes: Int { table.bytes }

    /// Sets `key` to `value`. Returns whether the key is new, and the table
    /// this replaced if it had to be rebuilt (publish, then retire it).
    func insert(_ high: UInt64, _ low: UInt64, value: UInt64) -> (added: Bool, replaced: ExactTable?) {
        var replaced: ExactTable?
        if table.isOverfull(used: used + 1) && table.find(high, low) == 0 {
            replaced = rebuild(forLive: live + 1)
        }
        switch table.insert(high, low, value: value) {
        case .replaced: return (false, replaced)
        case .revived: live += 1; return (true, replaced)
        case .added: live += 1; used += 1; return (true, replaced)
        }
    }

    func remove(_ high: UInt64, _ low: UInt64) -> Bool {
        guard table.remove(high, low) else { return false }
        live -= 1
        return true
    }

    /// When tombstones fill most of the used slots (after a page turned
    /// dense, say), rebuilds for the live entries: misses stop at an empty
    /// slot sooner. Returns the replaced table (publish, then retire it).
    func compactIfMostlyTombstones() -> ExactTable? {
        guard used - live > table.capacity / 4, used - live > live else { return nil }
        return rebuild(forLive: live)
    }

    /// A fresh table holding the live entries, sized for `forLive`.
    private func rebuild(forLive n: Int) -> ExactTable {
        let old = table
        let fresh = ExactTable(capacity: ExactTable.capacity(for: n), wide: wide)
        old.forEach { h, l, v in _ = fresh.insert(h, l, value: v) }
        table = fresh
        used = live
        return old
    }
}
