// A CMD's (an LMA's) records across a restart (`state_file`): `dgw run`
// writes them when it stops and reads them when it starts, so that a
// planned restart forgets no MN's anchors; in between, each change goes to
// a journal beside it (StateJournal), so that a crash does not either.
// One JSON object per line, per MN:
//
//   {"mn":"02:aa:00:00:00:01","anchors":[{"gateway":"2001:db8:ffff::1","prefix":"2001:db8:1::/64"}],
//    "serving":"2001:db8:ffff::2","expires_unix_ns":1765000000000000000,
//    "relayed":[{"prefix":"2001:db8:1::/64","anchor":"2001:db8:ffff::1","serving":"2001:db8:ffff::2"}]}
//
// `identity_hex` when the MN-ID is not its MAC's text; no `serving` after a
// de-registration; no `expires_unix_ns` for a record that does not expire
// (an LMA's static binding's). Times are the wall clock's: the event clock
// of a `dgw run` is the monotonic one, which a reboot starts again.

import DGWControl
import DGWPipeline
import DGWWire
import Foundation
import Synchronization

struct StateFile: Sendable {
    var records: [MobilityRecord] = []
    var relayed: [RelayedBinding] = []

    init(records: [MobilityRecord] = [], relayed: [RelayedBinding] = []) {
        self.records = records
        self.relayed = relayed
    }

    /// What `control` (a CMD's or an LMA's) keeps, read on its own thread.
    init(of control: ControlPlane) {
        self.init(records: control.mobilityRecords, relayed: control.relayedBindings)
    }

    struct Refusal: Error, CustomStringConvertible, Sendable {
        var description: String
    }

    /// The journal beside `path`, and the one set aside by a checkpoint
    /// until its file is written.
    static func journals(of path: String) -> (current: String, previous: String) { (path + ".journal", path + ".journal.old") }

    /// Reads `path` (nothing when it does not exist), then its journals:
    /// the one a checkpoint set aside, then the current one; a journal's
    /// line replaces what came before for its MN. Records that ran out
    /// before `now` are left out. `clockOffset`: wall clock minus the
    /// event clock, both in nanoseconds.
    /// `lma`: relayed bindings are an LMA's only (a CMD carries no traffic).
    /// `current`: false when compacting, while the control thread appends to it.
    static func read(_ path: String, lma: Bool, clockOffset: Int64, now: Int64, current: Bool = true) throws(Refusal) -> StateFile {
        var byMN: [MACAddress: (record: MobilityRecord, relayed: [RelayedBinding])] = [:]
        let journals = journals(of: path)
        for (file, isJournal) in [(path, false), (journals.previous, true)] + (current ? [(journals.current, true)] : []) {
            guard FileManager.default.fileExists(atPath: file) else { continue }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw Refusal(description: "\(file): cannot be read")
            }
            let text = String(decoding: data, as: UTF8.self)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            for (i, line) in lines.enumerated() where !line.allSatisfy(\.isWhitespace) {
                // A journal's last line cut short by a crash: the change it was is lost, not the rest.
                let torn = isJournal && i == lines.count - 1 && !text.hasSuffix("\n")
                do throws(Refusal) {
                    let (mn, entry) = try parse(line, at: "\(file):\(i + 1)", lma: lma, clockOffset: clockOffset, now: now)
                    byMN[mn] = entry
                } catch where torn {
                    continue
                }
            }
        }
        var state = StateFile()
        for mn in byMN.keys.sorted() {
            state.records.append(byMN[mn]!.record)
            state.relayed += byMN[mn]!.relayed
        }
        return state
    }

    /// One line of a state file or journal: the MN, and its record and
    /// relayed bindings, or nil when it is gone (a journal's
    /// `{"mn":...,"gone":true}`) or ran out before `now`.
    private static func parse(_ line: Substring, at place: String, lma: Bool, clockOffset: Int64,
                              now: Int64) throws(Refusal) -> (MACAddress, (record: MobilityRecord, relayed: [RelayedBinding])?) {
        func refuse(_ why: String) -> Refusal {
            Refusal(description: "\(place): \(why) (remove the file to start without the saved records)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw refuse("not a JSON object")
        }
        func address(_ value: Any?, _ what: String) throws(Refusal) -> IPv6Address {
            guard let text = value as? String, let a = IPv6Address(text) else { throw refuse("\(what) is not an IPv6 address") }
            return a
        }
        func prefix(_ value: Any?) throws(Refusal) -> IPv6Prefix {
            guard let text = value as? String, let p = IPv6Prefix(text) else { throw refuse("prefix is not an IPv6 prefix") }
            return p
        }
        guard let mnText = object["mn"] as? String, let mn = MACAddress(mnText) else { throw refuse("mn is not a MAC address") }
        if let gone = object["gone"] {
            guard gone as? Bool == true, object.count == 2 else { throw refuse("a gone line has mn and \"gone\":true only") }
            return (mn, nil)
        }
        var record = MobilityRecord(mn: mn)
        if let hex = object["identity_hex"] {
            guard let text = hex as? String, let id = octets(hex: text), !id.isEmpty else { throw refuse("identity_hex is not hex") }
            record.identity = id
        }
        guard let anchors = object["anchors"] as? [[String: Any]] else { throw refuse("anchors is not a list of objects") }
        for a in anchors { record.anchors.append(Anchoring(gateway: try address(a["gateway"], "gateway"), prefix: try prefix(a["prefix"]))) }
        if let s = object["serving"] { record.serving = try address(s, "serving") }
        var expired = false
        if let e = object["expires_unix_ns"] {
            guard let unix = (e as? NSNumber)?.int64Value else { throw refuse("expires_unix_ns is not a number") }
            expired = unix - clockOffset <= now  // ran out while stopped
            record.expires = unix - clockOffset
        }
        guard let relayed = (object["relayed"] ?? [[String: Any]]()) as? [[String: Any]] else { throw refuse("relayed is not a list of objects") }
        guard relayed.isEmpty || lma else { throw refuse("relayed bindings are an LMA's: a CMD carries no traffic") }
        var bindings: [RelayedBinding] = []
        for b in relayed {
            bindings.append(RelayedBinding(mn: mn, prefix: try prefix(b["prefix"]), anchor: try address(b["anchor"], "anchor"),
                                           serving: try address(b["serving"], "serving")))
        }
        return (mn, expired ? nil : (record, bindings))
    }

    /// An LMA's relayed bindings in its data plane from the start: where a
    /// static binding's MN went since, the saved binding says.
    func restore(_ p: inout PipelineConfiguration) {
        let moved = Set(relayed.map(\.prefix))
        p.bindings = p.bindings.filter { !moved.contains($0.prefix) }
            + relayed.map { BindingEntry(mn: $0.mn, prefix: $0.prefix, anchor: $0.anchor, serving: $0.serving) }
    }

    /// The records (and an LMA's relayed bindings, as above) in the control plane's.
    func restore(_ c: inout ControlPlaneConfiguration) {
        c.records = records
        let moved = Set(relayed.map(\.prefix))
        c.relayed = c.relayed.filter { !moved.contains($0.prefix) } + relayed
    }

    /// One MN's line: its record and relayed bindings.
    static func line(_ r: MobilityRecord, relayed: [RelayedBinding], clockOffset: Int64) -> String {
        func json(_ s: String) -> String { "\"\(s)\"" }
        var fields = ["\"mn\":\(json("\(r.mn)"))"]
        if let id = r.identity { fields.append("\"identity_hex\":\(json(id.map { String(format: "%02x", $0) }.joined()))") }
        fields.append("\"anchors\":[" + r.anchors.map { "{\"gateway\":\(json("\($0.gateway)")),\"prefix\":\(json("\($0.prefix)"))}" }
            .joined(separator: ",") + "]")
        if let s = r.serving { fields.append("\"serving\":\(json("\(s)"))") }
        if r.expires != .max { fields.append("\"expires_unix_ns\":\(r.expires + clockOffset)") }
        if !relayed.isEmpty {
            fields.append("\"relayed\":[" + relayed.map {
                "{\"prefix\":\(json("\($0.prefix)")),\"anchor\":\(json("\($0.anchor)")),\"serving\":\(json("\($0.serving)"))}"
            }.joined(separator: ",") + "]")
        }
        return "{" + fields.joined(separator: ",") + "}\n"
    }

    /// A journal's line for a change: the MN's line now, or that it is gone.
    static func line(_ change: JournaledRecord, clockOffset: Int64) -> String {
        guard let r = change.record else { return "{\"mn\":\"\(change.mn)\",\"gone\":true}\n" }
        return line(r, relayed: change.relayed, clockOffset: clockOffset)
    }

    /// Writes the records to `path` whole or not at all: a new file beside
    /// it, flushed to disk, then renamed over it; then the journal a
    /// checkpoint set aside (what the file now holds) goes. Returns its size.
    @discardableResult
    func write(_ path: String, clockOffset: Int64) throws(Refusal) -> Int {
        let relayedByMN = Dictionary(grouping: relayed, by: \.mn)
        var text = ""
        for r in records { text += Self.line(r, relayed: relayedByMN[r.mn] ?? [], clockOffset: clockOffset) }
        let temporary = path + ".new"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)),
              let handle = FileHandle(forUpdatingAtPath: temporary) else {
            throw Refusal(description: "\(temporary): cannot be written")
        }
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw Refusal(description: "\(temporary): \(error)")
        }
        guard rename(temporary, path) == 0 else {
            throw Refusal(description: "\(path): cannot replace it: \(String(cString: strerror(errno)))")
        }
        // The rename itself on the disk before the journal it replaces goes.
        let directory = open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                             O_RDONLY | O_DIRECTORY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
        unlink(Self.journals(of: path).previous)
        return text.utf8.count
    }

    /// Folds the journal set aside into the file (a compaction, off the
    /// control thread): the file and that journal read, the file written
    /// afresh, the journal gone. What a crash in between leaves, the next
    /// start reads the same: a journal's line holds its MN's whole record,
    /// so one read again over the file that has it changes nothing.
    static func compact(_ path: String, lma: Bool, clockOffset: Int64, now: Int64) throws(Refusal) -> (records: Int, bytes: Int) {
        let state = try read(path, lma: lma, clockOffset: clockOffset, now: now, current: false)
        return (state.records.count, try state.write(path, clockOffset: clockOffset))
    }

    private static func octets(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let o = UInt8(String(decoding: digits[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(o)
        }
        return out
    }
}

/// The changes of a CMD's (an LMA's) records between checkpoints, one line
/// each, appended by the control thread after each step: what a crash
/// would otherwise lose (a process crash: the lines are in the kernel's
/// hands once written; a crash of the machine too with `state_sync`, which
/// flushes each step's lines to the disk). A
/// checkpoint (`dgw ctl save`) sets the journal aside and begins another;
/// the state file written, the one set aside goes. So does a compaction,
/// once the journal has grown past its limit (`wantsCompaction`). At
/// start, `dgw run` reads the state file and both journals, writes the
/// state file afresh and begins an empty journal.
final class StateJournal: @unchecked Sendable {
    let path: String
    let clockOffset: Int64
    /// `state_journal_limit`: 0 for no compaction.
    let limit: Int
    /// `state_sync`: each append flushed to the disk.
    let sync: Bool
    private var handle: FileHandle
    /// Bytes in the current journal (control thread).
    private(set) var bytes = 0
    /// The state file's size when last written (by whichever writer).
    let fileBytes = Atomic<Int>(0)
    /// Lines that could not be written (the disk full, ...): logged.
    private(set) var failures = 0

    /// Begins an empty journal beside `path`, whose file holds `fileBytes`.
    init(path: String, clockOffset: Int64, limit: Int, sync: Bool = false, fileBytes: Int) throws(StateFile.Refusal) {
        self.path = path
        self.clockOffset = clockOffset
        self.limit = limit
        self.sync = sync
        self.fileBytes.store(fileBytes, ordering: .relaxed)
        handle = try Self.create(StateFile.journals(of: path).current)
    }

    private static func create(_ file: String) throws(StateFile.Refusal) -> FileHandle {
        guard FileManager.default.createFile(atPath: file, contents: nil), let h = FileHandle(forWritingAtPath: file) else {
            throw StateFile.Refusal(description: "\(file): cannot be written")
        }
        return h
    }

    /// Appends the changes (control thread).
    func append(_ changes: [JournaledRecord]) {
        guard !changes.isEmpty else { return }
        var text = ""
        for c in changes { text += StateFile.line(c, clockOffset: clockOffset) }
        do {
            try handle.write(contentsOf: Data(text.utf8))
            if sync { try handle.synchronize() }
            bytes += text.utf8.count
        } catch {
            failures += changes.count
            let file = StateFile.journals(of: path).current
            log.error("\(file): \(changes.count) change(s) not written: \(error)")
            // A write cut short (the disk full) leaves half a line, which the
            // next lines would follow: a damaged line the next start refuses.
            // Back to the last whole line.
            do {
                try handle.truncate(atOffset: UInt64(bytes))
            } catch {
                log.error("\(file): cannot cut it back to its last whole line (\(bytes) bytes): \(error)")
            }
        }
    }

    /// Time to fold the journal into the file: it holds `limit` bytes and
    /// as many as the file (rewriting a file much larger than the journal
    /// at every limit would write the same records over and over).
    var wantsCompaction: Bool {
        limit > 0 && bytes >= max(limit, fileBytes.load(ordering: .relaxed))
    }

    /// The journal so far set aside for a checkpoint or a compaction (the
    /// state file written, it goes), and another begun (control thread;
    /// one writer of the file at a time). One still there, whose writer
    /// failed, is kept: this one's lines go after its own.
    func setAside() throws(StateFile.Refusal) {
        let journals = StateFile.journals(of: path)
        try? handle.close()
        var begun = false
        defer {
            // Refused: the lines go on into the journal as it is.
            if !begun, let h = FileHandle(forWritingAtPath: journals.current) {
                _ = try? h.seekToEnd()
                handle = h
            }
        }
        if FileManager.default.fileExists(atPath: journals.previous) {
            guard let lines = FileManager.default.contents(atPath: journals.current),
                  let previous = FileHandle(forWritingAtPath: journals.previous) else {
                throw StateFile.Refusal(description: "\(journals.current): cannot add it to \(journals.previous)")
            }
            var whole: UInt64?
            do {
                whole = try previous.seekToEnd()
                try previous.write(contentsOf: lines)
                try previous.close()
            } catch {
                // Its lines stay in the current journal, and go here again
                // at the next set-aside: not after half of them.
                if let whole { try? previous.truncate(atOffset: whole) }
                try? previous.close()
                throw StateFile.Refusal(description: "\(journals.previous): \(error)")
            }
        } else {
            guard rename(journals.current, journals.previous) == 0 else {
                throw StateFile.Refusal(description: "\(journals.current): cannot set it aside: \(String(cString: strerror(errno)))")
            }
        }
        handle = try Self.create(journals.current)
        bytes = 0
        begun = true
    }

    /// At stop, once the state file holds everything: no journal is left.
    func remove() {
        try? handle.close()
        unlink(StateFile.journals(of: path).current)
    }
}
