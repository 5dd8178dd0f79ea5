// What the pipeline answers itself, off the fast path: Neighbor Discovery
// for the core address and core next hops, echo, and ICMPv6 errors.

import DGWWire

extension Pipeline {
    /// Records (or updates) a core neighbour.
    func learn(_ address: IPv6Address, _ mac: MACAddress) {
        if neighbors.learn(address, mac) { count(.neighborLearned) }
    }

    /// The core neighbour a packet for `destination` goes to: the
    /// destination itself when on-link, else the core gateway. Solicits it
    /// (at most once a second) when unknown.
    /// `known` is the neighbour's index when the caller has it (a peer, the
    /// core gateway): then a resolved MAC costs one load.
    @inline(__always)
    func nextHopMAC(for destination: IPv6Address, hop known: Int, time: Int64, _ out: inout [Packet]) -> MACAddress? {
        if known >= 0 {
            let mac = neighbors.mac(known)
            if mac != 0 { return MACAddress(value: mac) }
        }
        return resolve(destination, time: time, &out)
    }

    @inline(never)
    func resolve(_ destination: IPv6Address, time: Int64, _ out: inout [Packet]) -> MACAddress? {
        let hop = configuration.corePrefix.contains(destination) ? destination : (configuration.coreGateway ?? destination)
        guard let i = neighbors.index(of: hop) else { return nil }
        let known = neighbors.mac(i)
        if known != 0 { return MACAddress(value: known) }
        if neighbors.shouldSolicit(i, time: time) {
            let target = hop, me = configuration.address, mac = configuration.coreMAC
            let sent = emitFrame(on: .core, time: time, &out) { b in
                try Self.ipv6Frame(b, from: mac, to: MACAddress(multicast: target.solicitedNodeMulticast), source: me,
                                   destination: target.solicitedNodeMulticast, hopLimit: 255) { payload in
                    try ICMPv6Message.neighborSolicitation(target: target, options: .built([.sourceLinkLayerAddress(LinkLayerAddress(mac))]))
                        .emit(into: payload, source: me, destination: target.solicitedNodeMulticast)
                }
            }
            if sent { count(.neighborSolicited) }
        }
        return nil
    }

    func slowPathICMPv6(_ p: inout Packet, _ eth: EthernetFrame, _ ip: IPv6Packet, _ bytes: UnsafeRawBufferPointer,
                        _ out: inout [Packet]) {
        guard let icmp = try? ICMPv6Packet(checking: bytes),
              let message = try? ICMPv6Message.parse(icmp, source: ip.source, destination: ip.destination) else {
            p.verdict = .drop(.malformed)
            return
        }
        let me = configuration.address, mac = configuration.coreMAC
        switch message {
        case .neighborSolicitation(let target, let options) where target == me && ip.hopLimit == 255:
            let requester = options.sourceLinkLayerAddress?.mac ?? eth.source
            if !ip.source.isUnspecified { learn(ip.source, requester) }
            // To a DAD probe (unspecified source) the answer goes to all nodes (RFC 4861 7.2.4).
            let to = ip.source.isUnspecified ? IPv6Address.allNodes : ip.source
            let toMAC = ip.source.isUnspecified ? MACAddress(multicast: .allNodes) : requester
            let sent = emitFrame(on: .core, time: p.time, &out) { b in
                try Self.ipv6Frame(b, from: mac, to: toMAC, source: me, destination: to, hopLimit: 255) { payload in
                    try ICMPv6Message.neighborAdvertisement(NeighborAdvertisement(
                        router: true, solicited: !ip.source.isUnspecified, override: true, target: me,
                        options: .built([.targetLinkLayerAddress(LinkLayerAddress(mac))])))
                        .emit(into: payload, source: me, destination: to)
                }
            }
            if sent { count(.neighborAdvertised) }
            p.verdict = .consumed
        case .neighborAdvertisement(let na) where ip.hopLimit == 255:
            // Only for hops asked about (an unsolicited NA creates nothing).
            if neighbors.index(of: na.target, adding: false) != nil {
                learn(na.target, na.options.targetLinkLayerAddress?.mac ?? eth.source)
            }
            p.verdict = .consumed
        case .echoRequest(let id, let seq, let data) where ip.destination == me:
            let to = ip.source, toMAC = eth.source
            let sent = emitFrame(on: .core, time: p.time, &out) { b in
                try Self.ipv6Frame(b, from: mac, to: toMAC, source: me, destination: to, hopLimit: 64) { payload in
                    try ICMPv6Message.echoReply(identifier: id, sequence: seq, data: data).emit(into: payload, source: me, destination: to)
                }
            }
            if sent { count(.echoReplied) }
            p.verdict = .consumed
        case .routerSolicitation, .routerAdvertisement, .neighborSolicitation, .neighborAdvertisement:
            count(.puntedNeighborDiscovery)
            p.verdict = .drop(.punted)
        default:
            count(.puntedForGateway)
            p.verdict = .drop(.punted)
        }
    }

    /// An ICMPv6 error about `ip`, back where it came from, within the rate
    /// limit and the rules of RFC 4443 2.4 (e): never about an ICMPv6 error,
    /// a multicast destination, or an unspecified or multicast source.
    func icmpError(_ message: ICMPv6Message, about ip: IPv6Packet, from eth: EthernetFrame, on port: GatewayPort,
                   _ out: inout [Packet]) {
        if ip.source.isMulticast || ip.source.isUnspecified || ip.destination.isMulticast { return }
        var chain = IPv6HeaderChain(packet: ip)
        if let upper = try? chain.skipToUpperLayer(), upper.protocol == IPProtocol.icmpv6,
           let t = upper.bytes.first, t < 128 { return }
        guard takeToken(at: currentTime) else { count(.icmpRateLimited); return }
        let me = configuration.address
        let from = port == .core ? configuration.coreMAC : eth.destination
        let toMAC = eth.source, to = ip.source
        let sent = emitFrame(on: port, time: currentTime, &out) { b in
            try Self.ipv6Frame(b, from: from, to: toMAC, source: me, destination: to, hopLimit: 64) { payload in
                try message.emit(into: payload, source: me, destination: to)
            }
        }
        if sent { count(.icmpError) }
    }

    func takeToken(at time: Int64) -> Bool { icmpBucket.take(at: time, rate: configuration.icmpRate) }

    /// Writes a frame the gateway originates into a fresh slot.
    func emitFrame(on port: GatewayPort, time: Int64, _ out: inout [Packet],
                   _ build: (UnsafeMutableRawBufferPointer) throws -> Int) -> Bool {
        guard let slot = pool.allocate() else {
            count(.poolExhausted)
            return false
        }
        let room = pool.slot(slot).slice(PacketPool.headroom..<pool.slotSize)
        guard let n = try? build(room) else {
            pool.release(slot)
            return false
        }
        var packet = Packet(slot: slot, offset: PacketPool.headroom, length: n, port: port, time: time)
        packet.verdict = .forward(port)
        out.append(packet)
        return true
    }

    /// Ethernet + IPv6 + what `payload` writes (returning its length).
    static func ipv6Frame(_ b: UnsafeMutableRawBufferPointer, from: MACAddress, to: MACAddress, source: IPv6Address,
                          destination: IPv6Address, hopLimit: UInt8,
                          _ payload: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Int {
        guard b.count >= 54 else { throw WireError.bufferTooSmall }
        try EthernetHeader(destination: to, source: from, etherType: EtherType.ipv6).emit(into: b)
        let n = try payload(b.slice(54..<b.count))
        try IPv6Header(payloadLength: n, nextHeader: IPProtocol.icmpv6, hopLimit: hopLimit, source: source,
                       destination: destination).emit(into: b.slice(14..<54))
        return 54 + n
    }
}

/// A token bucket on packet time: `rate` a second, bursts as large.
struct TokenBucket {
    var tokens: Double
    var last: Int64 = .min

    init(rate: Int) { tokens = Double(rate) }

    mutating func take(at time: Int64, rate: Int) -> Bool {
        let rate = Double(rate)
        if last != .min && time > last {
            tokens = min(rate, tokens + Double(time - last) * 1e-9 * rate)
        }
        last = max(last, time)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
