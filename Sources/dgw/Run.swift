import ArgumentParser
import DGWConfig
import DGWControl
import DGWTables
import DGWPipeline
import DGWPorts
import DGWWire
import Foundation
import Logging
import Synchronization

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forward live between the access and core interfaces until SIGINT or SIGTERM.",
        discussion: """
            Takes the configuration's interfaces over (kernel IPv6 off, link up; put back at exit \
            and reported on stderr), opens an AF_PACKET socket with a TPACKET_V3 receive ring on \
            each (promiscuous on the access side: the DLIFs' logical MACs are not the \
            interface's), and forwards as the bindings say. On SIGINT or SIGTERM the workers drain \
            their rings, the interfaces are restored and a JSON counter summary is printed; exit \
            status 0. A bad configuration, a missing interface or missing privilege: a message \
            and exit status 2.
            """
    )

    enum IO: String, ExpressibleByArgument, CaseIterable { case afpacket, pcap }

    @Option(help: "The gateway's YAML configuration.") var config: String
    @Option(help: "Forwarding threads, each with its own rings (PACKET_FANOUT hash across them) and pinned to a CPU.")
    var workers = 1
    @Option(help: "Packet I/O: afpacket (TPACKET_V3 rings) or pcap (libpcap capture and injection, one worker).")
    var io = IO.afpacket
    @Option(name: .customLong("ring-block-kib"), help: "Receive ring block size in KiB (a multiple of the page size).")
    var ringBlockKiB = 64
    // A block is handed over after --retire-ms at the latest, full or not, so the
    // ring holds at least this many milliseconds: a worker that the kernel put
    // aside (its own threads run on the same CPUs) for that long loses nothing.
    @Option(name: .customLong("ring-blocks"), help: "Receive ring blocks per socket (with --retire-ms 1, at least as many milliseconds of traffic).")
    var ringBlocks = 128
    @Option(name: .customLong("ring-frame"), help: "Largest frame in the ring, header included, in bytes.") var ringFrame = 2176
    @Option(name: .customLong("retire-ms"), help: "A partly filled block is handed over after this many milliseconds.")
    var retireMs = 1

    func validate() throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64") }
        guard io == .afpacket || workers == 1 else { throw ValidationError("--io pcap runs one worker (libpcap has no fanout)") }
        guard ringBlockKiB >= 4, ringBlockKiB % 4 == 0 else { throw ValidationError("--ring-block-kib must be a multiple of 4") }
        guard ringFrame >= 256, ringFrame <= ringBlockKiB * 1024 else { throw ValidationError("--ring-frame must be 256 bytes to a block") }
        guard (1...4096).contains(ringBlocks) else { throw ValidationError("--ring-blocks must be 1...4096") }
        guard (1...1000).contains(retireMs) else { throw ValidationError("--retire-ms must be 1...1000") }
    }

    func run() throws {
        print(try Refusal.reported(by: "run") { try forward() })
    }

    func forward() throws -> String {
        let gateway: GatewayConfig
        do { gateway = try GatewayConfig.load(path: config) } catch { throw Refusal(message: "\(error)") }
        // A CMD (role cmd) has the core port only: it signals, it carries no
        // traffic. So has an LMA, which carries the traffic between operators.
        let names = (access: gateway.access?.interface, core: gateway.core.port.interface)
        var pipelineConfiguration = PipelineConfiguration(gateway)
        // Events carry the monotonic clock; signed messages' identifiers and
        // the saved records' expiries are wall-clock times (they keep
        // growing across a restart, and a peer checks them against its own clock).
        let clockOffset = Syscall.realtimeNanoseconds() - Int64(Syscall.monotonicNanoseconds())
        // A CMD's (an LMA's) records from before it stopped; an LMA's relayed
        // bindings back in its data plane at once.
        var saved = StateFile()
        if let path = gateway.stateFile {
            do { saved = try StateFile.read(path, lma: gateway.role == .lma, clockOffset: clockOffset, now: Int64(Syscall.monotonicNanoseconds())) }
            catch { throw Refusal(message: "\(error)") }
            saved.restore(&pipelineConfiguration)
        }
        let coreMAC: MACAddress
        do {
            for name in [names.access, names.core].compactMap({ $0 }) { _ = try Interfaces.isUp(name) }
            coreMAC = MACAddress(value: try Interfaces.mac(names.core).reduce(0) { $0 << 8 | UInt64($1) })
        } catch { throw Refusal(message: "\(error)") }
        // The core MAC: the configured one (the interface then listens promiscuously) or the interface's.
        if gateway.core.port.mac == nil { pipelineConfiguration.coreMAC = coreMAC }
        let corePromiscuous = pipelineConfiguration.coreMAC != coreMAC

        var options = AFPacketOptions()
        options.blockSize = ringBlockKiB * 1024
        options.blockCount = ringBlocks
        options.frameSize = ringFrame
        options.retireMilliseconds = retireMs

        // Each worker: its own sockets (one fanout group per interface), pool and pipeline.
        let group = Int(getpid() & 0x7FFF)
        var list: [any ForwardingWorker] = []
        // One set of tables for all the workers (each reads it through its
        // own QSBR reader): a neighbour's advertisement may reach any of them.
        let tables: GatewayTables
        do { tables = try GatewayTables(pipelineConfiguration) } catch { throw Refusal(message: "\(config): \(error)") }
        do {
            for _ in 0..<workers {
                var a = options, c = options
                a.promiscuous = true
                c.promiscuous = corePromiscuous
                if workers > 1 {
                    a.fanoutGroup = group
                    c.fanoutGroup = group + 1
                }
                let pool = PacketPool(count: 1024)
                let pipeline = Pipeline(pool: pool, tables: tables)
                switch io {
                case .afpacket:
                    list.append(Worker(access: try names.access.map { n throws(PortError) in try AFPacketPort(interface: n, options: a) },
                                       core: try AFPacketPort(interface: names.core, options: c),
                                       pool: pool, pipeline: pipeline, retireMilliseconds: retireMs))
                case .pcap:
                    list.append(Worker(access: try names.access.map { n throws(PortError) in try PcapLivePort(interface: n, promiscuous: true) },
                                       core: try PcapLivePort(interface: names.core, promiscuous: corePromiscuous),
                                       pool: pool, pipeline: pipeline, retireMilliseconds: 0))
                }
            }
        } catch {
            throw Refusal(message: "\(error)")
        }
        // The control plane (access router, bindings, signalling) on a thread of its own.
        let controlLoop: ControlLoop
        do {
            var sendOnly = AFPacketOptions()
            sendOnly.blockCount = 0
            var control = ControlPlaneConfiguration(gateway)
            control.clockOffset = clockOffset
            control.journal = gateway.stateFile != nil
            saved.restore(&control)
            if !saved.records.isEmpty { log.notice("\(saved.records.count) record(s) from \(gateway.stateFile ?? "")") }
            controlLoop = try ControlLoop(control: ControlPlane(control),
                                      accessSender: try names.access.map { n throws(PortError) in try AFPacketPort(interface: n, options: sendOnly) },
                                      coreSender: try AFPacketPort(interface: names.core, options: sendOnly), tables: tables,
                                      workers: list.count)
        } catch { throw Refusal(message: "\(error)") }
        controlLoop.stateFile = gateway.stateFile.map { ($0, clockOffset, gateway.role == .lma) }
        if let path = gateway.stateFile {
            // What was read (the file and its journals) written afresh, and an empty journal begun.
            do throws(StateFile.Refusal) {
                let bytes = try saved.write(path, clockOffset: clockOffset)
                controlLoop.journal = try StateJournal(path: path, clockOffset: clockOffset, limit: gateway.stateJournalLimit,
                                                       sync: gateway.stateSync, fileBytes: bytes)
            } catch { throw Refusal(message: "\(error)") }
        }
        for (i, w) in list.enumerated() {
            w.punts = controlLoop.punts[i]
            w.corePunts = controlLoop.corePunts[i]
            w.wakeup = controlLoop.wakeup
        }
        let stop = StopFlag()
        var listeners: [Listener] = []
        defer { stop.flag.store(true, ordering: .releasing); listeners.forEach { $0.finish() } }
        let view = ControlView(workers: list, tables: tables, control: controlLoop)
        do {
            if let path = gateway.control {
                listeners.append(try ControlServer.open(path: path, view: view, until: stop))
                log.info("control socket \(path)")
            }
            if let address = gateway.metrics {
                listeners.append(try MetricsServer.open(address: address, view: view, until: stop))
                log.info("Prometheus metrics on http://\(address)/metrics")
            }
        } catch { throw Refusal(message: "\(error)") }
        // Sockets first: a missing privilege is reported before anything is
        // changed; signals caught from here on, so a SIGTERM restores too.
        do { try StopSignal.install() } catch { throw Refusal(message: "\(error)") }
        let takeover = InterfaceTakeover()
        defer { takeover.restore() }
        do {
            if let access = names.access { try takeover.take(access) }
            if names.core != names.access { try takeover.take(names.core) }
        } catch { throw Refusal(message: "\(error)") }

        if let access = names.access {
            log.notice("forwarding between \(access) (access) and \(names.core) (core, MAC \(pipelineConfiguration.coreMAC)) with \(workers) worker(s), \(io.rawValue)")
        } else if gateway.role == .lma {
            log.notice("inter-operator LMA on \(names.core) (core, MAC \(pipelineConfiguration.coreMAC)) with \(workers) worker(s), \(io.rawValue)")
        } else {
            log.notice("central mobility database (\(gateway.cmdMode.rawValue)) on \(names.core) (core, MAC \(pipelineConfiguration.coreMAC)), \(io.rawValue)")
        }

        let start = Syscall.monotonicNanoseconds()
        controlLoop.start(until: stop)
        let done = DispatchGroup()
        let firstCPU = (try? Syscall.firstAllowedCPU()) ?? 0
        let cpus = max(1, (try? Syscall.allowedCPUCount()) ?? 1)
        for (i, worker) in list.enumerated() {
            done.enter()
            let thread = Thread {
                try? Syscall.pinThread(to: firstCPU + i % cpus)
                worker.run(until: stop)
                done.leave()
            }
            thread.name = "dgw-worker-\(i)"
            thread.start()
        }
        while !StopSignal.requested && !list.contains(where: { $0.failed() != nil }) { usleep(20_000) }
        stop.flag.store(true, ordering: .releasing)
        done.wait()
        controlLoop.finish()
        listeners.forEach { $0.finish() }
        listeners = []
        // The control thread and the control socket have ended: the records are read here alone.
        if gateway.stateFile != nil {
            do {
                let saved = try controlLoop.save(StateFile(of: controlLoop.control))
                controlLoop.journal?.remove()
                log.notice("\(saved.count) record(s) saved to \(saved.path)")
            } catch {
                log.error("\(error)")
            }
        }
        let elapsed = Double(Syscall.monotonicNanoseconds() - start) / 1e9
        var totals = Counters()
        var transmitFailed = 0
        for w in list {
            totals.add(w.pipeline.totals)
            transmitFailed += w.transmitFailed
        }
        takeover.restore()
        if let failure = list.compactMap({ $0.failed() }).first {
            throw Refusal(message: "\(failure)")
        }
        return summary(totals, transmitFailed: transmitFailed + controlLoop.transmitFailed, elapsed: elapsed, restored: takeover.changes,
                       control: controlLoop.control.router.counters, signalling: controlLoop.control.counters, puntOverflow: list.reduce(0) { $0 + $1.puntOverflow },
                       offload: list.reduce(into: OffloadCounters()) { $0.add($1.offload) })
    }

    func summary(_ t: Counters, transmitFailed: Int, elapsed: Double, restored: [String], control: AccessRouterCounters, signalling: SignallingCounters,
                 puntOverflow: Int, offload: OffloadCounters) -> String {
        func object(_ pairs: [(String, Int)]) -> String {
            "{" + pairs.filter { $0.1 != 0 }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        let actions = object(Action.allCases.map { ($0.name, t[$0]) })
        let drops = object(DropReason.allCases.map { ($0.name, t[$0]) })
        let changes = "[" + restored.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        return "{\"frames_in\":\(t.framesIn),\"frames_out\":\(t.framesOut),\"actions\":\(actions),\"drops\":\(drops)"
            + ",\"control\":\(control.json),\"signalling\":\(signalling.json),\"punt_overflow\":\(puntOverflow)"
            + ",\"checksums_completed\":\(offload.checksumsCompleted),\"superframes_segmented\":\(offload.superframesSegmented)"
            + ",\"segments_from_superframes\":\(offload.segments)"
            + ",\"transmit_failed\":\(transmitFailed),\"interfaces_restored\":\(changes)"
            + ",\"elapsed_s\":\(String(format: "%.3f", elapsed))}"
    }
}

final class StopFlag: Sendable {
    let flag = Atomic<Bool>(false)
}

/// What the gateway changed on its interfaces, put back by `restore`.
final class InterfaceTakeover {
    private var undo: [(String, () throws(PortError) -> Void)] = []
    /// For the summary: one line per change undone.
    private(set) var changes: [String] = []

    /// No kernel IPv6 on `name` (the gateway answers ND itself) and the link up.
    func take(_ name: String) throws(PortError) {
        if !(try Interfaces.ipv6Disabled(name)) {
            try Interfaces.setIPv6Disabled(name, true)
            log.notice("\(name): kernel IPv6 disabled (re-enabled at exit; its IPv6 addresses are not restored)")
            undo.append(("\(name): kernel IPv6 re-enabled", { () throws(PortError) in try Interfaces.setIPv6Disabled(name, false) }))
        }
        if !(try Interfaces.isUp(name)) {
            try Interfaces.setUp(name, true)
            log.notice("\(name): link set up (set down again at exit)")
            undo.append(("\(name): link set down", { () throws(PortError) in try Interfaces.setUp(name, false) }))
        }
    }

    func restore() {
        while let (what, action) = undo.popLast() {
            do {
                try action()
                changes.append(what)
                log.notice("\(what)")
            } catch {
                log.error("could not restore (\(what)): \(error)")
            }
        }
    }
}

/// One forwarding thread: its two sockets, packet pool and pipeline.
/// A forwarding thread as the rest of `dgw run` sees it (whatever its port type).
protocol ForwardingWorker: AnyObject, Sendable {
    var pipeline: Pipeline { get }
    var transmitFailed: Int { get }
    /// The counters as last published (at most 100 ms old while running).
    func publishedCounters() -> Counters
    /// The error the worker stopped on, if any.
    func failed() -> PortError?
    func run(until stop: StopFlag)
    var punts: FrameRing? { get set }
    var corePunts: FrameRing? { get set }
    var wakeup: Wakeup? { get set }
    var puntOverflow: Int { get }
    var offload: OffloadCounters { get }
}

/// Work a sender left to a NIC that does not exist (a veth, a local socket,
/// or a NIC's receive offload) and the worker did before forwarding.
struct OffloadCounters {
    /// Frames with a partial checksum (TP_STATUS_CSUMNOTREADY), completed.
    var checksumsCompleted = 0
    /// Segmentation-offload super-frames cut into packets, and the packets made.
    var superframesSegmented = 0
    var segments = 0

    mutating func add(_ o: OffloadCounters) {
        checksumsCompleted += o.checksumsCompleted
        superframesSegmented += o.superframesSegmented
        segments += o.segments
    }
}

final class Worker<Port: LivePort>: @unchecked Sendable, ForwardingWorker {
    static var batchSize: Int { 64 }
    /// nil for a CMD, which has the core port only.
    let access: Port?
    let core: Port
    let pool: PacketPool
    let pipeline: Pipeline
    private(set) var transmitFailed = 0
    /// Set when the worker stopped on an error (the process then exits).
    let failure = Mutex<PortError?>(nil)
    /// The pipeline's counters as of at most 100 ms ago, for the control socket.
    let published = Mutex(Counters())
    /// Where punted frames go (the control plane's thread): from the access port, and signalling from the core.
    var punts: FrameRing?
    var corePunts: FrameRing?
    /// Signalled after a batch that pushed to either ring.
    var wakeup: Wakeup?
    /// Punted frames dropped because the control plane's ring was full.
    private(set) var puntOverflow = 0
    private(set) var offload = OffloadCounters()
    /// A transmit batch: frame addresses and lengths.
    let sendFrames = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: 64)
    let sendLengths = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)

    let retireMilliseconds: Int

    init(access: Port?, core: Port, pool: PacketPool, pipeline: Pipeline, retireMilliseconds: Int) {
        self.retireMilliseconds = retireMilliseconds
        self.access = access
        self.core = core
        self.pool = pool
        self.pipeline = pipeline
    }

    func publishedCounters() -> Counters { published.withLock { $0 } }
    func failed() -> PortError? { failure.withLock { $0 } }

    deinit {
        sendFrames.deallocate()
        sendLengths.deallocate()
    }

    func run(until stop: StopFlag) {
        let batch = UnsafeMutableBufferPointer<Packet>.allocate(capacity: Self.batchSize)
        defer { batch.deallocate() }
        var generated: [Packet] = []
        generated.reserveCapacity(4 * Self.batchSize)
        var n = 0
        let descriptors = [access?.descriptor, core.descriptor].compactMap { $0 }
        var lastPublished: UInt64 = 0
        // What the kernel dropped before the gateway saw it counts as a drop too.
        func countRingDrops() {
            let dropped = (access?.takeReceiveDrops() ?? 0) + core.takeReceiveDrops()
            if dropped > 0 { pipeline.countDroppedAtPort(.receiveRingFull, frames: dropped) }
        }
        defer {
            countRingDrops()
            published.withLock { $0 = pipeline.totals }
        }
        func append(_ p: Packet) throws(PortError) {
            batch[n] = p
            n += 1
            if n == Self.batchSize {
                try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
                n = 0
            }
        }
        do throws(PortError) {
            while true {
                let now = Syscall.monotonicNanoseconds()
                if now &- lastPublished >= 100_000_000 {
                    countRingDrops()
                    published.withLock { $0 = pipeline.totals }
                    lastPublished = now
                }
                // After a stop: one last pass over what the rings hold (the drain), then out.
                let stopping = stop.flag.load(ordering: .acquiring)
                if stopping {
                    // Frames in a block the kernel has not retired yet: wait it out.
                    usleep(UInt32(retireMilliseconds + 1) * 1000)
                } else {
                    // Held frames wait for a binding from the control plane's thread: looked at often.
                    try StopSignal.poll(descriptors, milliseconds: pipeline.holding ? 1 : 20)
                }
                for (port, side) in [(access, GatewayPort.access), (core, GatewayPort.core)] {
                    guard let port else { continue }
                    _ = try port.receive(maxBlocks: 4) { (frame: ReceivedFrame) throws(PortError) in
                        // A tag the kernel took off: still a tagged frame, and not ours.
                        if frame.vlanTagged {
                            pipeline.countDroppedAtPort(.vlanTagged, frames: 1)
                            return
                        }
                        if frame.isSuperFrame {
                            try segment(frame, side, into: append)
                            return
                        }
                        // Longer than a slot, or than the port kept (a pcap snap length).
                        let tooLong = frame.bytes.count > pool.capacity || frame.bytes.count < frame.originalLength
                        guard !tooLong, let p = pool.load(frame.bytes, port: side, time: frame.time) else {
                            pipeline.countDroppedAtPort(tooLong ? .frameTooLong : .poolExhausted, frames: 1)
                            return
                        }
                        // Forwarded on, it must carry the checksum the sender's NIC would have written.
                        if frame.checksumNotReady && completeTransportChecksum(pool.bytes(p)) { offload.checksumsCompleted += 1 }
                        try append(p)
                    }
                }
                try forward(UnsafeMutableBufferPointer(rebasing: batch[..<n]), &generated)
                n = 0
                try retryHeld(batch, &generated, stopping: stopping)
                if stopping { break }
            }
        } catch {
            failure.withLock { $0 = error }
        }
    }

    /// Cuts a segmentation-offload super-frame into the packets its sender's
    /// NIC would have sent (as a router must put them on the wire), each
    /// handed to `append` like a received frame. What cannot be cut is
    /// dropped whole: IPv4 as `not_ipv6`, anything inconsistent as
    /// `malformed`, segments longer than a packet slot or a super-frame the
    /// ring cut short as `frame_too_long`.
    func segment(_ frame: ReceivedFrame, _ side: GatewayPort, into append: (Packet) throws(PortError) -> Void) throws(PortError) {
        let plan: SegmentationPlan
        do throws(SegmentationError) {
            guard let raw = frame.virtioNetHeader, let header = try? VirtioNetHeader.parse(raw) else { throw SegmentationError.malformed }
            plan = try SegmentationPlan(frame: frame.bytes, header: header)
        } catch {
            pipeline.countDroppedAtPort(error == .notIPv6 ? .notIPv6 : .malformed, frames: 1)
            return
        }
        guard frame.bytes.count == frame.originalLength, plan.longestSegment <= pool.capacity else {
            pipeline.countDroppedAtPort(.frameTooLong, frames: 1)
            return
        }
        offload.superframesSegmented += 1
        for i in 0..<plan.count {
            guard let s = pool.allocate() else {
                pipeline.countDroppedAtPort(.poolExhausted, frames: plan.count - i)
                return
            }
            let room = UnsafeMutableRawBufferPointer(rebasing: pool.slot(s)[PacketPool.headroom...])
            let length = plan.write(segment: i, of: frame.bytes, into: room)
            offload.segments += 1
            try append(Packet(slot: s, offset: PacketPool.headroom, length: length, port: side, time: frame.time))
        }
    }

    /// Decides a batch and sends what leaves, by port, in order.
    func forward(_ batch: UnsafeMutableBufferPointer<Packet>, _ generated: inout [Packet]) throws(PortError) {
        guard batch.count > 0 else { return }
        pipeline.process(batch, generated: &generated)
        try dispatch(batch, &generated)
    }

    /// Frames held for a binding (`Pipeline.processHeld`), decided again
    /// and sent; `stopping`: the last try, which drops what still waits.
    func retryHeld(_ batch: UnsafeMutableBufferPointer<Packet>, _ generated: inout [Packet], stopping: Bool) throws(PortError) {
        guard pipeline.holding else { return }
        try pipeline.drainHeld(now: stopping ? .max : Syscall.realtimeNanoseconds(), into: batch, generated: &generated) {
            (decided, generated) throws(PortError) in try dispatch(decided, &generated)
        }
    }

    /// After the pipeline: punts to the control plane, frames sent, slots given back.
    private func dispatch(_ batch: UnsafeMutableBufferPointer<Packet>, _ generated: inout [Packet]) throws(PortError) {
        if let punts, let corePunts {
            var pushed = false
            defer { if pushed { wakeup?.signal() } }
            for p in batch {
                guard p.verdict.isPunted else { continue }
                let bytes = UnsafeRawBufferPointer(pool.bytes(p))
                // Of the core's punts, only signalling is the control plane's.
                if p.port == .core && !(bytes.count > 54 && bytes[20] == IPProtocol.mobility) { continue }
                if (p.port == .access ? punts : corePunts).push(bytes) { pushed = true } else { puntOverflow += 1 }
            }
        }
        try send(batch)
        try generated.withUnsafeMutableBufferPointer { g in Result { () throws(PortError) in try send(g) } }.get()
        for p in batch { pool.release(p.slot) }
        for p in generated { pool.release(p.slot) }
        generated.removeAll(keepingCapacity: true)
    }

    private func send(_ packets: UnsafeMutableBufferPointer<Packet>) throws(PortError) {
        var start = 0
        while start < packets.count {
            let chunk = UnsafeMutableBufferPointer(rebasing: packets[start..<min(start + Self.batchSize, packets.count)])
            try sendChunk(chunk, on: .access, access)
            try sendChunk(chunk, on: .core, core)
            start += chunk.count
        }
    }

    private func sendChunk(_ packets: UnsafeMutableBufferPointer<Packet>, on side: GatewayPort, _ port: Port?) throws(PortError) {
        let frames = sendFrames, lengths = sendLengths
        var count = 0
        for p in packets {
            guard case .forward(let out) = p.verdict, out == side else { continue }
            let bytes = pool.bytes(p)
            frames[count] = UnsafeRawPointer(bytes.baseAddress)
            lengths[count] = UInt32(bytes.count)
            count += 1
        }
        guard count > 0 else { return }
        guard let port else {
            transmitFailed += count  // no such port (a CMD's access side)
            return
        }
        let sent = try port.send(frames, lengths: lengths, count: count)
        transmitFailed += count - sent
    }
}
