// The D-GW data plane (DESIGN.md "Data plane") as a sans-I/O pipeline:
// batches of frames in (with the port they came from and their time),
// verdicts, rewritten frames and generated frames out. The same code runs
// live, in replay and in simulations.

import CDGWShim
import DGWTables
import DGWWire
import Synchronization

/// A prefix bound to an MN: where it is anchored and where the MN is served.
public struct BindingEntry: Sendable {
    public var mn: MACAddress
    public var prefix: IPv6Prefix
    /// nil: this gateway.
    public var anchor: IPv6Address?
    public var serving: IPv6Address?
    /// The DLIF's logical MAC as the anchor assigned it; nil: `logicalMAC(anchor:mn:)`.
    public var dlifMAC: MACAddress?

    public init(mn: MACAddress, prefix: IPv6Prefix, anchor: IPv6Address?, serving: IPv6Address?, dlifMAC: MACAddress? = nil) {
        self.mn = mn
        self.prefix = prefix
        self.anchor = anchor
        self.serving = serving
        self.dlifMAC = dlifMAC
    }
}

/// The default logical MAC of the DLIF that the MN sees for one anchor:
/// locally administered, a function of the anchor and the MN, so the same at
/// every gateway without signalling. Being a hash it can collide among very
/// many MNs; a collision is refused at start, and an anchor-assigned MAC
/// (`dlif_mac`, or the PBA's DLIF Link-layer Address option) avoids it.
public func logicalMAC(anchor: IPv6Address, mn: MACAddress) -> MACAddress {
    // Each input through murmur3's finaliser, a bijection that mixes every
    // bit into every other.
    func mix(_ x: UInt64) -> UInt64 {
        var x = x
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        return x ^ x >> 33
    }
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    for v in [anchor.high, anchor.low, mn.value] { h = mix(h ^ v) }
    // 02 (locally administered, unicast), then 40 bits of the hash: among a
    // million MNs a collision is unlikely, and refused when it happens.
    return MACAddress(value: 0x0200_0000_0000 | (h & 0xFF_FFFF_FFFF))
}

public struct PipelineConfiguration: Sendable {
    public var address: IPv6Address
    public var coreMAC: MACAddress
    public var coreMTU: Int
    public var corePrefix: IPv6Prefix
    public var coreGateway: IPv6Address?
    public var bindings: [BindingEntry]
    /// Static core neighbours.
    public var neighbors: [(IPv6Address, MACAddress)]
    /// ICMPv6 errors per second (token bucket, burst of the same size).
    public var icmpRate: Int = 100
    /// Frames from MNs with no DLIF here handed to the control plane per
    /// second (so that an MN that moved in without telling is attached on
    /// its first frame); the rest dropped. 0: none.
    public var unknownMNPuntRate: Int = 100
    /// Bindings the control plane may add at run time (room is made at start).
    public var dynamicBindings: Int = 0
    /// How long a frame ahead of its binding is held, and tried again at
    /// each change of the tables, before it is dropped for what kept it:
    /// one tunnelled from a peer for a prefix with no binding from that
    /// peer here (the anchor tunnels downlink as soon as it accepts the
    /// PBU, and its, or an LMA's relayed, data can overtake the PBA on its
    /// way through the control plane), and an MN's to a logical MAC no DLIF
    /// here has yet or from a prefix not bound here yet. 0: not held.
    public var holdNanoseconds: Int64 = 50_000_000
    /// Frames held at once, per worker; more are dropped at once.
    public var holdCapacity: Int = 256
    /// This gateway's local networks (LIPA): tunnelled traffic for them is
    /// accepted from `peers`, whose MNs reach them through this gateway's DLIF.
    public var localNetworks: [IPv6Prefix] = []
    /// The other gateways of the domain (and the CMD, the LMA).
    public var peers: [IPv6Address] = []
    /// An inter-operator LMA: tunnelled traffic from a peer for an anchor's
    /// local network routed here goes on into that anchor's tunnel.
    public var relaysLocalNetworks = false

    public init(address: IPv6Address, coreMAC: MACAddress, coreMTU: Int, corePrefix: IPv6Prefix,
                coreGateway: IPv6Address?, bindings: [BindingEntry], neighbors: [(IPv6Address, MACAddress)]) {
        self.address = address
        self.coreMAC = coreMAC
        self.coreMTU = coreMTU
        self.corePrefix = corePrefix
        self.coreGateway = coreGateway
        self.bindings = bindings
        self.neighbors = neighbors
    }
}

public enum PipelineError: Error, CustomStringConvertible {
    case logicalMACCollision(MACAddress, MACAddress, MACAddress)

    public var description: String {
        switch self {
        case .logicalMACCollision(let dlif, let a, let b):
            "the logical MAC \(dlif) would serve two MNs, \(a) and \(b): give one of them its own dlif_mac"
        }
    }
}

/// What forwarding needs of binding i, in 16 bytes (a million bindings in
/// 16 MB instead of 96): MN MAC and peer hop + 1 in `mn` (low 48 and high
/// 16 bits), DLIF MAC and flags in `dlif`. Another anchor's local network,
/// routed into its tunnel for the MNs served here, is a record too: no MN,
/// no DLIF, the anchor's hop and the `localNetwork` flag. So is an LMA's
/// binding between two operators (`relayed`): the peer hop is the serving
/// gateway's, as for any MN served elsewhere, and the anchor's hop + 1
/// takes the low 16 bits of `dlif` (the LMA shows no DLIF).
struct Hot {
    var mn: UInt64
    var dlif: UInt64
    static let servedHere: UInt64 = 1 << 48
    static let anchoredHere: UInt64 = 1 << 49
    static let localNetwork: UInt64 = 1 << 50
    static let relayed: UInt64 = 1 << 51
    @inline(__always) var mnMAC: MACAddress { MACAddress(value: mn & 0xFFFF_FFFF_FFFF) }
    @inline(__always) var dlifMAC: MACAddress { MACAddress(value: dlif & 0xFFFF_FFFF_FFFF) }
    @inline(__always) var peerHop: Int { Int(mn >> 48) - 1 }
    @inline(__always) var isServedHere: Bool { dlif & Self.servedHere != 0 }
    @inline(__always) var isAnchoredHere: Bool { dlif & Self.anchoredHere != 0 }
    @inline(__always) var isLocalNetwork: Bool { dlif & Self.localNetwork != 0 }
    @inline(__always) var isRelayed: Bool { dlif & Self.relayed != 0 }
    /// A relayed binding's anchor.
    @inline(__always) var anchorHop: Int { Int(dlif & 0xFFFF) - 1 }
}

public final class Pipeline {
    public let configuration: PipelineConfiguration
    public let pool: PacketPool
    /// Shared with the gateway's other workers; the fields below are its
    /// parts, one load closer for the hot path.
    public let tables: GatewayTables
    let routes: HNPTable
    let dlifs: MACTable
    /// This worker's QSBR reader on the shared tables.
    let reader: QSBRReader
    let hot: UnsafeMutablePointer<Hot>

    // Per-chunk look-up buffers (a chunk is up to 64 frames of a batch).
    static let chunk = 64
    let lpmKeys: UnsafeMutablePointer<IPv6Address>
    let lpmResults: UnsafeMutablePointer<UInt32>
    let macKeys: UnsafeMutablePointer<MACAddress>
    let macResults: UnsafeMutablePointer<UInt32>
    /// Per frame of the chunk: its index in the key arrays, -1 if none.
    let lpmIndex: UnsafeMutablePointer<Int>
    let macIndex: UnsafeMutablePointer<Int>

    /// Core next hops and their MACs (the shared table's).
    public let neighbors: NeighborTable
    let neighborMACs: UnsafeMutablePointer<Atomic<UInt64>>
    let gatewayHop: Int
    let hopAddresses: UnsafeMutablePointer<IPv6Address>
    @inline(__always) func hopAddress(_ hop: Int) -> IPv6Address { hopAddresses[hop] }

    public private(set) var totals = Counters()
    /// This batch's action and drop counts, then [framesOut, time of the packet being decided].
    let scratch: UnsafeMutablePointer<Int>
    static let dropBase = Action.allCases.count
    static let framesOutSlot = Action.allCases.count + DropReason.allCases.count
    static let timeSlot = framesOutSlot + 1
    var icmpBucket: TokenBucket
    var unknownMNBucket: TokenBucket
    /// Time of the packet being decided (for what it causes).
    var currentTime: Int64 { Int64(scratch[Self.timeSlot]) }

    // Frames held for a binding (`PipelineConfiguration.holdNanoseconds`):
    // copies in slots of `heldStorage` (made on the first hold), oldest first.
    struct HeldFrame {
        var slot: Int
        var length: Int
        var port: GatewayPort
        /// When it was received: it is dropped once held this long.
        var time: Int64
    }
    var held: [HeldFrame] = []
    var heldStorage: UnsafeMutableRawPointer?
    var heldFreeSlots: [Int] = []
    /// The tables' change count when the held frames were last tried (or the first one held).
    var heldChanges: UInt64 = 0
    /// Frames at the front of `held` still to try in this round (one round
    /// per change or expiry; frames held again go to the back, for the next).
    var heldRoundLeft = 0
    /// The tables' change count as the batch being decided began.
    var batchChanges: UInt64 = 0
    /// Set while held frames are decided again: the time it happens.
    var retryTime: Int64?
    /// Whether frames are held for a binding: `processHeld` has work once the tables change or time passes.
    public var holding: Bool { !held.isEmpty }

    /// A pipeline with tables of its own (replay, tests, one worker).
    public convenience init(_ c: PipelineConfiguration, pool: PacketPool) throws {
        self.init(pool: pool, tables: try GatewayTables(c))
    }

    /// One worker's pipeline over the gateway's shared `tables`.
    public init(pool: PacketPool, tables: GatewayTables) {
        configuration = tables.configuration
        self.pool = pool
        self.tables = tables
        routes = tables.routes
        dlifs = tables.dlifs
        guard let reader = tables.routes.qsbr.register() else {
            preconditionFailure("more than \(QSBR.maxReaders) readers of one gateway's tables")
        }
        self.reader = reader
        hot = tables.hot
        neighbors = tables.neighbors
        neighborMACs = tables.neighbors.macs
        gatewayHop = tables.gatewayHop
        hopAddresses = tables.neighbors.hopAddresses
        icmpBucket = TokenBucket(rate: configuration.icmpRate)
        unknownMNBucket = TokenBucket(rate: configuration.unknownMNPuntRate)
        scratch = .allocate(capacity: Self.timeSlot + 1)
        scratch.initialize(repeating: 0, count: Self.timeSlot + 1)
        lpmKeys = .allocate(capacity: Self.chunk)
        lpmResults = .allocate(capacity: Self.chunk)
        macKeys = .allocate(capacity: Self.chunk)
        macResults = .allocate(capacity: Self.chunk)
        lpmIndex = .allocate(capacity: Self.chunk)
        macIndex = .allocate(capacity: Self.chunk)
    }

    deinit {
        heldStorage?.deallocate()
        for p in [lpmResults, macResults] { p.deallocate() }
        lpmKeys.deallocate()
        macKeys.deallocate()
        lpmIndex.deallocate()
        macIndex.deallocate()
        scratch.deallocate()
        routes.qsbr.unregister(reader)
    }

    /// Frames a port received but could not hand over (longer than a
    /// slot, say): counted as received and dropped, like any other drop.
    public func countDroppedAtPort(_ reason: DropReason, frames: Int) {
        totals.framesIn += frames
        totals.drops[reason.rawValue] += frames
    }

    // MARK: Batches

    /// Decides every packet of the batch, rewriting frames in place;
    /// frames the gateway makes (ICMPv6 errors, ND) are appended to `generated`.
    public func process(_ packets: UnsafeMutableBufferPointer<Packet>, generated: inout [Packet]) {
        scratch.update(repeating: 0, count: Self.timeSlot + 1)
        batchChanges = tables.changes.load(ordering: .acquiring)
        let before = generated.count
        var start = 0
        while start < packets.count {
            let range = start..<min(start + Self.chunk, packets.count)
            lookUp(packets, range)
            decide(packets, range, &generated)
            start = range.upperBound
        }
        // Counters: once per batch.
        for a in 0..<Self.dropBase { totals.actions[a] += scratch[a] }
        for d in 0..<DropReason.allCases.count { totals.drops[d] += scratch[Self.dropBase + d] }
        if retryTime == nil { totals.framesIn += packets.count }  // held frames came in once
        totals.framesOut += scratch[Self.framesOutSlot] + generated.count - before
        routes.qsbr.quiescent(reader)
    }

    // MARK: Held frames

    /// Copies the frame aside for `processHeld` (verdict `held`), unless
    /// holding is off, full, or the frame has been held its time already.
    func hold(_ p: inout Packet, punted: Bool = false) -> Bool {
        let limit = configuration.holdNanoseconds
        guard limit > 0, (retryTime ?? p.time) &- p.time < limit, held.count < configuration.holdCapacity,
              p.length <= pool.capacity else { return false }
        if heldStorage == nil {
            heldStorage = .allocate(byteCount: configuration.holdCapacity * pool.capacity, alignment: 64)
            heldFreeSlots = Array((0..<configuration.holdCapacity).reversed())
            held.reserveCapacity(configuration.holdCapacity)
        }
        let slot = heldFreeSlots.removeLast()
        let bytes = UnsafeRawBufferPointer(pool.bytes(p))
        (heldStorage! + slot * pool.capacity).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        // A change of the tables after this batch began may be the binding it waits for.
        if held.isEmpty && retryTime == nil { heldChanges = batchChanges }
        held.append(HeldFrame(slot: slot, length: bytes.count, port: p.port, time: p.time))
        if retryTime == nil { count(.heldForBinding) }
        p.verdict = .held(punted: punted)
        return true
    }

    /// Decides the held frames again when the tables changed since they
    /// were last tried, or one of them has been held its time (and is then
    /// dropped for what kept it): loads up to `batch.count` of them into
    /// the pool, oldest first, and decides them as `process` does (those
    /// still waiting are held again). Returns how many it loaded; the
    /// caller sends, counts and releases them like a processed batch. They
    /// and what they generated carry `now` as their time.
    public func processHeld(now: Int64, into batch: UnsafeMutableBufferPointer<Packet>, generated: inout [Packet]) -> Int {
        guard let storage = heldStorage, !held.isEmpty else { return 0 }
        if heldRoundLeft == 0 {
            let changes = tables.changes.load(ordering: .acquiring)
            let limit = configuration.holdNanoseconds
            guard changes != heldChanges || held.contains(where: { now &- $0.time >= limit }) else { return 0 }
            heldChanges = changes
            heldRoundLeft = held.count
        }
        var n = 0
        while n < min(batch.count, heldRoundLeft) {
            let h = held[n]
            guard let p = pool.load(UnsafeRawBufferPointer(start: storage + h.slot * pool.capacity, count: h.length),
                                    port: h.port, time: h.time) else { break }
            batch[n] = p
            heldFreeSlots.append(h.slot)
            n += 1
        }
        held.removeFirst(n)
        heldRoundLeft -= n
        guard n > 0 else { return 0 }
        let before = generated.count
        retryTime = now
        process(UnsafeMutableBufferPointer(rebasing: batch[..<n]), generated: &generated)
        retryTime = nil
        for i in 0..<n { batch[i].time = now }
        for i in before..<generated.count { generated[i].time = now }
        return n
    }

    /// `processHeld` until it has nothing more to decide at `now`, each
    /// batch it decides (and what it generated) handed to `handle`, which
    /// sends, counts and releases them and empties `generated`.
    public func drainHeld<E: Error>(now: Int64, into batch: UnsafeMutableBufferPointer<Packet>, generated: inout [Packet],
                                    _ handle: (UnsafeMutableBufferPointer<Packet>, inout [Packet]) throws(E) -> Void) throws(E) {
        while !held.isEmpty {
            let n = processHeld(now: now, into: batch, generated: &generated)
            guard n > 0 else { return }
            try handle(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
        }
    }

    /// Passes 1 and 2 of a chunk: which frames take the fast path and
    /// their keys, then the look-ups, batched and prefetched, and a prefetch
    /// of the hot records they found (before the MAC look-ups, which then
    /// cover part of its latency).
    @inline(__always)
    func lookUp(_ packets: UnsafeMutableBufferPointer<Packet>, _ range: Range<Int>) {
        var m = 0, am = 0
        for k in 0..<range.count {
            lpmIndex[k] = -1
            macIndex[k] = -1
            guard let key = fastPathKey(packets[range.lowerBound + k]) else { continue }
            lpmKeys[m] = key.address
            lpmIndex[k] = m
            m += 1
            if let mac = key.dlif {
                macKeys[am] = mac
                macIndex[k] = am
                am += 1
            }
        }
        if m > 0 { routes.lookup(UnsafeBufferPointer(start: lpmKeys, count: m), into: UnsafeMutableBufferPointer(start: lpmResults, count: m)) }
        for k in 0..<m where lpmResults[k] != 0 { dgw_prefetch(UnsafeRawPointer(hot + Int(lpmResults[k]) - 1)) }
        if am > 0 { dlifs.lookup(UnsafeBufferPointer(start: macKeys, count: am), into: UnsafeMutableBufferPointer(start: macResults, count: am)) }
    }

    /// Pass 3 of a chunk: decide, in order (the slow path's effects keep
    /// packet order); the common cases straight from pass 1's checks
    /// (FastPath.swift), the rest in full.
    @inline(__always)
    func decide(_ packets: UnsafeMutableBufferPointer<Packet>, _ range: Range<Int>, _ generated: inout [Packet]) {
        for k in 0..<range.count {
            let i = range.lowerBound + k
            let route = lpmIndex[k] >= 0 ? Int(lpmResults[lpmIndex[k]]) : -1
            let dlif = macIndex[k] >= 0 ? Int(macResults[macIndex[k]]) : -1
            if route >= 0 {
                let decided: Bool
                switch packets[i].port {
                case .access: decided = fastAccessIn(&packets[i], route: route, dlif: dlif)
                case .core: decided = fastCoreIn(&packets[i], route: route)
                }
                if decided {
                    scratch[Self.framesOutSlot] += 1
                    continue
                }
            }
            scratch[Self.timeSlot] = Int(packets[i].time)
            switch packets[i].port {
            case .access: accessIn(&packets[i], &generated, route: route, dlif: dlif)
            case .core: coreIn(&packets[i], &generated, route: route)
            }
            switch packets[i].verdict {
            case .drop(let r): scratch[Self.dropBase + r.rawValue] += 1
            case .forward: scratch[Self.framesOutSlot] += 1
            default: break
            }
        }
    }

    /// The look-up keys of a frame that takes the fast path: the source
    /// (and the DLIF MAC) of an MN's unicast frame, or the destination of a
    /// core frame in transit. Nil for anything else; pass 3 sorts those out.
    @inline(__always)
    func fastPathKey(_ p: Packet) -> (address: IPv6Address, dlif: MACAddress?)? {
        let bytes = UnsafeRawBufferPointer(pool.bytes(p))
        guard let eth = try? EthernetFrame(checking: bytes), eth.tagCount == 0, eth.etherType == EtherType.ipv6,
              let ip = try? IPv6Packet(checking: eth.payload),
              !ip.destination.isMulticast, !ip.destination.isLinkLocal, ip.destination != configuration.address
        else { return nil }
        switch p.port {
        case .access:
            return eth.destination.isMulticast ? nil : (ip.source, eth.destination)
        case .core:
            return eth.destination == configuration.coreMAC ? (ip.destination, nil) : nil
        }
    }

    @inline(__always) func count(_ a: Action) { scratch[a.rawValue] += 1 }
    @inline(__always) func count(_ d: DropReason) { scratch[Self.dropBase + d.rawValue] += 1 }

    // MARK: Checks both sides make

    /// The frame's Ethernet header if it is untagged IPv6; else the verdict says why not.
    @inline(__always)
    func untaggedIPv6(_ p: inout Packet) -> EthernetFrame? {
        guard let eth = try? EthernetFrame(checking: UnsafeRawBufferPointer(pool.bytes(p))) else {
            p.verdict = .drop(.malformed)
            return nil
        }
        guard eth.tagCount == 0 else { p.verdict = .drop(.vlanTagged); return nil }
        guard eth.etherType == EtherType.ipv6 else { p.verdict = .drop(.notIPv6); return nil }
        return eth
    }

    /// A packet that would leave with hop limit 0: Time Exceeded back to its source.
    @inline(__always)
    func hopLimitExpired(_ p: inout Packet, _ ip: IPv6Packet, from eth: EthernetFrame, on port: GatewayPort,
                         _ out: inout [Packet]) -> Bool {
        guard ip.hopLimit <= 1 else { return false }
        icmpError(.timeExceeded(code: TimeExceededCode.hopLimit, invoking: .borrowed(ip.bytes)), about: ip,
                  from: eth, on: port, &out)
        p.verdict = .drop(.hopLimitExceeded)
        return true
    }

    // MARK: Access side: frames from MNs

    /// `route` and `dlif`: look-up results from pass 2, or -1 (look up here).
    func accessIn(_ p: inout Packet, _ out: inout [Packet], route: Int = -1, dlif hint: Int = -1) {
        guard let eth = untaggedIPv6(&p) else { return }
        guard let ip = try? IPv6Packet(checking: eth.payload) else { p.verdict = .drop(.malformed); return }
        let dstMAC = eth.destination
        // Multicast (RS, NS, MLD) and anything for the gateway itself: control plane.
        if dstMAC.isMulticast || ip.destination.isMulticast || ip.destination.isLinkLocal
            || ip.destination == configuration.address {
            punt(&p, ip)
            return
        }
        // The DLIF must be one this MN sees (DLIFs are per MN and anchor).
        let dlif = hint >= 0 ? hint : Int(dlifs.lookup(dstMAC))
        guard dlif != 0, hot[dlif - 1].mnMAC == eth.source else {
            // An MN that moved in unannounced still talks to its old router:
            // the control plane attaches it (within a rate: spoofed sources
            // must not flood it).
            let punt = retryTime == nil && !eth.source.isMulticast && configuration.unknownMNPuntRate > 0
                && unknownMNBucket.take(at: p.time, rate: configuration.unknownMNPuntRate)
            if punt { count(.puntedUnknownMN) }
            // To a logical MAC no DLIF here has (every DLIF's is locally
            // administered): a former anchor's, shown here once its PBA comes.
            if dlif == 0, !eth.source.isMulticast, dstMAC.isLocallyAdministered, hold(&p, punted: punt) { return }
            p.verdict = punt ? .drop(.punted) : .drop(.unknownDestinationMAC)
            return
        }
        // Uplink source check: one of the prefixes of this MN, attached here.
        // (Bindings are /64s, so the longest match being a binding means it contains the source.)
        let s = route >= 0 ? route : Int(routes.lookup(ip.source))
        guard s != 0, hot[s - 1].mnMAC == eth.source, hot[s - 1].isServedHere else {
            // From a prefix bound to nothing here: a former anchor's, whose PBA may be on its way.
            if s == 0, hold(&p) { return }
            p.verdict = .drop(.sourceCheck)
            return
        }
        if hopLimitExpired(&p, ip, from: eth, on: .access, &out) { return }
        let h = hot[s - 1]
        if h.isAnchoredHere {
            routeOnward(&p, ip, from: eth, on: .access, &out, native: .uplinkNative, delivered: .uplinkDelivered, tunnelled: .uplinkEncapsulated)
        } else {
            encapsulate(&p, ip, to: hopAddress(h.peerHop), hop: h.peerHop, from: eth, on: .access, &out, action: .uplinkEncapsulated)
        }
    }

    // MARK: Core side

    func coreIn(_ p: inout Packet, _ out: inout [Packet], route: Int = -1) {
        guard let eth = untaggedIPv6(&p) else { return }
        guard eth.destination == configuration.coreMAC || eth.destination.isMulticast else {
            p.verdict = .drop(.notForThisGateway)
            return
        }
        guard let ip = try? IPv6Packet(checking: eth.payload) else { p.verdict = .drop(.malformed); return }
        if ip.destination == configuration.address || ip.destination.isMulticast || ip.destination.isLinkLocal {
            forGateway(&p, eth, ip, &out)
            return
        }
        if hopLimitExpired(&p, ip, from: eth, on: .core, &out) { return }
        let d = route >= 0 ? route : Int(routes.lookup(ip.destination))
        // Another anchor's local network is routed for the MNs served here, not for the core.
        guard d != 0, !hot[d - 1].isLocalNetwork else {
            icmpError(.destinationUnreachable(code: UnreachableCode.noRoute, invoking: .borrowed(ip.bytes)), about: ip,
                      from: eth, on: .core, &out)
            p.verdict = .drop(.noRoute)
            return
        }
        let h = hot[d - 1]
        if h.isServedHere {
            deliver(&p, ipStart: 14, ip, h, action: .downlinkDelivered)
        } else {
            encapsulate(&p, ip, to: hopAddress(h.peerHop), hop: h.peerHop, from: eth, on: .core, &out, action: .downlinkEncapsulated)
        }
    }

    /// Addressed to us: tunnels we terminate, signalling and ND.
    func forGateway(_ p: inout Packet, _ eth: EthernetFrame, _ ip: IPv6Packet, _ out: inout [Packet]) {
        var chain = IPv6HeaderChain(packet: ip)
        guard (try? chain.skipToUpperLayer()) != nil else { p.verdict = .drop(.malformed); return }
        switch chain.isNonFirstFragment ? 0 : chain.nextHeader {
        case IPProtocol.ipv6 where ip.destination == configuration.address:
            decapsulate(&p, eth, ip, chain.remainder, &out)
        case IPProtocol.mobility:
            count(.puntedMobility)
            p.verdict = .drop(.punted)
        case IPProtocol.icmpv6:
            slowPathICMPv6(&p, eth, ip, chain.remainder, &out)
        default:
            count(.puntedForGateway)
            p.verdict = .drop(.punted)
        }
    }

    /// RFC 2473 exit point, and no open decapsulation: the outer source
    /// must be the gateway bound to the inner prefix, or, for one of this
    /// gateway's local networks, one of its peers (the MN, served there,
    /// reaches the network through this gateway's DLIF from any of its
    /// prefixes, the newest one most often).
    func decapsulate(_ p: inout Packet, _ eth: EthernetFrame, _ outer: IPv6Packet, _ innerBytes: UnsafeRawBufferPointer, _ out: inout [Packet]) {
        guard let inner = try? IPv6Packet(checking: innerBytes) else { p.verdict = .drop(.malformed); return }
        let innerStart = innerBytes.baseAddress! - UnsafeRawPointer(pool.bytes(p).baseAddress!)
        let peer = outer.source
        // Bindings are /64s: the longest match being one means it contains the address.
        let s = Int(routes.lookup(inner.source))
        if s != 0, hot[s - 1].isAnchoredHere, !hot[s - 1].isServedHere, hopAddress(hot[s - 1].peerHop) == peer {
            // Uplink of an MN served by `peer`, anchored here: on, as if sent here.
            strip(&p, to: innerStart, length: inner.totalLength)
            routeOnward(&p, inner, from: eth, on: .core, &out, native: .uplinkDecapsulated, delivered: .uplinkDecapsulated,
                        tunnelled: .uplinkDecapsulated)
            return
        }
        if configuration.localNetworks.contains(where: { $0.contains(inner.destination) }), configuration.peers.contains(peer) {
            strip(&p, to: innerStart, length: inner.totalLength)
            routeOnward(&p, inner, from: eth, on: .core, &out, native: .uplinkDecapsulated, delivered: .uplinkDecapsulated,
                        tunnelled: .uplinkDecapsulated)
            return
        }
        let d = Int(routes.lookup(inner.destination))
        if d != 0, hot[d - 1].isServedHere, !hot[d - 1].isAnchoredHere, hopAddress(hot[d - 1].peerHop) == peer {
            strip(&p, to: innerStart, length: inner.totalLength)
            deliver(&p, ipStart: 14, inner, hot[d - 1], action: .downlinkDecapsulated)
            return
        }
        // An LMA between operators: the tunnel from the serving gateway goes
        // on to the prefix's anchor, the one from the anchor on to the
        // serving gateway, and nothing else crosses.
        if s != 0, hot[s - 1].isRelayed, hopAddress(hot[s - 1].peerHop) == peer {
            let anchor = hot[s - 1].anchorHop
            strip(&p, to: innerStart, length: inner.totalLength)
            encapsulate(&p, inner, to: hopAddress(anchor), hop: anchor, from: eth, on: .core, &out, action: .uplinkRelayed)
            return
        }
        if d != 0, hot[d - 1].isRelayed, hopAddress(hot[d - 1].anchorHop) == peer {
            let serving = hot[d - 1].peerHop
            strip(&p, to: innerStart, length: inner.totalLength)
            encapsulate(&p, inner, to: hopAddress(serving), hop: serving, from: eth, on: .core, &out, action: .downlinkRelayed)
            return
        }
        // From any of the MN's prefixes, as at the anchor itself.
        if configuration.relaysLocalNetworks, d != 0, hot[d - 1].isLocalNetwork, configuration.peers.contains(peer) {
            let anchor = hot[d - 1].peerHop
            strip(&p, to: innerStart, length: inner.totalLength)
            encapsulate(&p, inner, to: hopAddress(anchor), hop: anchor, from: eth, on: .core, &out, action: .uplinkRelayed)
            return
        }
        // From a peer: its binding here may be on its way, in a PBA (or
        // a PBU) this frame overtook in the control plane.
        if configuration.peers.contains(peer), hold(&p) { return }
        p.verdict = .drop(.decapsulationRefused)
    }

    /// Moves the packet's start to the inner header minus room for Ethernet.
    func strip(_ p: inout Packet, to innerStart: Int, length: Int) {
        p.offset += innerStart - 14
        p.length = 14 + length
    }

    // MARK: Forwarding steps

    /// An MN's packet from a prefix anchored here, routed by its destination
    /// as a router would for what the tables know: a host attached here
    /// (another MN, a host of a local network on the access link) gets it on
    /// the access link, a prefix served by a peer or another anchor's local
    /// network goes into that tunnel, anything else natively to the core.
    /// `eth` and `port`: where an ICMPv6 error about it goes.
    func routeOnward(_ p: inout Packet, _ ip: IPv6Packet, from eth: EthernetFrame, on port: GatewayPort, _ out: inout [Packet],
                     native: Action, delivered: Action, tunnelled: Action) {
        let d = Int(routes.lookup(ip.destination))
        guard d != 0 else {
            routeToCore(&p, ip, from: eth, on: port, action: native, &out)
            return
        }
        let h = hot[d - 1]
        if h.isServedHere {
            deliver(&p, ipStart: 14, ip, h, action: delivered)
        } else {
            encapsulate(&p, ip, to: hopAddress(h.peerHop), hop: h.peerHop, from: eth, on: port, &out, action: tunnelled)
        }
    }

    /// On to the core natively: hop limit down, next hop's MAC. Longer than
    /// the core link takes (an access link with a larger MTU): a router
    /// does not fragment, it says how much fits (RFC 8200 section 5, RFC
    /// 4443 section 3.2).
    func routeToCore(_ p: inout Packet, _ ip: IPv6Packet, from eth: EthernetFrame, on port: GatewayPort, action: Action,
                     _ out: inout [Packet]) {
        if ip.hopLimit <= 1 {
            p.verdict = .drop(.hopLimitExceeded)
            return
        }
        if ip.totalLength > configuration.coreMTU {
            icmpError(.packetTooBig(mtu: UInt32(configuration.coreMTU), invoking: .borrowed(ip.bytes)), about: ip, from: eth, on: port, &out)
            p.verdict = .drop(.packetTooBig)
            return
        }
        let onLink = configuration.corePrefix.contains(ip.destination)
        guard let mac = nextHopMAC(for: ip.destination, hop: onLink ? -1 : gatewayHop, time: p.time, &out) else {
            p.verdict = .drop(.neighborUnresolved)
            return
        }
        let frame = pool.bytes(p)
        frame[14 + 7] = ip.hopLimit - 1
        writeEthernet(frame, destination: mac, source: configuration.coreMAC)
        p.verdict = .forward(.core)
        count(action)
    }

    /// To the MN on the access link, from the DLIF of the prefix's anchor.
    func deliver(_ p: inout Packet, ipStart: Int, _ ip: IPv6Packet, _ h: Hot, action: Action) {
        if ip.hopLimit <= 1 {
            p.verdict = .drop(.hopLimitExceeded)
            return
        }
        let frame = pool.bytes(p)
        frame[ipStart + 7] = ip.hopLimit - 1
        writeEthernet(frame, destination: h.mnMAC, source: h.dlifMAC)
        p.verdict = .forward(.access)
        count(action)
    }

    /// IPv6-in-IPv6 to another gateway, prepended in the slot's headroom.
    func encapsulate(_ p: inout Packet, _ ip: IPv6Packet, to peer: IPv6Address, hop: Int, from eth: EthernetFrame, on port: GatewayPort,
                     _ out: inout [Packet], action: Action) {
        // Decapsulated and sent on (an anchor, an LMA): its hop limit was not checked on the way in.
        if ip.hopLimit <= 1 {
            p.verdict = .drop(.hopLimitExceeded)
            return
        }
        let tunnelMTU = configuration.coreMTU - IPv6Tunnel.overhead
        if ip.totalLength > tunnelMTU {
            // RFC 2473 section 7: the tunnel's MTU is what the source must use.
            icmpError(.packetTooBig(mtu: UInt32(tunnelMTU), invoking: .borrowed(ip.bytes)), about: ip, from: eth, on: port, &out)
            p.verdict = .drop(.packetTooBig)
            return
        }
        guard let mac = nextHopMAC(for: peer, hop: hop, time: p.time, &out) else {
            p.verdict = .drop(.neighborUnresolved)
            return
        }
        guard p.offset >= IPv6Tunnel.overhead else { p.verdict = .drop(.poolExhausted); return }
        // The inner packet is forwarded into the tunnel: its hop limit goes down.
        pool.bytes(p)[14 + 7] = ip.hopLimit - 1
        p.offset -= IPv6Tunnel.overhead
        p.length += IPv6Tunnel.overhead
        let frame = pool.bytes(p)
        let inner = IPv6Packet(unchecked: UnsafeRawBufferPointer(frame).slice(54..<(54 + ip.totalLength)))
        try? IPv6Tunnel.writeOuterHeader(into: frame.slice(14..<54), inner: inner, source: configuration.address,
                                         destination: peer)
        writeEthernet(frame, destination: mac, source: configuration.coreMAC)
        p.verdict = .forward(.core)
        count(action)
    }

    func writeEthernet(_ frame: UnsafeMutableRawBufferPointer, destination: MACAddress, source: MACAddress) {
        destination.write(to: frame, at: 0)
        source.write(to: frame, at: 6)
        frame[12] = 0x86
        frame[13] = 0xDD
    }

    func punt(_ p: inout Packet, _ ip: IPv6Packet) {
        var chain = IPv6HeaderChain(packet: ip)
        let nh = (try? chain.skipToUpperLayer())?.protocol
        if nh == IPProtocol.icmpv6, let t = chain.remainder.first, (133...137).contains(t) {
            count(.puntedNeighborDiscovery)
        } else if nh == IPProtocol.mobility {
            count(.puntedMobility)
        } else {
            count(.puntedForGateway)
        }
        p.verdict = .drop(.punted)
    }
}

extension IPv6Packet {
    /// A view over bytes already known to hold a whole IPv6 packet.
    init(unchecked bytes: UnsafeRawBufferPointer) {
        self = try! IPv6Packet(checking: bytes)
    }
}

extension UnsafeMutableRawBufferPointer {
    func slice(_ r: Range<Int>) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: self[r]) }
}
extension UnsafeRawBufferPointer {
    func slice(_ r: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self[r]) }
}
