import Foundation
import Synchronization
import Testing
@testable import DGWPorts

@Suite struct WriteBehindTests {
    /// Through a pipe drained slowly, the caller runs ahead until every
    /// buffer is in flight: each buffer it gets back must be written out
    /// already, and the pipe must carry the buffers whole and in order.
    @Test func aBufferComesBackOnlyOnceWritten() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let size = 64 << 10, count = 24, readEnd = fds[0]
        let behind = WriteBehind(fd: fds[1], size: size)
        let received = Mutex<[UInt8]>([])
        let drained = DispatchSemaphore(value: 0)
        let reader = Thread {
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                usleep(200)
                let n = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                received.withLock { $0.append(contentsOf: chunk[..<n]) }
            }
            drained.signal()
        }
        reader.start()
        var buffer = behind.buffer
        for i in 0..<count {
            buffer.initializeMemory(as: UInt8.self, repeating: UInt8(i), count: size)
            buffer = try behind.handOver(count: size)
        }
        try behind.drain()
        close(fds[1])
        drained.wait()
        close(fds[0])
        let bytes = received.withLock { $0 }
        #expect(bytes.count == size * count)
        let firstWrong = (0..<count).first { i in bytes[(i * size)..<min(bytes.count, (i + 1) * size)].contains { $0 != UInt8(i) } }
        #expect(firstWrong == nil)
    }

    @Test func aFailedWriteIsReportedOnceItIsKnown() throws {
        let fd = open("/dev/full", O_WRONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        let behind = WriteBehind(fd: fd, size: 4096)
        _ = try behind.handOver(count: 100)
        #expect(throws: PortError.syscall(name: "write", errno: ENOSPC)) { try behind.drain() }
        #expect(throws: PortError.syscall(name: "write", errno: ENOSPC)) { _ = try behind.handOver(count: 100) }
    }
}
