// The control plane's thread in `dgw run`: the workers hand it the frames
// they punt (RS and NS from the access port, signalling from the core)
// through lock-free rings, one per worker and port; `dgw ctl` hands it
// triggers (attach, detach). It applies what the control plane decides to
// the shared tables (it is their one writer) and sends the control plane's
// frames through send-only sockets of its own.

import DGWControl
import DGWGateway
import DGWPipeline
import DGWPorts
import DGWTables
import DGWWire
import Foundation
import Logging
import Synchronization

final class ControlLoop: @unchecked Sendable {
    enum Trigger: Sendable {
        case attach(MACAddress, previous: [IPv6Address])
        case detach(MACAddress)
        /// Answered: nil when done, else why not.
        case movePrefix(MovePrefixRequest, answer: Reply<String?>)
        /// A CMD's (an LMA's) records, copied on the control thread.
        case records(Reply<[MobilityRecord]>)
        /// A checkpoint of its `state_file`: the journal set aside, to be
        /// folded into the file; answered whether it was.
        case checkpoint(Reply<Bool>)
    }

    struct MovePrefixRequest: Sendable {
        var id: [UInt8]
        var prefix: IPv6Prefix
        var to: MACAddress
        var anchor: IPv6Address?
    }

    /// Where the control thread leaves its answer to a trigger for `dgw ctl`.
    final class Reply<Value: Sendable>: Sendable {
        private let slot = Mutex<Value?>(nil)
        private let gaveUp = Atomic(false)
        func set(_ value: Value) { slot.withLock { $0 = value } }
        /// The answer, or nil after two seconds without one.
        func wait() -> Value? {
            for _ in 0..<2000 {
                if let value = slot.withLock({ $0 }) { return value }
                usleep(1000)
            }
            gaveUp.store(true, ordering: .releasing)
            return nil
        }
        /// Nobody waits for the answer any more.
        var abandoned: Bool { gaveUp.load(ordering: .acquiring) }
    }

    let control: ControlPlane
    /// nil for a CMD (no access port).
    let accessSender: AFPacketPort?
    let coreSender: AFPacketPort
    let tables: GatewayTables
    /// One ring per worker and port (single producer, single consumer).
    let punts: [FrameRing]
    let corePunts: [FrameRing]
    /// Signalled by a worker that pushed to a ring: the step runs at once,
    /// not at the next millisecond (a handover's signalling crosses this
    /// thread at every hop).
    let wakeup: Wakeup
    private let triggers = Mutex<[Trigger]>([])
    /// The control plane's counters as of the last step, for `dgw ctl`.
    let published = Mutex((AccessRouterCounters(), SignallingCounters()))
    private let done = DispatchGroup()
    private(set) var transmitFailed = 0
    private(set) var unresolvedSignalling = 0

    init(control: ControlPlane, accessSender: AFPacketPort?, coreSender: AFPacketPort, tables: GatewayTables, workers: Int) throws(PortError) {
        wakeup = try Wakeup()
        self.control = control
        self.accessSender = accessSender
        self.coreSender = coreSender
        self.tables = tables
        punts = (0..<workers).map { _ in FrameRing(capacity: 1024) }
        corePunts = (0..<workers).map { _ in FrameRing(capacity: 1024) }
    }

    /// Queues a trigger for the control thread (any thread).
    func trigger(_ t: Trigger) {
        triggers.withLock { $0.append(t) }
        wakeup.signal()
    }

    /// Where a CMD (an LMA) keeps its records across a restart, the wall
    /// clock less the event clock (for their expiries), and whether it is
    /// an LMA's (with relayed bindings).
    var stateFile: (path: String, clockOffset: Int64, lma: Bool)?
    /// Its changes since the last checkpoint, appended after each step.
    var journal: StateJournal?
    /// One writer of the state file at a time (`dgw ctl save`, a
    /// compaction, the stop): a flag, not a lock, as a compaction is begun
    /// on the control thread, which must not wait, and ends on its own.
    private let writing = Atomic(false)
    /// Compactions done and failed, for the log and `dgw ctl`.
    let compactions = Mutex((done: 0, failed: 0))

    private func beginWriting() {
        while !writing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { usleep(1000) }
    }

    private func endWriting() { writing.store(false, ordering: .releasing) }

    /// Writes the records to the state file: `state` as given (at stop,
    /// the control thread ended), else (`dgw ctl save`: a checkpoint that a
    /// crash does not lose) as a compaction does, from the caller's thread:
    /// the control thread only sets the journal aside, and copies no record.
    func save(_ state: StateFile? = nil) throws(StateFile.Refusal) -> (count: Int, path: String) {
        guard let (path, clockOffset, lma) = stateFile else { throw StateFile.Refusal(description: "no state_file in the configuration") }
        // Taken before the checkpoint: its journal is set aside while no compaction reads the one before.
        beginWriting()
        defer { endWriting() }
        if let state {
            try state.write(path, clockOffset: clockOffset)
            return (state.records.count, path)
        }
        let reply = Reply<Bool>()
        trigger(.checkpoint(reply))
        guard let setAside = reply.wait() else { throw StateFile.Refusal(description: "the control plane did not answer") }
        guard setAside else { throw StateFile.Refusal(description: "the journal could not be set aside (the log says why)") }
        return (try fold(path, lma: lma, clockOffset: clockOffset).records, path)
    }

    /// The journal set aside folded into the file (a checkpoint's, a
    /// compaction's), whose new size the journal's limit then goes by.
    private func fold(_ path: String, lma: Bool, clockOffset: Int64) throws(StateFile.Refusal) -> (records: Int, bytes: Int) {
        let folded = try StateFile.compact(path, lma: lma, clockOffset: clockOffset, now: Int64(Syscall.monotonicNanoseconds()))
        journal?.fileBytes.store(folded.bytes, ordering: .relaxed)
        return folded
    }

    /// Once the journal has grown past its limit, and no other writer of
    /// the file is at work: the journal set aside here (control thread),
    /// folded into the file on a thread of its own, which a million
    /// records keep busy for seconds, not this one.
    private func compactIfDue() {
        guard let journal, journal.wantsCompaction, let (path, clockOffset, lma) = stateFile,
              writing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return }
        let folded = journal.bytes
        do throws(StateFile.Refusal) {
            try journal.setAside()
        } catch {
            log.error("compaction of \(path): \(error)")
            compactions.withLock { $0.failed += 1 }
            endWriting()
            return
        }
        let thread = Thread { [self] in
            defer { endWriting() }
            do throws(StateFile.Refusal) {
                let (records, bytes) = try fold(path, lma: lma, clockOffset: clockOffset)
                compactions.withLock { $0.done += 1 }
                log.info("\(path): journal of \(folded) bytes folded in, \(records) record(s) in \(bytes) bytes")
            } catch {
                // The journal set aside stays: the next start reads it, the next writer adds to it.
                compactions.withLock { $0.failed += 1 }
                log.error("compaction of \(path): \(error)")
            }
        }
        thread.name = "dgw-state-file"
        thread.start()
    }

    /// The CMD's records as of the control thread's next step (within a
    /// few milliseconds); nil if it does not answer within two seconds.
    func mobilityRecords() -> [MobilityRecord]? {
        let reply = Reply<[MobilityRecord]>()
        trigger(.records(reply))
        return reply.wait()
    }

    /// Runs on its own thread until `stop`; answers within a millisecond or so.
    func start(until stop: StopFlag) {
        done.enter()
        let thread = Thread { [self] in
            defer { done.leave() }
            while !stop.flag.load(ordering: .acquiring) {
                step(now: Int64(Syscall.monotonicNanoseconds()))
                wakeup.wait(milliseconds: 1)
            }
            step(now: Int64(Syscall.monotonicNanoseconds()))
        }
        thread.name = "dgw-control-plane"
        thread.start()
    }

    func finish() { done.wait() }

    private func step(now: Int64) {
        var effects: [ControlEffects] = []
        for t in triggers.withLock({ t in defer { t.removeAll() }; return t }) {
            switch t {
            case .attach(let mn, let previous):
                log.info("attach \(mn)\(previous.isEmpty ? "" : ", former anchors \(previous.map { "\($0)" }.joined(separator: " "))")")
                let refused = control.router.counters.notSubscribed
                effects.append(control.attach(mn, previous: previous, time: now))
                if control.router.counters.notSubscribed > refused { log.warning("attach \(mn) refused: not one of the subscribers") }
            case .detach(let mn):
                log.info("detach \(mn)")
                effects.append(control.detach(mn, time: now))
            case .movePrefix(let r, let answer):
                let what = "move-prefix \(r.prefix) of \(String(decoding: r.id, as: UTF8.self)) to \(r.to)"
                do throws(MoveRefusal) {
                    effects.append(try control.movePrefix(r.prefix, of: r.id, to: r.to, anchor: r.anchor, time: now))
                    log.info("\(what)")
                    answer.set(nil)
                } catch {
                    log.warning("\(what) refused: \(error)")
                    answer.set(error.description)
                }
            case .records(let reply):
                reply.set(control.mobilityRecords)
            case .checkpoint(let reply):
                // Too late: the `save` that asked gave up, and let go of the file, which a
                // compaction may be reading with the journal set aside: that one is left alone.
                guard !reply.abandoned, let journal else {
                    reply.set(false)
                    continue
                }
                // Every change so far in the journal set aside (folded into the file,
                // it goes); what changes from now on goes to a new one.
                journal.append(control.drainJournal())
                do throws(StateFile.Refusal) {
                    try journal.setAside()
                    reply.set(true)
                } catch {
                    log.error("\(error)")
                    reply.set(false)
                }
            }
        }
        for ring in punts { while let e = ring.pop({ control.access($0, time: now) }) { effects.append(e) } }
        for ring in corePunts { while let e = ring.pop({ control.core($0, time: now) }) { effects.append(e) } }
        effects.append(control.tick(now))
        var access: [[UInt8]] = [], core: [[UInt8]] = []
        for i in effects.indices where !effects[i].isEmpty {
            // Taken out of the list: the signalling's frames have one owner and are framed in place.
            var e = effects[i]
            effects[i] = ControlEffects()
            for change in e.bindings { log.info("\(Self.describe(change))") }
            let applied = tables.apply(&e, time: now)
            for r in applied.refused { log.error("binding change refused: \(r.change): \(r.error)") }
            unresolvedSignalling += applied.unresolved.count
            access += e.access.map(\.frame)
            core += e.core.map(\.frame)
            control.recycle(&e)
        }
        // Signalling that waited for its next hop's advertisement.
        let held = tables.releaseHeld(time: now)
        core += held.frames
        unresolvedSignalling += held.expired
        transmitFailed += send(access, on: accessSender) + send(core, on: coreSender)
        journal?.append(control.drainJournal())
        compactIfDue()
        published.withLock { $0 = (control.router.counters, control.counters) }
    }

    static func describe(_ change: BindingChange) -> String {
        switch change {
        case .install(let mn, let prefix, nil, nil, let mac): "\(mn) attached: \(prefix), DLIF \(mac)"
        case .install(let mn, let prefix, nil, let serving?, _): "\(mn) served by \(serving): \(prefix) tunnelled there"
        case .install(let mn, let prefix, let anchor?, _, let mac): "\(mn) anchored at \(anchor): \(prefix) tunnelled there, its DLIF \(mac) shown"
        case .remove(let prefix): "\(prefix) unbound"
        case .routeLocalNetwork(let prefix, let anchor): "local network \(prefix) routed to its anchor \(anchor)"
        case .unrouteLocalNetwork(let prefix, let anchor): "local network \(prefix) of \(anchor): one session fewer"
        }
    }

    /// Sends frames 64 at a time from one contiguous copy; returns how many failed.
    private func send(_ frames: [[UInt8]], on port: AFPacketPort?) -> Int {
        guard let port else { return frames.count }
        var failed = 0
        var start = 0
        while start < frames.count {
            let chunk = Array(frames[start..<min(start + 64, frames.count)])
            let flat = chunk.flatMap { $0 }
            let lengths = chunk.map { UInt32($0.count) }
            let sent = flat.withUnsafeBytes { bytes in
                var pointers: [UnsafeRawPointer?] = []
                var offset = 0
                for f in chunk {
                    pointers.append(bytes.baseAddress.map { $0 + offset })
                    offset += f.count
                }
                return (try? port.send(pointers, lengths: lengths, count: chunk.count)) ?? 0
            }
            failed += chunk.count - sent
            start += chunk.count
        }
        return failed
    }
}
