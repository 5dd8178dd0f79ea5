import DGWPipeline
import DGWWire

/// D-GW1 of a three-gateway domain, with one binding of each kind:
/// mn1 anchored and served here, mn2 anchored here but served by D-GW2,
/// mn3 anchored at D-GW2 and served here.
enum Scenario {
    static let a1 = IPv6Address("2001:db8:ffff::1")!, a2 = IPv6Address("2001:db8:ffff::2")!
    static let a3 = IPv6Address("2001:db8:ffff::3")!
    static let gatewayAddress = IPv6Address("2001:db8:ffff::fe")!
    static let coreMAC = MACAddress("02:dd:00:00:00:01")!, a2MAC = MACAddress("02:dd:00:00:00:02")!
    static let a3MAC = MACAddress("02:dd:00:00:00:03")!
    static let routerMAC = MACAddress("02:ee:00:00:00:fe")!
    static let mn1 = MACAddress("02:aa:00:00:00:01")!, mn2 = MACAddress("02:aa:00:00:00:02")!
    static let mn3 = MACAddress("02:aa:00:00:00:03")!
    static let p1 = IPv6Prefix("2001:db8:1:1::/64")!, p2 = IPv6Prefix("2001:db8:1:2::/64")!
    static let p3 = IPv6Prefix("2001:db8:2:3::/64")!
    static let h1 = IPv6Address("2001:db8:1:1::100")!, h2 = IPv6Address("2001:db8:1:2::100")!
    static let h3 = IPv6Address("2001:db8:2:3::100")!
    static let cn = IPv6Address("2001:db8:cccc::1")!

    static var dlif1: MACAddress { logicalMAC(anchor: a1, mn: mn1) }
    static var dlif3: MACAddress { logicalMAC(anchor: a2, mn: mn3) }

    static var configuration: PipelineConfiguration {
        PipelineConfiguration(
            address: a1, coreMAC: coreMAC, coreMTU: 1500, corePrefix: IPv6Prefix("2001:db8:ffff::/64")!,
            coreGateway: gatewayAddress,
            bindings: [
                BindingEntry(mn: mn1, prefix: p1, anchor: nil, serving: nil),
                BindingEntry(mn: mn2, prefix: p2, anchor: nil, serving: a2),
                BindingEntry(mn: mn3, prefix: p3, anchor: a2, serving: nil),
            ],
            neighbors: [(gatewayAddress, routerMAC), (a2, a2MAC)])
    }

    static let yaml = """
        name: dgw1
        address: 2001:db8:ffff::1
        access: { interface: acc0, mtu: 1500 }
        core: { interface: core0, mtu: 1500, prefix: 2001:db8:ffff::/64, gateway: 2001:db8:ffff::fe, mac: "02:dd:00:00:00:01" }
        prefix_pool: 2001:db8:1::/48
        peers:
          - { name: dgw2, address: 2001:db8:ffff::2 }
        neighbors:
          - { address: 2001:db8:ffff::fe, mac: "02:ee:00:00:00:fe" }
          - { address: 2001:db8:ffff::2, mac: "02:dd:00:00:00:02" }
        static_bindings:
          - { mn: "02:aa:00:00:00:01", prefix: 2001:db8:1:1::/64, anchor: self, serving: self }
          - { mn: "02:aa:00:00:00:02", prefix: 2001:db8:1:2::/64, anchor: self, serving: 2001:db8:ffff::2 }
          - { mn: "02:aa:00:00:00:03", prefix: 2001:db8:2:3::/64, anchor: 2001:db8:ffff::2, serving: self }
        """

    // MARK: Frame builders

    /// Ethernet + IPv6 + UDP carrying `size` bytes of payload.
    /// A neighbour on the core link answering our solicitation for `address`.
    static func neighborAdvertisement(of address: IPv6Address, at mac: MACAddress) -> [UInt8] {
        ethernet(mac, coreMAC, ipv6(from: address, to: a1, nextHeader: IPProtocol.icmpv6, hopLimit: 255) { b in
            try ICMPv6Message.neighborAdvertisement(NeighborAdvertisement(router: false, solicited: true, override: true, target: address,
                                                                          options: .built([.targetLinkLayerAddress(LinkLayerAddress(mac))])))
                .emit(into: b, source: address, destination: a1)
        })
    }

    static func udp(_ src: MACAddress, _ dst: MACAddress, from s: IPv6Address, to d: IPv6Address,
                    hopLimit: UInt8 = 64, size: Int = 16) -> [UInt8] {
        let payload = [UInt8]((0..<size).map { UInt8(truncatingIfNeeded: $0) })
        return ethernet(src, dst, ipv6(from: s, to: d, nextHeader: IPProtocol.udp, hopLimit: hopLimit) { b in
            try payload.withUnsafeBytes { try UDPHeader(sourcePort: 40000, destinationPort: 9).emit(payload: $0, into: b, source: s, destination: d) }
        })
    }

    /// An IPv6 packet whose upper layer `body` writes.
    static func ipv6(from s: IPv6Address, to d: IPv6Address, nextHeader: UInt8, hopLimit: UInt8 = 64,
                     _ body: (UnsafeMutableRawBufferPointer) throws -> Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 2000)
        let n = bytes.withUnsafeMutableBytes { b -> Int in
            let len = try! body(UnsafeMutableRawBufferPointer(rebasing: b[40...]))
            try! IPv6Header(payloadLength: len, nextHeader: nextHeader, hopLimit: hopLimit, source: s, destination: d)
                .emit(into: b)
            return 40 + len
        }
        return Array(bytes[..<n])
    }

    static func tunnel(from s: IPv6Address, to d: IPv6Address, _ inner: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: inner.count + 40)
        _ = inner.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in try! IPv6Tunnel.encapsulate(try! IPv6Packet(checking: i), into: o, source: s, destination: d) }
        }
        return out
    }

    static func ethernet(_ src: MACAddress, _ dst: MACAddress, _ ip: [UInt8], type: UInt16 = EtherType.ipv6,
                         vlan: VLANTag? = nil) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 18)
        let n = header.withUnsafeMutableBytes { try! EthernetHeader(destination: dst, source: src, outerTag: vlan, etherType: type).emit(into: $0) }
        return Array(header[..<n]) + ip
    }

    /// The IPv6 packet of an Ethernet frame (no VLAN).
    static func ip(_ frame: [UInt8]) -> [UInt8] { Array(frame[14...]) }
}
