// `dgw check`: the configurations of one domain read together. Each file is
// checked on its own when it is loaded; what no single file can tell is
// whether they agree with each other, and a disagreement shows only later,
// as signalling dropped or refused at run time:
// - a peer that does not list this node back drops its signalling;
// - an `auth:` key on one side only, or different, makes one side drop
//   everything the other sends;
// - a gateway's CMD or LMA must be one, and know the gateway as its peer;
//   a gateway and its CMD must agree on the CMD's mode;
// - the LMA's `operator:` labels (draft-bernardos section 5) must match
//   how the gateways peer: one operator's gateways signal and tunnel to
//   each other directly (the LMA does not relay between them), two
//   operators' gateways only through the LMA;
// - two anchors' prefix pools must not overlap, nor two nodes share a
//   name or an address;
// - an MN's MAC must have the same subscriber MN-ID at every gateway (an
//   anchor refuses another interface's move under another one, status 155).
// Addresses that are in none of the files given are outside what can be
// checked, and left alone.

import DGWWire

public struct DomainProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public var description: String { "\(file):\(line): \(message)" }
}

extension GatewayConfig {
    /// What the configurations of one domain, read together, disagree on
    /// (empty: they agree), in file order.
    public static func problems(of domain: [GatewayConfig]) -> [DomainProblem] {
        var found: [DomainProblem] = []
        func problem(_ c: GatewayConfig, _ line: Int?, _ message: String) {
            found.append(DomainProblem(file: c.file, line: line ?? 0, message: message))
        }
        let byAddress = Dictionary(domain.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        func node(_ c: GatewayConfig) -> String { "\(c.name) (\(c.file))" }
        func peer(_ c: GatewayConfig, _ a: IPv6Address) -> Peer? { c.peers.first { $0.address == a } }
        /// Whom `c` takes signalling from: its peers, its CMD and its LMA.
        func accepts(_ c: GatewayConfig, _ a: IPv6Address) -> Bool { peer(c, a) != nil || c.cmd == a || c.lma == a }

        for (i, c) in domain.enumerated() {
            for other in domain[..<i] {
                if other.address == c.address {
                    problem(c, c.lines["address"], "address \(c.address) is \(node(other))'s too")
                }
                if other.name == c.name { problem(c, c.lines["name"], "name \(c.name) is \(other.file)'s too") }
                if let p = c.prefixPool, let q = other.prefixPool, p.contains(q.address) || q.contains(p.address) {
                    problem(c, c.lines["prefix_pool"], "prefix_pool \(p) overlaps \(node(other))'s \(q): two anchors would allocate one /64")
                }
            }
            // Each peer, CMD and LMA in the files: it must take signalling from this node, under the same key.
            var named: [(address: IPv6Address, line: Int?, what: String)] = []
            if let cmd = c.cmd { named.append((cmd, c.lines["cmd"], "cmd")) }
            if let lma = c.lma { named.append((lma, c.lines["lma"], "lma")) }
            for p in c.peers where !named.contains(where: { $0.address == p.address }) { named.append((p.address, p.line, "peer \(p.name)")) }
            for (address, line, what) in named {
                guard let other = byAddress[address], other.address != c.address else { continue }
                if !accepts(other, c.address) {
                    problem(c, line, "\(what) \(address) is \(node(other)), which does not list \(c.address) among its peers: it drops what this node sends")
                }
                if what.hasPrefix("peer "), let p = peer(c, address), p.name != other.name {
                    problem(c, line, "peer \(p.name) \(address) is named \(other.name) in \(other.file)")
                }
                let mine = c.auth.first { $0.peer == address }, theirs = other.auth.first { $0.peer == c.address }
                switch (mine, theirs) {
                case (nil, nil): break
                case (let k?, nil):
                    problem(c, k.line, "auth for \(address): \(node(other)) has no key for \(c.address), so it sends unsigned and this node drops it all")
                case (nil, _?):
                    problem(c, line, "\(what) \(address): \(node(other)) signs with a key for \(c.address) that this node does not have (no auth entry), and drops what this node sends unsigned")
                case (let k?, let t?) where k.spi != t.spi || k.key != t.key:
                    problem(c, k.line, "auth for \(address): \(k.spi != t.spi ? "spi \(k.spi) is \(t.spi)" : "key_hex differs") in \(other.file)")
                default: break
                }
            }
            if let cmd = c.cmd, let other = byAddress[cmd] {
                if other.role != .cmd {
                    problem(c, c.lines["cmd"], "cmd \(cmd) is \(node(other)), whose role is \(other.role.rawValue), not cmd")
                } else if other.cmdMode != c.cmdMode {
                    problem(c, c.lines["cmd_mode"] ?? c.lines["cmd"],
                            "cmd_mode \(c.cmdMode.rawValue) is not the CMD's (\(other.cmdMode.rawValue) in \(other.file)): a gateway and its CMD must agree")
                }
            }
            if let lma = c.lma, let other = byAddress[lma], other.role != .lma {
                problem(c, c.lines["lma"], "lma \(lma) is \(node(other)), whose role is \(other.role.rawValue), not lma")
            }
        }

        // The LMA's view of the operators against the gateways' peering.
        for lma in domain where lma.role == .lma {
            let gateways = lma.peers.compactMap { p in byAddress[p.address].map { (p, $0) } }.filter { $0.1.role == .dgw }
            for (i, (p, g)) in gateways.enumerated() {
                if g.lma != lma.address {
                    problem(g, g.lines["lma"] ?? g.lines["name"],
                            "\(node(lma)) has this gateway among its peers, but its lma is \(g.lma.map { "\($0)" } ?? "not set"): it registers no MN there")
                }
                for (q, h) in gateways[..<i] {
                    let sameOperator = p.operator != nil && p.operator == q.operator
                    if sameOperator && (peer(g, h.address) == nil || peer(h, g.address) == nil) {
                        problem(lma, p.line, "\(g.name) and \(h.name) are both operator \(p.operator!) here, so this LMA does not relay between them, but they are not each other's peers (\(g.file), \(h.file)): a handover between them brings no prefix along")
                    } else if !sameOperator && (peer(g, h.address) != nil || peer(h, g.address) != nil) {
                        problem(lma, p.line, "\(g.name) and \(h.name) are peers of each other (\(g.file), \(h.file)) but of different operators here (\(p.operator ?? "its own"), \(q.operator ?? "its own")): their MNs' prefixes would be relayed through this LMA and tunnelled directly too")
                    }
                }
            }
        }

        // One MN-ID per MAC across the gateways.
        var ids: [MACAddress: (id: String, file: String, line: Int)] = [:]
        for c in domain {
            for s in c.subscribers ?? [] {
                for mac in s.macs {
                    let id = s.id ?? mac.description
                    if let was = ids[mac], was.id != id {
                        problem(c, s.line, "\(mac) is subscriber \(id) here and \(was.id) in \(was.file):\(was.line): an anchor refuses a move of its prefix under another MN-ID")
                    } else if ids[mac] == nil {
                        ids[mac] = (id, c.file, s.line)
                    }
                }
            }
        }
        return found
    }
}
