import ArgumentParser
import DGWConfig
import DGWPipeline
import DGWPorts
import DGWWire
import Foundation

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run captures through the gateway's data plane, offline and deterministically.",
        discussion: """
            Frames of the access and core captures are merged by time and forwarded as the \
            configuration's bindings say; each frame the gateway sends is written to the capture \
            of the port it leaves by, stamped with the time of the frame that caused it. Prints a \
            JSON summary. The same inputs give byte-identical outputs. Nothing is written unless \
            the whole run succeeds.
            """
    )

    @Option(help: "The gateway's YAML configuration.") var config: String
    @Option(help: "Frames arriving on the access (MN-facing) port.") var access: String?
    @Option(help: "Frames arriving on the core port.") var core: String?
    @Option(name: .customLong("out-access"), help: "Where frames leaving by the access port go.") var outAccess: String
    @Option(name: .customLong("out-core"), help: "Where frames leaving by the core port go.") var outCore: String
    @Option(help: "Control-plane triggers, JSON lines ({\"t\": 12.5, \"attach\": {...}}).") var events: String?

    func validate() throws {
        guard access != nil || core != nil else { throw ValidationError("give --access, --core or both") }
    }

    func run() throws {
        do {
            let summary = try replay()
            print(summary)
        } catch let e as ReplayError {
            FileHandleStderr.write("dgw replay: \(e.message)\n")
            throw ExitCode(2)
        }
    }

    struct ReplayError: Error { let message: String }

    func replay() throws -> String {
        let gateway: GatewayConfig
        do { gateway = try GatewayConfig.load(path: config) } catch { throw ReplayError(message: "\(error)") }
        let triggers = try events.map { try EventLog.load(path: $0) } ?? EventLog()

        var inputs: [(PcapFileReader, GatewayPort)] = []
        for (path, port) in [(access, GatewayPort.access), (core, GatewayPort.core)] {
            guard let path else { continue }
            let reader: PcapFileReader
            do { reader = try PcapFileReader(path: path) } catch { throw ReplayError(message: "\(error)") }
            guard reader.dataLinkType == 1 else {
                throw ReplayError(message: "\(path): link type \(reader.dataLinkType) is not Ethernet")
            }
            inputs.append((reader, port))
        }
        let pool = PacketPool(count: 512)
        let pipeline: Pipeline
        do { pipeline = try Pipeline(PipelineConfiguration(gateway), pool: pool) } catch {
            throw ReplayError(message: "\(config): \(error)")
        }
        // Written beside the targets, renamed into place only at the end.
        let tmpAccess = outAccess + ".partial-\(getpid())", tmpCore = outCore + ".partial-\(getpid())"
        let writers: [PcapFileWriter]
        do {
            writers = [try PcapFileWriter(path: tmpAccess), try PcapFileWriter(path: tmpCore)]
        } catch { throw ReplayError(message: "\(error)") }
        var done = false
        defer {
            if !done {
                for w in writers { try? w.close() }
                unlink(tmpAccess); unlink(tmpCore)
            }
        }

        let start = Syscall.monotonicNanoseconds()
        let merged = MergedCaptures(inputs)
        var batch: [Packet] = []
        batch.reserveCapacity(32)
        var generated: [Packet] = []
        generated.reserveCapacity(128)
        var truncated = 0
        var lastProgress = start
        var frames = 0
        func flush() {
            batch.withUnsafeMutableBufferPointer { pipeline.process($0, generated: &generated) }
            // Forwarded and generated frames, merged by time (forwarded first on ties).
            var g = 0
            for p in batch {
                while g < generated.count && generated[g].time < p.time { write(generated[g]); g += 1 }
                if case .forward = p.verdict { write(p) }
                pool.release(p.slot)
            }
            while g < generated.count { write(generated[g]); g += 1 }
            for p in generated { pool.release(p.slot) }
            batch.removeAll(keepingCapacity: true)
            generated.removeAll(keepingCapacity: true)
        }
        func write(_ p: Packet) {
            guard case .forward(let port) = p.verdict else { return }
            writers[port.rawValue].write(UnsafeRawBufferPointer(pool.bytes(p)), seconds: Int(p.time / 1_000_000_000),
                                         nanoseconds: Int(p.time % 1_000_000_000))
        }
        do {
            while let (record, port) = try merged.next() {
                let time = Int64(record.seconds) * 1_000_000_000 + Int64(record.nanoseconds)
                if record.originalLength > record.data.count { truncated += 1 }
                guard let p = pool.load(record.data, port: port, time: time) else {
                    throw ReplayError(message: "frame of \(record.data.count) bytes is larger than \(pool.capacity)")
                }
                batch.append(p)
                if batch.count == 32 {
                    flush()
                    frames += 32
                    // Progress on stderr for long inputs, checked every 2^20 frames.
                    if frames & 0xF_FFFF == 0 {
                        let now = Syscall.monotonicNanoseconds()
                        if now - lastProgress > 2_000_000_000 {
                            lastProgress = now
                            FileHandleStderr.write("dgw replay: \(frames) frames\n")
                        }
                    }
                }
            }
            flush()
            for w in writers { try w.close() }
        } catch let e as PortError {
            throw ReplayError(message: "\(e)")
        }
        guard rename(tmpAccess, outAccess) == 0, rename(tmpCore, outCore) == 0 else {
            throw ReplayError(message: "cannot move the outputs into place: \(String(cString: strerror(errno)))")
        }
        done = true
        let elapsed = Double(Syscall.monotonicNanoseconds() - start) / 1e9
        return summary(pipeline.totals, elapsed: elapsed, triggers: triggers, truncated: truncated)
    }

    func summary(_ t: Counters, elapsed: Double, triggers: EventLog, truncated: Int) -> String {
        func object(_ pairs: [(String, Int)]) -> String {
            "{" + pairs.filter { $0.1 != 0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        let actions = object(Action.allCases.map { ($0.name, t[$0]) })
        let drops = object(DropReason.allCases.map { ($0.name, t[$0]) })
        let events = object(triggers.counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        let mpps = elapsed > 0 ? Double(t.framesIn) / elapsed / 1e6 : 0
        return "{\"frames_in\":\(t.framesIn),\"frames_out\":\(t.framesOut),\"actions\":\(actions),\"drops\":\(drops)"
            + ",\"events_not_applied\":\(events),\"truncated_frames\":\(truncated)"
            + ",\"elapsed_s\":\(String(format: "%.6f", elapsed)),\"mpps\":\(String(format: "%.3f", mpps))}"
    }
}

/// Several captures read in time order (the earlier port first on a tie).
final class MergedCaptures {
    static let maxFrame = 262_144
    let inputs: [(reader: PcapFileReader, port: GatewayPort)]
    var heads: [PcapRecord?]
    /// One buffer per input: libpcap reuses its own on the next read.
    let buffers: [UnsafeMutableRawBufferPointer]

    init(_ inputs: [(PcapFileReader, GatewayPort)]) {
        self.inputs = inputs.map { ($0.0, $0.1) }
        heads = Array(repeating: nil, count: inputs.count)
        buffers = inputs.map { _ in .allocate(byteCount: Self.maxFrame, alignment: 64) }
    }

    deinit { for b in buffers { b.deallocate() } }

    /// The next record in time order; its data stays valid until the next call.
    func next() throws -> (PcapRecord, GatewayPort)? {
        for i in inputs.indices where heads[i] == nil {
            if var r = try inputs[i].reader.next() {
                let n = min(r.data.count, Self.maxFrame)
                UnsafeMutableRawBufferPointer(rebasing: buffers[i][..<n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: r.data[..<n]))
                r.data = UnsafeRawBufferPointer(rebasing: buffers[i][..<n])
                heads[i] = r
            }
        }
        var best: Int?
        for i in inputs.indices {
            guard let h = heads[i] else { continue }
            if let b = best, let hb = heads[b], (hb.seconds, hb.nanoseconds) <= (h.seconds, h.nanoseconds) { continue }
            best = i
        }
        guard let b = best, let record = heads[b] else { return nil }
        heads[b] = nil
        return (record, inputs[b].port)
    }
}

/// Control-plane triggers given to replay: checked now, applied once the
/// control plane exists (they are counted in the summary meanwhile).
struct EventLog {
    var counts: [String: Int] = [:]

    static func load(path: String) throws -> EventLog {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Replay.ReplayError(message: "\(path): cannot read the file")
        }
        var log = EventLog()
        var lastTime = -Double.infinity
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            func fail(_ why: String) -> Replay.ReplayError { Replay.ReplayError(message: "\(path):\(n + 1): \(why)") }
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw fail("not a JSON object")
            }
            guard let t = (object["t"] as? NSNumber)?.doubleValue, t >= 0 else { throw fail("\"t\" (seconds) is required") }
            guard t >= lastTime else { throw fail("events must be in time order") }
            lastTime = t
            let kinds = object.keys.filter { $0 != "t" }
            guard kinds.count == 1, let kind = kinds.first, ["attach", "detach", "move-prefix"].contains(kind) else {
                throw fail("one of \"attach\", \"detach\", \"move-prefix\" is required")
            }
            guard let body = object[kind] as? [String: Any], let mn = body["mn"] as? String else {
                throw fail("\(kind) needs \"mn\"")
            }
            guard MACAddress(mn) != nil else { throw fail("\"\(mn)\" is not a MAC address") }
            for a in body["previous"] as? [String] ?? [] where IPv6Address(a) == nil {
                throw fail("\"\(a)\" is not an IPv6 address")
            }
            log.counts[kind, default: 0] += 1
        }
        return log
    }
}

extension PipelineConfiguration {
    init(_ g: GatewayConfig) {
        let bindings = g.staticBindings.map { b -> BindingEntry in
            func address(_ e: Endpoint) -> IPv6Address? { if case .peer(let a) = e { return a }; return nil }
            return BindingEntry(mn: b.mn, prefix: b.prefix, anchor: address(b.anchor), serving: address(b.serving), dlifMAC: b.dlifMAC)
        }
        self.init(address: g.address, coreMAC: g.coreMAC, coreMTU: g.core.port.mtu, corePrefix: g.core.prefix,
                  coreGateway: g.core.gateway, bindings: bindings, neighbors: g.neighbors.map { ($0.address, $0.mac) })
    }
}
