// The control plane's thread in `dgw run`: the workers hand it the frames
// they punt from the access port (RS, NS), it answers them and sends the
// periodic advertisements, through a send-only socket of its own.

import DGWControl
import DGWPipeline
import DGWPorts
import Foundation
import Synchronization

/// Punted frames, copied by the workers, taken by the control thread. A
/// lock, but only on the slow path: a worker takes it for a frame the fast
/// path did not decide, never per forwarded packet.
final class PuntQueue: Sendable {
    static let limit = 4096
    private let frames = Mutex<[[UInt8]]>([])
    /// Frames not queued because the control thread was this far behind.
    let overflow = Atomic<Int>(0)

    func push(_ bytes: UnsafeRawBufferPointer) {
        let queued = frames.withLock { f -> Bool in
            guard f.count < Self.limit else { return false }
            f.append(Array(bytes))
            return true
        }
        if !queued { overflow.add(1, ordering: .relaxed) }
    }

    func drain() -> [[UInt8]] {
        frames.withLock { f in
            defer { f.removeAll(keepingCapacity: true) }
            return f
        }
    }
}

final class ControlLoop: @unchecked Sendable {
    let router: AccessRouter
    let sender: AFPacketPort
    let punts = PuntQueue()
    private let done = DispatchGroup()
    private(set) var transmitFailed = 0

    init(router: AccessRouter, sender: AFPacketPort) {
        self.router = router
        self.sender = sender
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
        for frame in punts.drain() { out += frame.withUnsafeBytes { router.handle($0) } }
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
