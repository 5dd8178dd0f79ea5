// A CMD's (an LMA's) records across a restart (`state_file`): `dgw run`
// writes them when it stops and reads them when it starts, so that a
// planned restart forgets no MN's anchors (a crash still does; the serving
// gateways' refreshes then rebuild them). One JSON object per line, per MN:
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

    /// Reads `path` (nothing when it does not exist); records that ran out
    /// before `now` are left out. `clockOffset`: wall clock minus the
    /// event clock, both in nanoseconds.
    /// `lma`: relayed bindings are an LMA's only (a CMD carries no traffic).
    static func read(_ path: String, lma: Bool, clockOffset: Int64, now: Int64) throws(Refusal) -> StateFile {
        guard FileManager.default.fileExists(atPath: path) else { return StateFile() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Refusal(description: "\(path): cannot be read")
        }
        var state = StateFile()
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy(\.isWhitespace) {
            func refuse(_ why: String) -> Refusal {
                Refusal(description: "\(path):\(i + 1): \(why) (remove the file to start without the saved records)")
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
            var record = MobilityRecord(mn: mn)
            if let hex = object["identity_hex"] {
                guard let text = hex as? String, let id = octets(hex: text), !id.isEmpty else { throw refuse("identity_hex is not hex") }
                record.identity = id
            }
            guard let anchors = object["anchors"] as? [[String: Any]] else { throw refuse("anchors is not a list of objects") }
            for a in anchors { record.anchors.append(Anchoring(gateway: try address(a["gateway"], "gateway"), prefix: try prefix(a["prefix"]))) }
            if let s = object["serving"] { record.serving = try address(s, "serving") }
            if let e = object["expires_unix_ns"] {
                guard let unix = (e as? NSNumber)?.int64Value else { throw refuse("expires_unix_ns is not a number") }
                if unix - clockOffset <= now { continue }  // ran out while stopped
                record.expires = unix - clockOffset
            }
            guard let relayed = (object["relayed"] ?? [[String: Any]]()) as? [[String: Any]] else { throw refuse("relayed is not a list of objects") }
            guard relayed.isEmpty || lma else { throw refuse("relayed bindings are an LMA's: a CMD carries no traffic") }
            for b in relayed {
                state.relayed.append(RelayedBinding(mn: mn, prefix: try prefix(b["prefix"]), anchor: try address(b["anchor"], "anchor"),
                                                    serving: try address(b["serving"], "serving")))
            }
            state.records.append(record)
        }
        return state
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

    /// Writes the records to `path` whole or not at all: a new file beside
    /// it, flushed to disk, then renamed over it.
    func write(_ path: String, clockOffset: Int64) throws(Refusal) {
        func json(_ s: String) -> String { "\"\(s)\"" }
        let relayedByMN = Dictionary(grouping: relayed, by: \.mn)
        var text = ""
        for r in records {
            var fields = ["\"mn\":\(json("\(r.mn)"))"]
            if let id = r.identity { fields.append("\"identity_hex\":\(json(id.map { String(format: "%02x", $0) }.joined()))") }
            fields.append("\"anchors\":[" + r.anchors.map { "{\"gateway\":\(json("\($0.gateway)")),\"prefix\":\(json("\($0.prefix)"))}" }
                .joined(separator: ",") + "]")
            if let s = r.serving { fields.append("\"serving\":\(json("\(s)"))") }
            if r.expires != .max { fields.append("\"expires_unix_ns\":\(r.expires + clockOffset)") }
            if let bound = relayedByMN[r.mn] {
                fields.append("\"relayed\":[" + bound.map {
                    "{\"prefix\":\(json("\($0.prefix)")),\"anchor\":\(json("\($0.anchor)")),\"serving\":\(json("\($0.serving)"))}"
                }.joined(separator: ",") + "]")
            }
            text += "{" + fields.joined(separator: ",") + "}\n"
        }
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
