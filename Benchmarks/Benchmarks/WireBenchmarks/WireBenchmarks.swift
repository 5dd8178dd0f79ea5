// Parsing cost of the frames the data plane and the control plane see most.
//
// Each workload runs twice: once counting mallocs only (threshold: none at
// all, checked by `make bench-check` against Thresholds/), once timed. They
// are apart because the timing metrics themselves allocate inside the
// measured region (about 18 mallocs per 1000-iteration sample, seen with an
// empty loop), which would hide ours.

import Benchmark
import DGWWire

// A 64-octet Ethernet/IPv6/UDP frame (Tests/DGWWireTests/Fixtures.swift, ethernetUDP64).
let udp64: [UInt8] = [
    0x02, 0xd1, 0x00, 0x00, 0x01, 0x01, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x0a, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0xcc, 0xcc, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9c, 0x40, 0x13, 0x89, 0x00, 0x0a, 0x26, 0xcf, 0x00, 0x00,
]

/// A PBU with four options (MN-ID, HNP, Anchored Prefix, Timestamp), built
/// once with the wire layer; the benchmarks parse it.
func makePBU() -> (packet: [UInt8], source: IPv6Address, destination: IPv6Address) {
    let source = IPv6Address("2001:db8:ffff::2")!, destination = IPv6Address("2001:db8:ffff::1")!
    let hnp = IPv6Prefix("2001:db8:1:1::/64")!
    let message = MobilityMessage.bindingUpdate(BindingUpdate(
        sequence: 8, flags: [.acknowledge, .proxyRegistration, .distributedGateway], lifetime: 900,
        options: .built([
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: .owned(Array("mn1@example.org".utf8))),
            .homeNetworkPrefix(hnp), .anchoredPrefix(hnp), .timestamp(0xED2F_2A00_8000_0000),
        ])))
    var bytes = [UInt8](repeating: 0, count: 256)
    let n = bytes.withUnsafeMutableBytes { try! message.emit(into: $0, source: source, destination: destination) }
    return (Array(bytes[..<n]), source, destination)
}

@inline(__always)
func parseUDP64(_ frame: UnsafeRawBufferPointer) {
    do {
        let eth = try EthernetFrame(checking: frame)
        let ip = try IPv6Packet(checking: eth.payload)
        var chain = IPv6HeaderChain(packet: ip)
        let upper = try chain.skipToUpperLayer()
        let udp = try UDPPacket(checking: upper.bytes)
        blackHole(udp.destinationPort &+ UInt16(upper.protocol) &+ UInt16(ip.hopLimit))
    } catch {
        fatalError("fixture does not parse: \(error)")
    }
}

@inline(__always)
func parsePBU(_ bytes: UnsafeRawBufferPointer, _ source: IPv6Address, _ destination: IPv6Address) {
    do {
        let mh = try MobilityHeaderPacket(checking: bytes)
        guard case .bindingUpdate(let bu) = try MobilityMessage.parse(mh, source: source, destination: destination)
        else { fatalError("not a BU") }
        var prefixes = 0
        for option in bu.options {
            if case .homeNetworkPrefix = option { prefixes += 1 }
            if case .anchoredPrefix = option { prefixes += 1 }
        }
        blackHole(prefixes &+ Int(bu.sequence))
    } catch {
        fatalError("PBU does not parse: \(error)")
    }
}

let benchmarks: @Sendable () -> Void = {
    let noAllocations = Benchmark.Configuration(
        metrics: [.mallocCountTotal], scalingFactor: .kilo, maxDuration: .seconds(1),
        thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p25: 0, .p50: 0, .p75: 0, .p90: 0, .p99: 0, .p100: 0])])
    let timed = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .instructions], scalingFactor: .kilo, maxDuration: .seconds(2))
    let pbu = makePBU()

    Benchmark("Allocations of parsing a 64-byte UDP frame", configuration: noAllocations) { benchmark in
        udp64.withUnsafeBytes { frame in for _ in benchmark.scaledIterations { parseUDP64(frame) } }
    }
    Benchmark("Allocations of parsing a PBU with four options", configuration: noAllocations) { benchmark in
        pbu.packet.withUnsafeBytes { b in for _ in benchmark.scaledIterations { parsePBU(b, pbu.source, pbu.destination) } }
    }
    // The control: if this reads 0, the malloc counter is not working and
    // the zeros above prove nothing. Its stored threshold is 1000 a sample.
    Benchmark("Allocations of the control with one Array per iteration",
              configuration: .init(metrics: [.mallocCountTotal], scalingFactor: .kilo, maxDuration: .seconds(1),
                                   thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p100: 0])])) { benchmark in
        for i in benchmark.scaledIterations {
            blackHole([UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 64 + i % 7))
        }
    }
    Benchmark("Time to parse a 64-byte UDP frame", configuration: timed) { benchmark in
        udp64.withUnsafeBytes { frame in for _ in benchmark.scaledIterations { parseUDP64(frame) } }
    }
    Benchmark("Time to parse a PBU with four options and checksum", configuration: timed) { benchmark in
        pbu.packet.withUnsafeBytes { b in for _ in benchmark.scaledIterations { parsePBU(b, pbu.source, pbu.destination) } }
    }
}
