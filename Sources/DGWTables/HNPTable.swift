// The HNP table: longest-prefix match over IPv6 prefixes of any length,
// 32-bit next hops, lock-free readers, one writer.
//
// Shaped for the D-GW: most routes are /64 HNPs, some /48 local networks,
// a few shorter operator prefixes. Layout (all published in one immutable
// snapshot, swapped with one pointer store):
// - /64 routes: an exact-match table on the upper 64 bits (one probe,
//   usually one cache miss, prefetched in batches);
// - except in /48 "pages" holding many /64s (a D-GW's own pool, allocated in
//   order): there a direct array of 65,536 next hops indexed by bits 48-63
//   replaces the hash entries, so a dense pool costs 4 bytes per /64 and
//   stays in cache;
// - every other length: one exact-match table per length present, probed
//   longest first (lengths above 64 before the /64 stage, below 64 after).
// Cost: a lookup probes one table per distinct length present in the worst
// case (a miss), so it is fast when few lengths are in use, as in a D-GW.
// The tables are the source of truth: an exact query is one probe.

import Synchronization
import CDGWShim
import DGWWire

public enum TableError: Error, Equatable {
    /// Next hops are 1...0xFFFF_FFFE: 0 means "no route".
    case invalidNextHop
}

/// What readers see: immutable once published.
@usableFromInline
struct Snapshot {
    @usableFromInline var hnp: ExactTable
    @usableFromInline var pageDirectory: ExactTable
    @usableFromInline var pageCount: Int
    /// Tables for lengths above 64, longest first, and their low-word masks.
    @usableFromInline var longerCount: Int
    @usableFromInline var longer: UnsafeMutablePointer<ExactTable>
    @usableFromInline var longerMasks: UnsafeMutablePointer<UInt64>
    /// Tables for lengths below 64, longest first, and their high-word masks.
    @usableFromInline var shorterCount: Int
    @usableFromInline var shorter: UnsafeMutablePointer<ExactTable>
    @usableFromInline var shorterMasks: UnsafeMutablePointer<UInt64>

    /// Longest-prefix match; `home` is the /64 table slot of `high` if the
    /// caller computed it (and prefetched it), else -1.
    @inlinable @inline(__always)
    func lookup(_ high: UInt64, _ low: UInt64, home: Int = -1) -> UInt32 {
        var k = 0
        while k < longerCount {
            let v = longer[k].find(high, low & longerMasks[k])
            if v != 0 { return UInt32(truncatingIfNeeded: v) }
            k &+= 1
        }
        // A /48 page is either dense (all its /64s in the array) or not (all
        // in the hash): one of the two is probed, never both.
        let page = pageCount != 0 ? pageDirectory.find(high >> 16) : 0
        if page != 0 {
            let entries = UnsafeMutablePointer<Atomic<UInt32>>(bitPattern: UInt(page)).unsafelyUnwrapped
            let e = entries[Int(truncatingIfNeeded: high & 0xFFFF)].load(ordering: .relaxed)
            if e != 0 { return e }
        } else {
            let v = home >= 0 ? hnp.find(high, 0, from: home) : hnp.find(high)
            if v != 0 { return UInt32(truncatingIfNeeded: v) }
        }
        return shorterMatch(high)
    }

    /// The match among prefixes shorter than /64, longest first.
    @inlinable @inline(__always)
    func shorterMatch(_ high: UInt64) -> UInt32 {
        var k = 0
        while k < shorterCount {
            let v = shorter[k].find(high & shorterMasks[k])
            if v != 0 { return UInt32(truncatingIfNeeded: v) }
            k &+= 1
        }
        return 0
    }
}

public final class HNPTable: @unchecked Sendable {
    /// Readers of this table report quiescent states here.
    public let qsbr: QSBR
    /// A /48 turns into a direct array at this many /64s (4 bytes per /64
    /// then, against 32 in the hash), and back below a quarter of it.
    public let densePageThreshold: Int

    @usableFromInline let published = Atomic<UnsafeMutableRawPointer?>(nil)

    // Writer state. One writer at a time (the control plane).
    // The writer's books, changed by the one writer only: no dynamic
    // exclusivity checks (their access-set calls cost about 200
    // instructions a route change; the Benchmarks package builds this
    // module, so its release build keeps the checks everywhere else).
    @exclusivity(unchecked) private var tables: [GrowingTable?] = Array(repeating: nil, count: 129)
    private let hnp = GrowingTable(wide: false)
    private let pageDirectory = GrowingTable(wide: false)
    /// Per /48 page holding /64 routes: how many, and its array if dense.
    private struct PageInfo {
        var routes = 0
        var entries: UnsafeMutablePointer<Atomic<UInt32>>?

        /// Called on `pages[page, default:]`: one hash look-up, in place.
        mutating func update<R>(_ body: (inout PageInfo) throws -> R) rethrows -> R { try body(&self) }
    }
    /// A page's number (the upper 48 bits of its /64s), hashed without
    /// SipHash (`foldedHash`): three look-ups here a handover.
    private struct Page: Hashable {
        var number: UInt64
        init(_ number: UInt64) { self.number = number }
        func _rawHashValue(seed: Int) -> Int { foldedHash(number, 0x30, seed: seed) }
    }
    @exclusivity(unchecked) private var pages: [Page: PageInfo] = [:]
    @exclusivity(unchecked) private var densePages = 0
    @exclusivity(unchecked) private var lengthCounts = [Int](repeating: 0, count: 129)
    @exclusivity(unchecked) private var current: UnsafeMutablePointer<Snapshot>?

    static let pageSize = 65_536

    public init(qsbr: QSBR = QSBR(), densePageThreshold: Int = 4096) {
        self.qsbr = qsbr
        self.densePageThreshold = densePageThreshold
        republish()
    }

    deinit {
        // No reader may outlive the table: free everything now.
        qsbr.reclaim()
        if let current { Self.freeSnapshot(current) }
        for t in tables { t?.table.free() }
        hnp.table.free()
        pageDirectory.table.free()
        for info in pages.values { if let p = info.entries { Self.freePage(p) } }
    }

    // MARK: Readers

    @inlinable @inline(__always)
    var snapshot: UnsafeMutablePointer<Snapshot> {
        published.load(ordering: .acquiring).unsafelyUnwrapped.assumingMemoryBound(to: Snapshot.self)
    }

    /// The next hop of the longest prefix containing `address`, 0 if none.
    @inlinable
    public func lookup(_ address: IPv6Address) -> UInt32 {
        snapshot.pointee.lookup(address.high, address.low)
    }

    /// Looks up a batch in two passes of up to 32 keys: the first finds
    /// where each key's /64 stage lives (a dense page entry or a hash slot)
    /// and prefetches it, the second reads them. The caller reports a
    /// quiescent state after the batch.
    @inlinable
    public func lookup(_ keys: UnsafeBufferPointer<IPv6Address>, into results: UnsafeMutableBufferPointer<UInt32>) {
        precondition(results.count >= keys.count)
        let s = snapshot.pointee
        // Routes longer than /64 must be probed first: the general path.
        if s.longerCount != 0 {
            for k in 0..<keys.count { results[k] = s.lookup(keys[k].high, keys[k].low) }
            return
        }
        withUnsafeTemporaryAllocation(of: UInt.self, capacity: 64) { where_ in
            var start = 0
            while start < keys.count {
                let n = min(64, keys.count &- start)
                // Pass 1. A page entry's address is stored with its low bit
                // set (entries are 4-byte aligned); a hash slot as index << 1.
                for k in 0..<n {
                    let high = keys[start &+ k].high
                    let page = s.pageCount != 0 ? s.pageDirectory.find(high >> 16) : 0
                    if page != 0 {
                        let e = UInt(truncatingIfNeeded: page) &+ UInt(truncatingIfNeeded: high & 0xFFFF) &* 4
                        dgw_prefetch(UnsafeRawPointer(bitPattern: e))
                        where_[k] = e | 1
                    } else {
                        let h = s.hnp.home(high, 0)
                        s.hnp.prefetch(slot: h)
                        where_[k] = UInt(truncatingIfNeeded: h) << 1
                    }
                }
                // Pass 2.
                for k in 0..<n {
                    let high = keys[start &+ k].high
                    let w = where_[k]
                    var v: UInt32
                    if w & 1 != 0 {
                        v = UnsafeMutablePointer<Atomic<UInt32>>(bitPattern: w & ~1).unsafelyUnwrapped
                            .pointee.load(ordering: .relaxed)
                    } else {
                        v = UInt32(truncatingIfNeeded: s.hnp.find(high, 0, from: Int(truncatingIfNeeded: w >> 1)))
                    }
                    if v == 0 { v = s.shorterMatch(high) }
                    results[start &+ k] = v
                }
                start &+= n
            }
        }
    }

    // MARK: Writer

    /// Number of routes.
    @exclusivity(unchecked) public private(set) var count = 0

    /// Bytes of the lookup structures (tables, pages, snapshot).
    public var bytesUsed: Int {
        tables.reduce(0) { $0 + ($1?.bytes ?? 0) } + hnp.bytes + pageDirectory.bytes
            + densePages * Self.pageSize * 4 + MemoryLayout<Snapshot>.size
    }

    /// Adds `prefix` (host bits ignored) or changes its next hop.
    public func insert(_ prefix: IPv6Prefix, nextHop: UInt32) throws(TableError) {
        guard nextHop != 0 && nextHop != .max else { throw .invalidNextHop }
        let length = Int(prefix.length)
        let a = prefix.address.masked(to: length)
        var retired: [ExactTable] = []
        var added = false
        var structural = false
        if length == 64 {
            let page = a.high >> 16
            var densifyNow = false
            pages[Page(page), default: PageInfo()].update { info in
                if let entries = info.entries {
                    let slot = entries + Int(a.high & 0xFFFF)
                    added = slot.pointee.load(ordering: .relaxed) == 0
                    slot.pointee.store(nextHop, ordering: .relaxed)
                } else {
                    let r = hnp.insert(a.high, 0, value: UInt64(nextHop))
                    added = r.added
                    if let old = r.replaced { retired.append(old); structural = true }
                }
                if added { info.routes += 1 }
                densifyNow = info.entries == nil && info.routes >= densePageThreshold
            }
            if densifyNow {
                retired += densify(page)
                structural = true
            }
        } else {
            let table: GrowingTable
            if let t = tables[length] { table = t } else {
                table = GrowingTable(wide: length > 64)
                tables[length] = table
                structural = true
            }
            let r = length > 64 ? table.insert(a.high, a.low, value: UInt64(nextHop))
                                : table.insert(a.high, 0, value: UInt64(nextHop))
            added = r.added
            if let old = r.replaced { retired.append(old); structural = true }
        }
        if added {
            count += 1
            lengthCounts[length] += 1
        }
        if structural { republish(retiring: retired) }
    }

    /// Removes `prefix`; false if it was not there.
    @discardableResult
    public func remove(_ prefix: IPv6Prefix) -> Bool {
        let length = Int(prefix.length)
        let a = prefix.address.masked(to: length)
        var retired: [ExactTable] = []
        var structural = false
        var freedPages: [UnsafeMutablePointer<Atomic<UInt32>>] = []
        if length == 64 {
            let page = a.high >> 16
            guard var info = pages[Page(page)] else { return false }
            if let entries = info.entries {
                let slot = entries + Int(a.high & 0xFFFF)
                guard slot.pointee.load(ordering: .relaxed) != 0 else { return false }
                slot.pointee.store(0, ordering: .relaxed)
            } else {
                guard hnp.remove(a.high, 0) else { return false }
            }
            info.routes -= 1
            pages[Page(page)] = info.routes == 0 && info.entries == nil ? nil : info
            if let entries = info.entries, info.routes < densePageThreshold / 4 {
                retired += sparsify(page, entries)
                freedPages.append(entries)
                structural = true
                if info.routes == 0 { pages[Page(page)] = nil }
            }
        } else {
            guard let table = tables[length] else { return false }
            guard table.remove(a.high, length > 64 ? a.low : 0) else { return false }
            if table.live == 0 {
                tables[length] = nil
                retired.append(table.table)
                structural = true
            }
        }
        count -= 1
        lengthCounts[length] -= 1
        if structural { republish(retiring: retired, pages: freedPages) }
        return true
    }

    /// The next hop installed for exactly `prefix`, if any.
    public func nextHop(exactly prefix: IPv6Prefix) -> UInt32? {
        let length = Int(prefix.length)
        let a = prefix.address.masked(to: length)
        let v: UInt64
        if length == 64 {
            if let entries = pages[Page(a.high >> 16)]?.entries {
                v = UInt64(entries[Int(a.high & 0xFFFF)].load(ordering: .relaxed))
            } else {
                v = hnp.table.find(a.high)
            }
        } else {
            v = tables[length]?.table.find(a.high, length > 64 ? a.low : 0) ?? 0
        }
        return v == 0 ? nil : UInt32(truncatingIfNeeded: v)
    }

    /// Frees what readers can no longer see; returns how many frees ran.
    @discardableResult
    public func reclaim() -> Int { qsbr.reclaim() }

    // MARK: Pages

    /// Moves the /64s of `page` from the hash into a new direct array.
    private func densify(_ page: UInt64) -> [ExactTable] {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Self.pageSize * 4, alignment: 64)
        let entries = raw.bindMemory(to: Atomic<UInt32>.self, capacity: Self.pageSize)
        for i in 0..<Self.pageSize { (entries + i).initialize(to: Atomic(0)) }
        var keys: [UInt64] = []
        hnp.table.forEach { high, _, value in
            if high >> 16 == page {
                entries[Int(high & 0xFFFF)].store(UInt32(truncatingIfNeeded: value), ordering: .relaxed)
                keys.append(high)
            }
        }
        pages[Page(page)]!.entries = entries
        densePages += 1
        var retired: [ExactTable] = []
        // Published before the hash entries go, so readers always find the route.
        let r = pageDirectory.insert(page, 0, value: UInt64(UInt(bitPattern: entries)))
        if let old = r.replaced { retired.append(old) }
        republish()
        for k in keys { _ = hnp.remove(k, 0) }
        if let old = hnp.compactIfMostlyTombstones() { retired.append(old) }
        return retired
    }

    /// Moves the /64s of a page back into the hash; the page is freed after
    /// a grace period by the caller.
    private func sparsify(_ page: UInt64, _ entries: UnsafeMutablePointer<Atomic<UInt32>>) -> [ExactTable] {
        var retired: [ExactTable] = []
        for i in 0..<Self.pageSize {
            let v = entries[i].load(ordering: .relaxed)
            if v != 0, let old = hnp.insert(page << 16 | UInt64(i), 0, value: UInt64(v)).replaced {
                retired.append(old)
                republish()  // the rebuilt hash must be visible before the page goes
            }
        }
        republish()
        _ = pageDirectory.remove(page, 0)
        if let old = pageDirectory.compactIfMostlyTombstones() { retired.append(old) }
        pages[Page(page)]!.entries = nil
        densePages -= 1
        return retired
    }

    static func freePage(_ p: UnsafeMutablePointer<Atomic<UInt32>>) {
        #if DEBUG
        for i in 0..<pageSize { p[i].store(0xDEAD_DEAD, ordering: .relaxed) }
        #endif
        p.deinitialize(count: pageSize)
        UnsafeMutableRawPointer(p).deallocate()
    }

    // MARK: Publication

    /// Builds a snapshot of the current tables and publishes it; the old
    /// snapshot, the `retiring` tables and `pages` are freed after a grace
    /// period.
    private func republish(retiring: [ExactTable] = [], pages freed: [UnsafeMutablePointer<Atomic<UInt32>>] = []) {
        let longerLengths = (65...128).reversed().filter { tables[$0] != nil }
        let shorterLengths = (0...63).reversed().filter { tables[$0] != nil }
        let longer = UnsafeMutablePointer<ExactTable>.allocate(capacity: max(1, longerLengths.count))
        let longerMasks = UnsafeMutablePointer<UInt64>.allocate(capacity: max(1, longerLengths.count))
        for (k, l) in longerLengths.enumerated() {
            (longer + k).initialize(to: tables[l]!.table)
            longerMasks[k] = l == 128 ? ~0 : ~(~UInt64(0) >> UInt64(l - 64))
        }
        let shorter = UnsafeMutablePointer<ExactTable>.allocate(capacity: max(1, shorterLengths.count))
        let shorterMasks = UnsafeMutablePointer<UInt64>.allocate(capacity: max(1, shorterLengths.count))
        for (k, l) in shorterLengths.enumerated() {
            (shorter + k).initialize(to: tables[l]!.table)
            shorterMasks[k] = l == 0 ? 0 : ~(~UInt64(0) >> UInt64(l))
        }
        let s = UnsafeMutablePointer<Snapshot>.allocate(capacity: 1)
        s.initialize(to: Snapshot(
            hnp: hnp.table, pageDirectory: pageDirectory.table, pageCount: densePages,
            longerCount: longerLengths.count, longer: longer, longerMasks: longerMasks,
            shorterCount: shorterLengths.count, shorter: shorter, shorterMasks: shorterMasks))
        published.store(UnsafeMutableRawPointer(s), ordering: .releasing)
        let old = current
        current = s
        if old != nil || !retiring.isEmpty || !freed.isEmpty {
            qsbr.retire {
                if let old { Self.freeSnapshot(old) }
                for t in retiring { t.free() }
                for p in freed { Self.freePage(p) }
            }
        }
        qsbr.reclaim()
    }

    static func freeSnapshot(_ s: UnsafeMutablePointer<Snapshot>) {
        s.pointee.longer.deallocate()
        s.pointee.longerMasks.deallocate()
        s.pointee.shorter.deallocate()
        s.pointee.shorterMasks.deallocate()
        s.deinitialize(count: 1)
        s.deallocate()
    }
}
