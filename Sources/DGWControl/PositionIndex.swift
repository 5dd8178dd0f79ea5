// Where each MN's record is in its book (`RecordBook`): MAC to position.
//
// Open addressing with linear probing, each key beside its value in one
// 16-octet slot, at most half the slots used. A look-up in a book of a
// million MNs misses the cache once (the slot), where the standard
// dictionary keeps keys and values in two arrays and misses in each, and
// hashes with SipHash. The hash is keyed with a secret drawn at start, so
// that MACs chosen on the access link cannot pile up on one probe run.
// Removal shifts the run back over the hole (no tombstones), so probes
// stay as short as the load allows however MNs come and go.
// Not DGWTables' MACTable, which maps MACs too: that one serves lock-free
// readers (atomic slots, publication, QSBR, tombstones) and hashes
// unkeyed, which suits the logical MACs gateways choose, not the MACs
// MNs choose; this one has a single user, the control thread (and the
// control plane does not depend on the tables).

import DGWWire
import Glibc

struct PositionIndex {
    fileprivate struct Slot {
        /// The MAC's 48 bits with bit 48 set; 0: empty.
        var key: UInt64
        var position: Int32
    }

    /// The slots, zeroed by calloc: a book sized for a million MNs costs
    /// the pages its MNs land on, as the standard dictionary's does.
    private final class Storage {
        let slots: UnsafeMutablePointer<Slot>
        let size: Int

        init(size: Int) {
            guard let zeroed = calloc(size, MemoryLayout<Slot>.stride) else { fatalError("no memory for \(size) MNs' positions") }
            slots = zeroed.bindMemory(to: Slot.self, capacity: size)
            self.size = size
        }

        deinit { free(slots) }
    }

    private var storage: Storage
    private var mask: Int
    private(set) var count = 0
    private let seed: UInt64

    init(seed: UInt64 = .random(in: .min ... .max)) {
        self.seed = seed
        storage = Storage(size: 8)
        mask = 7
    }

    @inline(__always) private static func key(_ mn: MACAddress) -> UInt64 { mn.value | 1 << 48 }

    /// The slot a key's probe starts at: a 64-bit finalizer (MurmurHash3's) of the keyed MAC.
    @inline(__always) private func home(_ key: UInt64) -> Int {
        var h = key ^ seed
        h = (h ^ (h >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        h = (h ^ (h >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return Int(truncatingIfNeeded: h ^ (h >> 33)) & mask
    }

    /// The slot holding `key`, or the empty slot its probe ends at.
    @inline(__always) private func find(_ key: UInt64) -> (slot: Int, found: Bool) {
        let slots = storage.slots
        var i = home(key)
        while true {
            let k = slots[i].key
            if k == key { return (i, true) }
            if k == 0 { return (i, false) }
            i = (i + 1) & mask
        }
    }

    subscript(mn: MACAddress) -> Int32? {
        let (i, found) = find(Self.key(mn))
        return found ? storage.slots[i].position : nil
    }

    /// Room for `n` MNs without growing (rehashing stalls the signalling).
    mutating func reserveCapacity(_ n: Int) {
        var size = storage.size
        while size < 2 * n { size <<= 1 }
        if size > storage.size { rehash(size) }
    }

    /// A copy of the index shares its slots until either changes them.
    private mutating func unique() {
        if !isKnownUniquelyReferenced(&storage) { rehash(storage.size) }
    }

    /// Sets the position of `mn`, added if new.
    mutating func set(_ mn: MACAddress, _ position: Int32) {
        unique()
        let key = Self.key(mn)
        var (i, found) = find(key)
        if !found {
            if 2 * (count + 1) > storage.size {
                rehash(2 * storage.size)
                i = find(key).slot
            }
            count += 1
        }
        storage.slots[i] = Slot(key: key, position: position)
    }

    mutating func remove(_ mn: MACAddress) {
        unique()
        var (hole, found) = find(Self.key(mn))
        guard found else { return }
        let slots = storage.slots
        // Entries after the hole whose probe starts at or before it move
        // back into it (cyclically), so no probe meets an empty slot early.
        var j = (hole + 1) & mask
        while slots[j].key != 0 {
            let fromHome = (j - home(slots[j].key)) & mask, fromHole = (j - hole) & mask
            if fromHome >= fromHole {
                slots[hole] = slots[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        slots[hole] = Slot(key: 0, position: 0)
        count -= 1
    }

    private mutating func rehash(_ size: Int) {
        let old = storage
        storage = Storage(size: size)
        mask = size - 1
        for i in 0..<old.size where old.slots[i].key != 0 { storage.slots[find(old.slots[i].key).slot] = old.slots[i] }
    }
}
