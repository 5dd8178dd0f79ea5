// The control socket of `dgw run` (a Unix stream socket at the
// configuration's `control:` path) and `dgw ctl`, its client. One request
// per connection: a line `COMMAND [json]`, answered in text or JSON, then
// the server closes. Served from a thread of its own, from published
// snapshots: the workers are never stopped or locked by a request.

import ArgumentParser
import CDGWShim
import DGWControl
import DGWPipeline
import DGWPorts
import DGWWire
import Foundation

enum ControlCommand: String, ExpressibleByArgument, CaseIterable, Sendable {
    case counters, bindings, dlifs, neighbors
    /// Triggers: an MN associated with this gateway's access point (with its
    /// former anchors), or left it.
    case attach, detach
    /// A multi-interface MN's prefix moved to another of its interfaces.
    case movePrefix = "move-prefix"
    /// A CMD's (an LMA's) records written to its `state_file` now.
    case save
}

/// What the control socket reports, read from another thread than the workers'.
final class ControlView: @unchecked Sendable {
    let workers: [any ForwardingWorker]
    let tables: GatewayTables
    let control: ControlLoop
    var neighbors: NeighborTable { tables.neighbors }

    init(workers: [any ForwardingWorker], tables: GatewayTables, control: ControlLoop) {
        self.workers = workers
        self.tables = tables
        self.control = control
    }

    var counters: Counters {
        var t = Counters()
        for w in workers { t.add(w.publishedCounters()) }
        return t
    }

    func answer(_ request: String) -> String {
        let words = request.split(separator: " ").map(String.init)
        guard let first = words.first, let command = ControlCommand(rawValue: first) else {
            return "error: unknown request '\(request)' (counters, bindings, dlifs, neighbors, attach, detach, move-prefix, save)\n"
        }
        let json = words.contains("json")
        let rest = words.dropFirst().filter { $0 != "json" }
        switch command {
        case .movePrefix:
            // move-prefix ID PREFIX MAC [ANCHOR]
            guard rest.count == 3 || rest.count == 4, let prefix = IPv6Prefix(rest[1]), let to = MACAddress(rest[2]), !to.isMulticast else {
                return "error: move-prefix needs the MN-ID, the prefix and the interface's unicast MAC address (and optionally the anchor)\n"
            }
            var anchor: IPv6Address?
            if rest.count == 4 {
                guard let a = IPv6Address(rest[3]) else { return "error: '\(rest[3])' is not the anchor's address\n" }
                anchor = a
            }
            let answer = ControlLoop.Reply<String?>()
            control.trigger(.movePrefix(.init(id: Array(rest[0].utf8), prefix: prefix, to: to, anchor: anchor), answer: answer))
            switch answer.wait() {
            case nil: return "error: the control plane did not answer\n"
            case let why??: return "error: move-prefix refused: \(why)\n"
            case .some(nil):
                return json ? "{\"moved\":\"\(prefix)\",\"mn\":\"\(rest[0])\",\"to\":\"\(to)\"}\n" : "move-prefix \(prefix) of \(rest[0]) to \(to) under way\n"
            }
        case .attach, .detach:
            guard let mnText = rest.first, let mn = MACAddress(mnText), !mn.isMulticast else {
                return "error: \(command.rawValue) needs the MN's unicast MAC address\n"
            }
            // A CMD or an LMA has no access link: nothing would be attached.
            let role = control.control.configuration.role
            guard role == .gateway else {
                return "error: \(command.rawValue) refused: \(role == .lma ? "an LMA" : "a CMD") serves no MN\n"
            }
            var previous: [IPv6Address] = []
            for a in rest.dropFirst() {
                guard let address = IPv6Address(a), command == .attach else { return "error: '\(a)' is not a former anchor's address\n" }
                previous.append(address)
            }
            control.trigger(command == .attach ? .attach(mn, previous: previous) : .detach(mn))
            return json ? "{\"queued\":\"\(command.rawValue)\",\"mn\":\"\(mn)\"}\n" : "\(command.rawValue) \(mn) queued\n"
        default:
            guard rest.isEmpty else { return "error: '\(command.rawValue)' takes no arguments\n" }
        }
        switch command {
        case .attach, .detach, .movePrefix:
            return ""
        case .save:
            do throws(StateFile.Refusal) {
                let saved = try control.save()
                return json ? "{\"saved\":\(saved.count),\"path\":\"\(saved.path)\"}\n" : "\(saved.count) record(s) saved to \(saved.path)\n"
            } catch {
                return "error: save refused: \(error)\n"
            }
        case .counters:
            let t = counters
            let (router, signalling) = control.published.withLock { $0 }
            let actions = Action.allCases.map { ($0.name, t[$0]) }.filter { $0.1 != 0 }
            let drops = DropReason.allCases.map { ($0.name, t[$0]) }.filter { $0.1 != 0 }
            // A CMD's (an LMA's) state file: its journal's compactions.
            let compactions = control.stateFile == nil ? nil : control.compactions.withLock { $0 }
            let stateFile = compactions.map { "{\"compactions\":\($0.done),\"compactions_failed\":\($0.failed)}" }
            if json {
                func object(_ pairs: [(String, Int)]) -> String { "{" + pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}" }
                return "{\"frames_in\":\(t.framesIn),\"frames_out\":\(t.framesOut),\"actions\":\(object(actions)),\"drops\":\(object(drops))"
                    + ",\"control\":\(router.json),\"signalling\":\(signalling.json)\(stateFile.map { ",\"state_file\":\($0)" } ?? "")}\n"
            }
            return (["frames_in \(t.framesIn)", "frames_out \(t.framesOut)"] + actions.map { "action \($0.0) \($0.1)" }
                + drops.map { "drop \($0.0) \($0.1)" } + [router.json, signalling.json].enumerated().map { ["control ", "signalling "][$0.offset] + $0.element }
                + (stateFile.map { ["state_file " + $0] } ?? []))
                .joined(separator: "\n") + "\n"
        case .bindings:
            let rows = tables.bindings.map { b, dlif in
                (mn: "\(b.mn)", prefix: "\(b.prefix)", anchor: b.anchor.map { "\($0)" } ?? "self",
                 serving: b.serving.map { "\($0)" } ?? "self", dlif: "\(dlif)")
            }
            // Then the other anchors' local networks routed into their tunnels (LIPA).
            let networks = tables.localNetworkRoutes
            // A CMD's (an LMA's) records: where each MN's prefixes are anchored, and who serves it.
            var anchored: [(mn: String, prefix: String, anchor: String, serving: String?)] = []
            if control.control.configuration.role != .gateway {
                guard let records = control.mobilityRecords() else { return "error: the control plane did not answer\n" }
                for r in records {
                    anchored += r.anchors.map { ("\(r.mn)", "\($0.prefix)", "\($0.gateway)", r.serving.map { "\($0)" }) }
                }
            }
            if json {
                return "[" + (rows.map { "{\"mn\":\"\($0.mn)\",\"prefix\":\"\($0.prefix)\",\"anchor\":\"\($0.anchor)\",\"serving\":\"\($0.serving)\",\"dlif_mac\":\"\($0.dlif)\"}" }
                    + networks.map { "{\"local_network\":\"\($0.prefix)\",\"anchor\":\"\($0.anchor)\"}" }
                    + anchored.map { "{\"mn\":\"\($0.mn)\",\"prefix\":\"\($0.prefix)\",\"anchor\":\"\($0.anchor)\",\"serving\":\($0.serving.map { "\"\($0)\"" } ?? "null")}" })
                    .joined(separator: ",") + "]\n"
            }
            return rows.map { "\($0.mn) \($0.prefix) anchor \($0.anchor) serving \($0.serving) dlif \($0.dlif)\n" }.joined()
                + networks.map { "local-network \($0.prefix) anchor \($0.anchor)\n" }.joined()
                + anchored.map { "\($0.mn) \($0.prefix) anchor \($0.anchor) serving \($0.serving ?? "none")\n" }.joined()
        case .dlifs:
            // The logical interfaces shown on this access link: one per MN served here and anchor.
            var seen = Set<String>()
            var rows: [(mn: String, dlif: String, anchor: String)] = []
            for (b, dlif) in tables.bindings where b.serving == nil {
                let row = (mn: "\(b.mn)", dlif: "\(dlif)", anchor: b.anchor.map { "\($0)" } ?? "self")
                if seen.insert("\(row.mn) \(row.dlif)").inserted { rows.append(row) }
            }
            if json {
                return "[" + rows.map { "{\"mn\":\"\($0.mn)\",\"dlif_mac\":\"\($0.dlif)\",\"anchor\":\"\($0.anchor)\"}" }.joined(separator: ",") + "]\n"
            }
            return rows.map { "\($0.mn) dlif \($0.dlif) anchor \($0.anchor)\n" }.joined()
        case .neighbors:
            let rows = neighbors.addresses.enumerated().map { i, a in
                (address: "\(a)", mac: neighbors.mac(i) == 0 ? nil : "\(MACAddress(value: neighbors.mac(i)))")
            }
            if json {
                return "[" + rows.map { "{\"address\":\"\($0.address)\",\"mac\":\($0.mac.map { "\"\($0)\"" } ?? "null")}" }.joined(separator: ",") + "]\n"
            }
            return rows.map { "\($0.address) \($0.mac ?? "unresolved")\n" }.joined()
        }
    }
}

/// A listening socket and the thread that answers on it, one request per
/// connection (the control socket, the metrics endpoint).
final class Listener: @unchecked Sendable {
    let name: String
    private let fd: Int32
    private let cleanup: () -> Void
    private let done = DispatchGroup()

    init(name: String, fd: Int32, cleanup: @escaping () -> Void = {}) {
        self.name = name
        self.fd = fd
        self.cleanup = cleanup
    }

    func start(until stop: StopFlag, _ handle: @escaping @Sendable (Int32) -> Void) {
        done.enter()
        let thread = Thread { [self] in
            defer { done.leave() }
            while !stop.flag.load(ordering: .acquiring) {
                guard (try? StopSignal.poll([fd], milliseconds: 100)) == true else { continue }
                let client = dgw_accept(fd)
                if client < 0 { continue }
                handle(client)
                close(client)
            }
        }
        thread.name = name
        thread.start()
    }

    /// Waits for the thread, then closes (and removes) the socket.
    func finish() {
        done.wait()
        close(fd)
        cleanup()
    }

    /// The request's bytes up to `terminator` (within a second and 8 KiB), or nil.
    static func request(_ client: Int32, until terminator: [UInt8]) -> [UInt8]? {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = Syscall.monotonicNanoseconds() + 1_000_000_000
        while request.count < 8192, Syscall.monotonicNanoseconds() < deadline {
            if let end = request.firstRange(of: terminator) { return Array(request[..<end.lowerBound]) }
            guard (try? StopSignal.poll([client], milliseconds: 100)) != nil else { return nil }  // (a timeout loops)
            let n = buffer.withUnsafeMutableBytes { b in (try? Syscall.read(client, b)) ?? -1 }
            if n <= 0 { break }
            request += buffer[..<n]
        }
        return request.firstRange(of: terminator).map { Array(request[..<$0.lowerBound]) }
    }

    static func reply(_ client: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { b in Result { () throws(PortError) in try Syscall.writeAll(client, b) } }
    }
}

/// The control socket: a line `COMMAND [json]` in, the answer out.
enum ControlServer {
    static func open(path: String, view: ControlView, until stop: StopFlag) throws(PortError) -> Listener {
        let fd = dgw_unix_listen(path)
        guard fd >= 0 else {
            let e = dgw_errno()
            throw .syscall(name: e == EADDRINUSE ? "control socket \(path): another dgw is listening there" : "control socket \(path)", errno: e)
        }
        let listener = Listener(name: "dgw-control", fd: fd) { unlink(path) }
        listener.start(until: stop) { client in
            guard let line = Listener.request(client, until: [UInt8(ascii: "\n")]) else { return }
            Listener.reply(client, view.answer(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)))
        }
        return listener
    }
}

struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running `dgw run` (its control socket) for counters, bindings, DLIFs or neighbours, trigger an attach, a detach or a prefix move, or have a CMD or LMA save its records.",
        discussion: "Exit status 2 when the socket cannot be reached or the gateway refuses the request."
    )

    @Option(help: "The control socket (the configuration's `control:` path).") var socket: String
    @Argument(help: "counters, bindings, dlifs, neighbors; the triggers attach, detach and move-prefix; save (a CMD's or LMA's state_file).") var command: ControlCommand
    @Option(help: "attach, detach: the MN's MAC address; move-prefix: the MN-ID (a subscriber's id).") var mn: String?
    @Option(help: "attach: a former anchor of the MN (repeat for several).") var previous: [String] = []
    @Option(help: "move-prefix: the /64 whose traffic moves.") var prefix: String?
    @Option(help: "move-prefix: the MAC of the interface it moves to.") var to: String?
    @Option(help: "move-prefix: the gateway anchoring the prefix (when this one has no session about it).") var anchor: String?
    @Flag(help: "JSON instead of text.") var json = false

    func validate() throws {
        if command != .movePrefix && (prefix != nil || to != nil || anchor != nil) {
            throw ValidationError("--prefix, --to and --anchor go with move-prefix")
        }
        switch command {
        case .movePrefix:
            guard let mn, !mn.isEmpty, !mn.contains(where: \.isWhitespace) else { throw ValidationError("move-prefix needs --mn MN-ID") }
            guard let prefix, IPv6Prefix(prefix) != nil else { throw ValidationError("move-prefix needs --prefix PREFIX (an IPv6 prefix)") }
            guard let to, let mac = MACAddress(to), !mac.isMulticast else { throw ValidationError("move-prefix needs --to MAC (a unicast MAC)") }
            if let anchor, IPv6Address(anchor) == nil { throw ValidationError("--anchor \(anchor): not an IPv6 address") }
            if !previous.isEmpty { throw ValidationError("--previous goes with attach") }
        case .attach, .detach:
            guard let mn, MACAddress(mn) != nil else { throw ValidationError("\(command.rawValue) needs --mn MAC") }
            for a in previous where IPv6Address(a) == nil { throw ValidationError("--previous \(a): not an IPv6 address") }
            if command == .detach && !previous.isEmpty { throw ValidationError("--previous goes with attach") }
        default:
            if mn != nil || !previous.isEmpty { throw ValidationError("--mn and --previous go with attach and detach") }
        }
    }

    func run() throws {
        let fd = dgw_unix_connect(socket)
        guard fd >= 0 else {
            FileHandleStderr.write("dgw ctl: cannot connect to \(socket): \(String(cString: strerror(dgw_errno()))) (is `dgw run` running with `control: \(socket)`?)\n")
            throw ExitCode(2)
        }
        defer { close(fd) }
        var reply: [UInt8] = []
        do throws(PortError) {
            let request = ([command.rawValue] + [mn, prefix, to, anchor].compactMap { $0 } + previous + (json ? ["json"] : [])).joined(separator: " ")
            try Array("\(request)\n".utf8).withUnsafeBytes { b in
                Result { () throws(PortError) in try Syscall.writeAll(fd, b) }
            }.get()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = try buffer.withUnsafeMutableBytes { b in Result { () throws(PortError) in try Syscall.read(fd, b) } }.get()
                if n == 0 { break }
                reply += buffer[..<n]
            }
        } catch {
            FileHandleStderr.write("dgw ctl: \(socket): \(error)\n")
            throw ExitCode(2)
        }
        let text = String(decoding: reply, as: UTF8.self)
        if text.hasPrefix("error:") {
            FileHandleStderr.write("dgw ctl: \(text)")
            throw ExitCode(2)
        }
        print(text, terminator: "")
    }
}
