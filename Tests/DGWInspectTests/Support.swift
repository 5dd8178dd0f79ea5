import DGWInspect
import DGWTestSupport
import DGWPorts
import DGWWire
import Foundation
import Testing

let sampleCapture = packageRoot.appendingPathComponent("Samples/handover.pcapng").path

/// tshark's fields for every frame: one dictionary per frame, each field
/// the list of its occurrences.
func tsharkFields(_ file: String, _ fields: [String], options: [String] = []) throws -> [[String: [String]]] {
    guard let tshark = which("tshark") else { throw ToolMissing(tool: "tshark") }
    var args = ["-n", "-r", file, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=\t"]
    args += options
    for f in fields { args += ["-e", f] }
    let r = try runProcess(tshark, args)
    guard r.status == 0 else { throw ToolFailed(tool: "tshark", message: r.stderr) }
    return r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
        let cols = line.split(separator: "\t", omittingEmptySubsequences: false)
        var row: [String: [String]] = [:]
        for (i, f) in fields.enumerated() where i < cols.count && !cols[i].isEmpty {
            row[f] = cols[i].split(separator: "|").map(String.init)
        }
        return row
    }
}

struct ToolMissing: Error { let tool: String }
struct ToolFailed: Error { let tool: String; let message: String }

/// Our decoder's objects for every frame of a capture, in process.
func decodeCapture(_ path: String) throws -> [[String: Any]] {
    let reader = try PcapFileReader(path: path)
    let decoder = FrameDecoder(dataLinkType: reader.dataLinkType)
    var out: [[String: Any]] = []
    var n = 0
    while let record = try reader.next() {
        n += 1
        let line = decoder.decode(record.data, number: n, originalLength: record.originalLength)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        out.append(try #require(object, "frame \(n) is not a JSON object: \(line)"))
    }
    return out
}

/// A temporary file path, removed by the caller.
func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("dgw-\(UUID().uuidString)-\(name)").path
}
