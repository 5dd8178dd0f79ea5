import DGWInspect
import DGWPorts
import DGWWire
import Foundation
import Testing

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

let sampleCapture = packageRoot.appendingPathComponent("Samples/handover.pcapng").path

/// Runs a program; returns its exit status and standard output.
@discardableResult
func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read before waiting: a full pipe would block the child.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Path of a tool on PATH, or nil.
func which(_ tool: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// tshark's fields for every frame: one dictionary per frame, each field
/// the list of its occurrences.
func tsharkFields(_ file: String, _ fields: [String], options: [String] = []) throws -> [[String: [String]]] {
    guard let tshark = which("tshark") else { throw ToolMissing(tool: "tshark") }
    var args = ["-n", "-r", file, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=\t"]
    args += options
    for f in fields { args += ["-e", f] }
    let r = try run(tshark, args)
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
