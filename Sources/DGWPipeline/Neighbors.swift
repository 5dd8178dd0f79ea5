// Core neighbours (next hops on the core link): address to MAC, shared by
// every worker of a gateway, so that the Neighbor Advertisement one worker
// receives serves them all (PACKET_FANOUT hashes it to any of them).
//
// The fast path reads a hop's MAC by index with one relaxed atomic load
// (a plain load on x86); the slow path (a new hop, a solicitation, a
// learned MAC) takes a lock, off the per-packet path.

import Synchronization
import DGWWire

public final class NeighborTable: @unchecked Sendable {
    /// Hop indices + 1 fit the hot records' 16 bits.
    public static let capacity = 65_535
    /// MAC of hop i (48 bits), 0 while unresolved.
    @usableFromInline let macs: UnsafeMutablePointer<Atomic<UInt64>>
    /// Address of hop i: written once, before index i is handed out (and
    /// so before any binding that names it is published).
    @usableFromInline let hopAddresses: UnsafeMutablePointer<IPv6Address>

    private struct State {
        var index: [IPv6Address: Int] = [:]
        var addresses: [IPv6Address] = []
        var lastSolicit: [Int64] = []
    }
    private let state = Mutex(State())

    public init() {
        macs = .allocate(capacity: Self.capacity)
        for i in 0..<Self.capacity { (macs + i).initialize(to: Atomic(0)) }
        hopAddresses = .allocate(capacity: Self.capacity)
        hopAddresses.initialize(repeating: .unspecified, count: Self.capacity)
    }

    deinit {
        macs.deinitialize(count: Self.capacity)
        macs.deallocate()
        hopAddresses.deallocate()
    }

    /// The address of hop `i` (an index this table handed out).
    @inlinable @inline(__always)
    public func address(_ hop: Int) -> IPv6Address { hopAddresses[hop] }

    /// The hop's MAC value, 0 while unresolved.
    @inlinable @inline(__always)
    public func mac(_ hop: Int) -> UInt64 { macs[hop].load(ordering: .relaxed) }

    /// The index of `address`, added if new and `adding`; nil once full.
    public func index(of address: IPv6Address, adding: Bool = true) -> Int? {
        state.withLock { s in
            if let i = s.index[address] { return i }
            guard adding, s.addresses.count < Self.capacity else { return nil }
            hopAddresses[s.addresses.count] = address
            s.index[address] = s.addresses.count
            s.addresses.append(address)
            s.lastSolicit.append(.min)
            return s.addresses.count - 1
        }
    }

    /// Addresses of every hop so far, by index.
    public var addresses: [IPv6Address] { state.withLock { $0.addresses } }

    /// Records `mac` for `address` (added if new); true when it changed.
    @discardableResult
    public func learn(_ address: IPv6Address, _ mac: MACAddress) -> Bool {
        guard let i = index(of: address) else { return false }
        return macs[i].exchange(mac.value, ordering: .releasing) != mac.value
    }

    /// True when hop `i` may be solicited at `time` (at most once a second
    /// across the workers), and notes it.
    public func shouldSolicit(_ i: Int, time: Int64) -> Bool {
        state.withLock { s in
            guard s.lastSolicit[i] == .min || time - s.lastSolicit[i] >= 1_000_000_000 || time < s.lastSolicit[i] else { return false }
            s.lastSolicit[i] = time
            return true
        }
    }
}
