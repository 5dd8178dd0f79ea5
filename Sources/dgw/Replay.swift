import ArgumentParser
import DGWConfig
import DGWControl
import DGWGateway
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
        // A CMD's (an LMA's) saved records, read as `dgw run` would at start
        // (never written: a replay changes no live state). The capture's
        // clock is the wall clock; a record's expiry comes as its time does.
        var saved = StateFile()
        if let path = gateway.stateFile {
            do { saved = try StateFile.read(path, lma: gateway.role == .lma, clockOffset: 0, now: .min) } catch { throw Refusal(message: "\(error)") }
        }
        var pipelineConfiguration = PipelineConfiguration(gateway)
        saved.restore(&pipelineConfiguration)
        let pool = PacketPool(count: 512)
        let pipeline: Pipeline
        do { pipeline = try Pipeline(pipelineConfiguration, pool: pool) } catch {
            throw Refusal(message: "\(config): \(error)")
        }
        // Written beside the targets, renamed into place only at the end.
        let tmpAccess = outAccess + ".partial-\(getpid())", tmpCore = outCore + ".partial-\(getpid())"
        var done = false
        defer { if !done { unlink(tmpAccess); unlink(tmpCore) } }
        let start = Syscall.monotonicNanoseconds()
        var truncated = 0
        var control = AccessRouterCounters(), signalling = SignallingCounters()
        var applied: [String: Int] = [:], unresolved = 0
        do throws(PortError) {
            let accessOut = try PcapFileWriter(path: tmpAccess, writeBehind: true), coreOut = try PcapFileWriter(path: tmpCore, writeBehind: true)
            var controlConfiguration = ControlPlaneConfiguration(gateway)
            saved.restore(&controlConfiguration)
            let plane = ControlPlane(controlConfiguration)
            let loop = ReplayLoop(inputs: inputs, pool: pool, pipeline: pipeline, access: accessOut, core: coreOut, control: plane,
                                  triggers: triggers.triggers)
            try loop.run(start: start)
            try accessOut.close()
            try coreOut.close()
            truncated = loop.truncated
            control = plane.router.counters
            signalling = plane.counters
            applied = loop.applied
            unresolved = loop.unresolvedSignalling
        } catch {
            throw Refusal(message: "\(error)")
        }
        guard rename(tmpAccess, outAccess) == 0, rename(tmpCore, outCore) == 0 else {
            throw Refusal(message: "cannot move the outputs into place: \(String(cString: strerror(errno)))")
        }
        done = true
        let elapsed = Double(Syscall.monotonicNanoseconds() - start) / 1e9
        var notApplied = triggers.counts
        for (kind, n) in applied { notApplied[kind, default: 0] -= n }
        return summary(pipeline.totals, elapsed: elapsed, applied: applied, notApplied: notApplied, truncated: truncated, control: control,
                       signalling: signalling, unresolved: unresolved)
    }

    func summary(_ t: Counters, elapsed: Double, applied: [String: Int], notApplied: [String: Int], truncated: Int,
                 control c: AccessRouterCounters, signalling: SignallingCounters, unresolved: Int) -> String {
        func object(_ pairs: [(String, Int)]) -> String {
            "{" + pairs.filter { $0.1 != 0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        let actions = object(Action.allCases.map { ($0.name, t[$0]) })
        let drops = object(DropReason.allCases.map { ($0.name, t[$0]) })
        let events = object(applied.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        let skipped = object(notApplied.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        let mpps = elapsed > 0 ? Double(t.framesIn) / elapsed / 1e6 : 0
        return "{\"frames_in\":\(t.framesIn),\"frames_out\":\(t.framesOut),\"actions\":\(actions),\"drops\":\(drops)"
            + ",\"control\":\(c.json),\"signalling\":\(signalling.json),\"signalling_unresolved\":\(unresolved)"
            + ",\"events\":\(events),\"events_not_applied\":\(skipped),\"truncated_frames\":\(truncated)"
            + ",\"elapsed_s\":\(String(format: "%.6f", elapsed)),\"mpps\":\(String(format: "%.3f", mpps))}"
    }
}

/// The replay loop: frames read from the captures straight into packet
/// slots, merged by time (the earlier port first on a tie), forwarded in
/// batches, and written to the capture of the port they leave by, in time
/// order (a frame the gateway makes follows the frame that caused it). The
/// control plane runs on capture time: its timers and the triggers fire
/// between frames, at their times.
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
    /// The control plane (access router, bindings, signalling), on capture time.
    let control: ControlPlane?
    /// Triggers still to fire, their times relative to the first frame.
    private var triggers: ArraySlice<Trigger>
    private var base: Int64?
    /// Triggers fired, by kind.
    private(set) var applied: [String: Int] = [:]
    /// Signalling not sent: its next hop's MAC unknown.
    private(set) var unresolvedSignalling = 0
    /// Frames captured shorter than they were on the wire.
    private(set) var truncated = 0

    init(inputs: [(PcapFileReader, GatewayPort)], pool: PacketPool, pipeline: Pipeline,
         access: PcapFileWriter, core: PcapFileWriter, control: ControlPlane?, triggers: [Trigger] = []) {
        self.control = control
        self.triggers = control == nil ? [] : triggers[...]
        precondition((1...2).contains(inputs.count))
        (first, firstPort) = inputs[0]
        second = inputs.count > 1 ? inputs[1].0 : nil
        secondPort = inputs.count > 1 ? inputs[1].1 : firstPort
        self.pool = pool
        self.pipeline = pipeline
        self.access = access
        self.core = core
    }

    /// When the control plane next has something to do, .max if never.
    private var nextControlTime: Int64 {
        guard let control else { return .max }
        let trigger = triggers.first.map { $0.time &+ (base ?? 0) } ?? .max
        return min(control.nextDeadline ?? .max, trigger)
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
        // When the control plane next has something to do (the first frame starts its clock).
        var nextDue: Int64 = control == nil ? .max : .min
        var lastTime = Int64.min
        while true {
            // Timers and triggers due before the next frame go first, in time order.
            let t = min(head0?.time ?? .max, head1?.time ?? .max)
            if base == nil && t != .max { base = t }
            if t >= nextDue && t != .max {
                try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
                n = 0
                try runControl(until: t)
                nextDue = nextControlTime
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
            // A multicast frame from an MN (RS, NS) or signalling may be the
            // control plane's to act on (an attach, a binding): it ends the
            // batch, so that the frames after it see what the control plane
            // made of it, as they would live.
            let last = batch[n - 1]
            if n == Self.batchSize || (control != nil && endsBatch(last)) {
                try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
                frames += n
                n = 0
                // An MN may have attached: its advertisements are due at once.
                nextDue = nextControlTime
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
        // What is due by the last frame's time (an MN that attached in the last batch, a PBA's RAs).
        if lastTime != .min {
            try runControl(until: lastTime)
            // Still held at the end of the input: their time runs out.
            try retryHeld(at: lastTime &+ pipeline.configuration.holdNanoseconds)
        }
    }

    /// Frames the pipeline held for a binding, decided again at `time` if
    /// the tables changed or their time is up, and written.
    func retryHeld(at time: Int64) throws(PortError) {
        guard pipeline.holding else { return }
        var generated: [Packet] = []
        let batch = UnsafeMutableBufferPointer<Packet>.allocate(capacity: Self.batchSize)
        defer { batch.deallocate() }
        try pipeline.drainHeld(now: time, into: batch, generated: &generated) { (decided, generated) throws(PortError) in
            for p in decided + generated {
                try write(p)
                pool.release(p.slot)
            }
            generated.removeAll(keepingCapacity: true)
        }
    }

    /// A multicast frame from an MN, or a Mobility Header on the core.
    @inline(__always)
    func endsBatch(_ p: Packet) -> Bool {
        let b = pool.bytes(p)
        switch p.port {
        case .access: return b[0] & 1 != 0
        case .core: return b.count > 54 && b[12] == 0x86 && b[13] == 0xDD && b[20] == IPProtocol.mobility
        }
    }

    /// Fires the triggers and timers due by `time`, each at its own time.
    func runControl(until time: Int64) throws(PortError) {
        guard let control else { return }
        // Signalling that waited for its next hop's advertisement (learned by the pipeline).
        let held = pipeline.tables.releaseHeld(time: time)
        unresolvedSignalling += held.expired
        for frame in held.frames { try core.write(frame, seconds: Int(time / 1_000_000_000), nanoseconds: Int(time % 1_000_000_000)) }
        while true {
            let trigger = triggers.first.map { $0.time &+ (base ?? 0) } ?? .max
            let deadline = control.nextDeadline ?? .max
            let at = min(trigger, deadline == .min ? time : deadline)
            guard at <= time else { return }
            if deadline <= at { try write(control.tick(at), at: at) }
            if trigger <= at, let t = triggers.popFirst() {
                switch t.kind {
                case .attach(let mn, let previous): try write(control.attach(mn, previous: previous, time: at), at: at)
                case .detach(let mn): try write(control.detach(mn, time: at), at: at)
                case .movePrefix(let id, let prefix, let to, let anchor):
                    let effects: ControlEffects
                    do throws(MoveRefusal) {
                        effects = try control.movePrefix(prefix, of: Array(id.utf8), to: to, anchor: anchor, time: at)
                    } catch {
                        FileHandleStderr.write("dgw replay: move-prefix at t=\(Double(t.time) / 1e9) s refused: \(error)\n")
                        continue
                    }
                    try write(effects, at: at)
                }
                applied[t.kind.name, default: 0] += 1
            }
        }
    }

    /// The control plane's effects: bindings changed, then its frames written.
    func write(_ effects: consuming ControlEffects, at time: Int64) throws(PortError) {
        var effects = effects
        guard !effects.isEmpty else {
            control?.recycle(&effects)
            return
        }
        let e = pipeline.tables.apply(&effects, time: time)
        for r in e.refused { FileHandleStderr.write("dgw replay: binding change refused: \(r.error)\n") }
        unresolvedSignalling += e.unresolved.count
        for (t, frame) in effects.access { try access.write(frame, seconds: Int(t / 1_000_000_000), nanoseconds: Int(t % 1_000_000_000)) }
        for c in effects.core { try core.write(c.frame, seconds: Int(time / 1_000_000_000), nanoseconds: Int(time % 1_000_000_000)) }
        control?.recycle(&effects)
        // The bindings held frames wait for may be among these.
        try retryHeld(at: time)
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
            if p.verdict.isPunted, let control {
                let bytes = UnsafeRawBufferPointer(pool.bytes(p))
                // Its effects (an attach, a binding) in place before the frames after this one.
                try write(p.port == .access ? control.access(bytes, time: p.time) : control.core(bytes, time: p.time), at: p.time)
            }
            pool.release(p.slot)
        }
        while g < generated.count { try write(generated[g]); g += 1 }
        for p in generated { pool.release(p.slot) }
        generated.removeAll(keepingCapacity: true)
        // Frames held in this batch whose time is up.
        try retryHeld(at: batch[batch.count - 1].time)
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

/// A control-plane trigger: what an access point's association event or
/// `dgw ctl` would say, at a time relative to the capture's first frame.
struct Trigger {
    enum Kind {
        case attach(MACAddress, previous: [IPv6Address])
        case detach(MACAddress)
        /// MN-ID, prefix, the interface it moves to, the prefix's anchor.
        case movePrefix(id: String, prefix: IPv6Prefix, to: MACAddress, anchor: IPv6Address?)

        var name: String {
            switch self {
            case .attach: "attach"
            case .detach: "detach"
            case .movePrefix: "move-prefix"
            }
        }
    }
    var time: Int64
    var kind: Kind
}

/// The triggers given to replay (`--events`), checked line by line.
struct EventLog {
    var triggers: [Trigger] = []
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
            guard let t = (object["t"] as? NSNumber)?.doubleValue, t >= 0, t < 1e9 else {
                throw fail("\"t\" (seconds after the first frame) is required")
            }
            guard t >= lastTime else { throw fail("events must be in time order") }
            lastTime = t
            let kinds = object.keys.filter { $0 != "t" }
            guard kinds.count == 1, let name = kinds.first, ["attach", "detach", "move-prefix"].contains(name) else {
                throw fail("one of \"attach\", \"detach\", \"move-prefix\" is required")
            }
            guard let body = object[name] as? [String: Any], let text = body["mn"] as? String, !text.isEmpty else {
                throw fail("\(name) needs \"mn\"")
            }
            func address(_ a: String) throws -> IPv6Address {
                guard let address = IPv6Address(a) else { throw fail("\"\(a)\" is not an IPv6 address") }
                return address
            }
            let kind: Trigger.Kind
            if name == "move-prefix" {
                // "mn" is the MN-ID here: the subscriber owning both interfaces.
                guard let p = body["prefix"] as? String, let prefix = IPv6Prefix(p) else { throw fail("move-prefix needs \"prefix\", an IPv6 prefix") }
                guard let m = body["to"] as? String, let to = MACAddress(m), !to.isMulticast else {
                    throw fail("move-prefix needs \"to\", the unicast MAC of the interface")
                }
                kind = .movePrefix(id: text, prefix: prefix, to: to, anchor: try (body["anchor"] as? String).map(address))
            } else {
                guard let mn = MACAddress(text) else { throw fail("\"\(text)\" is not a MAC address") }
                let previous = try (body["previous"] as? [String] ?? []).map(address)
                guard name == "attach" || previous.isEmpty else { throw fail("\"previous\" goes with attach") }
                kind = name == "attach" ? .attach(mn, previous: previous) : .detach(mn)
            }
            log.triggers.append(Trigger(time: Int64((t * 1e9).rounded()), kind: kind))
            log.counts[name, default: 0] += 1
        }
        return log
    }
}
