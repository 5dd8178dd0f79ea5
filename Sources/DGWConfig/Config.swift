// One YAML file per gateway (DESIGN.md "Configuration contract"). Every key
// is checked: an unknown key, a missing one or a bad value is refused with
// the file, line and column, before anything starts.

import DGWWire

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let column: Int
    public let message: String

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

public enum Role: String, Sendable { case dgw, cmd, lma }

/// `self` or a gateway's address.
public enum Endpoint: Equatable, Sendable, CustomStringConvertible {
    case this
    case peer(IPv6Address)

    public var description: String {
        switch self {
        case .this: "self"
        case .peer(let a): a.description
        }
    }
}

public struct GatewayConfig: Sendable {
    public struct Port: Sendable {
        public var interface: String
        public var mtu: Int
        /// The port's own MAC: read from the interface when live; taken from
        /// here (or derived from the address) in replay.
        public var mac: MACAddress?
    }
    public struct Core: Sendable {
        public var port: Port
        public var prefix: IPv6Prefix
        public var gateway: IPv6Address?
    }
    public struct LocalNetwork: Sendable {
        public enum Via: String, Sendable { case access, core }
        public var prefix: IPv6Prefix
        public var via: Via
    }
    public struct Peer: Sendable {
        public var name: String
        public var address: IPv6Address
        /// Who runs it (for an LMA, which relays only between operators); nil: an operator of its own.
        public var `operator`: String?
        public var line = 0
    }
    public struct Auth: Sendable {
        public var peer: IPv6Address
        public var spi: UInt32
        public var key: [UInt8]
        public var line = 0
    }
    public struct RA: Sendable {
        public var intervalSeconds = 3.0
        public var routerLifetime = 1800
        public var validLifetime = 86400
        public var preferredLifetime = 3600
    }
    public struct Binding: Sendable {
        public var lifetime = 3600
        public var initialRetransmitMs = 1000
        public var maxRetransmitMs = 32000
        public var maxAttempts = 5
    }
    public struct StaticBinding: Sendable {
        public var mn: MACAddress
        public var prefix: IPv6Prefix
        public var anchor: Endpoint
        public var serving: Endpoint
        /// The DLIF's logical MAC, when the anchor assigned one.
        public var dlifMAC: MACAddress?
        public var line: Int
    }
    public struct Neighbor: Sendable {
        public var address: IPv6Address
        public var mac: MACAddress
    }
    public enum CMDMode: String, Sendable { case relay, locator }
    /// One subscriber: an MN identity (RFC 4283 NAI) and the MACs of its interfaces.
    public struct Subscriber: Sendable {
        /// nil: each MAC is its own identity (its text).
        public var id: String?
        public var macs: [MACAddress]
        public var line = 0
    }

    public var file = ""
    /// The line of each top-level key given, for what `dgw check` reports.
    public var lines: [String: Int] = [:]
    public var name = ""
    public var role = Role.dgw
    public var address = IPv6Address.unspecified
    public var access: Port?
    /// Whether an MN is attached on its first unicast frame (one that moved
    /// in unannounced), not only on an RS or a trigger.
    public var attachOnTraffic = true
    /// How long a frame ahead of its binding here (tunnelled from a peer,
    /// or from an MN to a DLIF not shown yet) waits for it (`hold_ms`); 0:
    /// dropped at once.
    public var holdMilliseconds = 50
    /// The only MNs that may attach here, when given.
    public var subscribers: [Subscriber]?
    public var core = Core(port: Port(interface: "", mtu: 1500), prefix: IPv6Prefix("::/0")!, gateway: nil)
    public var prefixPool: IPv6Prefix?
    public var localNetworks: [LocalNetwork] = []
    public var peers: [Peer] = []
    public var cmd: IPv6Address?
    public var cmdMode = CMDMode.relay
    public var lma: IPv6Address?
    public var auth: [Auth] = []
    /// How far a signed message's time may be from this node's clock
    /// (`auth_window_s`): the peers' clock skew plus the signalling delay.
    public var authWindowSeconds = 7
    public var ra = RA()
    public var binding = Binding()
    public var staticBindings: [StaticBinding] = []
    /// Static core neighbours (fixed set-ups and replay); others are resolved by ND.
    public var neighbors: [Neighbor] = []
    public var control: String?
    public var metrics: String?
    /// A CMD's (an LMA's) records and relayed bindings, written when `dgw
    /// run` stops and read when it starts (`state_file`).
    public var stateFile: String?
    /// The journal beside it is folded into it, in the background, once it
    /// holds this many bytes and as many as the file did when last written
    /// (`state_journal_limit`; 0: only at stop and on `dgw ctl save`).
    public var stateJournalLimit = 64 << 20
    /// Each step's journal lines flushed to the disk before the next step
    /// (`state_sync`): a crash of the machine loses none either, at the
    /// cost of a disk flush for every step that changed a record.
    public var stateSync = false

    /// The core MAC: configured, or 02:dd followed by the low 32 bits of the address.
    public var coreMAC: MACAddress {
        core.port.mac ?? MACAddress(value: 0x02DD_0000_0000 | (address.low & 0xFFFF_FFFF))
    }
}

extension GatewayConfig {
    /// Reads and checks `path`.
    public static func load(path: String) throws(ConfigError) -> GatewayConfig {
        guard let text = readFile(path) else {
            throw ConfigError(file: path, line: 0, column: 0, message: "cannot read the file")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> GatewayConfig {
        let document: YAMLNode?
        do throws(YAMLError) {
            document = try YAMLNode.compose(text)
        } catch {
            throw ConfigError(file: file, line: error.line, column: error.column, message: "YAML: \(error.message)")
        }
        guard let root = document else { throw ConfigError(file: file, line: 1, column: 1, message: "empty configuration") }
        var c = GatewayConfig()
        c.file = file
        let r = Reader(file: file)
        do {
            try c.read(root, r)
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError(file: file, line: 0, column: 0, message: "\(error)")
        }
        return c
    }

    private mutating func read(_ root: YAMLNode, _ r: Reader) throws {
        let top = try r.mapping(root, "configuration", keys: [
            "name", "role", "address", "access", "core", "prefix_pool", "local_networks", "peers", "cmd",
            "cmd_mode", "lma", "auth", "ra", "binding", "static_bindings", "neighbors", "control", "metrics", "subscribers", "hold_ms", "auth_window_s",
            "state_file", "state_journal_limit", "state_sync",
        ], required: ["name", "address", "core"])
        for (key, node) in top { lines[key] = node.line }
        name = try r.string(top["name"]!, "name")
        if let n = top["role"] { role = try r.enumeration(n, "role") }
        address = try r.gatewayAddress(top["address"]!, "address")
        if let n = top["access"] {
            let (port, m) = try readPort(n, "access", r, extra: ["attach_on_traffic"])
            access = port
            if let v = m["attach_on_traffic"] { attachOnTraffic = try r.boolean(v, "access.attach_on_traffic") }
        }
        if role == .dgw && access == nil {
            throw r.error(root, "access is required for role \(role.rawValue)")
        }
        if role != .dgw, let n = top["access"] {
            throw r.error(n, "role \(role.rawValue) has no access port (it serves no MN); remove access")
        }
        let (port, coreMap) = try readPort(top["core"]!, "core", r, extra: ["prefix", "gateway"])
        if let v = top["hold_ms"] { holdMilliseconds = try r.integer(v, "hold_ms", 0...10_000) }
        guard let p = coreMap["prefix"] else { throw r.error(top["core"]!, "core.prefix is required") }
        core = Core(port: port, prefix: try r.prefix(p, "core.prefix"),
                    gateway: try coreMap["gateway"].map { try r.address($0, "core.gateway") })
        if let n = top["prefix_pool"] {
            let pool = try r.prefix(n, "prefix_pool")
            guard pool.length <= 64 else { throw r.error(n, "prefix_pool must be /64 or shorter to hold /64s") }
            prefixPool = pool
        }
        for item in try r.sequence(top["local_networks"], "local_networks") {
            let m = try r.mapping(item, "local_networks entry", keys: ["prefix", "via"], required: ["prefix"])
            localNetworks.append(LocalNetwork(prefix: try r.prefix(m["prefix"]!, "prefix"),
                                              via: try m["via"].map { try r.enumeration($0, "via") } ?? .access))
        }
        for item in try r.sequence(top["peers"], "peers") {
            let m = try r.mapping(item, "peers entry", keys: ["name", "address", "operator"], required: ["name", "address"])
            peers.append(Peer(name: try r.string(m["name"]!, "name"), address: try r.gatewayAddress(m["address"]!, "address"),
                              operator: try m["operator"].map { try r.string($0, "operator") }, line: item.line))
        }
        if let n = top["cmd"] {
            guard role == .dgw else { throw r.error(n, "cmd is for role dgw: the gateway registers its MNs there") }
            cmd = try r.gatewayAddress(n, "cmd")
            guard cmd != address else { throw r.error(n, "cmd is this gateway's own address") }
        }
        if let n = top["cmd_mode"] { cmdMode = try r.enumeration(n, "cmd_mode") }
        if role == .cmd, let n = top["static_bindings"] ?? top["prefix_pool"] ?? top["local_networks"] {
            throw r.error(n, "role cmd anchors no prefix: no prefix_pool, local_networks or static_bindings")
        }
        if role == .lma, let n = top["prefix_pool"] ?? top["local_networks"] {
            throw r.error(n, "role lma anchors no prefix of its own: no prefix_pool or local_networks")
        }
        if let n = top["lma"] {
            guard role == .dgw else { throw r.error(n, "lma is for role dgw: the gateway registers its MNs there") }
            lma = try r.gatewayAddress(n, "lma")
            guard lma != address else { throw r.error(n, "lma is this gateway's own address") }
            guard lma != cmd else { throw r.error(n, "lma and cmd are one address: a node is a CMD or an LMA") }
        }
        if let v = top["auth_window_s"] { authWindowSeconds = try r.integer(v, "auth_window_s", 1...86_400) }
        for item in try r.sequence(top["auth"], "auth") {
            let m = try r.mapping(item, "auth entry", keys: ["peer", "spi", "key_hex"], required: ["peer", "spi", "key_hex"])
            let hex = try r.string(m["key_hex"]!, "key_hex")
            guard hex.count >= 32, hex.count % 2 == 0, let key = bytes(hex: hex) else {
                throw r.error(m["key_hex"]!, "key_hex must be at least 16 octets of hex")
            }
            let peer = try r.address(m["peer"]!, "peer")
            // A key for an address nobody accepts signalling from would protect nothing.
            guard peers.contains(where: { $0.address == peer }) || peer == cmd || peer == lma else {
                throw r.error(m["peer"]!, "auth peer \(peer) is not in peers, nor the cmd or lma")
            }
            guard !auth.contains(where: { $0.peer == peer }) else { throw r.error(m["peer"]!, "a second auth entry for \(peer)") }
            auth.append(Auth(peer: peer, spi: UInt32(try r.integer(m["spi"]!, "spi", 256...Int(UInt32.max))), key: key, line: item.line))
        }
        if let n = top["ra"] {
            let m = try r.mapping(n, "ra", keys: ["interval_s", "router_lifetime_s", "valid_lifetime_s", "preferred_lifetime_s"], required: [])
            if let v = m["interval_s"] { ra.intervalSeconds = try r.number(v, "interval_s", 0.05...1800) }
            if let v = m["router_lifetime_s"] { ra.routerLifetime = try r.integer(v, "router_lifetime_s", 0...9000) }
            if let v = m["valid_lifetime_s"] { ra.validLifetime = try r.integer(v, "valid_lifetime_s", 0...Int(UInt32.max)) }
            if let v = m["preferred_lifetime_s"] { ra.preferredLifetime = try r.integer(v, "preferred_lifetime_s", 0...Int(UInt32.max)) }
            guard ra.preferredLifetime <= ra.validLifetime else {
                throw r.error(n, "preferred_lifetime_s exceeds valid_lifetime_s")
            }
        }
        if let n = top["binding"] {
            let m = try r.mapping(n, "binding", keys: ["lifetime_s", "initial_retransmit_ms", "max_retransmit_ms", "max_attempts"], required: [])
            if let v = m["lifetime_s"] { binding.lifetime = try r.integer(v, "lifetime_s", 4...262_140) }
            if let v = m["initial_retransmit_ms"] { binding.initialRetransmitMs = try r.integer(v, "initial_retransmit_ms", 1...600_000) }
            if let v = m["max_retransmit_ms"] { binding.maxRetransmitMs = try r.integer(v, "max_retransmit_ms", 1...600_000) }
            if let v = m["max_attempts"] { binding.maxAttempts = try r.integer(v, "max_attempts", 1...100) }
        }
        var boundAt: [IPv6Prefix: Int] = [:]
        for item in try r.sequence(top["static_bindings"], "static_bindings") {
            let m = try r.mapping(item, "static_bindings entry", keys: ["mn", "prefix", "anchor", "serving", "dlif_mac"],
                                  required: ["mn", "prefix", "anchor", "serving"])
            let prefix = try r.prefix(m["prefix"]!, "prefix")
            guard prefix.length == 64 else { throw r.error(m["prefix"]!, "a binding's prefix must be a /64, not /\(prefix.length)") }
            let b = StaticBinding(mn: try r.mac(m["mn"]!, "mn"), prefix: prefix,
                                  anchor: try r.endpoint(m["anchor"]!, "anchor", this: address),
                                  serving: try r.endpoint(m["serving"]!, "serving", this: address),
                                  dlifMAC: try m["dlif_mac"].map { try r.mac($0, "dlif_mac") },
                                  line: item.line)
            if let d = b.dlifMAC, !d.isLocallyAdministered || d.isMulticast {
                throw r.error(m["dlif_mac"]!, "dlif_mac must be a locally administered unicast MAC")
            }
            if role == .lma {
                // An LMA's binding joins the tunnel from an anchor to the one to a serving gateway.
                guard b.anchor != .this && b.serving != .this && b.anchor != b.serving else {
                    throw r.error(item, "an LMA's static binding joins two other gateways: anchor and serving are two peers")
                }
                for case .peer(let a) in [b.anchor, b.serving] where !peers.contains(where: { $0.address == a }) {
                    throw r.error(item, "\(a) is not in peers: the LMA signals only with its peers")
                }
                // Its records hold, per MN, one serving gateway and one prefix per anchor.
                if let other = staticBindings.first(where: { $0.mn == b.mn && ($0.serving != b.serving || $0.anchor == b.anchor) }) {
                    throw r.error(item, other.serving != b.serving
                        ? "\(b.mn) is served at one gateway: line \(other.line) has it served elsewhere"
                        : "\(b.mn) has one prefix per anchor: line \(other.line) has one at that anchor already")
                }
            } else {
                guard b.anchor == .this || b.serving == .this else {
                    throw r.error(item, "a static binding must have this gateway as anchor or serving")
                }
            }
            if let other = boundAt[b.prefix] {
                throw r.error(item, "prefix \(b.prefix) is already bound at line \(other)")
            }
            boundAt[b.prefix] = b.line
            staticBindings.append(b)
        }
        if let n = top["subscribers"] {
            guard role == .dgw else { throw r.error(n, "subscribers are for role dgw: MNs attach to gateways") }
            var owner: [MACAddress: Int] = [:], ids: [String: Int] = [:]
            var list: [Subscriber] = []
            for item in try r.sequence(n, "subscribers") {
                let m = try r.mapping(item, "subscribers entry", keys: ["id", "macs"], required: ["macs"])
                let id = try m["id"].map { try r.string($0, "id") }
                if let id {
                    // The Mobile Node Identifier option holds at most 254 octets of it.
                    guard id.utf8.count <= 254 else { throw r.error(m["id"]!, "id is longer than 254 octets") }
                    if let other = ids[id] { throw r.error(m["id"]!, "subscriber \(id) is already listed at line \(other)") }
                    ids[id] = item.line
                }
                var macs: [MACAddress] = []
                for node in try r.sequence(m["macs"], "macs") {
                    let mac = try r.mac(node, "macs entry")
                    guard !mac.isMulticast else { throw r.error(node, "\(mac) is a multicast MAC, no MN's") }
                    if let other = owner[mac] { throw r.error(node, "\(mac) is already a subscriber's at line \(other)") }
                    owner[mac] = item.line
                    macs.append(mac)
                }
                guard !macs.isEmpty else { throw r.error(item, "a subscriber needs at least one MAC in macs") }
                list.append(Subscriber(id: id, macs: macs, line: item.line))
            }
            subscribers = list
        }
        for item in try r.sequence(top["neighbors"], "neighbors") {
            let m = try r.mapping(item, "neighbors entry", keys: ["address", "mac"], required: ["address", "mac"])
            neighbors.append(Neighbor(address: try r.address(m["address"]!, "address"), mac: try r.mac(m["mac"]!, "mac")))
        }
        if let n = top["control"] { control = try r.string(n, "control") }
        if let n = top["metrics"] { metrics = try r.string(n, "metrics") }
        if let n = top["state_file"] {
            guard role != .dgw else { throw r.error(n, "state_file is for role cmd or lma: a gateway's MNs register again") }
            stateFile = try r.string(n, "state_file")
        }
        if let n = top["state_journal_limit"] {
            guard stateFile != nil else { throw r.error(n, "state_journal_limit is the journal of a state_file: set state_file too") }
            stateJournalLimit = try r.integer(n, "state_journal_limit", 0...(1 << 40))
        }
        if let n = top["state_sync"] {
            guard stateFile != nil else { throw r.error(n, "state_sync is the journal of a state_file: set state_file too") }
            stateSync = try r.boolean(n, "state_sync")
        }
    }

    private func readPort(_ node: YAMLNode, _ what: String, _ r: Reader, extra: [String]) throws -> (Port, [String: YAMLNode]) {
        let m = try r.mapping(node, what, keys: ["interface", "mtu", "mac"] + extra, required: ["interface"])
        let port = Port(interface: try r.string(m["interface"]!, "\(what).interface"),
                        mtu: try m["mtu"].map { try r.integer($0, "\(what).mtu", 1280...65535) } ?? 1500,
                        mac: try m["mac"].map { try r.mac($0, "\(what).mac") })
        return (port, m)
    }
}

/// Typed reads of YAML nodes, each failure pointing at the node.
struct Reader {
    let file: String

    func error(_ n: YAMLNode, _ message: String) -> ConfigError {
        ConfigError(file: file, line: n.line, column: n.column, message: message)
    }

    func mapping(_ n: YAMLNode, _ what: String, keys: [String], required: [String]) throws -> [String: YAMLNode] {
        guard case .mapping(let m) = n.kind else { throw error(n, "\(what) must be a mapping") }
        var out: [String: YAMLNode] = [:]
        for (k, v) in m {
            guard let key = k.string else { throw error(k, "\(what): keys must be strings") }
            guard keys.contains(key) else { throw error(k, "unknown key '\(key)' in \(what)") }
            guard out[key] == nil else { throw error(k, "duplicate key '\(key)' in \(what)") }
            out[key] = v
        }
        for key in required where out[key] == nil { throw error(n, "\(what): '\(key)' is required") }
        return out
    }

    func sequence(_ n: YAMLNode?, _ what: String) throws -> [YAMLNode] {
        guard let n else { return [] }
        if case .scalar(let s) = n.kind, s == "" || s == "~" || s == "null" { return [] }
        guard case .sequence(let s) = n.kind else { throw error(n, "\(what) must be a list") }
        return s
    }

    func string(_ n: YAMLNode, _ what: String) throws -> String {
        guard case .scalar(let s) = n.kind, !s.isEmpty else { throw error(n, "\(what) must be a non-empty string") }
        return s
    }

    func boolean(_ n: YAMLNode, _ what: String) throws -> Bool {
        guard case .scalar(let s) = n.kind, s == "true" || s == "false" else { throw error(n, "\(what) must be true or false") }
        return s == "true"
    }

    func integer(_ n: YAMLNode, _ what: String, _ range: ClosedRange<Int>) throws -> Int {
        guard case .scalar(let s) = n.kind, let v = Int(s) else { throw error(n, "\(what) must be an integer") }
        guard range.contains(v) else { throw error(n, "\(what) must be in \(range.lowerBound)...\(range.upperBound), not \(v)") }
        return v
    }

    func number(_ n: YAMLNode, _ what: String, _ range: ClosedRange<Double>) throws -> Double {
        guard case .scalar(let s) = n.kind, let v = Double(s) else { throw error(n, "\(what) must be a number") }
        guard range.contains(v) else { throw error(n, "\(what) must be in \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func address(_ n: YAMLNode, _ what: String) throws -> IPv6Address {
        let s = try string(n, what)
        guard let a = IPv6Address(s) else { throw error(n, "\(what): '\(s)' is not an IPv6 address") }
        return a
    }

    /// A gateway's address (its own, a peer's, the CMD's, the LMA's): one
    /// signalling can come from, so not `::`, `::1` or multicast.
    func gatewayAddress(_ n: YAMLNode, _ what: String) throws -> IPv6Address {
        let a = try address(n, what)
        guard !a.isUnspecified, a != IPv6Address(high: 0, low: 1), !a.isMulticast else {
            throw error(n, "\(what): '\(a)' is not a unicast address a gateway can signal from")
        }
        return a
    }

    func prefix(_ n: YAMLNode, _ what: String) throws -> IPv6Prefix {
        let s = try string(n, what)
        guard let p = IPv6Prefix(s) else { throw error(n, "\(what): '\(s)' is not an IPv6 prefix (address/length)") }
        guard p.address.masked(to: Int(p.length)) == p.address else {
            throw error(n, "\(what): '\(s)' has bits set after /\(p.length)")
        }
        return p
    }

    func mac(_ n: YAMLNode, _ what: String) throws -> MACAddress {
        let s = try string(n, what)
        guard let m = MACAddress(s) else { throw error(n, "\(what): '\(s)' is not a MAC address") }
        return m
    }

    func endpoint(_ n: YAMLNode, _ what: String, this: IPv6Address) throws -> Endpoint {
        if try string(n, what) == "self" { return .this }
        let a = try gatewayAddress(n, what)
        return a == this ? .this : .peer(a)
    }

    func enumeration<E: RawRepresentable>(_ n: YAMLNode, _ what: String) throws -> E where E.RawValue == String {
        let s = try string(n, what)
        guard let v = E(rawValue: s) else { throw error(n, "\(what): '\(s)' is not allowed here") }
        return v
    }
}

func bytes(hex: String) -> [UInt8]? {
    var out: [UInt8] = []
    var it = hex.makeIterator()
    while let a = it.next() {
        guard let b = it.next(), let v = UInt8(String([a, b]), radix: 16) else { return nil }
        out.append(v)
    }
    return out
}

#if canImport(Glibc)
import Glibc
#endif

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n > 0 { out += buffer[..<n] }
        if n < buffer.count { break }
    }
    if ferror(f) != 0 { return nil }
    return String(decoding: out, as: UTF8.self)
}
