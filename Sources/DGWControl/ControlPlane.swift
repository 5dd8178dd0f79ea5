// The gateway's control plane (DESIGN.md "Control plane"): the access
// router, the binding cache of the MNs anchored here, and the sessions this
// gateway keeps, as the serving gateway, with the former anchors of the
// MNs attached here (draft-bernardos section 4, RFC 8885): Proxy Binding
// Update with the D flag to each anchor, Proxy Binding Acknowledgement with
// the Anchored Prefix, Local Prefix and DLIF options back; retransmission
// with back-off, refresh before the lifetime ends, de-registration, and
// teardown when the MN moves on or returns.
//
// Sans-I/O: events and time in (frames from either port, triggers, ticks),
// effects out (binding changes for the data plane, to apply first, then
// frames for the access link and signalling packets for the core). The
// same code runs in `dgw run`, in `dgw replay` and in the simulations.

import DGWWire

public struct ControlPlaneConfiguration: Sendable {
    /// This gateway's core address: signalling source, tunnel endpoint.
    public var address: IPv6Address
    /// Who may signal to us (the configured peers, CMD, LMA): anything else is dropped.
    public var peers: [IPv6Address] = []
    /// Longest binding lifetime granted and asked for, in seconds.
    public var bindingLifetime: Int = 3600
    /// Retransmission of an unanswered PBU: first timeout, doubling up to
    /// the maximum (RFC 6275 INITIAL_BINDACK_TIMEOUT and MAX_BINDACK_TIMEOUT),
    /// at most `maxAttempts` sends.
    public var initialRetransmit: Int64 = 1_000_000_000
    public var maxRetransmit: Int64 = 32_000_000_000
    public var maxAttempts = 5
    /// This gateway's local networks (LIPA), given in PBAs as Local Prefix options.
    public var localNetworks: [IPv6Prefix] = []
    /// The access side; its `logicalMAC` names this gateway's DLIFs.
    public var access = AccessRouterConfiguration()
    /// MNs anchored here from the start (static bindings), with where they are served.
    public var anchored: [AnchoredMN] = []
    /// A CMD's (an LMA's) records from before a restart (`state_file`),
    /// with their expiries on this run's clock.
    public var records: [MobilityRecord] = []
    /// An LMA's bindings from the start (static bindings, and those it had
    /// relayed before a restart), each joining a prefix between its
    /// anchor's tunnel and its serving gateway's: its records hold them as
    /// if it had relayed them, so that when the MN registers elsewhere the
    /// prefix follows it.
    public var relayed: [RelayedBinding] = []
    /// A CMD (an LMA) notes each MN whose record changes, for
    /// `drainJournal` (`dgw run` appends them to its `state_file`'s journal).
    public var journal = false
    /// The logical MAC another anchor's DLIF gets when its PBA names none.
    public var logicalMAC: @Sendable (_ anchor: IPv6Address, _ mn: MACAddress) -> MACAddress = { _, mn in mn }
    /// A gateway, or the domain's Central Mobility Database (RFC 8885 CMD:
    /// it serves no MN, it knows where each MN's prefixes are anchored).
    public var role = ControlRole.gateway
    /// The CMD a gateway registers every MN that attaches with: it names the
    /// MN's former anchors (an attach trigger's `previous` is then not used).
    public var cmd: IPv6Address?
    /// The inter-operator LMA (draft-bernardos section 5): every MN that
    /// attaches is registered there too, and the former prefixes it grants
    /// (those anchored at another operator's gateways) are tunnelled to it.
    public var lma: IPv6Address?
    /// An LMA's view of who operates which gateway: it relays only between
    /// gateways of different operators (a gateway not listed is an operator
    /// of its own); gateways of one operator tunnel to each other directly.
    public var operators: [IPv6Address: String] = [:]
    /// Whether the CMD relays the PBUs to the former anchors or names them
    /// to the serving gateway, which then signals them itself; a gateway
    /// and its CMD must agree.
    public var cmdMode = CMDMode.relay
    /// Peers whose signalling is authenticated both ways (`auth:`): what
    /// goes to them is signed, what comes from them must be.
    public var keys: [IPv6Address: SignallingKey] = [:]
    /// The MN-IDs of subscribers, by MAC: the NAI their PBUs carry (an MN
    /// not listed is named by its MAC's text).
    public var identities: [MACAddress: [UInt8]] = [:]
    /// Required when `keys` is not empty.
    public var hmacSHA256: HMACSHA256?
    /// The Mobility Message Identifier of the first signed message; `dgw
    /// run` starts from the wall clock, so that a restarted gateway's
    /// identifiers still grow.
    public var firstMessageIdentifier: UInt64 = 1
    /// Added to event times to make Unix time in nanoseconds, for signed
    /// messages' identifiers (`dgw run`: the wall clock less the monotonic
    /// one its events carry; `dgw replay`: 0, a capture's times are Unix).
    public var clockOffset: Int64 = 0
    /// How far a signed message's time (its identifier) may be from this
    /// node's clock: the clocks' skew plus the delay (`auth_window_s`).
    public var replayWindow: Int64 = 7_000_000_000
    /// The MNs this gateway is sized for (its tables' dynamic bindings):
    /// the books keyed by MN are made that large at start, so that none is
    /// rehashed, stalling the signalling, while MNs attach. 0: grown as needed.
    public var capacity = 0

    public init(address: IPv6Address) {
        self.address = address
    }

    /// Where every MN that attaches is registered: the CMD, the LMA, both or neither.
    var registries: [IPv6Address] { [cmd, lma].compactMap { $0 } }
    /// Whether there is one (asked on every event: no list made).
    var hasRegistries: Bool { cmd != nil || lma != nil }
    func isRegistry(_ a: IPv6Address) -> Bool { a == cmd || a == lma }

    /// Whether one operator runs both gateways.
    func sameOperator(_ a: IPv6Address, _ b: IPv6Address) -> Bool {
        a == b || operators[a].map { $0 == operators[b] } ?? false
    }

    /// The peer whose DLIF for `mn` has the logical MAC `mac` (by either
    /// way of making them: from the anchor's pool, or the fallback of
    /// `logicalMAC`): an MN that moves in unannounced still sends to the
    /// router it had, and that names its latest anchor.
    public func anchor(ofDLIF mac: MACAddress, mn: MACAddress) -> IPv6Address? {
        peers.first { p in
            p != address && p != cmd && p != lma && (DLIF.isPoolLogicalMAC(mac, of: p) || logicalMAC(p, mn) == mac)
        }
    }

    /// How long to wait for the answer to a PBU sent after `attempts`
    /// unanswered ones: doubling from the first timeout up to the maximum.
    func retransmitDelay(afterAttempts attempts: Int) -> Int64 {
        min(initialRetransmit << Int64(min(attempts, 40)), maxRetransmit)
    }
}

/// Whether `sequence` comes after `last`, modulo 2^16 (RFC 6275 9.5.1): a
/// PBU that does not is stale (a replay, or from before a restart).
func isFresh(_ sequence: UInt16, after last: UInt16) -> Bool { Int16(bitPattern: sequence &- last) > 0 }

/// The last sequence number accepted from each serving gateway. Nearly
/// always one gateway (the MN's latest), kept inline: no dictionary to
/// allocate, and none to copy when a record is changed.
public struct LastSequences: Sendable, Equatable {
    private var first: (gateway: IPv6Address, sequence: UInt16)?
    private var more: [(gateway: IPv6Address, sequence: UInt16)] = []

    public init() {}

    public subscript(gateway: IPv6Address) -> UInt16? {
        get {
            if let f = first, f.gateway == gateway { return f.sequence }
            return more.first { $0.gateway == gateway }?.sequence
        }
        set {
            if let f = first, f.gateway == gateway {
                first = newValue.map { (gateway, $0) }
            } else if let i = more.firstIndex(where: { $0.gateway == gateway }) {
                if let newValue { more[i].sequence = newValue } else { more.remove(at: i) }
            } else if let newValue {
                if first == nil { first = (gateway, newValue) } else { more.append((gateway, newValue)) }
            }
        }
    }

    public static func == (a: Self, b: Self) -> Bool {
        func all(_ x: Self) -> [IPv6Address: UInt16] {
            Dictionary(([x.first].compactMap { $0 } + x.more).map { ($0.gateway, $0.sequence) }) { a, _ in a }
        }
        return all(a) == all(b)
    }
}

public enum ControlRole: Sendable, Equatable {
    case gateway
    /// RFC 8885's Central Mobility Database.
    case database
    /// draft-bernardos section 5's inter-operator LMA: a database in relay
    /// mode that also anchors the traffic between the operators' gateways.
    case lma
}

/// The two ways of RFC 8885's CMD.
public enum CMDMode: Sendable, Equatable {
    /// PBU and PBA go through the CMD: it forwards the serving gateway's PBU
    /// to each former anchor (with a Serving MAAR option), collects their
    /// PBAs and answers with one Previous MAAR option per anchor, each
    /// followed by that anchor's Local Prefix and DLIF options.
    case relay
    /// The CMD answers at once with a Previous MAAR option per former
    /// anchor; the serving gateway then signals each of them itself.
    case locator
}

/// A change the data plane must make to its bindings (GatewayTables).
public enum BindingChange: Sendable, Equatable {
    /// Bind `prefix` to `mn` (replacing what it was bound to); nil anchor
    /// or serving gateway: this one.
    case install(mn: MACAddress, prefix: IPv6Prefix, anchor: IPv6Address?, serving: IPv6Address?, dlifMAC: MACAddress)
    case remove(IPv6Prefix)
    /// Route another anchor's local network (LIPA) into the tunnel to it,
    /// for the MNs served here (one per session that names it; counted).
    case routeLocalNetwork(IPv6Prefix, anchor: IPv6Address)
    /// Undo one `routeLocalNetwork`.
    case unrouteLocalNetwork(IPv6Prefix, anchor: IPv6Address)
}

/// A signalling packet for the core: a whole IPv6 packet (header and
/// Mobility Header) for `destination`; the caller finds the next hop. It
/// is made with room in front for the Ethernet header, so that framing it
/// for that hop writes 14 octets in place instead of copying the packet.
public struct CorePacket: Sendable, Equatable {
    public static let headroom = 14
    public var destination: IPv6Address
    /// `headroom` octets of room, then the packet.
    public var frame: [UInt8]

    public init(destination: IPv6Address, frame: [UInt8]) {
        self.destination = destination
        self.frame = frame
    }

    /// The IPv6 packet (a copy).
    public var bytes: [UInt8] { Array(frame[Self.headroom...]) }
}

public struct ControlEffects: Sendable {
    /// Apply first: the frames below may depend on them.
    public var bindings: [BindingChange] = []
    /// Frames for the access link, each with the time it is due.
    public var access: [(time: Int64, frame: [UInt8])] = []
    public var core: [CorePacket] = []

    public init() {}
    public var isEmpty: Bool { bindings.isEmpty && access.isEmpty && core.isEmpty }

    /// Empties the lists, keeping their room. Element by element from the
    /// end: `removeAll(keepingCapacity:)` takes the generic path of
    /// `replaceSubrange`, some 400 instructions an event for three lists
    /// of a few entries each.
    public mutating func removeAll() {
        while bindings.popLast() != nil {}
        while access.popLast() != nil {}
        while core.popLast() != nil {}
    }

    mutating func append(_ other: ControlEffects) {
        bindings += other.bindings
        access += other.access
        core += other.core
    }
}

public struct SignallingCounters: Sendable, Equatable {
    public var pbuSent = 0
    public var pbuRetransmitted = 0
    public var pbuReceived = 0
    public var pbaSent = 0
    public var pbaReceived = 0
    /// PBUs this gateway accepted as an anchor (de-registrations included).
    public var accepted = 0
    /// PBUs this gateway refused as an anchor, by status.
    public var rejected = 0
    /// PBAs with a refusal received by this gateway as the serving one.
    public var refused = 0
    /// Sessions given up after `maxAttempts` unanswered PBUs.
    public var timeouts = 0
    /// Bindings of MNs anchored here that ran out of lifetime.
    public var expired = 0
    public var deregistrations = 0
    /// Sequence numbers re-synchronised on a "sequence number out of window" PBA.
    public var resynchronised = 0
    /// Signalling from an address that is not a peer.
    public var unknownPeer = 0
    /// From a peer with a key: no valid authentication option for it.
    public var unauthenticated = 0
    /// Authenticated, but with a message identifier already passed (a replay).
    public var replayed = 0
    /// Authenticated, but sent further from this node's time than the
    /// replay window (a replay after a restart, or clocks apart).
    public var stale = 0
    /// Mobility Headers that do not parse, have a bad checksum or lack what they need.
    public var malformed = 0
    /// PBAs that answer nothing pending (late, duplicate or stale).
    public var unexpected = 0
    /// Core frames handed over that were no Mobility Header for this gateway.
    public var notSignalling = 0
    /// PBUs not sent to an anchor that an MN's traffic named (the DLIF it
    /// still talks to) because that anchor refused it lately.
    public var heldBackAfterRefusal = 0
    /// A CMD's: former anchors of MNs it did not know of (it restarted),
    /// learnt again from refreshes' Previous MAAR options, one per anchor.
    public var anchorsRelearnt = 0
    /// Binding Revocation Indications (RFC 5846) sent as an anchor: a moved
    /// prefix taken back from the gateway it was granted to.
    public var revocationsSent = 0
    /// Indications received whose binding this gateway removed.
    public var revoked = 0
    public init() {}
}

/// Why `move-prefix` was not done.
public struct MoveRefusal: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The state a serving gateway keeps per (MN, former anchor).
public struct AnchorSession: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Registration sent, no PBA yet.
        case registering
        /// Bound: tunnel and DLIF in place until `expires`.
        case bound
        /// Refresh sent while bound.
        case refreshing
        /// De-registration (lifetime 0) sent; bindings gone here.
        case deregistering
    }
    public var mn: MACAddress
    public var anchor: IPv6Address
    public var state: State
    public var sequence: UInt16
    public var attempts: Int
    /// When to retransmit (pending states) or refresh (bound).
    public var due: Int64
    public var expires: Int64 = .max
    /// What the PBA gave: the anchor's prefixes and DLIF (one grant), or,
    /// from a relaying CMD, one grant per former anchor.
    public var grants: [AnchorGrant] = []
    /// A prefix of another interface of the same MN-ID that this session
    /// asks the anchor to deliver to this one (`move-prefix`, draft-seite
    /// 4.4): its PBUs carry it as Home Network Prefix, with Handoff
    /// Indicator 2 (between interfaces).
    public var moved: IPv6Prefix?
}

/// One anchor's prefixes of an MN, tunnelled to that anchor, and the DLIF
/// it fixed for the MN.
public struct AnchorGrant: Sendable, Equatable {
    public var anchor: IPv6Address
    public var prefixes: [IPv6Prefix]
    public var dlif: DLIF
}

/// An MN whose prefix is anchored here, and where it is served.
public struct AnchoredMN: Sendable, Equatable {
    public enum Serving: Sendable, Equatable {
        case here
        case peer(IPv6Address)
        /// Left, served nowhere we know: the prefix is kept for it, unrouted.
        case nowhere
    }
    public var mn: MACAddress
    public var prefix: IPv6Prefix
    public var dlifMAC: MACAddress
    /// End of the serving peer's binding lifetime.
    public var expires: Int64 = .max
    /// The last sequence number accepted, per serving gateway.
    public var lastSequence = LastSequences()
    // A gateway keeps one of these per MN anchored there, in the MN's
    // record (`MNRecord`) in a dictionary of twice as many buckets: the
    // two below are kept small (104 octets a record, not 144), the rare
    // move out of line.
    /// `serving` as one address: `::` here, `::1` nowhere (neither is a peer's).
    private var servedBy: IPv6Address
    private var movedBox: MovedBox?

    public var serving: Serving {
        get {
            switch servedBy {
            case Self.servedHere: .here
            case Self.servedNowhere: .nowhere
            default: .peer(servedBy)
            }
        }
        set {
            switch newValue {
            case .here: servedBy = Self.servedHere
            case .nowhere: servedBy = Self.servedNowhere
            case .peer(let p): servedBy = p
            }
        }
    }

    /// The prefix's traffic delivered to another interface of the MN's
    /// MN-ID, at a peer, until `expires` (`move-prefix`); the MN's own
    /// interface keeps its attachment, not the prefix's traffic.
    public var moved: MovedPrefix? {
        get { movedBox?.value }
        set { movedBox = newValue.map(MovedBox.init) }
    }

    public struct MovedPrefix: Sendable, Equatable {
        /// The interface (its MAC) and the gateway serving it.
        public var mn: MACAddress
        public var serving: IPv6Address
        public var expires: Int64
    }

    private static let servedHere = IPv6Address(high: 0, low: 0), servedNowhere = IPv6Address(high: 0, low: 1)

    private final class MovedBox: Sendable, Equatable {
        let value: MovedPrefix
        init(_ value: MovedPrefix) { self.value = value }
        static func == (a: MovedBox, b: MovedBox) -> Bool { a.value == b.value }
    }

    public init(mn: MACAddress, prefix: IPv6Prefix, dlifMAC: MACAddress, serving: Serving) {
        self.mn = mn
        self.prefix = prefix
        self.dlifMAC = dlifMAC
        servedBy = Self.servedHere
        self.serving = serving
    }
}

public final class ControlPlane {
    public let configuration: ControlPlaneConfiguration
    public let router: AccessRouter
    public private(set) var counters = SignallingCounters()
    /// What this gateway keeps of each MN (its binding cache entry, its
    /// sessions, its DLIFs), held by the access router: one entry per MN.
    private var records: RecordBook {
        _read { yield router.records }
        _modify { yield &router.records }
    }
    /// Their prefixes (for `move-prefix`, which names a prefix) when not
    /// the access router's allocation to them (configured ones): nearly
    /// always empty.
    private var owners: [IPv6Prefix: MACAddress] = [:]
    private var sessionCount = 0
    private var nextSequence: UInt16
    /// Retransmissions and refreshes; binding expiries of the MNs anchored here.
    private var sessionTimers = Deadlines<SessionKey>()
    private var expiries = Deadlines<MACAddress>()
    private var moveExpiries = Deadlines<MACAddress>()

    private struct SessionKey: Hashable { var mn: MACAddress; var anchor: IPv6Address }
    /// Anchors that refused an MN lately, until when: an MN that keeps
    /// talking to such an anchor's DLIF would otherwise cost a PBU and a
    /// refusal per punted frame.
    private var refusals: [SessionKey: Int64] = [:]
    /// Prefixes moved from one interface of a subscriber to another, both
    /// attached here (`move-prefix`): the interface holding one, and the
    /// prefix's own interface.
    private var localMoves: [MACAddress: MACAddress] = [:]
    /// How long a refusal holds back the PBUs its MN's traffic would bring.
    public static let refusalMemory: Int64 = 30_000_000_000
    /// The CMD's records, when this is one.
    private let database: MobilityDatabase?
    private let authenticator: SignallingAuthenticator
    /// An MN's MAC as text, then as octets, for the identity options of the
    /// message being built (`identifyBorrowing`).
    private let identityScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: MACAddress.textLength + 6, alignment: 8)
    /// The list the options of the message being built go in: given back
    /// empty, its room kept, once the message is emitted (`packet(_:to:)`),
    /// so that a PBU or PBA makes no list of its own.
    private var optionRoom: [MobilityOption] = []

    public init(_ configuration: ControlPlaneConfiguration, initialSequence: UInt16 = 0) {
        self.configuration = configuration
        router = AccessRouter(configuration.access)
        nextSequence = initialSequence
        authenticator = SignallingAuthenticator(configuration)
        database = configuration.role != .gateway
            ? MobilityDatabase(configuration, initialSequence: initialSequence, authenticator: authenticator) : nil
        if configuration.capacity > 0 && configuration.role == .gateway {
            sessionTimers.reserveCapacity(configuration.capacity)
            expiries.reserveCapacity(configuration.capacity)
            router.reserveCapacity(configuration.capacity)
        }
        for a in configuration.anchored where anchoredRecord(of: a.mn) == nil { record(a) }
    }

    deinit { identityScratch.deallocate() }

    /// An event's effects start in the lists of an earlier event's, handed
    /// back applied (`recycle`): appending its bindings and frames then
    /// costs no allocation, as SwiftNIO's and VPP's vectors are reused.
    private var spare = ControlEffects()

    /// The effects of an event at `time` (every event starts here): an
    /// empty list, recycled, and the clock that signed messages' identifiers
    /// and their check read.
    private func newEffects(at time: Int64) -> ControlEffects {
        authenticator.now = time
        var e = ControlEffects()
        swap(&e, &spare)
        return e
    }

    /// Hands back effects once applied and their frames sent: their lists,
    /// emptied, serve the next event.
    public func recycle(_ e: inout ControlEffects) {
        e.removeAll()
        swap(&e, &spare)
    }

    /// This gateway's sessions with the MNs' former anchors, by MN and anchor.
    public var sessions: [AnchorSession] {
        records.values.flatMap(\.sessions).sorted { ($0.mn, $0.anchor) < ($1.mn, $1.anchor) }
    }

    /// The sessions of `mn`, one per former anchor.
    public func sessions(of mn: MACAddress) -> [AnchorSession] { router.field(of: mn) { $0.sessions } ?? [] }

    /// The binding cache entry of `mn`, if its prefix is anchored here.
    public func anchoredRecord(of mn: MACAddress) -> AnchoredMN? { router.field(of: mn) { $0.anchored } ?? nil }

    private func session(_ mn: MACAddress, _ anchor: IPv6Address) -> AnchorSession? {
        router.field(of: mn) { $0.sessions.first { $0.anchor == anchor } } ?? nil
    }

    /// Stores `s` (new or changed) and arms its timer. In place: one hash
    /// look-up, and the MN's array is not copied.
    private func store(_ s: AnchorSession) {
        // In the MN's record, made if none (one look-up either way).
        func put(_ r: inout MNRecord) -> (new: Bool, rearm: Bool) {
            guard let i = r.sessions.firstIndex(where: { $0.anchor == s.anchor }) else {
                r.sessions.append(s)
                return (true, false)
            }
            let rearm = r.sessions[i].due != s.due
            r.sessions[i] = s
            return (false, rearm)
        }
        let change = put(&records.values[records.index(forKey: s.mn) ?? records.append(s.mn, MNRecord())])
        if change.new {
            added(s)
        } else if change.rearm {
            sessionTimers.schedule(SessionKey(mn: s.mn, anchor: s.anchor), at: s.due)
        }
    }

    private func added(_ s: AnchorSession) {
        sessionCount += 1
        sessionTimers.schedule(SessionKey(mn: s.mn, anchor: s.anchor), at: s.due)
    }

    private func end(_ s: AnchorSession) {
        guard let m = records.index(forKey: s.mn),
              let i = router.field(at: m, { $0.sessions.firstIndex { $0.anchor == s.anchor } }) else { return }
        records.values[m].sessions.remove(at: i)
        if router.field(at: m, { $0.isEmpty }) { records.remove(at: m) }
        sessionCount -= 1
        sessionTimers.compact(live: sessionCount) { k, due in session(k.mn, k.anchor)?.due == due }
    }

    /// Stores the binding cache entry of an MN anchored here, arming its
    /// expiry (one hash look-up for an MN known already).
    private func record(_ a: consuming AnchoredMN) {
        let i = records.index(forKey: a.mn)
        // What is compared of the old entry, read in place (not the entry copied out).
        let old = i.flatMap { router.field(at: $0) { r in
            r.anchored.map { (expires: $0.expires, movedExpires: $0.moved?.expires, prefix: $0.prefix) }
        } }
        let mn = a.mn, prefix = a.prefix, moved = a.moved
        if a.expires != .max && old?.expires != a.expires { expiries.schedule(mn, at: a.expires) }
        if let m = moved, old?.movedExpires != m.expires { moveExpiries.schedule(mn, at: m.expires) }
        if old?.prefix != prefix, router.mn(allocated: prefix) != mn { owners[prefix] = mn }
        let movedHere = moved != nil && a.serving == .here
        records.values[i ?? records.append(mn, MNRecord())].anchored = consume a
        // Moved to another interface of the MN: deprecated on this one's DLIF while so.
        if moved != nil || old?.movedExpires != nil { router.setMovedAway(prefix, of: mn, movedHere) }
    }

    /// The MN anchored here whose prefix `prefix` is.
    private func owner(of prefix: IPv6Prefix) -> MACAddress? {
        let owner = owners[prefix] ?? router.mn(allocated: prefix)
        return owner.flatMap { anchoredRecord(of: $0)?.prefix == prefix ? $0 : nil }
    }

    /// What the data plane binds an anchored MN's prefix to: the interface
    /// it was moved to, else the MN where it is served.
    private func binding(of a: AnchoredMN) -> BindingChange {
        if let m = a.moved, m.serving == configuration.address {
            // Moved to another interface attached here: on its own DLIF.
            return .install(mn: m.mn, prefix: a.prefix, anchor: nil, serving: nil, dlifMAC: anchoredRecord(of: m.mn)?.dlifMAC ?? a.dlifMAC)
        }
        if let m = a.moved { return .install(mn: m.mn, prefix: a.prefix, anchor: nil, serving: m.serving, dlifMAC: a.dlifMAC) }
        switch a.serving {
        case .here: return .install(mn: a.mn, prefix: a.prefix, anchor: nil, serving: nil, dlifMAC: a.dlifMAC)
        case .peer(let p): return .install(mn: a.mn, prefix: a.prefix, anchor: nil, serving: p, dlifMAC: a.dlifMAC)
        case .nowhere: return .remove(a.prefix)
        }
    }

    /// The earliest time `tick` has something to do (.min: at once; the
    /// first tick starts the advertisements).
    public var nextDeadline: Int64? {
        var next = router.nextDeadline ?? .max
        if let due = sessionTimers.earliest(isCurrent: { k, due in session(k.mn, k.anchor)?.due == due }) { next = min(next, due) }
        if let due = expiries.earliest(isCurrent: { mn, due in anchoredRecord(of: mn)?.expires == due }) { next = min(next, due) }
        if let due = moveExpiries.earliest(isCurrent: { mn, due in anchoredRecord(of: mn)?.moved?.expires == due }) { next = min(next, due) }
        if let due = database?.nextDeadline { next = min(next, due) }
        return next == .max ? nil : next
    }

    // MARK: Events

    /// The MN attached to this gateway (an access point's association, `dgw
    /// ctl attach`, or an RS): its prefix here and this gateway's DLIF, and
    /// a PBU to each former anchor in `previous`.
    public func attach(_ mn: MACAddress, previous: [IPv6Address] = [], time: Int64) -> ControlEffects {
        var out = newEffects(at: time)
        guard !mn.isMulticast, let a = router.attach(mn) else { return out }
        attached(a, &out)
        // With a CMD (or an LMA), it is the one that knows the former anchors.
        let signalled = configuration.hasRegistries ? configuration.registries : previous
        register(mn, with: signalled, time: time, &out)
        return out
    }

    /// Starts a session with each of `anchors` (former anchors, or the CMD)
    /// that has none going.
    private func register(_ mn: MACAddress, with anchors: [IPv6Address], time: Int64, _ out: inout ControlEffects) {
        for (i, anchor) in anchors.enumerated() where anchor != configuration.address && !anchors[..<i].contains(anchor) {
            if let old = session(mn, anchor) {
                guard old.state == .deregistering else { continue }  // registered or registering already
                end(old)
            }
            var s = AnchorSession(mn: mn, anchor: anchor, state: .registering, sequence: 0, attempts: 0, due: time)
            send(&s, lifetime: configuration.bindingLifetime, time: time, &out)
            store(s)
        }
    }

    /// The MN left this gateway's link: its bindings here go, and each
    /// former anchor gets a de-registration.
    public func detach(_ mn: MACAddress, time: Int64) -> ControlEffects {
        var out = newEffects(at: time)
        leave(mn, deregister: true, time: time, &out)
        if var a = anchoredRecord(of: mn), a.serving == .here {
            a.serving = .nowhere
            record(a)
            if a.moved == nil { out.bindings.append(.remove(a.prefix)) }  // a moved prefix stays with the other interface
        }
        // It held another interface's prefix here: the prefix goes back to that one.
        if let owner = localMoves.removeValue(forKey: mn), var a = anchoredRecord(of: owner), a.moved?.mn == mn {
            a.moved = nil
            record(a)
            out.bindings.append(binding(of: a))
        }
        return out
    }

    /// `dgw ctl move-prefix` (draft-seite 4.4, a multi-interface MN): the
    /// traffic of `prefix`, a prefix of MN-ID `id`, goes to its interface
    /// `mac` from now on. Run where `mac` is attached: a PBU (Handoff
    /// Indicator 2, the prefix as Home Network Prefix) asks the prefix's
    /// anchor (`anchor`, else the one this gateway has a session about the
    /// prefix with) to tunnel it here. Run at the prefix's own anchor with
    /// its own interface, it takes the prefix back (the other gateway is
    /// sent a Binding Revocation); run where the prefix was moved to, with
    /// an interface not attached there, it de-registers the move (the anchor
    /// gives the prefix back to its own interface). Both interfaces at the
    /// prefix's anchor: a local move, on `mac`'s own DLIF.
    public func movePrefix(_ prefix: IPv6Prefix, of id: [UInt8], to mac: MACAddress, anchor: IPv6Address? = nil,
                           time: Int64) throws(MoveRefusal) -> ControlEffects {
        var out = newEffects(at: time)
        let name = String(decoding: id, as: UTF8.self)
        guard configuration.role == .gateway else { throw MoveRefusal("a \(configuration.role == .lma ? "LMA" : "CMD") serves no MN") }
        guard configuration.identities[mac] == id else { throw MoveRefusal("\(mac) is not an interface of subscriber \(name)") }
        // The prefix is anchored here.
        if let owner = owner(of: prefix), var a = anchoredRecord(of: owner) {
            guard configuration.identities[owner] == id else { throw MoveRefusal("\(prefix) is not a prefix of \(name)") }
            guard owner == mac else {
                guard anchoredRecord(of: mac)?.serving == .here else {
                    throw MoveRefusal("\(prefix) is anchored here: run move-prefix where \(mac) is attached")
                }
                // Both interfaces here: the prefix goes on `mac`'s own DLIF
                // (preferred there, deprecated on its own interface's) and
                // its traffic to `mac`, with no tunnel and no signalling.
                guard a.moved?.mn != mac else { throw MoveRefusal("\(prefix) is with \(mac) already") }
                if let before = a.moved { revoke(before, of: a.prefix, &out) }
                a.moved = AnchoredMN.MovedPrefix(mn: mac, serving: configuration.address, expires: .max)
                record(a)
                localMoves[mac] = owner
                if let own = router.firstDLIF(of: mac, where: { $0.anchor == nil }), !own.prefixes.contains(prefix) {
                    var shown = own
                    shown.prefixes.append(prefix)
                    router.show(shown)
                }
                router.setMovedAway(prefix, of: mac, false)
                out.bindings.append(binding(of: a))
                return out
            }
            guard let moved = a.moved else { throw MoveRefusal("\(prefix) is with \(mac) already") }
            guard a.serving == .here else { throw MoveRefusal("\(mac) is not attached here") }
            a.moved = nil
            record(a)
            out.bindings.append(binding(of: a))
            revoke(moved, of: a.prefix, &out)
            return out
        }
        let holding = records.values.lazy.flatMap(\.sessions).first { $0.moved == prefix && configuration.identities[$0.mn] == id }
        guard anchoredRecord(of: mac)?.serving == .here else {
            // Where the prefix was moved to: the move ends, the anchor gives it back.
            guard let s = holding else { throw MoveRefusal("\(mac) is not attached here, and \(prefix) was not moved here") }
            close(s, deregister: true, time: time, &out)
            return out
        }
        if let holding { throw MoveRefusal("\(prefix) is with \(holding.mn) here already: move it to \(mac) from its anchor") }
        let known = sessions(of: mac).first { $0.grants.contains { $0.prefixes.contains(prefix) } }?.anchor
        guard let anchor = anchor ?? known else { throw MoveRefusal("which gateway anchors \(prefix)? (give the anchor)") }
        // Another operator's gateway is no peer: the move goes through the LMA (draft-bernardos section 5).
        guard anchor != configuration.address, !configuration.isRegistry(anchor),
              configuration.peers.contains(anchor) || configuration.lma != nil else {
            throw MoveRefusal("\(anchor) is not a peer gateway")
        }
        if let other = session(mac, anchor) {
            guard other.state == .deregistering else {
                throw MoveRefusal("\(mac) has a session with \(anchor) already (for \(other.moved.map { "\($0)" } ?? "its own former prefix"))")
            }
            end(other)
        }
        var s = AnchorSession(mn: mac, anchor: anchor, state: .registering, sequence: 0, attempts: 0, due: time, moved: prefix)
        send(&s, lifetime: configuration.bindingLifetime, time: time, &out)
        store(s)
        return out
    }

    /// Whether `anchor` refused `mn` less than `refusalMemory` ago.
    private func refusedLately(_ mn: MACAddress, by anchor: IPv6Address, time: Int64) -> Bool {
        guard !refusals.isEmpty, let until = refusals[SessionKey(mn: mn, anchor: anchor)] else { return false }
        if until > time { return true }
        refusals[SessionKey(mn: mn, anchor: anchor)] = nil
        return false
    }

    private func remember(refusalOf mn: MACAddress, by anchor: IPv6Address, time: Int64) {
        // Kept small: past a few thousand, the ones that ended go.
        if refusals.count >= 4096 { refusals = refusals.filter { $0.value > time } }
        refusals[SessionKey(mn: mn, anchor: anchor)] = time + Self.refusalMemory
    }

    /// A frame the data plane punted from the access port (RS, NS).
    public func access(_ frame: UnsafeRawBufferPointer, time: Int64) -> ControlEffects {
        var out = newEffects(at: time)
        let reply = router.handle(frame)
        // The anchor whose DLIF the MN was talking to, if a peer's (set only for a whole Ethernet header).
        let sender = reply.formerRouter == nil ? nil : MACAddress(frame, at: 6)
        let named = reply.formerRouter.flatMap { mac in sender.flatMap { configuration.anchor(ofDLIF: mac, mn: $0) } }
        for a in reply.attached {
            attached(a, &out)
            // Its former anchors: from the CMD, else the one its old router names.
            register(a.mn, with: configuration.hasRegistries ? configuration.registries : named.map { [$0] } ?? [], time: time, &out)
        }
        // An MN attached here still talking to the DLIF of an anchor it has
        // no session with (one its trigger or first frame did not name): that
        // anchor holds a prefix of its too. With a CMD, the CMD names them all.
        if reply.attached.isEmpty, !configuration.hasRegistries, let anchor = named, let mn = sender,
           anchoredRecord(of: mn)?.serving == .here, session(mn, anchor) == nil {
            if refusedLately(mn, by: anchor, time: time) { counters.heldBackAfterRefusal += 1 } else { register(mn, with: [anchor], time: time, &out) }
        }
        out.access += reply.frames.map { (time, $0) }
        return out
    }

    /// A frame the data plane punted from the core port: signalling.
    public func core(_ frame: UnsafeRawBufferPointer, time: Int64) -> ControlEffects {
        var out = newEffects(at: time)
        guard let eth = try? EthernetFrame(checking: frame), eth.etherType == EtherType.ipv6,
              let ip = try? IPv6Packet(checking: eth.payload) else {
            counters.malformed += 1
            return out
        }
        var chain = IPv6HeaderChain(packet: ip)
        guard (try? chain.skipToUpperLayer())?.protocol == IPProtocol.mobility, !chain.isNonFirstFragment,
              ip.destination == configuration.address else {
            counters.notSignalling += 1
            return out
        }
        guard configuration.peers.contains(ip.source) else {
            counters.unknownPeer += 1
            return out
        }
        guard let mh = try? MobilityHeaderPacket(checking: chain.remainder),
              let message = try? MobilityMessage.parse(mh, source: ip.source, destination: ip.destination) else {
            counters.malformed += 1
            return out
        }
        switch authenticator.check(mh, options: message.options, from: ip.source, to: ip.destination) {
        case .accepted: break
        case .unauthenticated:
            counters.unauthenticated += 1
            return out
        case .replayed:
            counters.replayed += 1
            return out
        case .stale:
            counters.stale += 1
            return out
        }
        switch (message, database) {
        case (.bindingUpdate(let pbu), nil): received(pbu, from: ip.source, time: time, &out)
        case (.bindingAcknowledgement(let pba), nil): received(pba, from: ip.source, time: time, &out)
        case (.bindingUpdate(let pbu), let cmd?): cmd.received(pbu, from: ip.source, time: time, &counters, &out)
        case (.bindingAcknowledgement(let pba), let cmd?): cmd.received(pba, from: ip.source, time: time, &counters, &out)
        case (.bindingRevocation(let br), nil): received(br, from: ip.source, time: time, &out)
        case (.bindingRevocation(let br), let cmd?): cmd.received(br, from: ip.source, time: time, &counters, &out)
        case (.other, _): counters.malformed += 1
        }
        return out
    }

    /// Timers due by `time`: retransmissions, refreshes, expiries, advertisements.
    public func tick(_ time: Int64) -> ControlEffects {
        var out = newEffects(at: time)
        while let (key, _) = sessionTimers.next(dueBy: time, isCurrent: { k, due in session(k.mn, k.anchor)?.due == due }) {
            var s = session(key.mn, key.anchor)!
            switch s.state {
            case .bound:
                s.state = .refreshing
                s.attempts = 0
                send(&s, lifetime: configuration.bindingLifetime, time: time, &out)
            case .registering, .refreshing, .deregistering:
                if s.attempts >= configuration.maxAttempts {
                    counters.timeouts += 1
                    end(s)
                    if s.state == .refreshing { unbind(s, &out) }
                    continue
                }
                counters.pbuRetransmitted += 1
                send(&s, lifetime: s.state == .deregistering ? 0 : configuration.bindingLifetime, time: time, &out)
            }
            store(s)
        }
        while let (mn, _) = expiries.next(dueBy: time, isCurrent: { mn, due in anchoredRecord(of: mn)?.expires == due }) {
            var a = anchoredRecord(of: mn)!
            counters.expired += 1
            a.serving = .nowhere
            a.expires = .max
            record(a)
            if a.moved == nil { out.bindings.append(.remove(a.prefix)) }
        }
        while let (mn, _) = moveExpiries.next(dueBy: time, isCurrent: { mn, due in anchoredRecord(of: mn)?.moved?.expires == due }) {
            var a = anchoredRecord(of: mn)!
            counters.expired += 1
            a.moved = nil
            record(a)
            out.bindings.append(binding(of: a))
        }
        database?.tick(time, &counters, &out)
        router.tick(time, into: &out.access)
        return out
    }

    /// What the CMD knows, by MN (empty unless this is the CMD).
    public var mobilityRecords: [MobilityRecord] { database?.records ?? [] }

    /// An LMA's bindings of the prefixes it relays, in prefix order: with
    /// `mobilityRecords`, what it starts again from after a restart.
    public var relayedBindings: [RelayedBinding] { database?.relayedBindings ?? [] }

    /// A CMD's (an LMA's) records changed since the last call (with
    /// `journal` configured): what a crash must not lose.
    public func drainJournal() -> [JournaledRecord] { database?.drainJournal() ?? [] }

    // MARK: Serving gateway

    /// An MN attached here: its prefix anchored and served here.
    private func attached(_ a: Attachment, _ out: inout ControlEffects) {
        var record = anchoredRecord(of: a.mn) ?? AnchoredMN(mn: a.mn, prefix: a.prefix, dlifMAC: a.dlifMAC, serving: .here)
        // An interface that comes (back) takes its prefix back from another
        // it was moved to; one attached here already leaves a move alone.
        if record.serving != .here { record.moved = nil }
        record.serving = .here
        record.expires = .max
        self.record(record)
        out.bindings.append(binding(of: record))
    }

    /// The LMA a move's signalling and traffic go through: the prefix of an
    /// interface at another operator's gateway (no peer of this one) is
    /// moved here through the inter-operator LMA (draft-bernardos section
    /// 5), which relays the PBUs both ways and joins the two tunnels.
    /// (Inlined, the session not passed whole: this is on every handover's path.)
    @inline(__always)
    private func relayingLMA(of s: borrowing AnchorSession) -> IPv6Address? {
        guard s.moved != nil, let lma = configuration.lma, s.anchor != lma, !configuration.peers.contains(s.anchor) else { return nil }
        return lma
    }

    /// The end of the tunnels of session `s`'s prefixes here: the LMA for
    /// its registration with the LMA and for a move through it, else nil
    /// (each grant's anchor).
    @inline(__always)
    private func tunnelLMA(of s: borrowing AnchorSession) -> IPv6Address? {
        s.anchor == configuration.lma ? s.anchor : relayingLMA(of: s)
    }

    /// Sends the session's next PBU (a new sequence number each time, RFC
    /// 6275 11.8) and arms its retransmission.
    private func send(_ s: inout AnchorSession, lifetime: Int, time: Int64, _ out: inout ControlEffects) {
        s.sequence = nextSequence
        nextSequence &+= 1
        let backoff = configuration.retransmitDelay(afterAttempts: s.attempts)
        s.attempts += 1
        s.due = time + backoff
        var options = identifyBorrowing(s.mn, id: configuration.identities[s.mn].map(RawBytes.owned), room: 4)
        // To the CMD: the prefix anchored here, which it records (RFC 8885).
        if configuration.isRegistry(s.anchor), let a = anchoredRecord(of: s.mn) { options.append(.homeNetworkPrefix(a.prefix)) }
        // A refresh to the CMD (or LMA) names the former anchors this gateway
        // holds grants from, in RFC 8885's Previous MAAR option (which the
        // RFC has in the PBA): a CMD that restarted since, and so lost the
        // MN's record, rebuilds it from them and goes on relaying the
        // refreshes to those anchors, whose bindings would otherwise lapse.
        if s.state == .refreshing, configuration.isRegistry(s.anchor) {
            // (Not a move's: another interface's prefix is no former anchor of this one.)
            let held = s.grants + sessions(of: s.mn).filter { !configuration.isRegistry($0.anchor) && $0.state != .registering && $0.moved == nil }
                .flatMap(\.grants)
            for g in held where g.anchor != s.anchor && g.anchor != configuration.address {
                for p in g.prefixes { options.append(.previousMAAR(maar: g.anchor, prefix: p)) }
            }
        }
        if let moved = s.moved { options.append(.homeNetworkPrefix(moved)) }
        // A refresh says that nothing changed (RFC 5213 HI 5): an anchor
        // that has since seen the MN elsewhere refuses it.
        let handoff = s.state == .refreshing ? HandoffIndicator.stateNotChanged
            : s.moved != nil ? HandoffIndicator.betweenInterfaces : HandoffIndicator.betweenGatewaysSameInterface
        let pbu = Self.proxyBindingUpdate(sequence: s.sequence, lifetime: lifetime, handoff: handoff, options: consume options)
        if let packet = packet(.bindingUpdate(pbu), to: relayingLMA(of: s) ?? s.anchor) {
            counters.pbuSent += 1
            out.core.append(packet)
        }
    }

    private func received(_ pba: BindingAcknowledgement, from anchor: IPv6Address, time: Int64, _ out: inout ControlEffects) {
        counters.pbaReceived += 1
        guard let mn = Self.mn(in: pba.options) else {
            counters.unexpected += 1
            return
        }
        // From the LMA about a move it relayed: the session is the one with
        // the anchor its Previous MAAR option names, and this answers it.
        var key = anchor
        if anchor == configuration.lma, let maar = Self.firstPreviousMAAR(in: pba.options), let m = session(mn, maar),
           relayingLMA(of: m) == anchor, m.sequence == pba.sequence || pba.status == BindingAckStatus.sequenceNumberOutOfWindow {
            key = maar
        }
        guard var s = session(mn, key), s.state != .bound else {
            counters.unexpected += 1
            return
        }
        if pba.status == BindingAckStatus.sequenceNumberOutOfWindow {
            // The anchor remembers a later number from us (we restarted): go on from there.
            counters.resynchronised += 1
            nextSequence = pba.sequence &+ 1
            s.attempts = 0
            send(&s, lifetime: s.state == .deregistering ? 0 : configuration.bindingLifetime, time: time, &out)
            store(s)
            return
        }
        guard pba.sequence == s.sequence else {
            counters.unexpected += 1  // answers an earlier transmission: the latest one's answer will come
            return
        }
        guard BindingAckStatus.isAccepted(pba.status) else {
            counters.refused += 1
            remember(refusalOf: mn, by: key, time: time)
            end(s)
            if s.state == .refreshing { unbind(s, &out) }
            return
        }
        if s.state == .deregistering || pba.lifetime == 0 {
            end(s)
            if s.state != .deregistering { unbind(s, &out) }
            return
        }
        let lifetime = Int64(pba.lifetimeSeconds) * 1_000_000_000
        if configuration.isRegistry(s.anchor) {
            let (grants, previous) = Self.grants(in: pba.options, from: s.anchor, viaCMD: true, mn: mn, logicalMAC: configuration.logicalMAC)
            if configuration.cmdMode == .locator && s.anchor == configuration.cmd {
                register(mn, with: previous, time: time, &out)
            } else {
                bind(&s, to: grants, &out)
            }
        } else {
            // Bound: the anchor's prefixes tunnelled to it, and its DLIF
            // shown, as the anchor fixed it.
            // (Through the LMA, introduced by the anchor's Previous MAAR option.)
            bind(&s, to: Self.grants(in: pba.options, from: anchor, viaCMD: key != anchor, mn: mn, logicalMAC: configuration.logicalMAC).grants, &out)
        }
        s.state = .bound
        s.attempts = 0
        s.expires = time + lifetime
        s.due = time + lifetime * 4 / 5  // refresh before it runs out
        store(s)
    }

    static func firstPreviousMAAR(in options: MobilityOptions) -> IPv6Address? {
        for case .previousMAAR(let maar, _) in options { return maar }
        return nil
    }

    /// What a PBA grants: the prefixes, local networks and DLIF of the
    /// anchor that sent it; from a CMD, those of each former anchor, each
    /// introduced by its Previous MAAR option (the CMD's own Home Network
    /// Prefix option echoes this gateway's prefix and grants nothing), and
    /// then, in `previous`, the former anchors it named.
    static func grants(in options: MobilityOptions, from sender: IPv6Address, viaCMD: Bool, mn: MACAddress,
                       logicalMAC: (IPv6Address, MACAddress) -> MACAddress) -> (grants: [AnchorGrant], previous: [IPv6Address]) {
        struct Group { var anchor: IPv6Address; var prefixes: [IPv6Prefix] = []; var locals: [IPv6Prefix] = []
                       var linkLocal: IPv6Address?; var mac: MACAddress? }
        // The group the options are about now, and those before it (from a
        // CMD only: a PBA from the anchor itself is one group, no list).
        var current: Group? = viaCMD ? nil : Group(anchor: sender)
        var earlier: [Group] = []
        for option in options {
            if case .previousMAAR(let maar, let prefix) = option {
                if current?.anchor != maar {
                    if let c = current { earlier.append(c) }
                    // Named twice: the options that follow are its.
                    current = earlier.firstIndex { $0.anchor == maar }.map { earlier.remove(at: $0) } ?? Group(anchor: maar)
                }
                if !current!.prefixes.contains(prefix) { current!.prefixes.append(prefix) }
                continue
            }
            // From a CMD, what comes before its first Previous MAAR is its own.
            guard current != nil else { continue }
            switch option {
            case .anchoredPrefix(let p), .homeNetworkPrefix(let p): if !current!.prefixes.contains(p) { current!.prefixes.append(p) }
            case .localPrefix(let p): if !current!.locals.contains(p) { current!.locals.append(p) }
            case .dlifLinkLocalAddress(let a): current!.linkLocal = a
            case .dlifLinkLayerAddress(let l): current!.mac = l.mac
            default: break
            }
        }
        func grant(_ g: Group) -> AnchorGrant {
            AnchorGrant(anchor: g.anchor, prefixes: g.prefixes,
                        dlif: DLIF(mn: mn, mac: g.mac ?? logicalMAC(g.anchor, mn), anchor: g.anchor, prefixes: g.prefixes,
                                   localNetworks: g.locals, linkLocal: g.linkLocal))
        }
        guard let last = current else { return ([], earlier.map(\.anchor)) }
        if earlier.isEmpty { return ([grant(last)], viaCMD ? [last.anchor] : []) }
        earlier.append(last)
        return (earlier.map(grant), earlier.map(\.anchor))
    }

    /// Makes the data plane and the access link show what `grants` says
    /// (and no longer what the session granted before).
    private func bind(_ s: inout AnchorSession, to grants: [AnchorGrant], _ out: inout ControlEffects) {
        let me = configuration.address
        // This gateway's own prefix is no tunnel (a new array only when there is one).
        let grants = grants.contains { $0.anchor == me } ? grants.filter { $0.anchor != me } : grants
        // Through an LMA, every anchor's prefixes go into the tunnel to the LMA.
        let lma = tunnelLMA(of: s)
        for old in s.grants {
            let next = grants.first { $0.anchor == old.anchor }
            for gone in old.prefixes where !(next?.prefixes.contains(gone) ?? false) { out.bindings.append(.remove(gone)) }
            for gone in old.dlif.localNetworks where !(next?.dlif.localNetworks.contains(gone) ?? false) {
                out.bindings.append(.unrouteLocalNetwork(gone, anchor: lma ?? old.anchor))
            }
            if next == nil { router.hide(s.mn, anchor: old.anchor) }
        }
        for g in grants {
            let old = s.grants.first { $0.anchor == g.anchor }
            for p in g.prefixes {
                out.bindings.append(.install(mn: s.mn, prefix: p, anchor: lma ?? g.anchor, serving: nil, dlifMAC: g.dlif.mac))
            }
            let routed = old?.dlif.localNetworks ?? []
            for l in g.dlif.localNetworks where !routed.contains(l) { out.bindings.append(.routeLocalNetwork(l, anchor: lma ?? g.anchor)) }
            if old?.dlif != g.dlif { router.show(g.dlif) }
        }
        s.grants = grants
    }

    /// Removes what a session installed here.
    private func unbind(_ s: AnchorSession, _ out: inout ControlEffects) {
        let lma = tunnelLMA(of: s)
        for g in s.grants {
            for p in g.prefixes { out.bindings.append(.remove(p)) }
            for l in g.dlif.localNetworks { out.bindings.append(.unrouteLocalNetwork(l, anchor: lma ?? g.anchor)) }
            router.hide(s.mn, anchor: g.anchor)
        }
    }

    /// The MN is no longer served here: sessions end (de-registered when
    /// `deregister`), DLIFs hidden, tunnelled prefixes unbound.
    private func leave(_ mn: MACAddress, deregister: Bool, time: Int64, _ out: inout ControlEffects) {
        for s in sessions(of: mn) { close(s, deregister: deregister, time: time, &out) }
        router.hide(mn)
    }

    /// Unbinds what session `s` installed here and ends it: with a
    /// de-registration to its anchor when `deregister` and it was
    /// registered (one still registering just ends; one de-registering goes on).
    private func close(_ s: AnchorSession, deregister: Bool, time: Int64, _ out: inout ControlEffects) {
        var s = s
        unbind(s, &out)
        if deregister && s.state != .registering && s.state != .deregistering {
            s.state = .deregistering
            s.attempts = 0
            s.grants = []
            counters.deregistrations += 1
            send(&s, lifetime: 0, time: time, &out)
            store(s)
        } else if s.state != .deregistering {
            end(s)
        }
    }

    // MARK: Anchoring gateway

    private func received(_ pbu: BindingUpdate, from peer: IPv6Address, time: Int64, _ out: inout ControlEffects) {
        counters.pbuReceived += 1
        guard pbu.flags.contains(.proxyRegistration), let mn = Self.mn(in: pbu.options) else {
            counters.malformed += 1
            reply(BindingAckStatus.missingMNIdentifierOption, to: peer, pbu, mn: nil, lifetime: 0, &out)
            return
        }
        // The options read below, in one pass over them: a prefix named
        // (the last), the handoff (the first), the serving gateway (the last).
        var named: IPv6Prefix?, handoff: UInt8?, servingMAAR: IPv6Address?
        for option in pbu.options {
            switch option {
            case .homeNetworkPrefix(let p): named = p
            case .handoffIndicator(let h): if handoff == nil { handoff = h }
            case .servingMAAR(let s): servingMAAR = s
            default: break
            }
        }
        // A prefix named that is not the MN's own: another interface's, to move here.
        if let named, router.field(of: mn, { $0.anchored?.prefix }) ?? nil != named {
            receivedMove(pbu, of: named, to: mn, from: peer, time: time, &out)
            return
        }
        guard var a = anchoredRecord(of: mn) else {
            counters.rejected += 1
            reply(BindingAckStatus.notLMAForThisMobileNode, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        guard acceptsSequence(of: pbu, from: peer, mn: mn, &a, &out) else { return }
        // Relayed by the CMD: the serving gateway is the one its Serving MAAR option names.
        var serving = peer
        if peer == configuration.cmd, let servingMAAR { serving = servingMAAR }
        guard serving != configuration.address else {
            counters.malformed += 1  // "this gateway serves it" is no binding of a peer's
            reply(BindingAckStatus.reasonUnspecified, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        // A refresh from a gateway that no longer serves the MN (it moved on,
        // or came back here, and that gateway was not told): refused, and
        // that gateway's tunnel goes.
        if pbu.lifetime != 0, handoff == HandoffIndicator.stateNotChanged, a.serving != .peer(serving) {
            record(a)
            counters.rejected += 1
            reply(BindingAckStatus.magNotAuthorizedForProxyRegistration, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        counters.accepted += 1
        if pbu.lifetime == 0 {
            // De-registration: only the gateway serving the MN can end its binding.
            if a.serving == .peer(serving) {
                a.serving = .nowhere
                a.expires = .max
                if a.moved == nil { out.bindings.append(.remove(a.prefix)) }
            }
            record(a)
            reply(BindingAckStatus.accepted, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        if a.serving == .here {
            // The MN moved on from here: what this gateway served it ends.
            leave(mn, deregister: false, time: time, &out)
        }
        let lifetime = min(pbu.lifetimeSeconds, configuration.bindingLifetime)
        // The MN's own interface handed over: its prefix follows it again.
        let wasMoved = a.moved != nil && handoff != HandoffIndicator.stateNotChanged
        if wasMoved, let moved = a.moved {
            a.moved = nil
            revoke(moved, of: a.prefix, &out)
        }
        if a.serving != .peer(serving) || wasMoved {
            out.bindings.append(.install(mn: mn, prefix: a.prefix, anchor: nil, serving: serving, dlifMAC: a.dlifMAC))
        }
        a.serving = .peer(serving)
        a.expires = time + Int64(lifetime) * 1_000_000_000
        record(a)
        var accepted = pbu
        accepted.lifetime = UInt16(clamping: lifetime / 4)
        reply(BindingAckStatus.accepted, to: peer, accepted, mn: mn, lifetime: lifetime, granting: a, &out)
    }

    /// A PBU from the gateway serving interface `mn` for `prefix`, the
    /// prefix of another interface of the same MN-ID anchored here
    /// (draft-seite 4.4): that prefix's traffic goes to `mn` there, until
    /// de-registered, expired, taken back, or its own interface hands over.
    private func receivedMove(_ pbu: BindingUpdate, of prefix: IPv6Prefix, to mn: MACAddress, from peer: IPv6Address, time: Int64,
                              _ out: inout ControlEffects) {
        guard let owner = owner(of: prefix), var a = anchoredRecord(of: owner) else {
            counters.rejected += 1
            reply(BindingAckStatus.notLMAForThisMobileNode, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        // Only an interface of the MN-ID that owns the prefix.
        guard let id = configuration.identities[owner], Self.identity(in: pbu.options, of: mn) == id else {
            counters.rejected += 1
            reply(BindingAckStatus.notAuthorizedForHomeNetworkPrefix, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        guard acceptsSequence(of: pbu, from: peer, mn: mn, &a, &out) else { return }
        let current = a.moved.map { $0.mn == mn && $0.serving == peer } ?? false
        if pbu.lifetime == 0 {
            counters.accepted += 1
            if current {
                a.moved = nil
                out.bindings.append(binding(of: a))
            }
            record(a)
            reply(BindingAckStatus.accepted, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        guard current || Self.handoff(in: pbu.options) != HandoffIndicator.stateNotChanged else {
            record(a)  // taken back, or moved elsewhere since
            counters.rejected += 1
            reply(BindingAckStatus.magNotAuthorizedForProxyRegistration, to: peer, pbu, mn: mn, lifetime: 0, &out)
            return
        }
        counters.accepted += 1
        let lifetime = min(pbu.lifetimeSeconds, configuration.bindingLifetime)
        // Moved on from another interface: that one's gateway is told.
        if !current, let before = a.moved { revoke(before, of: a.prefix, &out) }
        a.moved = AnchoredMN.MovedPrefix(mn: mn, serving: peer, expires: time + Int64(lifetime) * 1_000_000_000)
        record(a)
        if !current { out.bindings.append(binding(of: a)) }
        var accepted = pbu
        accepted.lifetime = UInt16(clamping: lifetime / 4)
        reply(BindingAckStatus.accepted, to: peer, accepted, mn: mn, lifetime: lifetime, granting: a, &out)
    }

    /// Tells the gateway a moved prefix was granted to that its binding is
    /// gone (RFC 5846 Binding Revocation Indication, sent once: if it is
    /// lost, that gateway's next refresh is refused instead).
    private func revoke(_ moved: AnchoredMN.MovedPrefix, of prefix: IPv6Prefix, _ out: inout ControlEffects) {
        if moved.serving == configuration.address {
            // An interface here: its DLIF advertises the prefix deprecated from now on.
            localMoves[moved.mn] = nil
            router.setMovedAway(prefix, of: moved.mn, true)
            return
        }
        var options = identifyBorrowing(moved.mn, id: configuration.identities[moved.mn].map(RawBytes.owned), room: 1)
        options.append(.homeNetworkPrefix(prefix))
        let bri = BindingRevocation(type: BindingRevocationType.indication, triggerOrStatus: RevocationTrigger.interMAGHandoverDifferentAccessType,
                                    sequence: nextSequence, flags: .proxyBinding, options: .built(options))
        nextSequence &+= 1
        if let packet = packet(.bindingRevocation(bri), to: moved.serving) {
            counters.revocationsSent += 1
            out.core.append(packet)
        }
    }

    /// A Binding Revocation from an anchor: an indication ends the session
    /// that holds the prefix it names (its tunnel and DLIF go at once) and
    /// is acknowledged; an acknowledgement needs nothing more.
    private func received(_ br: BindingRevocation, from anchor: IPv6Address, time: Int64, _ out: inout ControlEffects) {
        guard br.type == BindingRevocationType.indication else { return }
        var named: IPv6Prefix?
        for case .homeNetworkPrefix(let p) in br.options { named = p }
        let mn = Self.mn(in: br.options)
        var status = BindingRevocationStatus.bindingDoesNotExist
        // From the LMA: passed on for a move through it, from another operator's anchor.
        let relayed = anchor == configuration.lma ? mn.flatMap { mn in sessions(of: mn).first { $0.moved == named && relayingLMA(of: $0) == anchor } } : nil
        if let mn, let named, let s = relayed ?? session(mn, anchor), s.moved == named || s.grants.contains(where: { $0.prefixes.contains(named) }) {
            close(s, deregister: false, time: time, &out)
            counters.revoked += 1
            status = BindingRevocationStatus.success
        } else {
            counters.unexpected += 1
        }
        var options = mn.map { identifyBorrowing($0, id: Self.nai(in: br.options), room: 1) } ?? []
        if let named { options.append(.homeNetworkPrefix(named)) }
        let bra = BindingRevocation(type: BindingRevocationType.acknowledgement, triggerOrStatus: status, sequence: br.sequence,
                                    flags: br.flags.intersection(.proxyBinding), options: .built(options))
        if let packet = packet(.bindingRevocation(bra), to: anchor) {
            out.core.append(packet)
        }
    }

    /// Sequence numbers per serving gateway: a PBU not after the last one
    /// accepted from `peer` is refused ("out of window", with that number);
    /// a fresh one's number is kept in `a`.
    private func acceptsSequence(of pbu: BindingUpdate, from peer: IPv6Address, mn: MACAddress, _ a: inout AnchoredMN,
                                 _ out: inout ControlEffects) -> Bool {
        if let last = a.lastSequence[peer], !isFresh(pbu.sequence, after: last) {
            counters.rejected += 1
            var stale = pbu
            stale.sequence = last
            reply(BindingAckStatus.sequenceNumberOutOfWindow, to: peer, stale, mn: mn, lifetime: 0, &out)
            return false
        }
        a.lastSequence[peer] = pbu.sequence
        return true
    }

    static func handoff(in options: MobilityOptions) -> UInt8? {
        for case .handoffIndicator(let hi) in options { return hi }
        return nil
    }

    /// A PBA for `pbu`: on acceptance with the anchored prefix, this
    /// gateway's local networks and the DLIF the MN knows.
    private func reply(_ status: UInt8, to peer: IPv6Address, _ pbu: BindingUpdate, mn: MACAddress?, lifetime: Int,
                       granting record: AnchoredMN? = nil, _ out: inout ControlEffects) {
        // The MN-ID as the PBU gave it (RFC 5213 has the PBA copy it),
        // borrowed from the PBU's own options: not copied, not re-made.
        var options = mn.map { identifyBorrowing($0, id: Self.nai(in: pbu.options), room: 4 + configuration.localNetworks.count) } ?? []
        if BindingAckStatus.isAccepted(status), let mn, let a = record ?? anchoredRecord(of: mn), lifetime > 0 {
            options.append(.anchoredPrefix(a.prefix))
            for n in configuration.localNetworks { options.append(.localPrefix(n)) }
            options.append(.dlifLinkLocalAddress(DLIF.linkLocal(of: a.dlifMAC)))
            options.append(.dlifLinkLayerAddress(LinkLayerAddress(a.dlifMAC)))
        }
        let pba = BindingAcknowledgement(status: status, flags: [.proxyRegistration, .distributedGateway], sequence: pbu.sequence,
                                         lifetime: UInt16(clamping: lifetime / 4), options: .built(consume options))
        if let packet = packet(.bindingAcknowledgement(pba), to: peer) {
            counters.pbaSent += 1
            out.core.append(packet)
        }
    }

    // MARK: Messages

    /// The MN's identity: its MN-ID as NAI (RFC 4283; by default its MAC's
    /// text) and its MAC as link-layer identifier (RFC 5213), which names
    /// the interface. `room`: for that many options more, made at once;
    /// `in`: an empty list to put them in (its room reused).
    @inline(__always)
    static func identify(_ mn: MACAddress, id: RawBytes? = nil, linkLayer: RawBytes? = nil, room: Int = 0,
                         in list: consuming [MobilityOption] = []) -> [MobilityOption] {
        var options = list
        options.reserveCapacity(2 + room)
        options.append(.mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: id ?? .owned(mn.text)))
        options.append(.mobileNodeLinkLayerIdentifier(linkLayer ?? .owned(mn.octets)))
        return options
    }

    /// `identify`, the MAC's text and octets borrowed from this plane's
    /// scratch room instead of two new arrays: for the one message built
    /// and emitted before the next call.
    private func identifyBorrowing(_ mn: MACAddress, id: RawBytes?, room: Int) -> [MobilityOption] {
        let text = MACAddress.textLength
        mn.writeText(to: identityScratch, at: 0)
        mn.write(to: identityScratch, at: text)
        var list: [MobilityOption] = []
        swap(&list, &optionRoom)
        return Self.identify(mn, id: id ?? .borrowed(UnsafeRawBufferPointer(rebasing: identityScratch[..<text])),
                             linkLayer: .borrowed(UnsafeRawBufferPointer(rebasing: identityScratch[text..<(text + 6)])), room: room, in: consume list)
    }

    /// `packet(_:from:to:)` from this gateway; then the message's list of
    /// options, emptied, is the room of the next one's (`optionRoom`).
    private func packet(_ message: consuming MobilityMessage, to destination: IPv6Address) -> CorePacket? {
        let packet = Self.packet(message, from: configuration.address, to: destination, authenticator)
        var options = message.options
        _ = consume message
        if case .built(var list) = options {
            options = .none  // the list's one holder now: emptied in place
            while list.popLast() != nil {}  // (as `ControlEffects.removeAll`)
            optionRoom = list
        }
        return packet
    }

    /// A message's MN-ID when it is an NAI, as its bytes (borrowed from a parsed message).
    static func nai(in options: MobilityOptions) -> RawBytes? {
        guard let (subtype, id) = options.mobileNodeIdentifier, subtype == MobileNodeIdentifierSubtype.nai else { return nil }
        return id
    }

    /// The MN-ID a message names `mn` by, when it is not the MAC's text.
    static func identity(in options: MobilityOptions, of mn: MACAddress) -> [UInt8]? {
        guard let id = nai(in: options) else { return nil }
        let bytes = Array(id)
        return bytes == mn.text ? nil : bytes
    }

    /// The MN a message is about: its link-layer identifier, else an NAI that is a MAC.
    static func mn(in options: MobilityOptions) -> MACAddress? {
        // A received message's, read in place (Reserved, then the identifier).
        if let mac = options.first(ofType: MobilityOptionType.mobileNodeLinkLayerIdentifier, { d in
            d.count == 8 ? MACAddress(value: d[2...].reduce(0) { $0 << 8 | UInt64($1) }) : nil
        }) {
            return mac
        }
        for case .mobileNodeLinkLayerIdentifier(let id) in options where id.count == 6 {
            return MACAddress(value: id.reduce(0) { $0 << 8 | UInt64($1) })
        }
        if let (_, id) = options.mobileNodeIdentifier { return MACAddress(String(decoding: Array(id), as: UTF8.self)) }
        return nil
    }

    /// A PBU with the D flag (RFC 8885), the handoff between gateways on
    /// the same interface, over Ethernet: what every gateway and the CMD send.
    static func proxyBindingUpdate(sequence: UInt16, lifetime: Int, handoff: UInt8 = HandoffIndicator.betweenGatewaysSameInterface,
                                   options: consuming [MobilityOption]) -> BindingUpdate {
        var options = options
        options.append(.handoffIndicator(handoff))
        options.append(.accessTechnologyType(AccessTechnology.ieee8023))
        return BindingUpdate(sequence: sequence, flags: [.acknowledge, .homeRegistration, .proxyRegistration, .distributedGateway],
                             lifetime: UInt16(clamping: (lifetime + 3) / 4), options: .built(options))
    }

    /// `message` in an IPv6 packet, signed when `destination` has a key.
    static func packet(_ message: MobilityMessage, from me: IPv6Address, to destination: IPv6Address,
                       _ authenticator: SignallingAuthenticator? = nil) -> CorePacket? {
        let message = message.appending(authenticator?.trailer(for: destination) ?? [])
        let room = CorePacket.headroom, header = room + 40
        // Written on the stack (where up to 1,024 octets stay), then copied
        // into a frame of its length: the options are laid out once (sizing
        // the frame first took a second pass over them). A longer message
        // (a CMD's, naming many anchors) is sized first.
        func write(_ b: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
            let n = try message.emit(into: UnsafeMutableRawBufferPointer(rebasing: b[header...]), source: me, destination: destination)
            try authenticator?.seal(UnsafeMutableRawBufferPointer(rebasing: b[header..<(header + n)]), source: me, destination: destination)
            try IPv6Header(payloadLength: n, nextHeader: IPProtocol.mobility, hopLimit: 64, source: me, destination: destination)
                .emit(into: UnsafeMutableRawBufferPointer(rebasing: b[room..<header]))
            return header + n
        }
        var packet: CorePacket?, tooLong = false
        withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 8) { b in
            b.initializeMemory(as: UInt8.self, repeating: 0)
            do throws(WireError) {
                let n = try write(b)
                packet = CorePacket(destination: destination, frame: [UInt8](UnsafeRawBufferPointer(rebasing: b[..<n])))
            } catch {
                tooLong = error == .bufferTooSmall
            }
        }
        guard tooLong else { return packet }
        var frame = [UInt8](zeroed: header + message.bufferLength)
        let ok = frame.withUnsafeMutableBytes { b -> Bool in (try? write(b)) != nil }
        return ok ? CorePacket(destination: destination, frame: frame) : nil
    }
}

/// Handoff Indicator values (RFC 5213 8.4).
public enum HandoffIndicator {
    public static let attachmentOverNewInterface: UInt8 = 1
    public static let betweenInterfaces: UInt8 = 2
    public static let betweenGatewaysSameInterface: UInt8 = 3
    public static let unknown: UInt8 = 4
    /// Re-registration: the MN still where it was.
    public static let stateNotChanged: UInt8 = 5
}

/// Access Technology Type values (RFC 5213 8.5).
public enum AccessTechnology {
    public static let ieee8023: UInt8 = 3
    public static let ieee80211: UInt8 = 4
}
