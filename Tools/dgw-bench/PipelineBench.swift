// dgw-bench pipeline: the data plane in memory on one core.
// 64-byte frames, 1M HNP bindings (the dense pools of WORKLOAD.md), a mix
// of 50% downlink to MNs attached here, 30% downlink tunnelled to the MN's
// serving gateway, 20% uplink tunnelled to the prefix's anchor. Each frame
// is copied into a slot as a receive would, decided in batches of 64 (as replay does), and
// its slot released.

import CMallocCounter
import DGWPipeline
import DGWTraffic
import DGWWire
import Foundation

func pipelineBench(bindings n: Int, frames: Int) throws {
    let me = IPv6Address("2001:db8:ffff::1")!, peer = IPv6Address("2001:db8:ffff::2")!
    let coreMAC = MACAddress("02:dd:00:00:00:01")!, peerMAC = MACAddress("02:dd:00:00:00:02")!
    let routerMAC = MACAddress("02:ee:00:00:00:fe")!, cn = IPv6Address("2001:db8:cccc::1")!
    func high(_ i: Int) -> UInt64 { 0x2001_0db8 << 32 | UInt64(i % 16) << 20 | UInt64(i / 16) }
    func mac(_ i: Int) -> MACAddress { MACAddress(value: 0x02AA_0000_0000 | UInt64(i)) }
    // Anchor-assigned logical MACs, as the control plane will hand them out: unique.
    func dlif(_ i: Int) -> MACAddress { MACAddress(value: 0x02D1_0000_0000 | UInt64(i)) }
    // Binding i: i % 10 < 5 attached here (anchored here), < 8 served by the peer, else anchored at the peer.
    var list: [BindingEntry] = []
    list.reserveCapacity(n)
    for i in 0..<n {
        let prefix = IPv6Prefix(address: IPv6Address(high: high(i), low: 0), length: 64)!
        switch i % 10 {
        case 0..<5: list.append(BindingEntry(mn: mac(i), prefix: prefix, anchor: nil, serving: nil, dlifMAC: dlif(i)))
        case 5..<8: list.append(BindingEntry(mn: mac(i), prefix: prefix, anchor: nil, serving: peer, dlifMAC: dlif(i)))
        default: list.append(BindingEntry(mn: mac(i), prefix: prefix, anchor: peer, serving: nil, dlifMAC: dlif(i)))
        }
    }
    let config = PipelineConfiguration(address: me, coreMAC: coreMAC, coreMTU: 1500,
                                       corePrefix: IPv6Prefix("2001:db8:ffff::/64")!, coreGateway: nil,
                                       bindings: list, neighbors: [(peer, peerMAC)])
    let pool = PacketPool(count: 256)
    let pipeline = try Pipeline(config, pool: pool)

    // 4096 distinct 64-byte frames over random bindings, in the mix.
    var rng = Workload.Xorshift64()
    var templates: [(GatewayPort, [UInt8])] = []
    for _ in 0..<4096 {
        let r = Int(rng.next() % 10)
        var i = Int(rng.next() % UInt64(n / 10)) * 10
        let port: GatewayPort
        let frame: [UInt8]
        switch r {
        case 0..<5:   // downlink to an MN attached here
            i += Int(rng.next() % 5); port = .core
            frame = udpFrame(routerMAC, coreMAC, from: cn, to: IPv6Address(high: high(i), low: rng.next()))
        case 5..<8:   // downlink to an MN served by the peer
            i += 5 + Int(rng.next() % 3); port = .core
            frame = udpFrame(routerMAC, coreMAC, from: cn, to: IPv6Address(high: high(i), low: rng.next()))
        default:      // uplink of an MN whose prefix is anchored at the peer
            i += 8 + Int(rng.next() % 2); port = .access
            frame = udpFrame(mac(i), dlif(i), from: IPv6Address(high: high(i), low: rng.next()), to: cn)
        }
        templates.append((port, frame))
    }
    // Templates flattened into one buffer (64 bytes each) so that the loop
    // below costs what a receive does: one copy into a slot.
    let flat = UnsafeMutableRawBufferPointer.allocate(byteCount: templates.count * 64, alignment: 64)
    defer { flat.deallocate() }
    let ports = UnsafeMutablePointer<GatewayPort>.allocate(capacity: templates.count)
    defer { ports.deallocate() }
    for (k, (port, frame)) in templates.enumerated() {
        frame.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: flat[(k * 64)..<(k * 64 + 64)]).copyMemory(from: $0) }
        ports[k] = port
    }
    let batchSize = 64
    var batch = [Packet](repeating: Packet(slot: 0, offset: 0, length: 0, port: .core, time: 0), count: batchSize)
    var generated: [Packet] = []
    generated.reserveCapacity(64)
    func run(_ count: Int) {
        var k = 0
        var done = 0
        batch.withUnsafeMutableBufferPointer { b in
            while done < count {
                for j in 0..<batchSize {
                    let t = k & 4095
                    k &+= 1
                    b[j] = pool.load(UnsafeRawBufferPointer(rebasing: flat[(t * 64)..<(t * 64 + 64)]), port: ports[t], time: Int64(done + j))!
                }
                pipeline.process(b, generated: &generated)
                for p in b { pool.release(p.slot) }
                for p in generated { pool.release(p.slot) }
                generated.removeAll(keepingCapacity: true)
                done += batchSize
            }
        }
    }
    run(1 << 20)  // warm up
    let mallocs0 = dgw_malloc_count()
    let t0 = seconds()
    run(frames)
    let elapsed = seconds() - t0
    let mallocs = dgw_malloc_count() - mallocs0
    let t = pipeline.totals
    let forwarded = t.framesOut
    guard t[.downlinkDelivered] > 0, t[.downlinkEncapsulated] > 0, t[.uplinkEncapsulated] > 0,
          t.drops.reduce(0, +) == 0 else {
        throw BenchError(message: "the mix did not forward as intended: \(t)")
    }
    print(json(["suite": "pipeline", "bindings": n, "frames": frames, "forwarded": forwarded,
                "mpps": Double(frames) / elapsed / 1e6, "ns_per_packet": elapsed * 1e9 / Double(frames),
                "mallocs_per_packet": Double(mallocs) / Double(frames)]))
}

struct BenchError: Error { let message: String }
