// libFuzzer target over the control plane (DGWControl): one input is a
// run of events against a fresh gateway that anchors one MN, has sent a
// PBU for another MN to its peer, and knows one peer. The input's length
// modulo 6 picks the set-up: that gateway alone, with the peer as its CMD
// in relay or in locator mode, a CMD (RFC 8885) or an inter-operator LMA
// whose gateways are the peer and a second one, or a gateway with the
// peer as its LMA and the second one as its CMD. The control plane
// must never trap, everything it puts on the wire must parse (a Mobility
// Header with a valid checksum to the core, an Ethernet frame with IPv6 to
// the access link), and after `tick(t)` nothing may be due at or before t
// (else the run loop would spin).
//
// Input: records of [kind][length][bytes...], the time advancing by a
// fuzzed step before each. kind % 6:
//   0: `bytes` as a frame from the access link (RS, NS, anything)
//   1: `bytes` as a frame from the core
//   2: `bytes` as a Mobility Header from the peer, in valid IPv6 and
//      Ethernet with its length and checksum fixed, so options are reached
//   3: attach an MN (the first byte picks one of four) from the peer; to
//      the CMD or LMA: the second gateway or the peer registers that MN,
//      or moves the other's prefix to it, or de-registers (well-formed PBUs)
//   4: detach that MN; with the second byte odd, instead `move-prefix`
//      of subscriber "alice" (who owns the four MNs) to that MN: one of
//      three prefixes (the third byte: anchored here, allocated here, the
//      peer's), the anchor not given, the peer, or another operator's
//      gateway that is no peer (the fourth byte modulo 3)
//   5: tick
// Compiled with Sources/DGWControl, linking the DGWWire module.

import DGWWire

private let here = IPv6Address("2001:db8:ffff::1")!
private let peer = IPv6Address("2001:db8:ffff::2")!
private let mns = (1...4).map { MACAddress(value: 0x0200_0000_0000 | UInt64($0)) }
private let hereMAC = MACAddress(value: 0x0200_0000_ff01)
private let peerMAC = MACAddress(value: 0x0200_0000_ff02)
private let second = IPv6Address("2001:db8:ffff::3")!
/// Another operator's gateway, no peer: a move's anchor reached through the LMA.
private let other = IPv6Address("2001:db8:7777::1")!

private func gateway(_ setup: Int) -> ControlPlane {
    var c = ControlPlaneConfiguration(address: here)
    c.peers = [peer]
    switch setup {
    case 1, 2:
        c.cmd = peer
        c.cmdMode = setup == 1 ? .relay : .locator
    case 3, 4:
        c.role = setup == 3 ? .database : .lma
        c.peers = [peer, second]
        c.maxAttempts = 3
    case 5:
        c.lma = peer
        c.cmd = second
        c.peers = [peer, second]
    default: break
    }
    c.bindingLifetime = 60
    c.localNetworks = [IPv6Prefix("2001:db8:1:aaaa::/64")!]
    c.access.prefixPool = IPv6Prefix("2001:db8:1::/48")!
    c.access.localNetworks = c.localNetworks
    c.access.logicalMAC = { _, prefix in DLIF.logicalMAC(anchor: here, pool: IPv6Prefix("2001:db8:1::/48")!, prefix: prefix) }
    c.logicalMAC = { anchor, mn in MACAddress(value: 0x0a00_0000_0000 | (anchor.low & 0xFF) << 32 | mn.value & 0xFFFF_FFFF) }
    // mns[0] is anchored here and served by the peer; mns[1] was anchored at the peer.
    c.anchored = [AnchoredMN(mn: mns[0], prefix: IPv6Prefix("2001:db8:1:100::/64")!,
                             dlifMAC: MACAddress(value: 0x0a01_0000_0001), serving: .peer(peer))]
    c.access.reserved = [c.anchored[0].prefix]
    for mn in mns { c.identities[mn] = Array("alice".utf8) }
    return ControlPlane(c)
}

/// A Mobility Header from the peer to this gateway, framed, with its
/// header length and checksum made right.
private func signalling(_ body: UnsafeRawBufferPointer) -> [UInt8] {
    var mh = Array(body.prefix(2040))
    while mh.count < 8 || mh.count % 8 != 0 { mh.append(0) }
    mh[0] = 59
    mh[1] = UInt8(mh.count / 8 - 1)
    mh[4] = 0; mh[5] = 0
    var sum = InternetChecksum(source: peer, destination: here, length: mh.count, nextHeader: IPProtocol.mobility)
    mh.withUnsafeBytes { sum.add($0) }
    mh[4] = UInt8(sum.value >> 8); mh[5] = UInt8(sum.value & 0xFF)
    var frame = [UInt8](repeating: 0, count: 14 + 40 + mh.count)
    frame.withUnsafeMutableBytes { b in
        do throws(WireError) {
            _ = try EthernetHeader(destination: hereMAC, source: peerMAC, etherType: EtherType.ipv6)
                .emit(into: b)
            try IPv6Header(payloadLength: mh.count, nextHeader: IPProtocol.mobility, hopLimit: 64, source: peer, destination: here)
                .emit(into: UnsafeMutableRawBufferPointer(rebasing: b[14..<54]))
        } catch {
            preconditionFailure("framing a Mobility Header: \(error)")
        }
        b.baseAddress!.advanced(by: 54).copyMemory(from: mh, byteCount: mh.count)
    }
    return frame
}

/// What the control plane sends must be well formed.
private func check(_ out: ControlEffects) {
    for packet in out.core {
        packet.bytes.withUnsafeBytes { b in
            guard let ip = try? IPv6Packet(checking: b), ip.destination == packet.destination,
                  ip.nextHeader == IPProtocol.mobility,
                  let mh = try? MobilityHeaderPacket(checking: ip.payload),
                  (try? MobilityMessage.parse(mh, source: ip.source, destination: ip.destination)) != nil else {
                preconditionFailure("bad signalling out: \(packet.bytes)")
            }
        }
    }
    for (_, frame) in out.access {
        frame.withUnsafeBytes { b in
            guard let eth = try? EthernetFrame(checking: b), eth.etherType == EtherType.ipv6,
                  (try? IPv6Packet(checking: eth.payload)) != nil else {
                preconditionFailure("bad access frame out: \(frame)")
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let setup = size % 6
    let gw = gateway(setup)
    var time: Int64 = 1_000_000_000
    var registrations: UInt16 = 0
    check(gw.attach(mns[1], previous: [peer], time: time))  // a PBU with sequence 0 is out
    var i = 0
    while i + 3 <= input.count {
        let kind = input[i] % 6
        let length = min(Int(input[i + 1]) << 8 | Int(input[i + 2]), input.count - i - 3)
        let bytes = UnsafeRawBufferPointer(rebasing: input[(i + 3)..<(i + 3 + length)])
        i += 3 + length
        // The step: up to ~35 s, past retransmissions, refreshes and expiries.
        time += Int64(input[i - 3 - length] >> 3) * 1_100_000_000
        switch kind {
        case 0: check(gw.access(bytes, time: time))
        case 1: check(gw.core(bytes, time: time))
        case 2: check(signalling(bytes).withUnsafeBytes { gw.core($0, time: time) })
        case 3 where setup == 3 || setup == 4:
            // A gateway registers an MN with the CMD (LMA): the other's are
            // then relayed or located. Second byte: bit 1 the peer (else the
            // second gateway), bit 0 a move of the other's prefix to the MN
            // instead (HI 2, subscriber alice), bit 2 a de-registration.
            let mn = mns[Int(bytes.first ?? 0) % 4], flags = bytes.count > 1 ? bytes[1] : 0
            let (from, fromMAC) = flags & 2 == 0 ? (second, MACAddress(value: 0x0200_0000_ff03)) : (peer, peerMAC)
            let own = IPv6Prefix(flags & 2 == 0 ? "2001:db8:3:1::/64" : "2001:db8:2:1::/64")!
            let theirs = IPv6Prefix(flags & 2 == 0 ? "2001:db8:2:1::/64" : "2001:db8:3:1::/64")!
            let move = flags & 1 == 1
            registrations &+= 1
            let pbu = ControlPlane.proxyBindingUpdate(sequence: registrations, lifetime: flags & 4 == 0 ? 60 : 0,
                                                      handoff: move ? HandoffIndicator.betweenInterfaces : HandoffIndicator.betweenGatewaysSameInterface,
                                                      options: ControlPlane.identify(mn, id: move ? .owned(Array("alice".utf8)) : nil)
                                                          + [.homeNetworkPrefix(move ? theirs : own)])
            let packet = ControlPlane.packet(.bindingUpdate(pbu), from: from, to: here)!
            let frame = hereMAC.octets + fromMAC.octets + [0x86, 0xDD] + packet.bytes
            check(frame.withUnsafeBytes { gw.core($0, time: time) })
        case 3: check(gw.attach(mns[Int(bytes.first ?? 0) % 4], previous: [peer], time: time))
        case 4 where bytes.count >= 4 && bytes[1] & 1 == 1:
            let prefixes = ["2001:db8:1:100::/64", "2001:db8:1::/64", "2001:db8:2:1::/64"].map { IPv6Prefix($0)! }
            if let out = try? gw.movePrefix(prefixes[Int(bytes[2]) % 3], of: Array("alice".utf8), to: mns[Int(bytes[0]) % 4],
                                            anchor: [nil, peer, other][Int(bytes[3]) % 3], time: time) {
                check(out)
            }
        case 4: check(gw.detach(mns[Int(bytes.first ?? 0) % 4], time: time))
        default:
            check(gw.tick(time))
            if let next = gw.nextDeadline { precondition(next > time, "due at \(next) after tick(\(time))") }
        }
    }
    return 0
}
