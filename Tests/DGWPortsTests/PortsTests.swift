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
        for (i, f) in frames.enumerated() { try writer.write(f, seconds: 1_764_000_000 + i, nanoseconds: 123_456_789 + i) }
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
        try writer.write([UInt8](repeating: 1, count: 100), seconds: 1, nanoseconds: 0)
        try writer.write([UInt8](repeating: 2, count: 100), seconds: 2, nanoseconds: 0)
        try writer.close()
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count - 30).write(to: URL(fileURLWithPath: path))
        let reader = try PcapFileReader(path: path)
        #expect(try reader.next()?.data.count == 100)
        #expect(throws: PortError.self) { _ = try reader.next() }
    }

    /// A big-endian, microsecond capture (as written on a big-endian host):
    /// fields swapped, the fraction scaled to nanoseconds.
    @Test func readsByteSwappedMicrosecondPcap() throws {
        let path = temporaryPath("be.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes: [UInt8] = [
            0xA1, 0xB2, 0xC3, 0xD4, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0,
            0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,                          // snap 65535, Ethernet
            0x69, 0x2A, 0x0F, 0x80, 0x00, 0x0F, 0x42, 0x3F, 0, 0, 0, 3, 0, 0, 0, 60,  // 1764364160.999999, 3 of 60
            0xDE, 0xAD, 0xBE,
        ]
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try PcapFileReader(path: path)
        #expect(reader.dataLinkType == 1)
        let r = try #require(try reader.next())
        #expect(r.seconds == 1_764_364_160 && r.nanoseconds == 999_999_000)
        #expect(Array(r.data) == [0xDE, 0xAD, 0xBE] && r.originalLength == 60)
        #expect(try reader.next() == nil)
    }

    /// Records straddling the reader's 4 MiB chunks come out whole, in order.
    @Test func recordsAcrossReadChunksAreWhole() throws {
        let path = temporaryPath("big.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        let count = 9_000  // about 13 MiB of varied sizes
        func frame(_ i: Int) -> [UInt8] { (0..<(60 + (i * 7919) % 1455)).map { UInt8(truncatingIfNeeded: $0 &+ i) } }
        for i in 0..<count { try writer.write(frame(i), seconds: i, nanoseconds: i) }
        try writer.close()
        let reader = try PcapFileReader(path: path)
        var i = 0
        while let r = try reader.next() {
            guard Array(r.data) == frame(i), r.seconds == i, r.nanoseconds == i else {
                Issue.record("record \(i) differs")
                break
            }
            i += 1
        }
        #expect(i == count)
    }

    @Test func impossibleCaptureLengthIsAnError() throws {
        let path = temporaryPath("huge.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        try writer.write([1, 2, 3], seconds: 1, nanoseconds: 0)
        try writer.close()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes.replaceSubrange(32..<36, with: [0x00, 0x00, 0x10, 0x00])  // caplen 1 MiB
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try PcapFileReader(path: path)
        #expect { _ = try reader.next() } throws: { "\($0)".contains("bigger than maximum") }
    }

    @Test func aFullDiskIsReportedByClose() throws {
        let writer = try PcapFileWriter(path: "/dev/full")
        try writer.write([UInt8](repeating: 0, count: 100), seconds: 1, nanoseconds: 0)
        #expect(throws: PortError.syscall(name: "write", errno: ENOSPC)) { try writer.close() }
    }

    /// Written behind (on the writer's own thread), a file is byte for byte
    /// what the caller's own writes make: many 1 MiB buffers, more than the
    /// thread has in flight, and a record larger than a buffer in between.
    @Test func writtenBehindIsTheSameFile() throws {
        let direct = temporaryPath("direct.pcap"), behind = temporaryPath("behind.pcap")
        defer { for p in [direct, behind] { try? FileManager.default.removeItem(atPath: p) } }
        func frame(_ i: Int) -> [UInt8] {
            i == 7_000 ? [UInt8](repeating: 0x5A, count: 1_200_000)
                : (0..<(60 + (i * 7919) % 1455)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
        }
        for (path, writeBehind) in [(direct, false), (behind, true)] {
            let writer = try PcapFileWriter(path: path, writeBehind: writeBehind)
            for i in 0..<20_000 { try writer.write(frame(i), seconds: i, nanoseconds: i) }
            try writer.close()
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: direct)), b = try Data(contentsOf: URL(fileURLWithPath: behind))
        #expect(a.count > 16 << 20)
        #expect(a == b)
    }

    /// A write that fails on the writer's thread is thrown by the caller's
    /// next buffer hand-over, and by close.
    @Test func aFullDiskWrittenBehindIsReported() throws {
        let writer = try PcapFileWriter(path: "/dev/full", writeBehind: true)
        let frame = [UInt8](repeating: 0, count: 1000)
        var thrown: PortError?
        for i in 0..<20_000 where thrown == nil {
            do throws(PortError) { try writer.write(frame, seconds: i, nanoseconds: 0) } catch { thrown = error }
        }
        #expect(thrown == .syscall(name: "write", errno: ENOSPC))
        #expect(throws: PortError.syscall(name: "write", errno: ENOSPC)) { try writer.close() }
    }

    @Test func aTimeBeyondPcapIsRefused() throws {
        let writer = try PcapFileWriter(path: "/dev/null")
        #expect(throws: PortError.self) { try writer.write([1], seconds: -1, nanoseconds: 0) }
        #expect(throws: PortError.self) { try writer.write([1], seconds: 1 << 33, nanoseconds: 0) }
        try writer.close()
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
