import DGWInspect
import DGWTestSupport
import DGWPorts
import DGWWire
import Foundation
import Testing

let dgwBinary = builtExecutable("dgw")

@Suite struct DecodeCommandTests {
    @Test func printsOneObjectPerFrameAndExitsZero() throws {
        let r = try runProcess(dgwBinary, ["decode", sampleCapture])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 22)
        // The same as the in-process decoder, line for line.
        let inProcess = try decodeCapture(sampleCapture)
        for (i, line) in lines.enumerated() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? NSDictionary
            #expect(object == inProcess[i] as NSDictionary)
            #expect(object?["frame"] as? Int == i + 1)
        }
    }

    @Test func unreadableFileExitsNonZeroWithAMessage() throws {
        let r = try runProcess(dgwBinary, ["decode", "/nonexistent/capture.pcap"])
        #expect(r.status != 0)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("/nonexistent/capture.pcap"))
    }

    @Test func missingArgumentIsAUsageError() throws {
        let r = try runProcess(dgwBinary, ["decode"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("Usage") || r.stderr.contains("Missing"))
    }

    @Test func rawIPv6LinkType() throws {
        // LINKTYPE_RAW captures (no Ethernet header) decode from the IPv6 header.
        let decoder = FrameDecoder(dataLinkType: 101)
        let packet: [UInt8] = [0x60, 0, 0, 0, 0, 0, 59, 64] + [UInt8](repeating: 0, count: 15) + [1]
            + [UInt8](repeating: 0, count: 15) + [2]
        let line = packet.withUnsafeBytes { decoder.decode($0, number: 1, originalLength: packet.count) }
        #expect(line == #"{"frame":1,"len":40,"layers":["ipv6"],"ipv6":{"src":"::1","dst":"::2","nh":59,"hlim":64,"plen":0}}"#)
    }

    @Test func unsupportedLinkTypeSaysSo() {
        let line = [UInt8](repeating: 0, count: 10).withUnsafeBytes {
            FrameDecoder(dataLinkType: 105).decode($0, number: 3, originalLength: 10)
        }
        #expect(line == #"{"frame":3,"len":10,"layers":[],"error":"unsupported_link_type"}"#)
    }

    /// Random damage to every sample frame: the decoder answers with a JSON
    /// object every time and never traps (the fuzz targets go further).
    @Test func neverTrapsOnDamagedFrames() throws {
        var rng = SplitMix64(seed: 0xD6)
        let decoder = FrameDecoder(dataLinkType: 1)
        var decoded = 0
        for frame in try captureFrames(sampleCapture) {
            for _ in 0..<300 {
                var bytes = frame
                for _ in 0..<Int(rng.next() % 4 + 1) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
                let line = bytes.withUnsafeBytes { decoder.decode($0, number: 1, originalLength: bytes.count) }
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "\(line)")
                decoded += 1
            }
        }
        #expect(decoded == 22 * 300)
    }
}

/// The frames of a capture as arrays.
func captureFrames(_ path: String) throws -> [[UInt8]] {
    let reader = try PcapFileReader(path: path)
    var frames: [[UInt8]] = []
    while let record = try reader.next() { frames.append(Array(record.data)) }
    return frames
}

