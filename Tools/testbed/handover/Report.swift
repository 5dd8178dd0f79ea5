// What `make demo` prints and draws: per handover the signalling time and
// the interruption, the gateways' bindings and counters, every check; and
// an SVG timeline of the packets on the MN's link per address (one per
// prefix) with the handovers marked. The same findings as JSON for tests.

import DGWPorts
import DGWWire
import Foundation

extension Findings {
    func text(started: UInt64) -> String {
        func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0) } ?? "n/a" }
        var lines = ["dgw handover testbed: three D-GWs, \(cmd.map { $0 == "lma" ? "an inter-operator LMA" : "a CMD (\($0) mode)" } ?? "no CMD"), a CN, a LIPA host behind dgw1, one Linux MN", ""]
        lines.append("handover                  signalling   interruption   probes lost   new connection from")
        for h in handovers {
            lines.append(h.name.padding(toLength: 26, withPad: " ", startingAt: 0)
                         + ms(h.signallingMs).padding(toLength: 13, withPad: " ", startingAt: 0)
                         + ms(h.interruptionMs).padding(toLength: 15, withPad: " ", startingAt: 0)
                         + "\(h.probesLost)".padding(toLength: 14, withPad: " ", startingAt: 0) + h.newConnectionSource)
        }
        lines.append("  (signalling: port moved to the last PBA on the core; interruption: the longest gap of the CN's 1 kHz probe")
        lines.append("   to the MN's first address; target <= 10 ms)")
        lines.append("")
        lines.append("probes: \(probesSent) sent, \(probesReceived) received")
        lines.append("TCP: \(tcp)")
        for g in gateways {
            lines.append("")
            lines.append("\(g.name) bindings:")
            lines += g.bindings.split(separator: "\n").map { "  \($0)" }
            lines.append("\(g.name) counters: \(g.counters.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        lines.append("")
        for c in checks { lines.append("\(c.ok ? "ok  " : "FAIL") \(c.what)") }
        lines.append("")
        lines.append(failures.isEmpty ? "all \(checks.count) checks passed" : "\(failures.count) of \(checks.count) checks FAILED")
        return lines.joined(separator: "\n") + "\n"
    }

    var json: String {
        func string(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
        func number(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "null" }
        let h = handovers.map {
            "{\"name\":\(string($0.name)),\"signalling_ms\":\(number($0.signallingMs)),\"interruption_ms\":\(number($0.interruptionMs)),"
                + "\"dlifs_shown_after_bound_ms\":\(number(Double(Int64($0.shown) - Int64($0.bound)) / 1e6)),"
                + "\"probes_lost\":\($0.probesLost),\"new_connection_source\":\(string($0.newConnectionSource))}"
        }
        let c = checks.map { "{\"ok\":\($0.ok),\"check\":\(string($0.what))}" }
        return "{\"passed\":\(failures.isEmpty),\"handovers\":[\(h.joined(separator: ","))],\"probes_sent\":\(probesSent),"
            + "\"probes_received\":\(probesReceived),\"checks\":[\(c.joined(separator: ","))]}"
    }
}

/// The timeline: packets per 100 ms on the MN's link, one line per address, handovers marked.
func timeline(capture: String, addresses: [(label: String, address: IPv6Address)], handovers: [Findings.Handover],
              clockOffset: Int64) -> String? {
    guard let reader = try? PcapFileReader(path: capture) else { return nil }
    var times: [(t: Int64, series: Int)] = []
    while let r = try? reader.next() {
        let d = r.data
        guard d.count >= 54, d[12] == 0x86, d[13] == 0xDD,
              let ip = try? IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: d[14...])) else { continue }
        let t = Int64(r.seconds) * 1_000_000_000 + Int64(r.nanoseconds) - clockOffset
        if let s = addresses.firstIndex(where: { $0.address == ip.source || $0.address == ip.destination }) { times.append((t, s)) }
    }
    guard let first = times.map(\.t).min(), let last = times.map(\.t).max() else { return nil }
    let bucket: Int64 = 100_000_000
    let buckets = Int((last - first) / bucket) + 1
    var counts = [[Int]](repeating: [Int](repeating: 0, count: buckets), count: addresses.count)
    for (t, s) in times { counts[s][Int((t - first) / bucket)] += 1 }
    let width = 960.0, height = 360.0, left = 60.0, top = 30.0, plotW = width - left - 20, plotH = height - top - 90
    let peak = Double(max(1, counts.flatMap { $0 }.max() ?? 1))
    let seconds = Double(last - first) / 1e9
    func x(_ t: Int64) -> Double { left + plotW * Double(t - first) / Double(max(1, last - first)) }
    func y(_ n: Int) -> Double { top + plotH * (1 - Double(n) / peak) }
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="18" font-size="14">Packets per 100 ms on the MN's link, by address (prefix); handovers marked</text>
        <line x1="\(left)" y1="\(top + plotH)" x2="\(left + plotW)" y2="\(top + plotH)" stroke="black"/>
        <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(top + plotH)" stroke="black"/>
        <text x="\(left - 8)" y="\(top + 4)" text-anchor="end">\(Int(peak))</text>
        <text x="\(left - 8)" y="\(top + plotH)" text-anchor="end">0</text>
        <text x="\(left + plotW)" y="\(top + plotH + 16)" text-anchor="end">\(String(format: "%.0f", seconds)) s</text>

        """
    for h in handovers {
        let hx = x(Int64(h.moved))
        svg += "<line x1=\"\(hx)\" y1=\"\(top)\" x2=\"\(hx)\" y2=\"\(top + plotH)\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n"
        svg += "<text x=\"\(hx + 3)\" y=\"\(top + 12)\" fill=\"gray\">\(h.name)</text>\n"
    }
    for (s, series) in counts.enumerated() {
        let points = series.enumerated().map { "\(String(format: "%.1f", left + plotW * (Double($0.offset) + 0.5) / Double(buckets))),\(String(format: "%.1f", y($0.element)))" }
        svg += "<polyline fill=\"none\" stroke=\"\(colours[s % colours.count])\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
        let ly = top + plotH + 32 + Double(s / 2) * 16, lx = left + Double(s % 2) * plotW / 2
        svg += "<rect x=\"\(lx)\" y=\"\(ly - 9)\" width=\"12\" height=\"3\" fill=\"\(colours[s % colours.count])\"/>"
        svg += "<text x=\"\(lx + 18)\" y=\"\(ly - 4)\">\(addresses[s].label)</text>\n"
    }
    return svg + "</svg>\n"
}
