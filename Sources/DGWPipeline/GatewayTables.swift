// The tables of one gateway, shared by its workers' pipelines, which read
// them without locks (each through its own QSBR reader), and changed at run
// time by one writer (the control plane): prefixes, logical MACs, the
// bindings' hot records and the core neighbours. With N workers and a
// million bindings, one copy, not N.
//
// A binding lives in a slot of `hot`. A change never rewrites a slot that
// readers may hold: it fills a free slot, then points the prefix (and the
// logical MAC) at it, each with one store; the old slot is reused only
// after a grace period, when no worker can still hold its index (DPDK's
// rte_rcu_qsbr pattern).

import DGWTables
import Glibc
import DGWWire
import Synchronization

public final class GatewayTables: @unchecked Sendable {
    public let configuration: PipelineConfiguration
    /// Prefix -> slot + 1.
    let routes: HNPTable
    /// DLIF logical MAC -> slot + 1 (any binding of that DLIF).
    let dlifs: MACTable
    let hot: UnsafeMutablePointer<Hot>
    /// Core next hops and their MACs.
    public let neighbors: NeighborTable
    let gatewayHop: Int
    /// Room for hot records: the static bindings, the dynamic ones, and the
    /// slots of changed bindings waiting for their grace period.
    public let capacity: Int
    /// Bumped by the writer after each change of a route or binding: a
    /// worker holding frames for a binding tries them again when it moves.
    let changes = Atomic<UInt64>(0)

    // The writer's own books (never read by a worker).
    /// Bindings installed (their slots are the routes' next hops, less one).
    private var bindingCount = 0
    /// Slots of bindings served here, by DLIF MAC, besides the one the MAC
    /// table (`dlifs`) points at: a DLIF with several prefixes. Nearly
    /// always empty, so a DLIF costs no look-up here.
    private var moreSlotsOfMAC: [MACAddress: [Int]] = [:]
    private var freeSlots: [Int] = []
    private var nextFresh = 0
    /// Slots unlinked, each with the token of its grace period, oldest
    /// first from `retiringHead`: free once the grace period is over.
    private var retiring: [(token: UInt64, slot: Int)] = []
    private var retiringHead = 0
    /// Other anchors' local networks routed into their tunnels, with how
    /// many sessions (MN, anchor) asked for each.
    private var remoteNetworks: [IPv6Prefix: (anchor: IPv6Address, slot: Int, users: Int)] = [:]

    /// What is bound now, by slot, for whoever reports it (`liveLock` taken
    /// by the writer once per change and by the reporter, never by a
    /// worker). Zeroed pages from calloc: a slot never used costs no memory.
    private let live: UnsafeMutablePointer<Live>
    private let liveLock = Mutex(())
    private var installs: UInt64 = 0
    private let liveNetworks = Mutex<[IPv6Prefix: IPv6Address]>([:])
    /// Signalling waiting for its next hop's MAC: hop index, frame (with
    /// the Ethernet header's room), since when.
    private var held: [(hop: Int, destination: IPv6Address, frame: [UInt8], since: Int64)] = []

    public init(_ c: PipelineConfiguration, neighbors: NeighborTable = NeighborTable()) throws {
        configuration = c
        let qsbr = QSBR()
        routes = HNPTable(qsbr: qsbr)
        dlifs = MACTable(qsbr: qsbr, capacity: c.bindings.count)
        self.neighbors = neighbors
        gatewayHop = c.coreGateway.flatMap { neighbors.index(of: $0) } ?? -1
        // Room for 1,024 changes within one grace period (changed bindings'
        // old slots come back only after it).
        capacity = c.bindings.count + c.dynamicBindings + 1024
        hot = .allocate(capacity: capacity)
        hot.initialize(repeating: Hot(mn: 0, dlif: 0), count: capacity)
        guard let zeroed = calloc(capacity, MemoryLayout<Live>.stride) else { fatalError("no memory for \(capacity) bindings") }
        live = zeroed.bindMemory(to: Live.self, capacity: capacity)
        for b in c.bindings {
            do {
                try install(b)
            } catch .logicalMACInUse(let mac) {
                let other = mappedSlot(of: mac).map { hot[$0].mnMAC } ?? b.mn
                throw PipelineError.logicalMACCollision(mac, other, b.mn)
            }
        }
        for (a, m) in c.neighbors { _ = neighbors.learn(a, m) }
    }

    deinit {
        hot.deallocate()
        free(live)
    }

    /// Bindings installed now.
    public var count: Int { bindingCount }

    /// The slot of the binding of exactly `prefix`: its route's next hop
    /// less one, unless that route is another anchor's local network.
    private func slot(of prefix: IPv6Prefix) -> Int? {
        guard let hop = routes.nextHop(exactly: prefix) else { return nil }
        let s = Int(hop) - 1
        return hot[s].isLocalNetwork ? nil : s
    }

    /// Every binding bound now with its DLIF MAC, in the order they were first installed.
    public var bindings: [(binding: BindingEntry, dlifMAC: MACAddress)] {
        liveLock.withLock { _ in
            (0..<capacity).filter { live[$0].order != 0 }.map { live[$0] }
        }.sorted { $0.order < $1.order }.map { (binding: $0.binding(neighbors), dlifMAC: MACAddress(value: $0.dlifMAC)) }
    }

    /// The binding of exactly `prefix`, if bound.
    public func binding(_ prefix: IPv6Prefix) -> BindingEntry? {
        guard let s = slot(of: prefix) else { return nil }
        return liveLock.withLock { _ in live[s].binding(neighbors) }
    }

    /// Adds an MN attached and anchored here (the access router's attach).
    @discardableResult
    public func attach(mn: MACAddress, prefix: IPv6Prefix, dlifMAC: MACAddress) throws(GatewayTablesError) -> Int {
        guard slot(of: prefix) == nil, routes.lookup(prefix.address) == 0 else { throw .prefixInUse(prefix) }
        return try install(BindingEntry(mn: mn, prefix: prefix, anchor: nil, serving: nil, dlifMAC: dlifMAC))
    }

    /// Binds `b.prefix` as `b` says, replacing what it was bound to, while
    /// workers read: the new hot record is written to a free slot before the
    /// prefix and the logical MAC are pointed at it. One writer at a time.
    /// Returns the binding's slot.
    @discardableResult
    public func install(_ b: BindingEntry) throws(GatewayTablesError) -> Int {
        guard b.prefix.length <= 64 else { throw .notAPrefix(b.prefix) }
        guard remoteNetworks[b.prefix] == nil else { throw .prefixInUse(b.prefix) }
        let mac = b.dlifMAC ?? logicalMAC(anchor: b.anchor ?? configuration.address, mn: b.mn)
        let servedHere = b.serving == nil
        let old = slot(of: b.prefix)
        // A DLIF MAC names one MN: the pipeline checks uplink against any slot of it.
        let mapped = servedHere ? mappedSlot(of: mac) : nil
        if let mapped, (mapped != old && hot[mapped].mnMAC != b.mn)
            || (!moreSlotsOfMAC.isEmpty && moreSlotsOfMAC[mac]?.contains { $0 != old && hot[$0].mnMAC != b.mn } ?? false) {
            throw .logicalMACInUse(mac)
        }
        // Served elsewhere: the serving gateway's hop (anchored elsewhere too:
        // an LMA's binding between two peers, which keeps the anchor's too).
        var peerHop = -1, anchorHop = -1
        if let peer = b.serving ?? b.anchor {
            guard let h = neighbors.index(of: peer) else { throw .tooManyPeers }
            peerHop = h
        }
        if let anchor = b.anchor, b.serving != nil {
            guard let h = neighbors.index(of: anchor) else { throw .tooManyPeers }
            anchorHop = h
        }
        let slot = try freeSlot()
        hot[slot] = Hot(mn: b.mn.value | UInt64(peerHop + 1) << 48,
                        dlif: anchorHop >= 0 ? Hot.relayed | UInt64(anchorHop + 1)
                            : mac.value | (servedHere ? Hot.servedHere : 0) | (b.anchor == nil ? Hot.anchoredHere : 0))
        do {
            try routes.insert(b.prefix, nextHop: UInt32(slot + 1))
            if servedHere {
                if mapped == nil || mapped == old {
                    try dlifs.insert(mac, dlif: UInt32(slot + 1))  // the new slot takes the old one's place
                } else {
                    moreSlotsOfMAC[mac, default: []].append(slot)
                }
            }
        } catch {
            preconditionFailure("slot indices are valid next hops: \(error)")
        }
        if old == nil { bindingCount += 1 }
        let order: UInt64
        if let old { order = live[old].order } else { installs += 1; order = installs }  // a change keeps its place in reports
        liveLock.withLock { _ in
            if let old { live[old].order = 0 }
            live[slot] = Live(b, dlifMAC: mac, anchorHop: b.anchor == nil ? -1 : b.serving == nil ? peerHop : anchorHop,
                              servingHop: b.serving == nil ? -1 : peerHop, order: order)
        }
        if let old { release(old, unlinked: servedHere && mapped == old) }
        changed()
        return slot
    }

    private func changed() { changes.wrappingAdd(1, ordering: .releasing) }

    /// The slot the MAC table points `mac` at, if any.
    private func mappedSlot(of mac: MACAddress) -> Int? {
        let s = dlifs.lookup(mac)
        return s == 0 ? nil : Int(s) - 1
    }

    /// A slot no reader can hold.
    private func freeSlot() throws(GatewayTablesError) -> Int {
        reclaim()
        if let s = freeSlots.popLast() { return s }
        guard nextFresh < capacity else { throw .full(capacity) }
        nextFresh += 1
        return nextFresh - 1
    }

    /// Routes another anchor's local network into the tunnel to `anchor`
    /// (its PBA named it, for an MN served here): uplink for it from the
    /// MNs' own prefixes goes there. Counted: each call wants an `unroute`.
    public func route(localNetwork prefix: IPv6Prefix, anchor: IPv6Address) throws(GatewayTablesError) {
        if let r = remoteNetworks[prefix] {
            guard r.anchor == anchor else { throw .prefixInUse(prefix) }
            remoteNetworks[prefix]!.users += 1
            return
        }
        guard slot(of: prefix) == nil, prefix != configuration.corePrefix, anchor != configuration.address else {
            throw .prefixInUse(prefix)
        }
        guard let hop = neighbors.index(of: anchor) else { throw .tooManyPeers }
        let slot = try freeSlot()
        hot[slot] = Hot(mn: UInt64(hop + 1) << 48, dlif: Hot.localNetwork)
        do { try routes.insert(prefix, nextHop: UInt32(slot + 1)) } catch {
            preconditionFailure("slot indices are valid next hops: \(error)")
        }
        remoteNetworks[prefix] = (anchor, slot, 1)
        liveNetworks.withLock { $0[prefix] = anchor }
        changed()
    }

    /// Undoes one `route(localNetwork:anchor:)`; the route goes with the last.
    public func unroute(localNetwork prefix: IPv6Prefix, anchor: IPv6Address) {
        guard var r = remoteNetworks[prefix], r.anchor == anchor else { return }
        r.users -= 1
        guard r.users == 0 else {
            remoteNetworks[prefix] = r
            return
        }
        remoteNetworks[prefix] = nil
        liveNetworks.withLock { _ = $0.removeValue(forKey: prefix) }
        routes.remove(prefix)
        release(r.slot)
        changed()
    }

    /// Other anchors' local networks routed into their tunnels now, by prefix.
    public var localNetworkRoutes: [(prefix: IPv6Prefix, anchor: IPv6Address)] {
        liveNetworks.withLock { $0 }.map { ($0.key, $0.value) }.sorted { ($0.prefix.address, $0.prefix.length) < ($1.prefix.address, $1.prefix.length) }
    }

    /// Unbinds `prefix`: packets for it find no route from now on. False if it was not bound.
    @discardableResult
    public func remove(_ prefix: IPv6Prefix) -> Bool {
        guard let slot = slot(of: prefix) else { return false }
        routes.remove(prefix)
        bindingCount -= 1
        liveLock.withLock { _ in live[slot].order = 0 }
        release(slot)
        changed()
        return true
    }

    /// Unlinks `slot` from its DLIF MAC (unless a new slot took its place
    /// there already) and retires it.
    private func release(_ slot: Int, unlinked: Bool = false) {
        let h = hot[slot]
        if h.isServedHere && !unlinked {
            let mac = h.dlifMAC
            if mappedSlot(of: mac) == slot {
                // The MAC table points at another of its slots, if it has one.
                if !moreSlotsOfMAC.isEmpty, let next = moreSlotsOfMAC[mac]?.popLast() {
                    if moreSlotsOfMAC[mac]!.isEmpty { moreSlotsOfMAC[mac] = nil }
                    try? dlifs.insert(mac, dlif: UInt32(next + 1))
                } else {
                    dlifs.remove(mac)
                }
            } else if !moreSlotsOfMAC.isEmpty, var more = moreSlotsOfMAC[mac] {
                more.removeAll { $0 == slot }
                moreSlotsOfMAC[mac] = more.isEmpty ? nil : more
            }
        }
        retiring.append((routes.qsbr.start(), slot))
    }

    /// Runs what the grace periods allow: old tables freed, old slots reusable.
    public func reclaim() {
        routes.reclaim()
        guard retiringHead < retiring.count else { return }
        let done = routes.qsbr.completed()
        while retiringHead < retiring.count && retiring[retiringHead].token <= done {
            freeSlots.append(retiring[retiringHead].slot)
            retiringHead += 1
        }
        if retiringHead == retiring.count {
            retiring.removeAll(keepingCapacity: true)
            retiringHead = 0
        } else if retiringHead > 1024 && retiringHead > retiring.count / 2 {
            retiring.removeFirst(retiringHead)
            retiringHead = 0
        }
    }
}

/// A slot's binding as installed, for reports; `order` 0: the slot is
/// free. A million MNs touch one or two of these each: 48 octets, not the
/// 112 of a `BindingEntry` and its MAC, the gateways named by their hop
/// index in the neighbour table (which never forgets one) plus one, 0 for
/// none (this gateway).
struct Live {
    var mn: UInt64
    var prefixHigh: UInt64
    var prefixLow: UInt64
    /// The DLIF MAC the hot record holds: the binding's own, or derived.
    var dlifMAC: UInt64
    var order: UInt64
    var anchorHop: UInt16
    var servingHop: UInt16
    var prefixLength: UInt8
    /// Whether the binding named its DLIF MAC (else `logicalMAC` made it).
    var namedDLIFMAC: Bool

    init(_ b: BindingEntry, dlifMAC: MACAddress, anchorHop: Int, servingHop: Int, order: UInt64) {
        mn = b.mn.value
        prefixHigh = b.prefix.address.high
        prefixLow = b.prefix.address.low
        self.dlifMAC = dlifMAC.value
        self.order = order
        self.anchorHop = UInt16(anchorHop + 1)
        self.servingHop = UInt16(servingHop + 1)
        prefixLength = b.prefix.length
        namedDLIFMAC = b.dlifMAC != nil
    }

    func binding(_ neighbors: NeighborTable) -> BindingEntry {
        BindingEntry(mn: MACAddress(value: mn), prefix: IPv6Prefix(uncheckedAddress: IPv6Address(high: prefixHigh, low: prefixLow), length: prefixLength),
                     anchor: anchorHop == 0 ? nil : neighbors.address(Int(anchorHop) - 1),
                     serving: servingHop == 0 ? nil : neighbors.address(Int(servingHop) - 1),
                     dlifMAC: namedDLIFMAC ? MACAddress(value: dlifMAC) : nil)
    }
}

public enum GatewayTablesError: Error, Equatable, CustomStringConvertible {
    case full(Int)
    case prefixInUse(IPv6Prefix)
    case logicalMACInUse(MACAddress)
    case notAPrefix(IPv6Prefix)
    case tooManyPeers

    public var description: String {
        switch self {
        case .full(let n): "the gateway's \(n) bindings are all in use"
        case .prefixInUse(let p): "\(p) is bound already"
        case .logicalMACInUse(let m): "the logical MAC \(m) serves another MN"
        case .notAPrefix(let p): "\(p) is longer than /64: bindings are prefixes of MNs"
        case .tooManyPeers: "the neighbour table is full (\(NeighborTable.capacity) hops)"
        }
    }
}

extension GatewayTables {
    /// The core next hop of `destination`: itself when on the core link, else the core gateway.
    func coreHop(_ destination: IPv6Address) -> IPv6Address? {
        configuration.corePrefix.contains(destination) ? destination : configuration.coreGateway
    }

    /// Signalling kept for its next hop's MAC (`hold`).
    public enum HeldSignalling {
        case held
        /// Held, and the Neighbor Solicitation of its hop to send now.
        case heldSoliciting([UInt8])
    }

    /// Keeps `frame` (signalling, 14 octets of room then the packet) until
    /// its next hop's MAC is known, at most a second, soliciting the hop
    /// unless that was done less than a second ago; nil if it cannot wait.
    public func hold(_ frame: [UInt8], to destination: IPv6Address, time: Int64) -> HeldSignalling? {
        guard held.count < 256, let hop = coreHop(destination), let i = neighbors.index(of: hop) else { return nil }
        held.append((i, destination, frame, time))
        return neighbors.shouldSolicit(i, time: time) ? .heldSoliciting(solicitation(of: hop)) : .held
    }

    /// The held signalling whose next hop is known now, framed; and how
    /// many packets waited a second in vain and were dropped.
    public func releaseHeld(time: Int64) -> (frames: [[UInt8]], expired: Int) {
        guard !held.isEmpty else { return ([], 0) }
        var frames: [[UInt8]] = [], expired = 0
        held.removeAll { h in
            var frame = h.frame
            if neighbors.mac(h.hop) != 0, frameForCore(&frame, to: h.destination) {
                frames.append(frame)
                return true
            }
            if time - h.since >= 1_000_000_000 {
                expired += 1
                return true
            }
            return false
        }
        return (frames, expired)
    }

    /// A Neighbor Solicitation for `target` from this gateway's core address.
    func solicitation(of target: IPv6Address) -> [UInt8] {
        let c = configuration, group = target.solicitedNodeMulticast
        let message = ICMPv6Message.neighborSolicitation(target: target, options: .built([.sourceLinkLayerAddress(LinkLayerAddress(c.coreMAC))]))
        var frame = [UInt8](zeroed: 14 + 40 + message.bufferLength)
        frame.withUnsafeMutableBytes { b in
            try! EthernetHeader(destination: MACAddress(multicast: group), source: c.coreMAC, etherType: EtherType.ipv6).emit(into: b)
            let n = try! message.emit(into: b.slice(54..<b.count), source: c.address, destination: group)
            try! IPv6Header(payloadLength: n, nextHeader: IPProtocol.icmpv6, hopLimit: 255, source: c.address, destination: group)
                .emit(into: b.slice(14..<54))
        }
        return frame
    }

    /// Writes the Ethernet header for the core next hop of `destination`
    /// into the first 14 octets of `frame` (room left in front of a whole
    /// IPv6 packet, signalling say), in place; false, the frame untouched,
    /// while that hop's MAC is unknown.
    public func frameForCore(_ frame: inout [UInt8], to destination: IPv6Address) -> Bool {
        let c = configuration
        guard frame.count >= 14, let hop = coreHop(destination), let i = neighbors.index(of: hop) else { return false }
        let mac = neighbors.mac(i)
        guard mac != 0 else { return false }
        frame.withUnsafeMutableBytes { b in
            MACAddress(value: mac).write(to: b, at: 0)
            c.coreMAC.write(to: b, at: 6)
            b[12] = 0x86
            b[13] = 0xDD
        }
        return true
    }
}
