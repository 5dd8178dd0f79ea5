// Exact match from a 48-bit logical MAC to a DLIF index: how the access
// side demultiplexes MN frames. Same table, same publication and QSBR
// reclamation as the HNP table; sized for millions of entries.

import Synchronization
import DGWWire

public final class MACTable: @unchecked Sendable {
    public let qsbr: QSBR
    @usableFromInline let published = Atomic<UnsafeMutableRawPointer?>(nil)
    private let table: GrowingTable
    @exclusivity(unchecked) private var current: UnsafeMutablePointer<ExactTable>

    /// `capacity`: entries expected, to avoid rebuilds while filling.
    public init(qsbr: QSBR = QSBR(), capacity: Int = 0) {
        self.qsbr = qsbr
        table = GrowingTable(wide: false, capacity: ExactTable.capacity(for: capacity))
        current = .allocate(capacity: 1)
        current.initialize(to: table.table)
        published.store(UnsafeMutableRawPointer(current), ordering: .releasing)
    }

    deinit {
        qsbr.reclaim()
        table.table.free()
        current.deinitialize(count: 1)
        current.deallocate()
    }

    /// The DLIF index of `mac`, 0 if none.
    @inlinable
    public func lookup(_ mac: MACAddress) -> UInt32 {
        let t = published.load(ordering: .acquiring).unsafelyUnwrapped.assumingMemoryBound(to: ExactTable.self)
        return UInt32(truncatingIfNeeded: t.pointee.find(mac.value))
    }

    /// Looks up a batch of up to 64 MACs, prefetching every probe before
    /// reading any (the table of a million MNs does not fit in cache).
    @inlinable
    public func lookup(_ macs: UnsafeBufferPointer<MACAddress>, into results: UnsafeMutableBufferPointer<UInt32>) {
        precondition(macs.count <= 64 && results.count >= macs.count)
        let t = published.load(ordering: .acquiring).unsafelyUnwrapped.assumingMemoryBound(to: ExactTable.self).pointee
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 64) { homes in
            for k in 0..<macs.count {
                let h = t.home(macs[k].value, 0)
                homes[k] = h
                t.prefetch(slot: h)
            }
            for k in 0..<macs.count {
                results[k] = UInt32(truncatingIfNeeded: t.find(macs[k].value, 0, from: homes[k]))
            }
        }
    }

    public var count: Int { table.live }
    public var bytesUsed: Int { table.bytes }

    /// Maps `mac` to `dlif` (1...0xFFFF_FFFE), adding or replacing.
    public func insert(_ mac: MACAddress, dlif: UInt32) throws(TableError) {
        guard dlif != 0 && dlif != .max else { throw .invalidNextHop }
        let r = table.insert(mac.value, 0, value: UInt64(dlif))
        if let old = r.replaced {
            let fresh = UnsafeMutablePointer<ExactTable>.allocate(capacity: 1)
            fresh.initialize(to: table.table)
            published.store(UnsafeMutableRawPointer(fresh), ordering: .releasing)
            let box = current
            current = fresh
            qsbr.retire {
                old.free()
                box.deinitialize(count: 1)
                box.deallocate()
            }
            qsbr.reclaim()
        }
    }

    @discardableResult
    public func remove(_ mac: MACAddress) -> Bool { table.remove(mac.value, 0) }

    @discardableResult
    public func reclaim() -> Int { qsbr.reclaim() }
}
