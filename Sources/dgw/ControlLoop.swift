// The control plane's thread in `dgw run`: the workers hand it the frames
// they punt from the access port (RS, NS) through lock-free rings, one per
// worker; it answers them and sends the periodic advertisements, through a
// send-only socket of its own.

import DGWControl
import DGWPipeline
import DGWPorts
import DGWTables
import Foundation
import Logging
import Synchronization

final class ControlLoop: @unchecked Sendable {
    let router: AccessRouter
    let sender: AFPacketPort
    /// Where attachments are installed: this thread is the tables' writer.
    let tables: GatewayTables
    /// One ring per worker (single producer, single consumer).
    let punts: [FrameRing]
    private let done = DispatchGroup()
    private(set) var transmitFailed = 0

    init(router: AccessRouter, sender: AFPacketPort, tables: GatewayTables, workers: Int) {
        self.router = router
        self.sender = sender
        self.tables = tables
        punts = (0..<workers).map { _ in FrameRing(capacity: 1024) }
    }

    /// Runs on its own thread until `stop`; answers within 10 ms.
    func start(until stop: StopFlag) {
        done.enter()
        let thread = Thread { [self] in
            defer { done.leave() }
            while !stop.flag.load(ordering: .acquiring) {
                step(now: Int64(Syscall.monotonicNanoseconds()))
                usleep(10_000)
            }
            step(now: Int64(Syscall.monotonicNanoseconds()))
        }
        thread.name = "dgw-control-plane"
        thread.start()
    }

    func finish() { done.wait() }

    private func step(now: Int64) {
        var out: [[UInt8]] = []
        for ring in punts {
            while let reply = ring.pop({ router.handle($0) }) {
                // The binding in place before the RA that brings the MN up.
                for a in reply.attached {
                    do { try tables.attach(mn: a.mn, prefix: a.prefix, dlifMAC: a.dlifMAC) } catch {
                        log.error("attach of \(a.mn) with \(a.prefix) refused: \(error)")
                    }
                    log.info("\(a.mn) attached: \(a.prefix), DLIF \(a.dlifMAC)")
                }
                out += reply.frames
            }
        }
        out += router.tick(now).map(\.frame)
        var start = 0
        while start < out.count {
            let chunk = out[start..<min(start + 64, out.count)]
            transmitFailed += chunk.count - send(Array(chunk))
            start += chunk.count
        }
    }

    /// Sends up to 64 frames from one contiguous copy; returns how many went.
    private func send(_ frames: [[UInt8]]) -> Int {
        let flat = frames.flatMap { $0 }
        let lengths = frames.map { UInt32($0.count) }
        return flat.withUnsafeBytes { bytes in
            var pointers: [UnsafeRawPointer?] = []
            var offset = 0
            for f in frames {
                pointers.append(bytes.baseAddress.map { $0 + offset })
                offset += f.count
            }
            return (try? sender.send(pointers, lengths: lengths, count: frames.count)) ?? 0
        }
    }
}
