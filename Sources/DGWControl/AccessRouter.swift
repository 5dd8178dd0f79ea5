// The access side of the control plane: each MN attached here sees one
// router per anchor of its prefixes, a DLIF (distributed logical interface:
// the anchor's logical MAC and a link-local address derived from it, so
// the MN meets the same router wherever it moves). The DLIF answers the
// MN's Router and Neighbor Solicitations and advertises periodically: the
// prefix of this gateway with normal lifetimes, another anchor's prefix
// deprecated (preferred lifetime 0, low router preference) with a Route
// Information Option for each of that anchor's local networks.
//
// Sans-I/O: frames and time in, frames out; the same code runs in `dgw
// replay` (time from the capture) and in `dgw run` (on its control thread).

import DGWWire

/// One logical interface shown to one MN.
public struct DLIF: Sendable, Equatable {
    public var mn: MACAddress
    public var mac: MACAddress
    /// The anchor whose router this is; nil: this gateway.
    public var anchor: IPv6Address?
    public var prefixes: [IPv6Prefix]
    /// Networks reachable only through that anchor (LIPA), advertised in RIOs.
    public var localNetworks: [IPv6Prefix]

    /// The DLIF's link-local address: fixed by the anchor (the PBA's DLIF
    /// Link-local Address option), by default the modified EUI-64 of its MAC.
    public var linkLocal: IPv6Address

    public init(mn: MACAddress, mac: MACAddress, anchor: IPv6Address?, prefixes: [IPv6Prefix], localNetworks: [IPv6Prefix] = [],
                linkLocal: IPv6Address? = nil) {
        self.mn = mn
        self.mac = mac
        self.anchor = anchor
        self.prefixes = prefixes
        self.localNetworks = localNetworks
        self.linkLocal = linkLocal ?? Self.linkLocal(of: mac)
    }

    /// The logical MAC an anchor gives the DLIF of an MN whose prefix it
    /// allocated from `pool`: locally administered, then the low 16 bits of
    /// the anchor's address, then the prefix's index in the pool (24 bits).
    /// Unlike a hash it cannot collide: distinct among an anchor's first
    /// 16M MNs, and among anchors whose addresses differ in their last 16
    /// bits, wherever the PBA's DLIF Link-layer Address option carries it.
    public static func logicalMAC(anchor: IPv6Address, pool: IPv6Prefix, prefix: IPv6Prefix) -> MACAddress {
        let index = pool.length >= 64 ? 0 : (prefix.address.high & ~(UInt64.max << (64 - UInt64(pool.length))))
        return MACAddress(value: 0x0200_0000_0000 | (anchor.low & 0xFFFF) << 24 | (index & 0xFF_FFFF))
    }

    /// Whether `mac` has the form `logicalMAC(anchor:pool:prefix:)` gives
    /// `anchor`'s DLIFs.
    public static func isPoolLogicalMAC(_ mac: MACAddress, of anchor: IPv6Address) -> Bool {
        mac.value >> 24 == 0x02_0000 | (anchor.low & 0xFFFF)
    }

    /// fe80::/64 with the modified EUI-64 of `mac` (RFC 4291 appendix A).
    public static func linkLocal(of mac: MACAddress) -> IPv6Address {
        let m = mac.value
        let eui = ((m >> 24) ^ 0x02_0000) << 40 | 0xFF_FE00_0000 | (m & 0xFF_FFFF)
        return IPv6Address(high: 0xFE80 << 48, low: eui)
    }
}

public struct AccessRouterConfiguration: Sendable {
    /// Seconds between unsolicited RAs once the first burst is out.
    public var interval: Double = 3
    public var routerLifetime: Int = 1800
    public var validLifetime: Int = 86_400
    public var preferredLifetime: Int = 3600
    /// The access link's MTU, advertised.
    public var mtu: Int = 1500
    public var dlifs: [DLIF] = []
    /// Where an MN that attaches here (an RS from an unknown MAC) gets its
    /// /64, the same one again when it comes back; nil: no attach here.
    public var prefixPool: IPv6Prefix?
    /// This gateway's local networks, advertised to MNs that attach.
    public var localNetworks: [IPv6Prefix] = []
    /// The only MNs that may attach here (subscriber policy); nil: any.
    public var subscribers: Set<MACAddress>?
    /// Prefixes of the pool never handed out (bound statically, whoever serves them).
    public var reserved: [IPv6Prefix] = []
    /// The logical MAC of this gateway's DLIF for an MN, given the prefix
    /// it got here (by default `DLIF.logicalMAC(anchor:pool:prefix:)`
    /// where a pool and an anchor address are known).
    public var logicalMAC: @Sendable (_ mn: MACAddress, _ prefix: IPv6Prefix) -> MACAddress = { mn, _ in mn }

    public init() {}
}

/// An MN that attached here: the binding the data plane must install.
public struct Attachment: Sendable, Equatable {
    public var mn: MACAddress
    public var prefix: IPv6Prefix
    public var dlifMAC: MACAddress

    public init(mn: MACAddress, prefix: IPv6Prefix, dlifMAC: MACAddress) {
        self.mn = mn
        self.prefix = prefix
        self.dlifMAC = dlifMAC
    }
}

/// What the router does about a frame: frames to send on the access link,
/// and bindings to install (before those frames go).
public struct AccessRouterReply: Sendable {
    public var frames: [[UInt8]] = []
    public var attached: [Attachment] = []
    /// A unicast frame's destination that is none of its sender's DLIFs
    /// here: a router the MN knew elsewhere (an anchor's DLIF). Set when
    /// that attached an unknown MN (it moved in unannounced), and for an
    /// MN attached here talking to a router it has not been shown here.
    public var formerRouter: MACAddress?
}

public struct AccessRouterCounters: Sendable, Equatable {
    public var routerSolicitations = 0
    public var neighborSolicitations = 0
    public var routerAdvertisements = 0
    public var neighborAdvertisements = 0
    /// Punted frames that asked nothing of a DLIF (DAD probes, another MN's target, MLD...).
    public var ignored = 0
    /// Advertisements not sent: more prefixes and routes than one frame holds.
    public var tooLarge = 0
    /// MNs that attached here (a prefix from the pool, a DLIF).
    public var attached = 0
    /// Of those, the ones learned from a unicast frame rather than an RS or a trigger.
    public var attachedOnTraffic = 0
    /// Attachments refused: the MN is not one of the subscribers.
    public var notSubscribed = 0
    /// Solicitations from unknown MNs that found the pool used up.
    public var poolExhausted = 0
    public init() {}
}

public final class AccessRouter {
    /// RFC 4861 6.2.4: the first few unsolicited advertisements go faster.
    public static let initialAdvertisements = 3
    public static let initialInterval: Int64 = 1_000_000_000

    public let configuration: AccessRouterConfiguration
    public private(set) var counters = AccessRouterCounters()
    /// How often unsolicited RAs repeat deprecated prefixes after the burst:
    /// a third of their valid lifetime, at least every interval.
    public var deprecatedRefresh: Int64 {
        Int64(max(configuration.interval, Double(configuration.validLifetime) / 3) * 1e9)
    }
    /// A DLIF shown, in a slot that is reused once it is hidden. Two per
    /// MN handed over: the optional times are kept as words with `.min`
    /// for none (104 octets a slot, not 120).
    private struct Shown {
        var dlif: DLIF
        private var nextOrNone: Int64 = .min
        private var deprecatedSentOrNone: Int64 = .min
        /// When it was first shown, for listing in that order.
        var order: UInt64
        var sent: Int32 = 0

        init(dlif: DLIF, order: UInt64) {
            self.dlif = dlif
            self.order = order
        }

        /// Its next unsolicited RA; nil: at the next tick (a fresh burst).
        var next: Int64? {
            get { nextOrNone == .min ? nil : nextOrNone }
            set { nextOrNone = newValue ?? .min }
        }

        /// When its deprecated prefixes last went out unsolicited.
        var deprecatedSent: Int64? {
            get { deprecatedSentOrNone == .min ? nil : deprecatedSentOrNone }
            set { deprecatedSentOrNone = newValue ?? .min }
        }
    }
    private var slots: [Shown?] = []
    private var freeSlots: [Int] = []
    /// What the gateway keeps of each MN, the router's part and the
    /// control plane's (which reaches it through `records`).
    var records = RecordBook()

    /// What `read` takes from the record of `mn`, read in place: the
    /// record (some 170 octets and two arrays) is not copied out, as the
    /// dictionary's getters would (its in-place accessor is the one that
    /// lets a value be changed; `read` only reads).
    @inline(__always)
    func field<T>(of mn: MACAddress, _ read: (inout MNRecord) -> T) -> T? {
        guard let i = records.index(forKey: mn) else { return nil }
        return read(&records.values[i])
    }

    @inline(__always)
    func field<T>(at i: RecordBook.Index, _ read: (inout MNRecord) -> T) -> T { read(&records.values[i]) }
    private var shownCount: UInt64 = 0
    /// Slots shown since the last tick, whose burst that tick starts.
    private var fresh: [Int] = []
    /// This gateway's prefixes whose traffic another interface of their MN
    /// took (`move-prefix`, draft-seite 4.4), by MN: its DLIF here
    /// advertises them deprecated while so, so that the MN's new flows
    /// leave them to that interface. Kept apart from the DLIFs (rare, and
    /// a DLIF shown again keeps it).
    private var movedAway: [MACAddress: [IPv6Prefix]] = [:]
    private var advertisements = Deadlines<Int>()
    /// The pool's /64s not to give out: the configured DLIFs' and the reserved.
    private let taken: Set<IPv6Prefix>
    /// The pool's /64s go out in order, never twice: the MN each one tried
    /// so far went to (nil: skipped), by index in the pool; the next to try
    /// is the one after.
    private var allocatedTo: [MACAddress?] = []

    public init(_ configuration: AccessRouterConfiguration) {
        self.configuration = configuration
        taken = Set(configuration.dlifs.flatMap(\.prefixes) + configuration.reserved)
        for dlif in configuration.dlifs { show(dlif) }
    }

    /// Room for `mns` MNs in the books keyed by MN and prefix, made at once.
    public func reserveCapacity(_ mns: Int) {
        records.reserveCapacity(mns)
        allocatedTo.reserveCapacity(mns)
        // Two DLIFs per MN: its own here, and its former anchor's.
        slots.reserveCapacity(2 * mns)
        advertisements.reserveCapacity(2 * mns)
    }

    /// The DLIFs shown: the configuration's, then one per MN attached
    /// since, in the order they were first shown.
    public var dlifs: [DLIF] {
        slots.compactMap { $0 }.sorted { $0.order < $1.order }.map(\.dlif)
    }

    /// The DLIFs shown to `mn`.
    public func dlifs(of mn: MACAddress) -> [DLIF] { (field(of: mn) { $0.slots } ?? SlotList()).compactMap { slots[$0]?.dlif } }

    /// The first DLIF shown to `mn` that `matches`, without copying the others.
    func firstDLIF(of mn: MACAddress, where matches: (DLIF) -> Bool) -> DLIF? {
        guard let mine = field(of: mn, { $0.slots }) else { return nil }
        return firstDLIF(in: mine, where: matches)
    }

    private func firstDLIF(in mine: SlotList, where matches: (DLIF) -> Bool) -> DLIF? {
        for slot in mine where matches(slots[slot]!.dlif) { return slots[slot]!.dlif }
        return nil
    }

    /// The number of DLIFs shown.
    public var dlifCount: Int { slots.count - freeSlots.count }

    /// The earliest time `tick` has something to send: nil when nothing is
    /// scheduled, .min when a DLIF was shown since the last tick (its first
    /// advertisements go at once).
    public var nextDeadline: Int64? {
        if !fresh.isEmpty { return .min }
        return advertisements.earliest { slot, due in slots[slot]?.next == due }
    }

    /// Unsolicited RAs due by `time`, each with the time it was due, in
    /// time order. A DLIF shown since the last tick starts its burst at `time`.
    public func tick(_ time: Int64) -> [(time: Int64, frame: [UInt8])] {
        var out: [(time: Int64, frame: [UInt8])] = []
        tick(time, into: &out)
        return out
    }

    /// `tick(_:)` appending to `out` (the control plane's recycled list of
    /// access frames: no list made and copied each tick).
    public func tick(_ time: Int64, into out: inout [(time: Int64, frame: [UInt8])]) {
        let before = out.count
        for slot in fresh where slots[slot] != nil && slots[slot]!.next == nil {
            slots[slot]!.next = time
            advertisements.schedule(slot, at: time)
        }
        fresh.removeAll(keepingCapacity: true)
        while let (slot, due) = advertisements.next(dueBy: time, isCurrent: { slot, due in slots[slot]?.next == due }) {
            // Changed in place: the slot (and its DLIF's arrays) not copied out and back.
            func advertise(_ s: inout Shown) -> Int64 {
                // Deprecated prefixes (preferred lifetime 0) go in the burst and
                // then only often enough to keep them valid (RFC 4861 6.2.3 lets
                // unsolicited RAs leave options out). A Linux host clears an
                // address's deprecated flag on every such PIO until its address
                // worker runs again (a moment, or as long as the RTNL lock is
                // busy), and a connection opened then may take the old prefix.
                let withDeprecated = s.sent < Self.initialAdvertisements || s.deprecatedSent.map { due - $0 >= deprecatedRefresh } ?? true
                if let frame = advertisement(s.dlif, withDeprecated: withDeprecated) { out.append((due, frame)) }
                if withDeprecated { s.deprecatedSent = due }
                s.sent += 1
                let gap = s.sent < Self.initialAdvertisements ? Self.initialInterval : Int64(configuration.interval * 1e9)
                s.next = due + max(gap, 1)
                return s.next!
            }
            let next = advertise(&slots[slot]!)
            advertisements.schedule(slot, at: next)
        }
        counters.routerAdvertisements += out.count - before
    }

    /// Answers a frame punted from the access port: RAs for a Router
    /// Solicitation (and, from an MN not seen before, its attachment: a /64
    /// from the pool and a DLIF), an NA for a Neighbor Solicitation of a
    /// DLIF address. A unicast frame from an MN not attached here (one
    /// that moved in without an association event or a new RS, and still
    /// talks to its old router) attaches it too. Multicast from unknown
    /// MACs (DAD, MLD) does not: any host joining the link sends those, and
    /// an MN follows them with an RS.
    public func handle(_ frame: UnsafeRawBufferPointer) -> AccessRouterReply {
        guard let eth = try? EthernetFrame(checking: frame), eth.tagCount == 0, eth.etherType == EtherType.ipv6,
              let ip = try? IPv6Packet(checking: eth.payload) else {
            counters.ignored += 1
            return AccessRouterReply()
        }
        if !eth.destination.isMulticast, !eth.source.isMulticast, firstDLIF(of: eth.source, where: { $0.mac == eth.destination }) == nil {
            var reply = AccessRouterReply()
            if isShown(eth.source) {
                reply.formerRouter = eth.destination
            } else if let attachment = attach(eth.source) {
                counters.attachedOnTraffic += 1
                reply.attached.append(attachment)
                reply.formerRouter = eth.destination
            }
            return reply
        }
        guard ip.nextHeader == IPProtocol.icmpv6, ip.hopLimit == 255, let icmp = try? ICMPv6Packet(checking: ip.payload),
              let message = try? ICMPv6Message.parse(icmp, source: ip.source, destination: ip.destination)
        else {
            counters.ignored += 1
            return AccessRouterReply()
        }
        let mn = eth.source
        var reply = AccessRouterReply()
        switch message {
        case .routerSolicitation:
            counters.routerSolicitations += 1
            if !isShown(mn), !mn.isMulticast, let attachment = attach(mn) {
                reply.attached.append(attachment)
            }
            // To every DLIF of this MN when multicast, else to the one addressed.
            let mine = dlifs(of: mn).filter { eth.destination.isMulticast || $0.mac == eth.destination }
            reply.frames = mine.compactMap { advertisement($0) }
            counters.routerAdvertisements += reply.frames.count
        case .neighborSolicitation(let target, _):
            counters.neighborSolicitations += 1
            guard let dlif = firstDLIF(of: mn, where: { $0.linkLocal == target }) else {
                counters.ignored += 1  // the MN's own DAD, or another address: not ours to answer
                return reply
            }
            if let na = neighborAdvertisement(dlif, to: ip.source, mac: mn) {
                counters.neighborAdvertisements += 1
                reply.frames = [na]
            }
        default:
            counters.ignored += 1
        }
        return reply
    }

    /// The prefix an MN got here, if it ever attached.
    public func allocation(of mn: MACAddress) -> IPv6Prefix? { field(of: mn) { $0.allocation } ?? nil }

    /// The MN that got `prefix` from the pool here, if one did.
    public func mn(allocated prefix: IPv6Prefix) -> MACAddress? {
        guard let pool = configuration.prefixPool, prefix.length == 64, prefix.address.low == 0, pool.contains(prefix.address) else {
            return nil
        }
        let index = prefix.address.high & ~(UInt64.max << UInt64(64 - Int(pool.length)))
        return index < UInt64(allocatedTo.count) ? allocatedTo[Int(index)] : nil
    }

    /// Whether some DLIF is shown to `mn`.
    private func isShown(_ mn: MACAddress) -> Bool { !(field(of: mn) { $0.slots.isEmpty } ?? true) }

    /// Attaches `mn` (an RS from an MN not seen before, or a trigger): its
    /// /64 from the pool (the one it had, if it was here before) and this
    /// gateway's DLIF for it, advertised from the next tick on. An MN with
    /// this gateway's DLIF shown already gets that one again; nil when no
    /// pool is configured or it is used up.
    public func attach(_ mn: MACAddress) -> Attachment? {
        let before = field(of: mn) { (slots: $0.slots, allocation: $0.allocation) }
        if let mine = before?.slots, let shown = firstDLIF(in: mine, where: { $0.anchor == nil }), let prefix = shown.prefixes.first {
            return Attachment(mn: mn, prefix: prefix, dlifMAC: shown.mac)
        }
        guard let pool = configuration.prefixPool else { return nil }
        if let subscribers = configuration.subscribers, !subscribers.contains(mn) {
            counters.notSubscribed += 1
            return nil
        }
        let prefix: IPv6Prefix
        if let allocation = before?.allocation {
            prefix = allocation
        } else {
            let room: UInt64 = pool.length == 0 ? .max : 1 << UInt64(64 - Int(pool.length))
            var found: IPv6Prefix?
            while UInt64(allocatedTo.count) < room {
                let candidate = IPv6Prefix(uncheckedAddress: IPv6Address(high: pool.address.high | UInt64(allocatedTo.count), low: 0),
                                           length: 64)
                allocatedTo.append(nil)
                // Not a /64 of the pool that is (or holds) one of the local networks.
                let local = configuration.localNetworks.contains {
                    $0.contains(candidate.address) || ($0.length >= 64 && candidate.contains($0.address))
                }
                if !taken.contains(candidate), !local {
                    found = candidate
                    break
                }
            }
            guard let found else {
                counters.poolExhausted += 1
                return nil
            }
            prefix = found
            allocatedTo[allocatedTo.count - 1] = mn
        }
        let mac = configuration.logicalMAC(mn, prefix)
        show(DLIF(mn: mn, mac: mac, anchor: nil, prefixes: [prefix], localNetworks: configuration.localNetworks),
             allocation: before?.allocation == nil ? prefix : nil, recordExists: before != nil)
        counters.attached += 1
        return Attachment(mn: mn, prefix: prefix, dlifMAC: mac)
    }

    /// Shows `dlif` to its MN (replacing the DLIF of the same MN and anchor),
    /// with a fresh burst of advertisements from the next tick on.
    public func show(_ dlif: DLIF) { show(dlif, allocation: nil, recordExists: true) }

    /// `allocation`: the /64 the MN just got here, kept in its record.
    /// `recordExists` false: the MN has none, so it is not looked up but
    /// made with this DLIF's slot (an MN's first attach costs one hash
    /// look-up, not three).
    private func show(_ dlif: DLIF, allocation: IPv6Prefix?, recordExists: Bool) {
        let m = recordExists ? records.index(forKey: dlif.mn) : nil
        if let m, let allocation { records.values[m].allocation = allocation }
        if let m, let slot = field(at: m, { $0.slots }).first(where: { slots[$0]!.dlif.anchor == dlif.anchor }) {
            slots[slot]!.dlif = dlif
            slots[slot]!.next = nil
            slots[slot]!.sent = 0
            fresh.append(slot)
            return
        }
        let shown = Shown(dlif: dlif, order: shownCount)
        shownCount += 1
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = shown
        } else {
            slot = slots.count
            slots.append(shown)
        }
        if let m { records.values[m].slots.append(slot) } else { records.append(dlif.mn, MNRecord(slots: SlotList(slot), allocation: allocation)) }
        fresh.append(slot)
    }

    /// Advertises `prefix` on `mn`'s DLIF of this gateway as deprecated
    /// (`away`: another interface of the MN took its traffic) or preferred
    /// again, with a fresh burst of advertisements; nothing when that DLIF
    /// is not shown or already says so.
    public func setMovedAway(_ prefix: IPv6Prefix, of mn: MACAddress, _ away: Bool) {
        guard (movedAway[mn]?.contains(prefix) ?? false) != away else { return }
        if away { movedAway[mn, default: []].append(prefix) } else {
            movedAway[mn]!.removeAll { $0 == prefix }
            if movedAway[mn]!.isEmpty { movedAway[mn] = nil }
        }
        guard let m = records.index(forKey: mn),
              let slot = field(at: m, { $0.slots }).first(where: { slots[$0]!.dlif.anchor == nil && slots[$0]!.dlif.prefixes.contains(prefix) })
        else { return }
        slots[slot]!.next = nil
        slots[slot]!.sent = 0
        fresh.append(slot)
    }

    /// Stops showing every DLIF of `mn`.
    public func hide(_ mn: MACAddress) { hide(mn, only: nil) }

    /// Stops showing the DLIF of `mn` that stands for `anchor` (nil: this gateway).
    public func hide(_ mn: MACAddress, anchor: IPv6Address?) { hide(mn, only: .some(anchor)) }

    /// `only`: the anchor whose DLIF goes; nil: all of them. Compared in
    /// place (no DLIF copied out of its slot to be asked).
    private func hide(_ mn: MACAddress, only anchor: IPv6Address??) {
        guard let m = records.index(forKey: mn) else { return }
        var hidden = false
        records.values[m].slots.removeAll(where: { slots[$0] == nil || anchor == nil || slots[$0]!.dlif.anchor == anchor! }) { slot in
            slots[slot] = nil
            freeSlots.append(slot)
            hidden = true
        }
        guard hidden else { return }
        if field(at: m, { $0.isEmpty }) { records.remove(at: m) }
        advertisements.compact(live: dlifCount) { slot, due in slots[slot]?.next == due }
    }

    /// An RA from `dlif` to all nodes, in a frame to its MN alone; without
    /// the prefixes it deprecates unless `withDeprecated`.
    func advertisement(_ dlif: DLIF, withDeprecated: Bool = true) -> [UInt8]? {
        let c = configuration
        let here = dlif.anchor == nil
        let moves = movedAway.isEmpty ? nil : movedAway[dlif.mn]
        func information(_ p: IPv6Prefix) -> NDOption? {
            let preferred = here && moves?.contains(p) != true ? UInt32(c.preferredLifetime) : 0
            guard preferred > 0 || withDeprecated else { return nil }
            return .prefixInformation(PrefixInformation(prefix: p, validLifetime: UInt32(c.validLifetime), preferredLifetime: preferred))
        }
        func route(_ n: IPv6Prefix) -> NDOption { .routeInformation(RouteInformation(prefix: n, lifetime: UInt32(c.routerLifetime))) }
        // Written straight into the frame (an RA per DLIF and period: no option list).
        let source = NDOption.sourceLinkLayerAddress(LinkLayerAddress(dlif.mac)), mtu = NDOption.mtu(UInt32(c.mtu))
        var length = 16 + source.bufferLength + mtu.bufferLength
        for p in dlif.prefixes { length += information(p)?.bufferLength ?? 0 }
        for n in dlif.localNetworks { length += route(n).bufferLength }
        let ra = RouterAdvertisement(preference: here ? .medium : .low, routerLifetime: UInt16(min(c.routerLifetime, 9000)),
                                     options: .none)
        return frame(from: dlif, to: dlif.mn, destination: .allNodes, length: length) { (b) throws(WireError) -> Int in
            try ra.emit(into: b, length: length, source: dlif.linkLocal, destination: .allNodes) { (w) throws(WireError) in
                try w.append(source)
                try w.append(mtu)
                for p in dlif.prefixes { if let o = information(p) { try w.append(o) } }
                for n in dlif.localNetworks { try w.append(route(n)) }
            }
        }
    }

    func neighborAdvertisement(_ dlif: DLIF, to source: IPv6Address, mac: MACAddress) -> [UInt8]? {
        // A solicitation from :: (DAD) is answered to all nodes, not solicited (RFC 4861 7.2.4).
        let dad = source == .unspecified
        let destination = dad ? IPv6Address.allNodes : source
        let na = NeighborAdvertisement(router: true, solicited: !dad, override: true, target: dlif.linkLocal,
                                       options: .built([.targetLinkLayerAddress(LinkLayerAddress(dlif.mac))]))
        let message = ICMPv6Message.neighborAdvertisement(na)
        return frame(from: dlif, to: mac, destination: destination, length: message.bufferLength) { (b) throws(WireError) -> Int in
            try message.emit(into: b, source: dlif.linkLocal, destination: destination)
        }
    }

    /// An ICMPv6 message of `length` octets from `dlif`, in a frame of
    /// exactly its size; nil when it does not fit a 1,514-octet frame.
    private func frame(from dlif: DLIF, to mac: MACAddress, destination: IPv6Address, length: Int,
                       _ payload: (UnsafeMutableRawBufferPointer) throws(WireError) -> Int) -> [UInt8]? {
        guard 54 + length <= 1514 else {
            counters.tooLarge += 1  // more prefixes and routes than a frame holds (some 40)
            return nil
        }
        var bytes = [UInt8](zeroed: 54 + length)
        let written = bytes.withUnsafeMutableBytes { b -> Bool in
            do throws(WireError) {
                try EthernetHeader(destination: mac, source: dlif.mac, etherType: EtherType.ipv6).emit(into: b)
                let n = try payload(UnsafeMutableRawBufferPointer(rebasing: b[54...]))
                try IPv6Header(payloadLength: n, nextHeader: IPProtocol.icmpv6, hopLimit: 255, source: dlif.linkLocal,
                               destination: destination).emit(into: UnsafeMutableRawBufferPointer(rebasing: b[14..<54]))
                return n == length
            } catch {
                return false  // sized above: cannot happen
            }
        }
        guard written else { return nil }
        return bytes
    }
}

/// What a gateway keeps of one MN, in one dictionary entry, so that each
/// step of a handover costs the gateway one cold hash look-up, not one
/// per book: the router's part (the slots of the DLIFs shown to the MN,
/// one per anchor of its prefixes, and the /64 it got here, kept when it
/// leaves) and the control plane's (its binding cache entry if anchored
/// here, its sessions with former anchors if served here). Gone when all
/// are.
struct MNRecord {
    var slots = SlotList()
    var allocation: IPv6Prefix?
    var anchored: AnchoredMN?
    var sessions: [AnchorSession] = []

    init(slots: SlotList = SlotList(), allocation: IPv6Prefix? = nil) {
        self.slots = slots
        self.allocation = allocation
    }

    var isEmpty: Bool { slots.isEmpty && allocation == nil && anchored == nil && sessions.isEmpty }
}

/// The records by MN: the records dense in an array, in the order made
/// (the last one moved into the place of one removed), found through a
/// table of positions (`PositionIndex`). A dictionary of the records
/// themselves keeps twice as many buckets as records at a million MNs (its
/// load stays under 3/4), each the size of a record: 336 octets an MN
/// instead of the 160 of the record, 8 of its MAC and 32 of its position,
/// and the pages of every bucket touched as MNs come.
struct RecordBook {
    typealias Index = Int
    private var positions = PositionIndex()
    private var keys: [MACAddress] = []
    /// The records, read and changed in place at an index (`index(forKey:)`);
    /// made and removed only through the book.
    var values: [MNRecord] = []

    var count: Int { values.count }

    mutating func reserveCapacity(_ n: Int) {
        positions.reserveCapacity(n)
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
    }

    func index(forKey mn: MACAddress) -> Index? { positions[mn].map { Int($0) } }

    /// Adds `r` as the record of `mn`, which has none; returns its index.
    @discardableResult
    mutating func append(_ mn: MACAddress, _ r: MNRecord) -> Index {
        assert(index(forKey: mn) == nil, "\(mn) has a record already")
        precondition(values.count < Int32.max)
        positions.set(mn, Int32(values.count))
        keys.append(mn)
        values.append(r)
        return values.count - 1
    }

    /// Removes the record at `i`; the last record takes its place (its
    /// index changes: indices held across a removal are stale, as a
    /// dictionary's are).
    mutating func remove(at i: Index) {
        positions.remove(keys[i])
        let last = values.count - 1
        if i != last {
            keys.swapAt(i, last)
            values.swapAt(i, last)
            positions.set(keys[i], Int32(i))
        }
        keys.removeLast()
        values.removeLast()
    }
}

/// The slots of one MN's DLIFs: one or two nearly always (this gateway's,
/// and its former anchor's), kept inline; more in an array.
struct SlotList: Sequence {
    private var first = -1, second = -1
    private var more: [Int] = []

    init() {}
    init(_ slot: Int) { first = slot }

    var isEmpty: Bool { first < 0 && second < 0 && more.isEmpty }

    mutating func append(_ slot: Int) {
        if first < 0 { first = slot } else if second < 0 { second = slot } else { more.append(slot) }
    }

    /// Removes the slots that `matches` selects, handing each to `removed`.
    mutating func removeAll(where matches: (Int) -> Bool, _ removed: (Int) -> Void) {
        let old = self
        self = SlotList()
        for slot in old {
            if matches(slot) { removed(slot) } else { append(slot) }
        }
    }

    struct Iterator: IteratorProtocol {
        let list: SlotList
        var i = 0

        mutating func next() -> Int? {
            while true {
                defer { i += 1 }
                switch i {
                case 0: if list.first >= 0 { return list.first }
                case 1: if list.second >= 0 { return list.second }
                default: return i - 2 < list.more.count ? list.more[i - 2] : nil
                }
            }
        }
    }

    func makeIterator() -> Iterator { Iterator(list: self) }
}
