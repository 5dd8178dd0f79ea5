// libFuzzer target over every parser of the wire layer. Compiled together
// with Sources/DGWWire by Fuzz/run.sh (one module, so no import).
//
// The first input byte picks what the rest is fed to; for every message
// that parses, emitting it and parsing the result must give it back.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let all = UnsafeRawBufferPointer(start: data, count: size)
    let input = UnsafeRawBufferPointer(rebasing: all[1...])
    let src = IPv6Address(high: 0x2001_0db8_ffff_0000, low: 2)
    let dst = IPv6Address(high: 0x2001_0db8_ffff_0000, low: 1)
    switch all[0] % 6 {
    case 0: ethernetFrame(input)
    case 1: icmpv6(input, src, dst)
    case 2: mobility(input, src, dst)
    case 3: _ = try? NDOptions(checking: input).map { $0 }
    case 4: superFrame(input)
    default: ipv6Packet(input)
    }
    return 0
}

func ethernetFrame(_ b: UnsafeRawBufferPointer) {
    guard let frame = try? EthernetFrame(checking: b) else { return }
    let header = EthernetHeader(frame)
    roundTrip { out in try header.emit(into: out) } check: { bytes in
        let again = EthernetHeader(try EthernetFrame(checking: bytes))
        precondition(again.destination == header.destination && again.etherType == header.etherType)
    }
    if frame.etherType == EtherType.ipv6 { ipv6Packet(frame.payload) }
}

/// A virtio-net header and a frame: every segment a plan writes is a
/// whole IPv6 packet with a valid checksum, and together they carry the
/// payload once.
func superFrame(_ b: UnsafeRawBufferPointer) {
    guard let header = try? VirtioNetHeader.parse(b) else { return }
    roundTrip { try header.emit(into: $0) } check: { bytes in
        let again = try VirtioNetHeader.parse(bytes)
        precondition(again == header)
    }
    let frame = UnsafeRawBufferPointer(rebasing: b[VirtioNetHeader.length...])
    guard let plan = try? SegmentationPlan(frame: frame, header: header) else { return }
    var out = [UInt8](repeating: 0, count: plan.longestSegment)
    var carried = 0
    for i in 0..<plan.count {
        out.withUnsafeMutableBytes { o in
            let n = plan.write(segment: i, of: frame, into: o)
            precondition(n == plan.length(ofSegment: i))
            let segment = UnsafeRawBufferPointer(rebasing: o[..<n])
            let ip = try! IPv6Packet(checking: UnsafeRawBufferPointer(rebasing: segment[plan.networkOffset...]))
            precondition(ip.totalLength == n - plan.networkOffset)
            let transport = UnsafeRawBufferPointer(rebasing: segment[plan.transportOffset...])
            precondition(upperLayerChecksum(transport, source: ip.source, destination: ip.destination,
                                            nextHeader: plan.isTCP ? IPProtocol.tcp : IPProtocol.udp).isValid)
            carried += n - plan.headerLength
        }
    }
    precondition(carried == plan.payloadLength)
}

func ipv6Packet(_ b: UnsafeRawBufferPointer) {
    guard let packet = try? IPv6Packet(checking: b) else { return }
    precondition(packet.totalLength == 40 + packet.payloadLength)
    _ = try? FiveTuple(packet)
    if let inner = try? IPv6Tunnel.decapsulate(packet) {
        var out = [UInt8](repeating: 0, count: inner.totalLength + 40)
        out.withUnsafeMutableBytes { o in
            let n = try? IPv6Tunnel.encapsulate(inner, into: o, source: packet.source, destination: packet.destination)
            precondition(n == nil || n == inner.totalLength + 40)
        }
    }
    var chain = IPv6HeaderChain(packet: packet)
    while let header = try? chain.next() {
        switch header.kind {
        case .fragment:
            let f = IPv6FragmentHeader(header)
            roundTrip { try f.emit(into: $0) } check: { _ in }
        case .hopByHop, .destinationOptions:
            let o = IPv6OptionsHeader(header)
            roundTrip { try o.emit(into: $0) } check: { bytes in
                precondition(bytes.count == header.bytes.count)
            }
        default: break
        }
    }
    let upper = chain.remainder
    switch chain.nextHeader {
    case IPProtocol.icmpv6: icmpv6(upper, packet.source, packet.destination)
    case IPProtocol.mobility: mobility(upper, packet.source, packet.destination)
    case IPProtocol.udp: _ = try? UDPPacket(checking: upper)
    case IPProtocol.tcp: _ = try? TCPSegment(checking: upper)
    default: break
    }
}

func icmpv6(_ b: UnsafeRawBufferPointer, _ src: IPv6Address, _ dst: IPv6Address) {
    guard let p = try? ICMPv6Packet(checking: b), let m = try? ICMPv6Message.parse(unverified: p) else { return }
    roundTrip { try m.emit(into: $0, source: src, destination: dst) } check: { bytes in
        let again = try ICMPv6Message.parse(try ICMPv6Packet(checking: bytes), source: src, destination: dst)
        precondition(again.type == m.type && again.code == m.code)
    }
}

func mobility(_ b: UnsafeRawBufferPointer, _ src: IPv6Address, _ dst: IPv6Address) {
    guard let p = try? MobilityHeaderPacket(checking: b), let m = try? MobilityMessage.parse(unverified: p) else { return }
    // An authentication option that ends the header: what it covers stops at its data.
    if let t = MobilityAuthenticationTrailer(p) {
        precondition(t.dataOffset <= p.length && t.authenticatedData(of: p.bytes, source: src, destination: dst).count == 32 + t.dataOffset)
    }
    // The in-place look-up finds the link-layer identifier that iterating finds.
    var iterated: [UInt8]?
    for case .mobileNodeLinkLayerIdentifier(let id) in m.options { iterated = Array(id); break }
    let inPlace = m.options.first(ofType: MobilityOptionType.mobileNodeLinkLayerIdentifier) { Array($0.dropFirst(2)) }
    precondition(iterated == inPlace, "in-place look-up \(String(describing: inPlace)) against \(String(describing: iterated))")
    roundTrip { try m.emit(into: $0, source: src, destination: dst) } check: { bytes in
        let again = try MobilityMessage.parse(try MobilityHeaderPacket(checking: bytes), source: src, destination: dst)
        precondition(again == m, "mobility message changed in a round trip")
    }
}

/// Emits into a fresh buffer and checks what comes out; an emit that
/// refuses (too long, say) is fine, a check that fails traps.
func roundTrip(_ emit: (UnsafeMutableRawBufferPointer) throws -> Int,
               check: (UnsafeRawBufferPointer) throws -> Void) {
    var out = [UInt8](repeating: 0, count: 70_000)
    out.withUnsafeMutableBytes { o in
        guard let n = try? emit(o) else { return }
        do { try check(UnsafeRawBufferPointer(rebasing: o[..<n])) } catch {
            preconditionFailure("re-parse failed: \(error)")
        }
    }
}
