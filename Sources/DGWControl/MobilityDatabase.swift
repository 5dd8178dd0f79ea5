// RFC 8885's Central Mobility Database (CMD, `role: cmd`): the one place
// that knows, per MN, which gateway anchors which of its prefixes and which
// one serves it now. Every gateway registers each MN that attaches (a PBU
// with the prefix it allocated); the CMD then brings in the MN's former
// anchors in one of two ways (CMDMode):
// - relay: it forwards the PBU to each former anchor with a Serving MAAR
//   option (the anchor binds the prefix to that gateway and answers the
//   CMD), collects the PBAs, and answers the serving gateway once, with a
//   Previous MAAR option per anchor followed by that anchor's Local Prefix
//   and DLIF options;
// - locator: it answers at once with a Previous MAAR option per former
//   anchor, and the serving gateway signals them itself.
// Refreshes and de-registrations go the same way. Tunnels stay between
// gateways: the CMD carries no traffic.
//
// The inter-operator LMA of draft-bernardos section 5 (`role: lma`) is the
// same registry in relay mode with one difference: gateways of different
// operators do not tunnel to each other, so the LMA is the serving gateway
// for each former anchor (its PBU names no Serving MAAR) and the anchor for
// the serving gateway (which tunnels every former prefix to it), and it
// binds each prefix it relayed between the two tunnels in its own data
// plane. It relays only between gateways of different operators
// (`operators`): within one, the CMD (or the trigger) does, and the
// gateways tunnel to each other. An anchor's local networks (Local Prefix
// options) are passed on and routed at the LMA into that anchor's tunnel,
// for as long as an MN of that anchor's is served through the LMA.
//
// Sans-I/O like the rest of the control plane: PBUs, PBAs and time in,
// signalling packets out.

import DGWWire

/// Where one of an MN's prefixes is anchored.
public struct Anchoring: Sendable, Equatable {
    public var gateway: IPv6Address
    public var prefix: IPv6Prefix

    public init(gateway: IPv6Address, prefix: IPv6Prefix) {
        self.gateway = gateway
        self.prefix = prefix
    }
}

/// A prefix an LMA joins between two gateways of different operators: its
/// anchor's tunnel and the one to the gateway serving its MN.
public struct RelayedBinding: Sendable, Equatable {
    public var mn: MACAddress
    public var prefix: IPv6Prefix
    public var anchor: IPv6Address
    public var serving: IPv6Address

    public init(mn: MACAddress, prefix: IPv6Prefix, anchor: IPv6Address, serving: IPv6Address) {
        self.mn = mn
        self.prefix = prefix
        self.anchor = anchor
        self.serving = serving
    }
}

/// What changed of one MN's entry at a CMD (an LMA), for its journal:
/// its record and relayed bindings now, or no record when it is gone.
public struct JournaledRecord: Sendable, Equatable {
    public var mn: MACAddress
    public var record: MobilityRecord?
    public var relayed: [RelayedBinding]
}

/// The CMD's entry for one MN.
public struct MobilityRecord: Sendable, Equatable {
    public var mn: MACAddress
    /// The MN-ID (NAI) its serving gateway names it by, when that is not
    /// its MAC's text (a subscriber's identity): relayed as given.
    public var identity: [UInt8]?
    /// In the order the MN attached.
    public var anchors: [Anchoring] = []
    /// The gateway the MN is attached to; nil after its de-registration.
    public var serving: IPv6Address?
    /// End of the serving gateway's registration (or, once de-registered,
    /// of the time the record is kept for the MN to come back).
    public var expires: Int64 = .max

    public init(mn: MACAddress, identity: [UInt8]? = nil, anchors: [Anchoring] = [], serving: IPv6Address? = nil, expires: Int64 = .max) {
        self.mn = mn
        self.identity = identity
        self.anchors = anchors
        self.serving = serving
        self.expires = expires
    }
}

final class MobilityDatabase {
    /// A registration waiting for the former anchors' answers (relay mode).
    struct Relaying {
        var serving: IPv6Address
        /// The serving gateway's latest PBU, answered when every relay is settled.
        var sequence: UInt16
        var lifetime: Int
        var prefix: IPv6Prefix?
        var relays: [Relay]
    }

    struct Relay {
        enum State { case waiting, granted([MobilityOption]), failed }
        var anchor: Anchoring
        var sequence: UInt16 = 0
        var attempts = 0
        var due: Int64 = 0
        var state = State.waiting
        var waiting: Bool { if case .waiting = state { true } else { false } }
    }

    /// The last answer to a relayed registration, given again to the
    /// serving gateway's retransmissions that crossed it (or whose answer
    /// was lost) rather than asking the anchors all over again.
    struct Answered {
        var serving: IPv6Address
        var prefix: IPv6Prefix?
        var lifetime: Int
        var options: [MobilityOption]
        var until: Int64
    }

    /// An LMA's relay of a move (draft-seite 4.4 across operators): the
    /// prefix of another interface of the MN's subscriber, anchored at
    /// another operator's gateway, moved to this MN's serving gateway.
    /// Kept once answered: the anchor its refreshes go to.
    struct Moving {
        var serving: IPv6Address
        /// The serving gateway's latest PBU for it, answered when the anchor has.
        var sequence: UInt16
        var lifetime: Int
        var handoff: UInt8
        /// To the prefix's anchor (`anchor.gateway`), about `anchor.prefix`.
        var relay: Relay
        /// Refused (by the anchor, or given up): given again, until then,
        /// to the serving gateway's retransmissions that crossed it (for
        /// less than its first timeout: a move asked for again after that
        /// is a new one, relayed again).
        var refusal: (status: UInt8, until: Int64)?
    }

    struct Entry {
        var record: MobilityRecord
        var lastSequence = LastSequences()
        var relaying: Relaying?
        var answered: Answered?
        /// An LMA's bindings of this MN's prefixes: between which anchor and serving gateway.
        var relayed: [IPv6Prefix: (anchor: IPv6Address, serving: IPv6Address)] = [:]
        /// The anchors' local networks an LMA routes for this MN, each into its anchor's tunnel.
        var networks: [IPv6Prefix: IPv6Address] = [:]
        /// Moves relayed for this MN, by prefix.
        var moves: [IPv6Prefix: Moving] = [:]
        /// The next thing due: a relay's retransmission or the record's expiry.
        var due: Int64 {
            let due = relaying?.relays.filter(\.waiting).map(\.due).min() ?? record.expires
            guard !moves.isEmpty else { return due }
            return moves.values.lazy.filter(\.relay.waiting).map(\.relay.due).reduce(due, min)
        }
    }

    let configuration: ControlPlaneConfiguration
    /// An LMA: it carries the traffic it relays the signalling of.
    let anchorsTraffic: Bool
    /// A relayed PBU is tried this often before its anchor is left out of
    /// the answer: fewer than the serving gateway's own attempts, so that
    /// it still waits for the answer when the CMD gives it.
    let relayAttempts: Int
    /// Written through `put` only, which keeps `anchoredBy` with them.
    private var entries: [MACAddress: Entry] = [:]
    /// The MNs whose records list each prefix among their anchors, the
    /// latest last: a first move's anchor found at once, not by a scan of
    /// every record (`anchor(of:notOf:besides:)`). Several only when a
    /// gateway gave a freed prefix to another MN before the first MN's
    /// record ran out.
    private var anchoredBy: [IPv6Prefix: [MACAddress]] = [:]
    private var timers = Deadlines<MACAddress>()
    private var nextSequence: UInt16

    let authenticator: SignallingAuthenticator

    init(_ configuration: ControlPlaneConfiguration, initialSequence: UInt16, authenticator: SignallingAuthenticator) {
        self.configuration = configuration
        self.authenticator = authenticator
        anchorsTraffic = configuration.role == .lma
        relayAttempts = max(1, configuration.maxAttempts - 2)
        nextSequence = initialSequence
        // The records from before a restart, each with its expiry's timer.
        for r in configuration.records where entries[r.mn] == nil { store(Entry(record: r)) }
        // An LMA's bindings, as if relayed: a static one's MN served there
        // until it registers elsewhere (no expiry before then, no timer).
        // One of a prefix another MN's record has is a move (a refresh of
        // it goes on to that anchor).
        var owners: [IPv6Prefix: MACAddress] = [:]
        for r in configuration.records { for a in r.anchors { owners[a.prefix] = r.mn } }
        for b in configuration.relayed where anchorsTraffic {
            var e = entries[b.mn] ?? Entry(record: MobilityRecord(mn: b.mn, serving: b.serving))
            if let owner = owners[b.prefix], owner != b.mn {
                e.moves[b.prefix] = Moving(serving: b.serving, sequence: 0, lifetime: configuration.bindingLifetime,
                                           handoff: HandoffIndicator.stateNotChanged,
                                           relay: Relay(anchor: Anchoring(gateway: b.anchor, prefix: b.prefix), state: .granted([])))
                e.relayed[b.prefix] = (b.anchor, b.serving)
                put(e, for: b.mn)
                continue
            }
            if !e.record.anchors.contains(where: { $0.gateway == b.anchor }) {
                e.record.anchors.append(Anchoring(gateway: b.anchor, prefix: b.prefix))
            }
            e.relayed[b.prefix] = (b.anchor, b.serving)
            put(e, for: b.mn)
        }
        journaled = []  // what it starts from is no change
    }

    var relayedBindings: [RelayedBinding] {
        entries.values.flatMap { relayedBindings(of: $0) }.sorted { ($0.prefix.address, $0.prefix.length) < ($1.prefix.address, $1.prefix.length) }
    }

    var records: [MobilityRecord] { entries.values.map(\.record).sorted { $0.mn < $1.mn } }

    var nextDeadline: Int64? { timers.earliest { mn, due in entries[mn]?.due == due } }

    /// The MNs whose entries changed since the last `drainJournal`, when
    /// the configuration asks for a journal (`journal`).
    private var journaled: [MACAddress] = []

    /// Each MN whose entry changed since the last call, once, in MAC
    /// order: its record and relayed bindings now, or nil when it is gone.
    func drainJournal() -> [JournaledRecord] {
        guard !journaled.isEmpty else { return [] }
        defer { journaled.removeAll(keepingCapacity: true) }
        return Set(journaled).sorted().map { mn in
            JournaledRecord(mn: mn, record: entries[mn]?.record, relayed: entries[mn].map { relayedBindings(of: $0) } ?? [])
        }
    }

    private func relayedBindings(of e: Entry) -> [RelayedBinding] {
        e.relayed.map { RelayedBinding(mn: e.record.mn, prefix: $0.key, anchor: $0.value.anchor, serving: $0.value.serving) }
            .sorted { ($0.prefix.address, $0.prefix.length) < ($1.prefix.address, $1.prefix.length) }
    }

    /// `mn`'s entry now (nil: gone), and the prefixes its record lists.
    private func put(_ e: Entry?, for mn: MACAddress) {
        let before = entries[mn]?.record.anchors ?? [], after = e?.record.anchors ?? []
        if before != after {
            for a in before where !after.contains(where: { $0.prefix == a.prefix }) {
                anchoredBy[a.prefix]?.removeAll { $0 == mn }
                if anchoredBy[a.prefix]?.isEmpty == true { anchoredBy[a.prefix] = nil }
            }
            for a in after where !(anchoredBy[a.prefix]?.contains(mn) ?? false) { anchoredBy[a.prefix, default: []].append(mn) }
        }
        entries[mn] = e
    }

    private func store(_ e: Entry) {
        let mn = e.record.mn
        if configuration.journal { journaled.append(mn) }
        if entries[mn]?.due != e.due { timers.schedule(mn, at: e.due) }
        put(e, for: mn)
        timers.compact(live: entries.count) { mn, due in entries[mn]?.due == due }
    }

    // MARK: From the serving gateway

    func received(_ pbu: BindingUpdate, from gateway: IPv6Address, time: Int64, _ counters: inout SignallingCounters,
                  _ out: inout ControlEffects) {
        counters.pbuReceived += 1
        guard pbu.flags.contains(.proxyRegistration), let mn = ControlPlane.mn(in: pbu.options) else {
            counters.malformed += 1
            answer(BindingAckStatus.missingMNIdentifierOption, to: gateway, sequence: pbu.sequence, mn: nil, &counters, &out)
            return
        }
        var e = entries[mn] ?? Entry(record: MobilityRecord(mn: mn))
        // Sequence numbers per gateway.
        if let last = e.lastSequence[gateway], !isFresh(pbu.sequence, after: last) {
            counters.rejected += 1
            answer(BindingAckStatus.sequenceNumberOutOfWindow, to: gateway, sequence: last, mn: mn, &counters, &out)
            return
        }
        var prefix: IPv6Prefix?
        for case .homeNetworkPrefix(let p) in pbu.options { prefix = p }
        if pbu.lifetime != 0 && prefix == nil {
            counters.rejected += 1
            answer(BindingAckStatus.missingHomeNetworkPrefixOption, to: gateway, sequence: pbu.sequence, mn: mn, &counters, &out)
            return
        }
        e.lastSequence[gateway] = pbu.sequence
        e.record.identity = ControlPlane.identity(in: pbu.options, of: mn)
        // An LMA: a prefix moved to this interface (Handoff Indicator 2), or
        // the refresh or end of such a move.
        if anchorsTraffic, let prefix, !e.moves.isEmpty && e.moves[prefix] != nil
            || ControlPlane.handoff(in: pbu.options) == HandoffIndicator.betweenInterfaces {
            move(prefix, of: mn, &e, pbu, from: gateway, time: time, &counters, &out)
            return
        }
        // A refresh from the MN's gateway names the former anchors it holds
        // grants from: after a restart of this CMD, the record is rebuilt
        // from them (and the refreshes relayed to them again).
        if pbu.lifetime != 0, e.record.serving == nil || e.record.serving == gateway,
           ControlPlane.handoff(in: pbu.options) == HandoffIndicator.stateNotChanged {
            for case .previousMAAR(let maar, let p) in pbu.options
            where maar != gateway && configuration.peers.contains(maar) && !e.record.anchors.contains(where: { $0.gateway == maar }) {
                e.record.anchors.append(Anchoring(gateway: maar, prefix: p))
                counters.anchorsRelearnt += 1
            }
        }
        counters.accepted += 1
        let lifetime = pbu.lifetime == 0 ? 0 : min(pbu.lifetimeSeconds, configuration.bindingLifetime)
        if var r = e.relaying, r.serving == gateway, (r.lifetime == 0) == (lifetime == 0) {
            // A retransmission while the anchors are asked: answer this one when they have.
            r.sequence = pbu.sequence
            e.relaying = r
            store(e)
            return
        }
        e.relaying = nil  // a registration elsewhere since: that one wins
        if let a = e.answered, a.serving == gateway, a.prefix == prefix, a.lifetime == lifetime, time < a.until {
            if lifetime > 0 { e.record.expires = time + Int64(lifetime) * 1_000_000_000 }
            store(e)
            answer(BindingAckStatus.accepted, to: gateway, sequence: pbu.sequence, mn: mn, lifetime: lifetime, prefix: prefix,
                   options: a.options, &counters, &out)
            return
        }
        e.answered = nil
        if lifetime == 0 {
            counters.deregistrations += 1
            guard e.record.serving == gateway else {
                // Not (or no longer) the MN's gateway: nothing of the MN's changes.
                store(e)
                answer(BindingAckStatus.accepted, to: gateway, sequence: pbu.sequence, mn: mn, &counters, &out)
                return
            }
            e.record.serving = nil
            unbindRelayed(&e, &out) { _ in true }
            // Kept for the MN to come back to its anchors, for as long as a binding lasts.
            e.record.expires = time + Int64(configuration.bindingLifetime) * 1_000_000_000
        } else {
            if let i = e.record.anchors.firstIndex(where: { $0.gateway == gateway }) {
                e.record.anchors[i].prefix = prefix!
            } else {
                e.record.anchors.append(Anchoring(gateway: gateway, prefix: prefix!))
            }
            e.record.serving = gateway
            e.record.expires = time + Int64(lifetime) * 1_000_000_000
            // Back at an anchor, or at another of its operator's: its prefix
            // is served there, or tunnelled there directly, no longer relayed.
            unbindRelayed(&e, &out) { configuration.sameOperator($0, gateway) }
        }
        let former = e.record.anchors.filter { !(anchorsTraffic ? configuration.sameOperator($0.gateway, gateway) : $0.gateway == gateway) }
        if configuration.cmdMode == .locator || former.isEmpty {
            store(e)
            answer(BindingAckStatus.accepted, to: gateway, sequence: pbu.sequence, mn: mn, lifetime: lifetime, prefix: prefix,
                   options: configuration.cmdMode == .locator && lifetime > 0
                       ? former.map { MobilityOption.previousMAAR(maar: $0.gateway, prefix: $0.prefix) } : [], &counters, &out)
            return
        }
        var r = Relaying(serving: gateway, sequence: pbu.sequence, lifetime: lifetime, prefix: prefix, relays: former.map { Relay(anchor: $0) })
        for i in r.relays.indices { relay(&r.relays[i], for: mn, id: e.record.identity, serving: r.serving, lifetime: r.lifetime, time: time, &counters, &out) }
        e.relaying = r
        store(e)
    }

    // MARK: From the former anchors

    func received(_ pba: BindingAcknowledgement, from anchor: IPv6Address, time: Int64, _ counters: inout SignallingCounters,
                  _ out: inout ControlEffects) {
        counters.pbaReceived += 1
        let mn = ControlPlane.mn(in: pba.options)
        if let mn, var e = entries[mn], !e.moves.isEmpty,
           let p = e.moves.first(where: { $0.value.relay.anchor.gateway == anchor && $0.value.relay.waiting
                                           && ($0.value.relay.sequence == pba.sequence || pba.status == BindingAckStatus.sequenceNumberOutOfWindow) })?.key {
            answered(p, of: mn, &e, pba, from: anchor, time: time, &counters, &out)
            store(e)
            return
        }
        guard let mn, var e = entries[mn], var r = e.relaying,
              let i = r.relays.firstIndex(where: { $0.anchor.gateway == anchor }), r.relays[i].waiting else {
            counters.unexpected += 1
            return
        }
        if pba.status == BindingAckStatus.sequenceNumberOutOfWindow {
            // The anchor remembers a later number from us (we restarted): go on from there.
            counters.resynchronised += 1
            nextSequence = pba.sequence &+ 1
            r.relays[i].attempts = 0
            relay(&r.relays[i], for: mn, id: e.record.identity, serving: r.serving, lifetime: r.lifetime, time: time, &counters, &out)
            e.relaying = r
            store(e)
            return
        }
        guard pba.sequence == r.relays[i].sequence else {
            counters.unexpected += 1  // answers an earlier transmission
            return
        }
        if BindingAckStatus.isAccepted(pba.status) {
            let granted = Self.granted(in: pba.options)
            r.relays[i].state = .granted(granted)
            if anchorsTraffic { bindRelayed(granted, of: mn, from: anchor, to: r.serving, &e, &out) }
        } else {
            counters.refused += 1
            r.relays[i].state = .failed
            unbindRelayed(&e, &out) { $0 == anchor }
        }
        e.relaying = r
        settle(&e, time: time, &counters, &out)
        store(e)
    }

    /// What the serving gateway needs of an anchor's PBA: its prefixes, local networks and DLIF.
    private static func granted(in options: MobilityOptions) -> [MobilityOption] {
        var granted: [MobilityOption] = []
        for option in options {
            switch option {
            case .anchoredPrefix, .homeNetworkPrefix, .localPrefix, .dlifLinkLocalAddress, .dlifLinkLayerAddress: granted.append(option)
            default: break
            }
        }
        return granted
    }

    /// Retransmissions of relayed PBUs; records that ran out.
    func tick(_ time: Int64, _ counters: inout SignallingCounters, _ out: inout ControlEffects) {
        while let (mn, _) = timers.next(dueBy: time, isCurrent: { mn, due in entries[mn]?.due == due }) {
            var e = entries[mn]!
            if !e.moves.isEmpty, e.relaying != nil || e.record.expires > time {
                retransmitMoves(of: mn, &e, time: time, &counters, &out)
                if e.relaying == nil {
                    store(e)
                    continue
                }
            }
            guard var r = e.relaying else {
                counters.expired += 1
                unbindRelayed(&e, &out) { _ in true }
                put(nil, for: mn)
                if configuration.journal { journaled.append(mn) }
                continue
            }
            for i in r.relays.indices where r.relays[i].waiting && r.relays[i].due <= time {
                if r.relays[i].attempts >= relayAttempts {
                    counters.timeouts += 1
                    r.relays[i].state = .failed
                    let anchor = r.relays[i].anchor.gateway
                    unbindRelayed(&e, &out) { $0 == anchor }
                } else {
                    counters.pbuRetransmitted += 1
                    relay(&r.relays[i], for: mn, id: e.record.identity, serving: r.serving, lifetime: r.lifetime, time: time, &counters, &out)
                }
            }
            e.relaying = r
            settle(&e, time: time, &counters, &out)
            store(e)
        }
    }

    // MARK: An LMA's moves between operators

    /// A move's PBU from the gateway serving interface `mn` (or its
    /// refresh or end): relayed to the prefix's anchor, which the LMA's
    /// records know (the gateway that registered the prefix's own MN).
    private func move(_ prefix: IPv6Prefix, of mn: MACAddress, _ e: inout Entry, _ pbu: BindingUpdate, from gateway: IPv6Address,
                      time: Int64, _ counters: inout SignallingCounters, _ out: inout ControlEffects) {
        let lifetime = pbu.lifetime == 0 ? 0 : min(pbu.lifetimeSeconds, configuration.bindingLifetime)
        if var m = e.moves[prefix], m.serving == gateway, (m.lifetime == 0) == (lifetime == 0) {
            if m.relay.waiting {
                // A retransmission while the anchor is asked: answer this one when it has.
                m.sequence = pbu.sequence
                e.moves[prefix] = m
                store(e)
                return
            }
            if let r = m.refusal, time < r.until {
                store(e)
                answer(r.status, to: gateway, sequence: pbu.sequence, mn: mn, options: [.previousMAAR(maar: m.relay.anchor.gateway, prefix: prefix)],
                       &counters, &out)
                return
            }
        }
        guard let anchor = e.moves[prefix]?.relay.anchor.gateway ?? anchor(of: prefix, notOf: mn, besides: gateway) else {
            counters.rejected += 1
            store(e)
            answer(BindingAckStatus.notAuthorizedForHomeNetworkPrefix, to: gateway, sequence: pbu.sequence, mn: mn, &counters, &out)
            return
        }
        counters.accepted += 1
        // An MN the LMA knows only by its move: its record lasts as long.
        if e.record.serving == nil, e.record.anchors.isEmpty {
            e.record.expires = time + Int64(max(lifetime, configuration.bindingLifetime)) * 1_000_000_000
        }
        var m = Moving(serving: gateway, sequence: pbu.sequence, lifetime: lifetime,
                       handoff: ControlPlane.handoff(in: pbu.options) ?? HandoffIndicator.betweenInterfaces,
                       relay: Relay(anchor: Anchoring(gateway: anchor, prefix: prefix)))
        relay(&m.relay, for: mn, id: e.record.identity, serving: gateway, lifetime: lifetime, moving: m.handoff, time: time, &counters, &out)
        e.moves[prefix] = m
        store(e)
    }

    /// The gateway that registered `prefix` as another MN's own: a first
    /// move's anchor (the latest record that lists it; the move's later
    /// PBUs go where the first went).
    private func anchor(of prefix: IPv6Prefix, notOf mn: MACAddress, besides gateway: IPv6Address) -> IPv6Address? {
        for other in (anchoredBy[prefix] ?? []).reversed() where other != mn {
            if let a = entries[other]?.record.anchors.first(where: { $0.prefix == prefix && $0.gateway != gateway }) { return a.gateway }
        }
        return nil
    }

    /// The anchor's answer to a relayed move: passed on to the serving
    /// gateway after the anchor's Previous MAAR option; accepted, the
    /// prefix is bound between the two tunnels; refused or ended, unbound.
    private func answered(_ prefix: IPv6Prefix, of mn: MACAddress, _ e: inout Entry, _ pba: BindingAcknowledgement, from anchor: IPv6Address,
                          time: Int64, _ counters: inout SignallingCounters, _ out: inout ControlEffects) {
        var m = e.moves[prefix]!
        if pba.status == BindingAckStatus.sequenceNumberOutOfWindow {
            // The anchor remembers a later number from us (we restarted): go on from there.
            counters.resynchronised += 1
            nextSequence = pba.sequence &+ 1
            m.relay.attempts = 0
            relay(&m.relay, for: mn, id: e.record.identity, serving: m.serving, lifetime: m.lifetime, moving: m.handoff, time: time, &counters, &out)
            e.moves[prefix] = m
            return
        }
        let maar = MobilityOption.previousMAAR(maar: anchor, prefix: prefix)
        if BindingAckStatus.isAccepted(pba.status), m.lifetime > 0, pba.lifetime > 0 {
            let granted = Self.granted(in: pba.options)
            m.relay.state = .granted([])
            e.moves[prefix] = m
            bindRelayed(granted, of: mn, from: anchor, to: m.serving, &e, &out)
            answer(pba.status, to: m.serving, sequence: m.sequence, mn: mn, lifetime: min(m.lifetime, pba.lifetimeSeconds),
                   options: [maar] + granted, &counters, &out)
            return
        }
        if BindingAckStatus.isAccepted(pba.status) {
            e.moves[prefix] = nil  // ended
        } else {
            counters.refused += 1
            refuse(&m, pba.status, time: time)
            e.moves[prefix] = m
        }
        unbindMoved(prefix, from: anchor, &e, &out)
        answer(pba.status, to: m.serving, sequence: m.sequence, mn: mn, options: [maar], &counters, &out)
    }

    private func refuse(_ m: inout Moving, _ status: UInt8, time: Int64) {
        m.relay.state = .failed
        m.refusal = (status, time + configuration.initialRetransmit)
    }

    /// Moves' relays unanswered: sent again, or given up (the serving
    /// gateway is refused, its move ends).
    private func retransmitMoves(of mn: MACAddress, _ e: inout Entry, time: Int64, _ counters: inout SignallingCounters,
                                 _ out: inout ControlEffects) {
        for p in e.moves.keys.sorted(by: { ($0.address, $0.length) < ($1.address, $1.length) }) {
            guard var m = e.moves[p], m.relay.waiting, m.relay.due <= time else { continue }
            if m.relay.attempts >= relayAttempts {
                counters.timeouts += 1
                refuse(&m, BindingAckStatus.reasonUnspecified, time: time)
                e.moves[p] = m
                unbindMoved(p, from: m.relay.anchor.gateway, &e, &out)
                answer(BindingAckStatus.reasonUnspecified, to: m.serving, sequence: m.sequence, mn: mn,
                       options: [.previousMAAR(maar: m.relay.anchor.gateway, prefix: p)], &counters, &out)
            } else {
                counters.pbuRetransmitted += 1
                relay(&m.relay, for: mn, id: e.record.identity, serving: m.serving, lifetime: m.lifetime, moving: m.handoff, time: time,
                      &counters, &out)
                e.moves[p] = m
            }
        }
    }

    /// A Binding Revocation Indication from the anchor of a move relayed
    /// here (it took the prefix back): the prefix is unbound, the
    /// indication passed on to the serving gateway, and acknowledged.
    func received(_ br: BindingRevocation, from anchor: IPv6Address, time: Int64, _ counters: inout SignallingCounters,
                  _ out: inout ControlEffects) {
        guard anchorsTraffic else {
            counters.unexpected += 1  // a CMD relays no move
            return
        }
        guard br.type == BindingRevocationType.indication else { return }  // the serving gateway's acknowledgement
        var named: IPv6Prefix?
        for case .homeNetworkPrefix(let p) in br.options { named = p }
        let mn = ControlPlane.mn(in: br.options), id = mn.flatMap { ControlPlane.identity(in: br.options, of: $0) }
        var status = BindingRevocationStatus.bindingDoesNotExist
        if let mn, let p = named, var e = entries[mn],
           let serving = e.moves[p].flatMap({ $0.relay.anchor.gateway == anchor ? $0.serving : nil })
               ?? e.relayed[p].flatMap({ $0.anchor == anchor ? $0.serving : nil }) {
            e.moves[p] = nil
            unbindMoved(p, from: anchor, &e, &out)
            store(e)
            let bri = BindingRevocation(type: BindingRevocationType.indication, triggerOrStatus: br.triggerOrStatus, sequence: nextSequence,
                                        flags: br.flags, options: .built(ControlPlane.identify(mn, id: id.map(RawBytes.owned)) + [.homeNetworkPrefix(p)]))
            nextSequence &+= 1
            if let packet = ControlPlane.packet(.bindingRevocation(bri), from: configuration.address, to: serving, authenticator) {
                counters.revocationsSent += 1
                out.core.append(packet)
            }
            counters.revoked += 1
            status = BindingRevocationStatus.success
        } else {
            counters.unexpected += 1
        }
        var options = mn.map { ControlPlane.identify($0, id: id.map(RawBytes.owned)) } ?? []
        if let named { options.append(.homeNetworkPrefix(named)) }
        let bra = BindingRevocation(type: BindingRevocationType.acknowledgement, triggerOrStatus: status, sequence: br.sequence,
                                    flags: br.flags.intersection(.proxyBinding), options: .built(options))
        if let packet = ControlPlane.packet(.bindingRevocation(bra), from: configuration.address, to: anchor, authenticator) {
            out.core.append(packet)
        }
    }

    /// Removes a moved prefix's binding, and the anchor's local networks
    /// when no other prefix of this MN's comes from that anchor.
    private func unbindMoved(_ prefix: IPv6Prefix, from anchor: IPv6Address, _ e: inout Entry, _ out: inout ControlEffects) {
        if e.relayed[prefix]?.anchor == anchor {
            e.relayed[prefix] = nil
            out.bindings.append(.remove(prefix))
        }
        guard !e.relayed.values.contains(where: { $0.anchor == anchor }) else { return }
        for (l, a) in e.networks.sorted(by: { ($0.key.address, $0.key.length) < ($1.key.address, $1.key.length) }) where a == anchor {
            e.networks[l] = nil
            out.bindings.append(.unrouteLocalNetwork(l, anchor: anchor))
        }
    }

    // MARK: An LMA's data plane

    /// Binds the prefixes `anchor` granted between its tunnel and the serving gateway's.
    private func bindRelayed(_ granted: [MobilityOption], of mn: MACAddress, from anchor: IPv6Address, to serving: IPv6Address,
                       _ e: inout Entry, _ out: inout ControlEffects) {
        var mac = mn
        for case .dlifLinkLayerAddress(let l) in granted { mac = l.mac ?? mn }
        for case .localPrefix(let l) in granted where e.networks[l] == nil {
            e.networks[l] = anchor
            out.bindings.append(.routeLocalNetwork(l, anchor: anchor))
        }
        for option in granted {
            guard case .anchoredPrefix(let p) = option else { continue }
            if let was = e.relayed[p] {
                guard was.anchor == anchor else { continue }  // two anchors claim it: the first keeps it
                if was.serving == serving { continue }  // a refresh: bound as it was
            }
            e.relayed[p] = (anchor, serving)
            out.bindings.append(.install(mn: mn, prefix: p, anchor: anchor, serving: serving, dlifMAC: mac))
        }
    }

    /// Removes the relayed bindings (and local network routes) of the anchors `matching` says.
    private func unbindRelayed(_ e: inout Entry, _ out: inout ControlEffects, matching: (IPv6Address) -> Bool) {
        // In prefix order: the same effects on every run.
        for (p, r) in e.relayed.sorted(by: { ($0.key.address, $0.key.length) < ($1.key.address, $1.key.length) }) where matching(r.anchor) {
            e.relayed[p] = nil
            out.bindings.append(.remove(p))
        }
        for (l, anchor) in e.networks.sorted(by: { ($0.key.address, $0.key.length) < ($1.key.address, $1.key.length) }) where matching(anchor) {
            e.networks[l] = nil
            out.bindings.append(.unrouteLocalNetwork(l, anchor: anchor))
        }
    }

    // MARK: Messages

    /// Sends (again) the serving gateway's registration to one former
    /// anchor, as the CMD's own PBU naming the serving gateway.
    /// `moving`: a move's relay (its Handoff Indicator), the anchor's
    /// prefix as Home Network Prefix.
    private func relay(_ relay: inout Relay, for mn: MACAddress, id: [UInt8]?, serving: IPv6Address, lifetime: Int, moving: UInt8? = nil,
                       time: Int64, _ counters: inout SignallingCounters, _ out: inout ControlEffects) {
        relay.sequence = nextSequence
        nextSequence &+= 1
        relay.due = time + configuration.retransmitDelay(afterAttempts: relay.attempts)
        relay.attempts += 1
        var options = ControlPlane.identify(mn, id: id.map(RawBytes.owned), room: 1)
        if moving != nil {
            options.append(.homeNetworkPrefix(relay.anchor.prefix))
        } else if !anchorsTraffic {
            options.append(.servingMAAR(serving))
        }
        let pbu = ControlPlane.proxyBindingUpdate(sequence: relay.sequence, lifetime: lifetime,
                                                  handoff: moving ?? HandoffIndicator.betweenGatewaysSameInterface, options: options)
        if let packet = ControlPlane.packet(.bindingUpdate(pbu), from: configuration.address, to: relay.anchor.gateway, authenticator) {
            counters.pbuSent += 1
            out.core.append(packet)
        }
    }

    /// Once every former anchor answered or was given up: the one PBA to
    /// the serving gateway, with what each anchor granted.
    private func settle(_ e: inout Entry, time: Int64, _ counters: inout SignallingCounters, _ out: inout ControlEffects) {
        guard let r = e.relaying, !r.relays.contains(where: \.waiting) else { return }
        e.relaying = nil
        var options: [MobilityOption] = []
        if r.lifetime > 0 {
            for relay in r.relays {
                guard case .granted(let granted) = relay.state else { continue }
                options.append(.previousMAAR(maar: relay.anchor.gateway, prefix: relay.anchor.prefix))
                options += granted
            }
        }
        e.answered = Answered(serving: r.serving, prefix: r.prefix, lifetime: r.lifetime, options: options,
                              until: time + min(configuration.maxRetransmit, Int64(r.lifetime) * 250_000_000))
        answer(BindingAckStatus.accepted, to: r.serving, sequence: r.sequence, mn: e.record.mn, lifetime: r.lifetime, prefix: r.prefix,
               options: options, &counters, &out)
    }

    private func answer(_ status: UInt8, to gateway: IPv6Address, sequence: UInt16, mn: MACAddress?, lifetime: Int = 0,
                        prefix: IPv6Prefix? = nil, options more: [MobilityOption] = [], _ counters: inout SignallingCounters,
                        _ out: inout ControlEffects) {
        var options = mn.map { ControlPlane.identify($0, id: entries[$0]?.record.identity.map(RawBytes.owned)) } ?? []
        if lifetime > 0, let prefix { options.append(.homeNetworkPrefix(prefix)) }
        let pba = BindingAcknowledgement(status: status, flags: [.proxyRegistration, .distributedGateway], sequence: sequence,
                                         lifetime: UInt16(clamping: lifetime / 4), options: .built(options + more))
        if let packet = ControlPlane.packet(.bindingAcknowledgement(pba), from: configuration.address, to: gateway, authenticator) {
            counters.pbaSent += 1
            out.core.append(packet)
        }
    }
}
