// Logging (swift-log, to stderr, one line per event and never per packet)
// and metrics (swift-metrics counters kept in a Prometheus registry, served
// as text on the configuration's `metrics:` address).

import CDGWShim
import DGWPipeline
import DGWPorts
import Foundation
import Logging
import Metrics
import Prometheus

/// stderr, info and above; bootstrapped once, on first use.
let log: Logger = {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .info
        return handler
    }
    return Logger(label: "dgw.run")
}()

/// The gateway's counters as swift-metrics counters in a Prometheus
/// registry, brought up to date from the workers' published counters when
/// scraped.
final class GatewayMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let framesIn: Metrics.Counter
    private let framesOut: Metrics.Counter
    private let actions: [Metrics.Counter]
    private let drops: [Metrics.Counter]
    private let lock = NSLock()
    private var last = Counters()

    init() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        framesIn = Counter(label: "dgw_frames_in_total")
        framesOut = Counter(label: "dgw_frames_out_total")
        actions = Action.allCases.map { Counter(label: "dgw_actions_total", dimensions: [("action", $0.name)]) }
        drops = DropReason.allCases.map { Counter(label: "dgw_drops_total", dimensions: [("reason", $0.name)]) }
    }

    /// Adds what happened since the last update.
    func update(_ now: Counters) {
        lock.lock()
        defer { lock.unlock() }
        framesIn.increment(by: Int64(now.framesIn - last.framesIn))
        framesOut.increment(by: Int64(now.framesOut - last.framesOut))
        for a in Action.allCases where now[a] != last[a] { actions[a.rawValue].increment(by: Int64(now[a] - last[a])) }
        for d in DropReason.allCases where now[d] != last[d] { drops[d.rawValue].increment(by: Int64(now[d] - last[d])) }
        last = now
    }
}

/// `GET /metrics` over HTTP/1.0 on a TCP address ("127.0.0.1:9100", "[::1]:9100").
enum MetricsServer {
    static func open(address: String, view: ControlView, until stop: StopFlag) throws(PortError) -> Listener {
        let host: String, portText: Substring
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            host = String(address[address.index(after: address.startIndex)..<close])
            portText = address[address.index(after: close)...].dropFirst()
        } else if let colon = address.lastIndex(of: ":") {
            host = String(address[..<colon])
            portText = address[address.index(after: colon)...]
        } else {
            host = ""
            portText = ""
        }
        guard let port = Int(portText), !host.isEmpty else {
            throw .syscall(name: "metrics \(address): not HOST:PORT (an IPv4 or [IPv6] literal and a port)", errno: EINVAL)
        }
        let fd = dgw_tcp_listen(host, Int32(port))
        guard fd >= 0 else { throw .syscall(name: "metrics \(address)", errno: dgw_errno()) }
        let metrics = GatewayMetrics()
        let listener = Listener(name: "dgw-metrics", fd: fd)
        listener.start(until: stop) { client in
            guard let request = Listener.request(client, until: Array("\r\n\r\n".utf8)) else { return }
            let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
            if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
                metrics.update(view.counters)
                let body = metrics.registry.emitToString()
                Listener.reply(client, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            } else {
                Listener.reply(client, "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nonly GET /metrics here")
            }
        }
        return listener
    }
}
