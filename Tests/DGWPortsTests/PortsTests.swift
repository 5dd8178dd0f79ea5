import CDGWShim
import DGWPorts
import Foundation
import Testing

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("dgw-\(UUID().uuidString)-\(name)").path
}

let sampleCapture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Samples/handover.pcapng").path

@Suite struct PcapFileTests {
    @Test func writeThenReadKeepsBytesAndNanoseconds() throws {
        let path = temporaryPath("rt.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let frames: [[UInt8]] = [[1, 2, 3], [UInt8](repeating: 0xAB, count: 1514), []]
        let writer = try PcapFileWriter(path: path)
        for (i, f) in frames.enumerated() { writer.write(f, seconds: 1_764_000_000 + i, nanoseconds: 123_456_789 + i) }
        try writer.close()
        try writer.close()  // closing twice is harmless

        let reader = try PcapFileReader(path: path)
        #expect(reader.dataLinkType == 1)
        var i = 0
        while let r = try reader.next() {
            #expect(Array(r.data) == frames[i])
            #expect(r.seconds == 1_764_000_000 + i)
            #expect(r.nanoseconds == 123_456_789 + i)
            #expect(r.originalLength == frames[i].count)
            i += 1
        }
        #expect(i == frames.count)
        #expect(try reader.next() == nil)  // stays at the end
    }

    @Test func readsPcapng() throws {
        let reader = try PcapFileReader(path: sampleCapture)
        var n = 0
        while try reader.next() != nil { n += 1 }
        #expect(n == 22)
    }

    @Test func missingFileIsAClearError() {
        #expect {
            _ = try PcapFileReader(path: "/nonexistent/capture.pcap")
        } throws: { error in
            "\(error)".contains("No such file")
        }
    }

    @Test func notACaptureIsAClearError() throws {
        let path = temporaryPath("junk.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("this is not a capture file at all".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: PortError.self) { _ = try PcapFileReader(path: path) }
    }

    @Test func fileCutMidRecordIsAnErrorAfterTheGoodRecords() throws {
        let path = temporaryPath("cut.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        writer.write([UInt8](repeating: 1, count: 100), seconds: 1, nanoseconds: 0)
        writer.write([UInt8](repeating: 2, count: 100), seconds: 2, nanoseconds: 0)
        try writer.close()
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count - 30).write(to: URL(fileURLWithPath: path))
        let reader = try PcapFileReader(path: path)
        #expect(try reader.next()?.data.count == 100)
        #expect(throws: PortError.self) { _ = try reader.next() }
    }

    @Test func unwritablePathIsAClearError() {
        #expect(throws: PortError.self) { _ = try PcapFileWriter(path: "/nonexistent/dir/out.pcap") }
    }
}

@Suite struct SyscallTests {
    @Test func writeAllThroughAPipe() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        var out = BufferedOutput(fd: fds[1], capacity: 8)
        try out.write("hello ")
        try out.write("world\n")
        try out.flush()
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fds[0], &buffer, 64)
        #expect(String(decoding: buffer[..<n], as: UTF8.self) == "hello world\n")
    }

    @Test func writeToAClosedDescriptorThrowsWithErrno() {
        #expect(throws: PortError.syscall(name: "write", errno: EBADF)) {
            try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try Syscall.writeAll(-1, $0) }
        }
    }

    @Test func pinningAThread() async throws {
        // Pin a fresh thread to the first CPU it may use, then read back.
        let cpu = try Syscall.firstAllowedCPU()
        let result = try await withCheckedThrowingContinuation { (c: CheckedContinuation<(Int, Int), Error>) in
            let t = Thread {
                do {
                    try Syscall.pinThread(to: cpu)
                    c.resume(returning: (try Syscall.allowedCPUCount(), try Syscall.firstAllowedCPU()))
                } catch { c.resume(throwing: error) }
            }
            t.start()
        }
        #expect(result == (1, cpu))
        #expect(throws: PortError.self) { try Syscall.pinThread(to: -1) }
    }

    @Test func monotonicClockAdvances() {
        let a = Syscall.monotonicNanoseconds()
        let b = Syscall.monotonicNanoseconds()
        #expect(a > 0 && b >= a)
    }
}
