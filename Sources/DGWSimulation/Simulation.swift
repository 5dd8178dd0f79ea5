// An in-process domain of gateways, mobile nodes and correspondents wired
// through memory (DESIGN.md: the same code runs live, in replay and "in
// multi-gateway simulations in one process"). Each gateway is the real
// thing, the data plane (Pipeline over GatewayTables) and the control plane
// (ControlPlane), fed frames and time; only the links are simulated: one
// core segment, and one access link ("cell") per gateway that an MN is
// moved between. Time is virtual and the run deterministic.

import DGWControl
import DGWGateway
import DGWPipeline
import DGWWire

/// One gateway: its data plane and control plane, and the glue `dgw run`
/// and `dgw replay` also are (punts to the control plane, its binding
/// changes to the tables, its packets framed for the core).
public final class SimulatedGateway {
    public let name: String
    public let address: IPv6Address
    public let coreMAC: MACAddress
    public let pipelineConfiguration: PipelineConfiguration
    public let controlConfiguration: ControlPlaneConfiguration
    public private(set) var tables: GatewayTables
    public private(set) var pipeline: Pipeline
    public private(set) var control: ControlPlane
    let pool = PacketPool(count: 64)
    /// Binding changes the tables refused, and signalling with no next hop known.
    public private(set) var refusedChanges = 0
    public private(set) var unresolvedSignalling = 0

    public init(name: String, pipeline p: PipelineConfiguration, control c: ControlPlaneConfiguration) throws {
        self.name = name
        address = p.address
        coreMAC = p.coreMAC
        pipelineConfiguration = p
        controlConfiguration = c
        tables = try GatewayTables(p)
        pipeline = Pipeline(pool: pool, tables: tables)
        control = ControlPlane(c)
    }

    /// A restart: every table and all control state lost, sequence numbers from `initialSequence`.
    /// Signed messages' identifiers start again from `firstMessageIdentifier` when given.
    /// A new process in this gateway's place: what it kept, nothing; what
    /// it reads at start, `configure` and `pipeline` say (a CMD's or an
    /// LMA's saved state, say).
    public func restart(initialSequence: UInt16 = 0, firstMessageIdentifier: UInt64? = nil,
                        configure: (inout ControlPlaneConfiguration) -> Void = { _ in },
                        pipeline configurePipeline: (inout PipelineConfiguration) -> Void = { _ in }) throws {
        var p = pipelineConfiguration
        configurePipeline(&p)
        tables = try GatewayTables(p)
        pipeline = Pipeline(pool: pool, tables: tables)
        var c = controlConfiguration
        if let firstMessageIdentifier { c.firstMessageIdentifier = firstMessageIdentifier }
        configure(&c)
        control = ControlPlane(c, initialSequence: initialSequence)
    }

    /// What the gateway sends when `frame` arrives on `port` at `time`.
    public func receive(_ frame: [UInt8], on port: GatewayPort, time: Int64) -> [Emitted] {
        guard var p = frame.withUnsafeBytes({ pool.load($0, port: port, time: time) }) else { return [] }
        var generated: [Packet] = []
        withUnsafeMutablePointer(to: &p) { pipeline.process(UnsafeMutableBufferPointer(start: $0, count: 1), generated: &generated) }
        var out: [Emitted] = []
        var applied = false
        switch p.verdict {
        case .forward(let to):
            out.append(Emitted(port: to, time: time, frame: Array(pool.bytes(p))))
        case let v where v.isPunted:
            let bytes = UnsafeRawBufferPointer(pool.bytes(p))
            out = apply(port == .access ? control.access(bytes, time: time) : control.core(bytes, time: time), time: time)
            applied = true
        default:
            break
        }
        for g in generated {
            if case .forward(let to) = g.verdict { out.append(Emitted(port: to, time: time, frame: Array(pool.bytes(g)))) }
        }
        pool.release(p.slot)
        for q in generated { pool.release(q.slot) }
        // `apply` released and retried the held frames already, after the
        // last change of the tables.
        if !applied {
            releaseHeld(time: time, into: &out)
            retryHeldFrames(time: time, into: &out)
        }
        return out
    }

    /// Frames the pipeline held for a binding, decided again if the tables
    /// changed or their time is up (`Pipeline.processHeld`).
    func retryHeldFrames(time: Int64, into out: inout [Emitted]) {
        guard pipeline.holding else { return }
        let batch = UnsafeMutableBufferPointer<Packet>.allocate(capacity: pool.count / 2)
        defer { batch.deallocate() }
        var generated: [Packet] = []
        pipeline.drainHeld(now: time, into: batch, generated: &generated) { decided, generated in
            for p in decided + generated {
                if case .forward(let to) = p.verdict { out.append(Emitted(port: to, time: time, frame: Array(pool.bytes(p)))) }
                pool.release(p.slot)
            }
            generated.removeAll()
        }
    }

    /// Signalling that waited for its next hop's advertisement.
    func releaseHeld(time: Int64, into out: inout [Emitted]) {
        let held = tables.releaseHeld(time: time)
        unresolvedSignalling += held.expired
        for frame in held.frames { out.append(Emitted(port: .core, time: time, frame: frame)) }
    }

    public func attach(_ mn: MACAddress, previous: [IPv6Address], time: Int64) -> [Emitted] {
        apply(control.attach(mn, previous: previous, time: time), time: time)
    }

    public func detach(_ mn: MACAddress, time: Int64) -> [Emitted] {
        apply(control.detach(mn, time: time), time: time)
    }

    public func tick(_ time: Int64) -> [Emitted] { apply(control.tick(time), time: time) }

    /// `dgw ctl move-prefix` at this gateway.
    public func movePrefix(_ prefix: IPv6Prefix, of id: [UInt8], to mac: MACAddress, anchor: IPv6Address?,
                           time: Int64) throws(MoveRefusal) -> [Emitted] {
        apply(try control.movePrefix(prefix, of: id, to: mac, anchor: anchor, time: time), time: time)
    }

    /// Binding changes first (so that what the frames announce is in place), then the frames.
    func apply(_ e: consuming ControlEffects, time: Int64) -> [Emitted] {
        var e = e
        let applied = tables.apply(&e, time: time)
        refusedChanges += applied.refused.count
        unresolvedSignalling += applied.unresolved.count
        var out: [Emitted] = []
        out.reserveCapacity(e.access.count + e.core.count)
        for a in e.access { out.append(Emitted(port: .access, time: a.time, frame: a.frame)) }
        for c in e.core { out.append(Emitted(port: .core, time: time, frame: c.frame)) }
        control.recycle(&e)
        releaseHeld(time: time, into: &out)
        retryHeldFrames(time: time, into: &out)
        return out
    }
}

/// A frame a gateway sends.
public struct Emitted: Sendable {
    public var port: GatewayPort
    public var time: Int64
    public var frame: [UInt8]
}

/// A plain IPv6 host: an MN on an access link (it configures itself from
/// RAs by SLAAC, deprecated prefixes included, and follows RIOs), or a
/// correspondent on the core (fixed address, a route per gateway).
public final class SimulatedHost {
    public struct Address: Equatable, Sendable {
        public var address: IPv6Address
        public var preferred: Bool
        /// The router (DLIF MAC) that advertised its prefix.
        public var router: MACAddress
    }
    public struct Received: Equatable, Sendable {
        public var time: Int64
        public var source: IPv6Address
        public var destination: IPv6Address
        public var payload: [UInt8]
        /// Who put it on this link.
        public var from: MACAddress
    }
    public let name: String
    public let mac: MACAddress
    public private(set) var addresses: [Address] = []
    /// RIO routes (an MN) or routes to the gateways (a correspondent).
    public var routes: [(prefix: IPv6Prefix, router: MACAddress)] = []
    public private(set) var defaultRouter: MACAddress?
    private var defaultPreference = Int.min
    public private(set) var received: [Received] = []
    public private(set) var advertisements = 0
    /// Forwards what is not for it along `routes` (a router on the core).
    public var forwards = false

    public init(name: String, mac: MACAddress, addresses: [IPv6Address] = []) {
        self.name = name
        self.mac = mac
        self.addresses = addresses.map { Address(address: $0, preferred: true, router: mac) }
    }

    /// The address this host has in `prefix`, if any.
    public func address(in prefix: IPv6Prefix) -> Address? { addresses.first { prefix.contains($0.address) } }

    /// The address a new flow would use: a preferred one, the latest configured.
    public var preferredAddress: IPv6Address? { addresses.last { $0.preferred }?.address }

    /// A UDP datagram from `source` to `destination`, framed for its next hop.
    public func udp(from source: IPv6Address, to destination: IPv6Address, payload: [UInt8]) -> [UInt8]? {
        guard let router = routes.filter({ $0.prefix.contains(destination) }).max(by: { $0.prefix.length < $1.prefix.length })?.router
                ?? defaultRouter else { return nil }
        var bytes = [UInt8](zeroed: 14 + 40 + 8 + payload.count)
        bytes.withUnsafeMutableBytes { b in
            try! EthernetHeader(destination: router, source: mac, etherType: EtherType.ipv6).emit(into: b)
            let n = try! payload.withUnsafeBytes {
                try UDPHeader(sourcePort: 40000, destinationPort: 9).emit(payload: $0, into: UnsafeMutableRawBufferPointer(rebasing: b[54...]),
                                                                        source: source, destination: destination)
            }
            try! IPv6Header(payloadLength: n, nextHeader: IPProtocol.udp, hopLimit: 64, source: source, destination: destination)
                .emit(into: UnsafeMutableRawBufferPointer(rebasing: b[14..<54]))
        }
        return bytes
    }

    /// Takes a frame off the link; returns the frame it forwards, if it
    /// `routes` (a correspondent that is the core's router too).
    @discardableResult
    func receive(_ frame: [UInt8], time: Int64) -> [UInt8]? {
        frame.withUnsafeBytes { b -> [UInt8]? in
            guard let eth = try? EthernetFrame(checking: b), eth.destination == mac || eth.destination.isMulticast,
                  eth.etherType == EtherType.ipv6, let ip = try? IPv6Packet(checking: eth.payload) else { return nil }
            if forwards, !eth.destination.isMulticast, !addresses.contains(where: { $0.address == ip.destination }) {
                guard ip.hopLimit > 1, let next = routes.filter({ $0.prefix.contains(ip.destination) })
                    .max(by: { $0.prefix.length < $1.prefix.length })?.router else { return nil }
                var onward = frame
                onward.withUnsafeMutableBytes { o in
                    next.write(to: o, at: 0)
                    mac.write(to: o, at: 6)
                    o[14 + 7] -= 1
                }
                return onward
            }
            switch ip.nextHeader {
            case IPProtocol.udp:
                guard addresses.contains(where: { $0.address == ip.destination }),
                      let udp = try? UDPPacket(checking: ip.payload), udp.checksumIsValid(source: ip.source, destination: ip.destination)
                else { return nil }
                received.append(Received(time: time, source: ip.source, destination: ip.destination, payload: Array(udp.payload),
                                         from: eth.source))
                return nil
            case IPProtocol.icmpv6:
                guard let icmp = try? ICMPv6Packet(checking: ip.payload),
                      case .routerAdvertisement(let ra)? = try? ICMPv6Message.parse(icmp, source: ip.source, destination: ip.destination)
                else { return nil }
                learn(ra, from: eth.source)
                return nil
            default:
                return nil
            }
        }
    }

    /// SLAAC (RFC 4862) with the modified EUI-64 of the MAC, router selection (RFC 4191).
    private func learn(_ ra: RouterAdvertisement, from router: MACAddress) {
        advertisements += 1
        for option in ra.options {
            switch option {
            case .prefixInformation(let pi) where pi.prefix.length == 64 && pi.autonomous:
                let a = IPv6Address(high: pi.prefix.address.high, low: DLIF.linkLocal(of: mac).low)
                let entry = Address(address: a, preferred: pi.preferredLifetime > 0, router: router)
                if let i = addresses.firstIndex(where: { $0.address == a }) {
                    if pi.validLifetime == 0 { addresses.remove(at: i) } else { addresses[i] = entry }
                } else if pi.validLifetime > 0 {
                    addresses.append(entry)
                }
            case .routeInformation(let rio):
                routes.removeAll { $0.prefix == rio.prefix }
                if rio.lifetime > 0 { routes.append((rio.prefix, router)) }
            default:
                break
            }
        }
        let preference = ra.preference == .high ? 1 : ra.preference == .low ? -1 : 0
        if ra.routerLifetime > 0, defaultRouter == nil || defaultRouter == router || preference > defaultPreference {
            defaultRouter = router
            defaultPreference = preference
        }
    }
}

/// The domain: gateways on one core segment, a cell per gateway, hosts.
public final class Simulation {
    public private(set) var now: Int64 = 0
    public let gateways: [SimulatedGateway]
    public let correspondents: [SimulatedHost]
    public private(set) var mobiles: [SimulatedHost] = []
    /// Which gateway's cell each MN is in.
    public private(set) var cell: [MACAddress: Int] = [:]
    public var coreLatency: Int64 = 1_000_000
    public var accessLatency: Int64 = 100_000
    /// Added to the core latency of signalling (Mobility Header) frames:
    /// a control plane that answers later than its data plane forwards
    /// (live, a punted frame waits for the control plane's thread).
    public var signallingLatency: Int64 = 0
    /// Probability that a signalling packet (Mobility Header) is lost on the core.
    public var signallingLoss = 0.0
    /// Core stations that are down: every frame to or from them is lost.
    public var down: Set<MACAddress> = []
    public private(set) var signallingLost = 0
    /// Every frame every gateway sent, in order, with its time: for tshark.
    public private(set) var trace: [(time: Int64, frame: [UInt8])] = []

    private enum Target { case gatewayAccess(Int), gatewayCore(Int), core(from: MACAddress), cell(Int) }
    private var queue: [(time: Int64, order: Int, target: Target, frame: [UInt8])] = []
    private var order = 0
    private var random: UInt64

    public init(gateways: [SimulatedGateway], correspondents: [SimulatedHost], seed: UInt64 = 1) {
        self.gateways = gateways
        self.correspondents = correspondents
        random = seed
    }

    public func add(_ mn: SimulatedHost) { mobiles.append(mn) }

    /// Puts a host into gateway `g`'s cell with no attach trigger: a host
    /// the gateway knows from its configuration (a local network's, say).
    public func place(_ host: SimulatedHost, in g: Int) {
        if !mobiles.contains(where: { $0 === host }) { mobiles.append(host) }
        cell[host.mac] = g
    }

    /// Restarts the loss draws from `seed`.
    public func seed(_ seed: UInt64) { random = seed }

    /// Puts the MN into gateway `g`'s cell and, as an access point's
    /// association event would, triggers its attach there with its former
    /// anchors (`previous`); `detachFrom` sends the old gateway the detach.
    public func move(_ mn: SimulatedHost, to g: Int, previous: [IPv6Address] = [], detachFrom: Int? = nil) {
        if let old = detachFrom { detach(mn, from: old) }
        cell[mn.mac] = g
        emit(gateways[g].attach(mn.mac, previous: previous, time: now), from: g)
    }

    /// The MN leaves gateway `g`'s cell (its detach trigger), for no other.
    public func detach(_ mn: SimulatedHost, from g: Int) {
        if cell[mn.mac] == g { cell[mn.mac] = nil }
        emit(gateways[g].detach(mn.mac, time: now), from: g)
    }

    /// `dgw ctl move-prefix` run at gateway `g`: `prefix` of MN-ID `id` to its interface `mac`.
    public func movePrefix(_ prefix: IPv6Prefix, of id: String, to mac: MACAddress, anchor: IPv6Address? = nil,
                           at g: Int) throws(MoveRefusal) {
        emit(try gateways[g].movePrefix(prefix, of: Array(id.utf8), to: mac, anchor: anchor, time: now), from: g)
    }

    /// The MN sends a frame on its cell.
    public func send(_ frame: [UInt8], from mn: SimulatedHost) {
        guard let g = cell[mn.mac] else { return }
        schedule(now + accessLatency, .gatewayAccess(g), frame)
    }

    /// A correspondent sends a frame on the core.
    public func send(_ frame: [UInt8], fromCorrespondent host: SimulatedHost) {
        schedule(now + coreLatency, .core(from: host.mac), frame)
    }

    /// Runs every event and timer up to `time`, then sets the clock there.
    public func run(until time: Int64) {
        while true {
            let nextEvent = queue.first?.time ?? .max
            let nextTimer = gateways.compactMap { $0.control.nextDeadline }.min().map { max($0, now) } ?? .max
            let next = min(nextEvent, nextTimer)
            guard next <= time else { break }
            now = next
            if nextTimer <= nextEvent {
                for (i, g) in gateways.enumerated() where (g.control.nextDeadline ?? .max) <= now { emit(g.tick(now), from: i) }
                continue
            }
            let e = queue.removeFirst()
            deliver(e.frame, to: e.target)
        }
        now = max(now, time)
    }

    public func run(for duration: Int64) { run(until: now + duration) }

    private func deliver(_ frame: [UInt8], to target: Target) {
        switch target {
        case .gatewayAccess(let g): emit(gateways[g].receive(frame, on: .access, time: now), from: g)
        case .gatewayCore(let g): emit(gateways[g].receive(frame, on: .core, time: now), from: g)
        case .cell(let g):
            for mn in mobiles where cell[mn.mac] == g { mn.receive(frame, time: now) }
        case .core(let sender):
            let destination = MACAddress(value: frame.prefix(6).reduce(0) { $0 << 8 | UInt64($1) })
            if down.contains(sender) || down.contains(destination) { return }
            if isSignalling(frame), signallingLoss > 0, nextRandom() < signallingLoss {
                signallingLost += 1
                return
            }
            for (i, g) in gateways.enumerated() where g.coreMAC != sender && (destination.isMulticast || g.coreMAC == destination) {
                schedule(now, .gatewayCore(i), frame)
            }
            for host in correspondents where host.mac != sender && (destination.isMulticast || host.mac == destination) {
                if let onward = host.receive(frame, time: now) { schedule(now + coreLatency, .core(from: host.mac), onward) }
            }
        }
    }

    private func emit(_ frames: [Emitted], from g: Int) {
        for e in frames {
            trace.append((e.time, e.frame))
            switch e.port {
            case .access: schedule(e.time + accessLatency, .cell(g), e.frame)
            case .core:
                let latency = coreLatency + (isSignalling(e.frame) ? signallingLatency : 0)
                schedule(e.time + latency, .core(from: gateways[g].coreMAC), e.frame)
            }
        }
    }

    private func schedule(_ time: Int64, _ target: Target, _ frame: [UInt8]) {
        order += 1
        let i = queue.firstIndex { $0.time > time } ?? queue.count  // FIFO among equal times
        queue.insert((time, order, target, frame), at: i)
    }

    private func isSignalling(_ frame: [UInt8]) -> Bool { frame.count > 20 && frame[12] == 0x86 && frame[13] == 0xDD && frame[20] == IPProtocol.mobility }

    /// SplitMix64, as a fraction in [0, 1).
    private func nextRandom() -> Double {
        random &+= 0x9E37_79B9_7F4A_7C15
        var z = random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}

extension Simulation {
    /// A domain of `count` gateways on 2001:db8:ffff::/64 (gateway i at
    /// ::i, pool 2001:db8:i::/48, local network 2001:db8:i:aaaa::/64 say,
    /// when `localNetworks`), one correspondent at ::c reachable from each
    /// and routing between them (the core's router, the gateways' default).
    /// With `cmd`, a Central Mobility Database at ::100 (the last of
    /// `gateways`), in that mode, with which every gateway registers its MNs.
    /// With `lma`, an inter-operator LMA at ::200 (the last of `gateways`)
    /// relays the signalling between gateways of different operators and
    /// anchors the traffic between them. `operators[i]` runs gateway i + 1
    /// (by default, with an LMA, each gateway is an operator of its own):
    /// only gateways of one operator are each other's peers, and the CMD
    /// is the first gateway's operator's.
    public static func domain(gateways count: Int, bindings: Int = 64, localNetworks: Bool = true, cmd mode: CMDMode? = nil,
                              lma: Bool = false, operators: [Int]? = nil,
                              configure: (inout ControlPlaneConfiguration) -> Void = { _ in },
                              pipeline configurePipeline: (inout PipelineConfiguration) -> Void = { _ in }) throws -> Simulation {
        let operators = operators ?? (1...count).map { lma ? $0 : 1 }
        precondition(operators.count == count)
        func colleagues(_ i: Int) -> [Int] { (1...count).filter { $0 != i && operators[$0 - 1] == operators[i - 1] } }
        let home = (1...count).filter { operators[$0 - 1] == operators[0] }
        let corePrefix = IPv6Prefix("2001:db8:ffff::/64")!
        let cnAddress = IPv6Address("2001:db8:ffff::c")!, cnMAC = MACAddress("02:cc:00:00:00:01")!
        func address(_ i: Int) -> IPv6Address { IPv6Address(high: corePrefix.address.high, low: UInt64(i)) }
        func mac(_ i: Int) -> MACAddress { MACAddress(value: 0x02DD_0000_0000 | UInt64(i)) }
        func pool(_ i: Int) -> IPv6Prefix { IPv6Prefix(uncheckedAddress: IPv6Address(high: 0x2001_0DB8_0000_0000 | UInt64(i) << 16, low: 0), length: 48) }
        let cmdAddress = address(0x100), cmdMAC = mac(0x100), lmaAddress = address(0x200), lmaMAC = mac(0x200)
        var gateways: [SimulatedGateway] = []
        for i in 1...count {
            let me = address(i)
            var neighbors = (1...count).filter { $0 != i }.map { (address($0), mac($0)) }
            neighbors.append((cnAddress, cnMAC))
            if mode != nil { neighbors.append((cmdAddress, cmdMAC)) }
            if lma { neighbors.append((lmaAddress, lmaMAC)) }
            var p = PipelineConfiguration(address: me, coreMAC: mac(i), coreMTU: 1500, corePrefix: corePrefix, coreGateway: cnAddress,
                                          bindings: [], neighbors: neighbors)
            p.dynamicBindings = bindings
            p.peers = colleagues(i).map(address) + (lma ? [lmaAddress] : [])
            var c = ControlPlaneConfiguration(address: me)
            c.capacity = bindings
            c.peers = p.peers
            if lma { c.lma = lmaAddress }
            if let mode, home.contains(i) {
                c.peers.append(cmdAddress)
                c.cmd = cmdAddress
                c.cmdMode = mode
            }
            c.access.prefixPool = pool(i)
            let myPool = pool(i)
            c.access.logicalMAC = { _, prefix in DLIF.logicalMAC(anchor: me, pool: myPool, prefix: prefix) }
            c.logicalMAC = { logicalMAC(anchor: $0, mn: $1) }
            if localNetworks {
                let lipa = IPv6Prefix(uncheckedAddress: IPv6Address(high: pool(i).address.high | 0xAAAA, low: 0), length: 64)
                c.localNetworks = [lipa]
                c.access.localNetworks = [lipa]
                p.localNetworks = [lipa]
            }
            configurePipeline(&p)
            configure(&c)
            gateways.append(try SimulatedGateway(name: "dgw\(i)", pipeline: p, control: c))
        }
        if let mode {
            let neighbors = (1...count).map { (address($0), mac($0)) } + [(cnAddress, cnMAC)]
            let p = PipelineConfiguration(address: cmdAddress, coreMAC: cmdMAC, coreMTU: 1500, corePrefix: corePrefix, coreGateway: cnAddress,
                                          bindings: [], neighbors: neighbors)
            var c = ControlPlaneConfiguration(address: cmdAddress)
            c.role = .database
            c.cmdMode = mode
            c.peers = home.map(address)
            configure(&c)
            gateways.append(try SimulatedGateway(name: "cmd", pipeline: p, control: c))
        }
        if lma {
            let neighbors = (1...count).map { (address($0), mac($0)) } + [(cnAddress, cnMAC)]
            var p = PipelineConfiguration(address: lmaAddress, coreMAC: lmaMAC, coreMTU: 1500, corePrefix: corePrefix, coreGateway: cnAddress,
                                          bindings: [], neighbors: neighbors)
            p.dynamicBindings = bindings
            p.peers = (1...count).map(address)
            p.relaysLocalNetworks = true
            configurePipeline(&p)
            var c = ControlPlaneConfiguration(address: lmaAddress)
            c.role = .lma
            c.peers = p.peers
            for i in 1...count { c.operators[address(i)] = "operator \(operators[i - 1])" }
            configure(&c)
            gateways.append(try SimulatedGateway(name: "lma", pipeline: p, control: c))
        }
        let cn = SimulatedHost(name: "cn", mac: cnMAC, addresses: [cnAddress])
        cn.routes = (1...count).map { (pool($0), mac($0)) }
        cn.forwards = true
        return Simulation(gateways: gateways, correspondents: [cn])
    }
}
