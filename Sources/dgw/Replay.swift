import ArgumentParser
import DGWConfig
import DGWControl
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
        print(try Refusal.reported(by: "replay") { try replay() })
    }

    func replay() throws -> String {
        let gateway: GatewayConfig
        do { gateway = try GatewayConfig.load(path: config) } catch { throw Refusal(message: "\(error)") }
        let triggers = try events.map { try EventLog.load(path: $0) } ?? EventLog()

        var inputs: [(PcapFileReader, GatewayPort)] = []
        for (path, port) in [(access, GatewayPort.access), (core, GatewayPort.core)] {
            guard let path else { continue }
            let reader: PcapFileReader
            do { reader = try PcapFileReader(path: path) } catch { throw Refusal(message: "\(error)") }
            guard reader.dataLinkType == 1 else {
                throw Refusal(message: "\(path): link type \(reader.dataLinkType) is not Ethernet")
            }
            inputs.append((reader, port))
        }
        let pool = PacketPool(count: 512)
        let pipeline: Pipeline
        do { pipeline = try Pipeline(PipelineConfiguration(gateway), pool: pool) } catch {
            throw Refusal(message: "\(config): \(error)")
        }
        // Written beside the targets, renamed into place only at the end.
        let tmpAccess = outAccess + ".partial-\(getpid())", tmpCore = outCore + ".partial-\(getpid())"
        var done = false
        defer { if !done { unlink(tmpAccess); unlink(tmpCore) } }
        let start = Syscall.monotonicNanoseconds()
        var truncated = 0
        var control = AccessRouterCounters()
        do throws(PortError) {
            let accessOut = try PcapFileWriter(path: tmpAccess), coreOut = try PcapFileWriter(path: tmpCore)
            let router = gateway.access == nil ? nil : AccessRouter(AccessRouterConfiguration(gateway))
            let loop = ReplayLoop(inputs: inputs, pool: pool, pipeline: pipeline, access: accessOut, core: coreOut, router: router)
            try loop.run(start: start)
            try accessOut.close()
            try coreOut.close()
            truncated = loop.truncated
            control = loop.router?.counters ?? AccessRouterCounters()
        } catch {
            throw Refusal(message: "\(error)")
        }
        guard rename(tmpAccess, outAccess) == 0, rename(tmpCore, outCore) == 0 else {
            throw Refusal(message: "cannot move the outputs into place: \(String(cString: strerror(errno)))")
        }
        done = true
        let elapsed = Double(Syscall.monotonicNanoseconds() - start) / 1e9
        return summary(pipeline.totals, elapsed: elapsed, triggers: triggers, truncated: truncated, control: control)
    }

    func summary(_ t: Counters, elapsed: Double, triggers: EventLog, truncated: Int, control c: AccessRouterCounters) -> String {
        func object(_ pairs: [(String, Int)]) -> String {
            "{" + pairs.filter { $0.1 != 0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        let actions = object(Action.allCases.map { ($0.name, t[$0]) })
        let drops = object(DropReason.allCases.map { ($0.name, t[$0]) })
        let events = object(triggers.counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        let mpps = elapsed > 0 ? Double(t.framesIn) / elapsed / 1e6 : 0
        return "{\"frames_in\":\(t.framesIn),\"frames_out\":\(t.framesOut),\"actions\":\(actions),\"drops\":\(drops)"
            + ",\"control\":\(c.json),\"events_not_applied\":\(events),\"truncated_frames\":\(truncated)"
            + ",\"elapsed_s\":\(String(format: "%.6f", elapsed)),\"mpps\":\(String(format: "%.3f", mpps))}"
    }
}

/// The replay loop: frames read from the captures straight into packet
/// slots, merged by time (the earlier port first on a tie), forwarded in
/// batches, and written to the capture of the port they leave by, in time
/// order (a frame the gateway makes follows the frame that caused it).
///
/// A final class of constants: its methods reach the readers, the pool and
/// the writers with no reference counting per frame.
final class ReplayLoop {
    static let batchSize = 64
    /// One or two inputs (access first, then core, when both are given).
    let first: PcapFileReader
    let firstPort: GatewayPort
    let second: PcapFileReader?
    let secondPort: GatewayPort
    let pool: PacketPool
    let pipeline: Pipeline
    let access: PcapFileWriter
    let core: PcapFileWriter
    /// The access side of the control plane (RAs, answers to RS and NS), on capture time.
    let router: AccessRouter?
    /// Frames captured shorter than they were on the wire.
    private(set) var truncated = 0

    init(inputs: [(PcapFileReader, GatewayPort)], pool: PacketPool, pipeline: Pipeline,
         access: PcapFileWriter, core: PcapFileWriter, router: AccessRouter?) {
        self.router = router
        precondition((1...2).contains(inputs.count))
        (first, firstPort) = inputs[0]
        second = inputs.count > 1 ? inputs[1].0 : nil
        secondPort = inputs.count > 1 ? inputs[1].1 : firstPort
        self.pool = pool
        self.pipeline = pipeline
        self.access = access
        self.core = core
    }

    func run(start: UInt64) throws(PortError) {
        let batch = UnsafeMutableBufferPointer<Packet>.allocate(capacity: Self.batchSize)
        defer { batch.deallocate() }
        var generated: [Packet] = []
        generated.reserveCapacity(2 * Self.batchSize)
        // The next frame of each input, already in a slot; nil once it ends.
        var head0 = try read(first, firstPort)
        var head1 = try second.flatMap { reader throws(PortError) in try read(reader, secondPort) }
        var n = 0, frames = 0, nextProgressCheck = 1 << 20
        var lastProgress = start
        // When the router next has something to send (the first frame starts it).
        var nextDue: Int64 = router == nil ? .max : .min
        var lastTime = Int64.min
        while true {
            // Advertisements due before the next frame go out first, in time order.
            let t = min(head0?.time ?? .max, head1?.time ?? .max)
            if t >= nextDue && t != .max, let router {
                try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
                n = 0
                for (due, frame) in router.tick(t) { try access.write(frame, seconds: Int(due / 1_000_000_000), nanoseconds: Int(due % 1_000_000_000)) }
                nextDue = router.nextDeadline ?? .max
            }
            if t != .max { lastTime = t }
            if let h0 = head0, head1 == nil || h0.time <= head1!.time {
                batch[n] = h0
                head0 = try read(first, firstPort)
            } else if let h1 = head1 {
                batch[n] = h1
                head1 = try read(second!, secondPort)
            } else {
                break
            }
            n += 1
            // A multicast frame from an MN (RS, NS) may be the control plane's
            // to act on (an attach): it ends the batch, so that the frames
            // after it see what the control plane made of it, as they would live.
            let last = batch[n - 1]
            if n == Self.batchSize || (last.port == .access && router != nil && pool.bytes(last)[0] & 1 != 0) {
                try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
                frames += n
                n = 0
                // An MN may have attached: its advertisements are due at once.
                if let router { nextDue = router.nextDeadline ?? .max }
                // Progress on stderr for long inputs, looked at every 2^20 frames.
                if frames >= nextProgressCheck {
                    nextProgressCheck = frames + 1 << 20
                    let now = Syscall.monotonicNanoseconds()
                    if now - lastProgress > 2_000_000_000 {
                        lastProgress = now
                        FileHandleStderr.write("dgw replay: \(frames) frames\n")
                    }
                }
            }
        }
        try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
        // Advertisements due by the last frame's time (an MN that attached in the last batch).
        if let router, lastTime != .min, (router.nextDeadline ?? .max) <= lastTime {
            for (due, frame) in router.tick(lastTime) { try access.write(frame, seconds: Int(due / 1_000_000_000), nanoseconds: Int(due % 1_000_000_000)) }
        }
    }

    /// The next frame of `reader` in a fresh slot, nil at its end. Frames
    /// longer than a slot are counted (`frame_too_long`) and skipped.
    @inline(__always)
    func read(_ reader: PcapFileReader, _ port: GatewayPort) throws(PortError) -> Packet? {
        while let record = try reader.next() {
            if record.originalLength > record.data.count { truncated += 1 }
            let time = Int64(record.seconds) * 1_000_000_000 + Int64(record.nanoseconds)
            guard record.data.count <= pool.capacity else {
                pipeline.countDroppedAtPort(.frameTooLong, frames: 1)
                continue
            }
            // The pool holds a batch, the heads and what the gateway makes of
            // them, with room to spare: running out would be a leak.
            guard let p = pool.load(record.data, port: port, time: time) else {
                preconditionFailure("packet pool exhausted: slots were not given back")
            }
            return p
        }
        return nil
    }

    func forward(_ batch: UnsafeMutableBufferPointer<Packet>, _ generated: inout [Packet]) throws(PortError) {
        guard batch.count > 0 else { return }
        pipeline.process(batch, generated: &generated)
        // Forwarded and generated frames, merged by time (forwarded first on ties).
        var g = 0
        for p in batch {
            while g < generated.count && generated[g].time < p.time { try write(generated[g]); g += 1 }
            try write(p)
            if case .drop(.punted) = p.verdict, p.port == .access, let router {
                let reply = router.handle(UnsafeRawBufferPointer(pool.bytes(p)))
                // An MN that attached: its binding in place before the frames after this one.
                for a in reply.attached { _ = try? pipeline.tables.attach(mn: a.mn, prefix: a.prefix, dlifMAC: a.dlifMAC) }
                for frame in reply.frames {
                    try access.write(frame, seconds: Int(p.time / 1_000_000_000), nanoseconds: Int(p.time % 1_000_000_000))
                }
            }
            pool.release(p.slot)
        }
        while g < generated.count { try write(generated[g]); g += 1 }
        for p in generated { pool.release(p.slot) }
        generated.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    func write(_ p: Packet) throws(PortError) {
        guard case .forward(let port) = p.verdict else { return }
        let bytes = UnsafeRawBufferPointer(pool.bytes(p))
        let seconds = Int(p.time / 1_000_000_000), nanoseconds = Int(p.time % 1_000_000_000)
        switch port {
        case .access: try access.write(bytes, seconds: seconds, nanoseconds: nanoseconds)
        case .core: try core.write(bytes, seconds: seconds, nanoseconds: nanoseconds)
        }
    }
}

/// Control-plane triggers given to replay: checked now, applied once the
/// control plane exists (they are counted in the summary meanwhile).
struct EventLog {
    var counts: [String: Int] = [:]

    static func load(path: String) throws -> EventLog {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Refusal(message: "\(path): cannot read the file")
        }
        var log = EventLog()
        var lastTime = -Double.infinity
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            func fail(_ why: String) -> Refusal { Refusal(message: "\(path):\(n + 1): \(why)") }
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
