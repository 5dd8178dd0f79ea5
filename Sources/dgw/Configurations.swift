// The configuration file turned into what the data plane and the access
// router are made from: the same for `dgw replay` and `dgw run`.

import Crypto
import DGWConfig
import DGWControl
import DGWPipeline
import DGWWire

extension PipelineConfiguration {
    init(_ g: GatewayConfig) {
        let bindings = g.staticBindings.map { b -> BindingEntry in
            func address(_ e: Endpoint) -> IPv6Address? { if case .peer(let a) = e { return a }; return nil }
            return BindingEntry(mn: b.mn, prefix: b.prefix, anchor: address(b.anchor), serving: address(b.serving), dlifMAC: b.dlifMAC)
        }
        self.init(address: g.address, coreMAC: g.coreMAC, coreMTU: g.core.port.mtu, corePrefix: g.core.prefix,
                  coreGateway: g.core.gateway, bindings: bindings, neighbors: g.neighbors.map { ($0.address, $0.mac) })
        localNetworks = g.localNetworks.map(\.prefix)
        peers = g.peers.map(\.address) + [g.cmd, g.lma].compactMap { $0 }
        if !g.attachOnTraffic { unknownMNPuntRate = 0 }
        dynamicBindings = g.mnCapacity
        holdNanoseconds = Int64(g.holdMilliseconds) * 1_000_000
        // An LMA: a million prefixes relayed between operators.
        if g.role == .lma {
            dynamicBindings = 1 << 20
            relaysLocalNetworks = true
        }
    }
}

extension GatewayConfig {
    /// The MNs a gateway makes room for at start: every /64 of its pool,
    /// at most a million.
    var mnCapacity: Int {
        guard let pool = prefixPool, access != nil else { return 0 }
        return 64 - Int(pool.length) >= 20 ? 1 << 20 : 1 << (64 - Int(pool.length))
    }
}

extension AccessRouterConfiguration {
    /// The DLIFs of the MNs served here, one per MN and anchor, from the
    /// static bindings; RA timing and lifetimes from `ra:`.
    init(_ g: GatewayConfig) {
        self.init()
        interval = g.ra.intervalSeconds
        routerLifetime = g.ra.routerLifetime
        validLifetime = g.ra.validLifetime
        preferredLifetime = g.ra.preferredLifetime
        mtu = g.access?.mtu ?? 1500
        prefixPool = g.prefixPool
        localNetworks = g.localNetworks.map(\.prefix)
        reserved = g.staticBindings.map(\.prefix)
        subscribers = g.subscribers.map { Set($0.flatMap(\.macs)) }
        let address = g.address
        if let pool = g.prefixPool {
            logicalMAC = { _, prefix in DLIF.logicalMAC(anchor: address, pool: pool, prefix: prefix) }
        } else {
            logicalMAC = { mn, _ in DGWPipeline.logicalMAC(anchor: address, mn: mn) }
        }
        struct Key: Hashable { var mn: UInt64, dlif: UInt64 }
        var index: [Key: Int] = [:]
        for b in g.staticBindings where b.serving == .this {
            let anchor: IPv6Address? = if case .peer(let a) = b.anchor { a } else { nil }
            let mac = b.dlifMAC ?? DGWPipeline.logicalMAC(anchor: anchor ?? g.address, mn: b.mn)
            let key = Key(mn: b.mn.value, dlif: mac.value)
            if let i = index[key] {
                dlifs[i].prefixes.append(b.prefix)
            } else {
                index[key] = dlifs.count
                // This gateway's local networks; another anchor's come with its PBA (issue 6).
                dlifs.append(DLIF(mn: b.mn, mac: mac, anchor: anchor, prefixes: [b.prefix],
                                  localNetworks: anchor == nil ? g.localNetworks.map(\.prefix) : []))
            }
        }
    }
}

extension ControlPlaneConfiguration {
    /// Signalling peers, binding timers and the MNs anchored here statically.
    init(_ g: GatewayConfig) {
        self.init(address: g.address)
        peers = g.peers.map(\.address) + [g.cmd, g.lma].compactMap { $0 }
        bindingLifetime = g.binding.lifetime
        initialRetransmit = Int64(g.binding.initialRetransmitMs) * 1_000_000
        maxRetransmit = Int64(g.binding.maxRetransmitMs) * 1_000_000
        maxAttempts = g.binding.maxAttempts
        localNetworks = g.localNetworks.map(\.prefix)
        role = switch g.role { case .dgw: .gateway; case .cmd: .database; case .lma: .lma }
        cmd = g.cmd
        lma = g.role == .dgw ? g.lma : nil
        for p in g.peers { operators[p.address] = p.operator }
        cmdMode = g.cmdMode == .locator ? .locator : .relay
        access = AccessRouterConfiguration(g)
        capacity = g.mnCapacity
        logicalMAC = { DGWPipeline.logicalMAC(anchor: $0, mn: $1) }
        for s in g.subscribers ?? [] {
            if let id = s.id { for mac in s.macs { identities[mac] = Array(id.utf8) } }
        }
        for a in g.auth { keys[a.peer] = SignallingKey(spi: a.spi, secret: a.key) }
        replayWindow = Int64(g.authWindowSeconds) * 1_000_000_000
        if !keys.isEmpty {
            hmacSHA256 = { key, data in Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key))) }
        }
        // An LMA's: between two peers (the file's check), held in its records.
        for b in g.staticBindings where g.role == .lma {
            guard case .peer(let anchor) = b.anchor, case .peer(let serving) = b.serving else { continue }
            relayed.append(RelayedBinding(mn: b.mn, prefix: b.prefix, anchor: anchor, serving: serving))
        }
        for b in g.staticBindings where b.anchor == .this {
            let serving: AnchoredMN.Serving = if case .peer(let p) = b.serving { .peer(p) } else { .here }
            anchored.append(AnchoredMN(mn: b.mn, prefix: b.prefix, dlifMAC: b.dlifMAC ?? DGWPipeline.logicalMAC(anchor: g.address, mn: b.mn),
                                       serving: serving))
        }
    }
}

extension SignallingCounters {
    /// The summaries' "signalling" object (zeros left out).
    var json: String {
        let pairs = [("pbu_sent", pbuSent), ("pbu_retransmitted", pbuRetransmitted), ("pbu_received", pbuReceived),
                     ("pba_sent", pbaSent), ("pba_received", pbaReceived), ("accepted", accepted), ("rejected", rejected),
                     ("refused", refused), ("timeouts", timeouts), ("expired", expired), ("deregistrations", deregistrations),
                     ("resynchronised", resynchronised), ("unknown_peer", unknownPeer), ("unauthenticated", unauthenticated),
                     ("replayed", replayed), ("stale", stale), ("malformed", malformed),
                     ("unexpected", unexpected), ("not_signalling", notSignalling),
                     ("held_back_after_refusal", heldBackAfterRefusal), ("anchors_relearnt", anchorsRelearnt),
                     ("revocations_sent", revocationsSent), ("revoked", revoked)]
        return "{" + pairs.filter { $0.1 != 0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

extension AccessRouterCounters {
    /// The summaries' "control" object (zeros left out).
    var json: String {
        let pairs = [("router_solicitations", routerSolicitations), ("neighbor_solicitations", neighborSolicitations),
                     ("router_advertisements", routerAdvertisements), ("neighbor_advertisements", neighborAdvertisements),
                     ("ignored", ignored), ("too_large", tooLarge), ("attached", attached), ("attached_on_traffic", attachedOnTraffic),
                     ("not_subscribed", notSubscribed), ("pool_exhausted", poolExhausted)]
        return "{" + pairs.filter { $0.1 != 0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
