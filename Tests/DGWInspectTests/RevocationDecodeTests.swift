import DGWPorts
import DGWWire
import Foundation
import Testing

/// `dgw decode` of RFC 5846 Binding Revocation messages as our emitter
/// writes them, against tshark: type, trigger or status, sequence, the P
/// flag and the options.
@Suite struct RevocationDecodeTests {
    @Test func agreesWithTshark() throws {
        let source = IPv6Address("2001:db8:ffff::1")!, destination = IPv6Address("2001:db8:ffff::2")!
        let options: [MobilityOption] = [
            .mobileNodeIdentifier(subtype: MobileNodeIdentifierSubtype.nai, identifier: .owned(Array("alice".utf8))),
            .homeNetworkPrefix(IPv6Prefix("2001:db8:1::/64")!),
            .mobileNodeLinkLayerIdentifier(.owned([0x02, 0xaa, 0, 0, 0, 2])),
        ]
        let messages: [BindingRevocation] = [
            BindingRevocation(type: BindingRevocationType.indication, triggerOrStatus: RevocationTrigger.interMAGHandoverDifferentAccessType,
                              sequence: 41, flags: .proxyBinding, options: .built(options)),
            BindingRevocation(type: BindingRevocationType.acknowledgement, triggerOrStatus: BindingRevocationStatus.bindingDoesNotExist,
                              sequence: 41, flags: .proxyBinding, options: .built(Array(options.prefix(2)))),
        ]
        let path = temporaryPath("revocation.pcap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapFileWriter(path: path)
        for m in messages {
            var frame = [UInt8](repeating: 0, count: 14 + 40 + MobilityMessage.bindingRevocation(m).bufferLength)
            try frame.withUnsafeMutableBytes { b in
                try EthernetHeader(destination: MACAddress("02:dd:00:00:00:02")!, source: MACAddress("02:dd:00:00:00:01")!,
                                   etherType: EtherType.ipv6).emit(into: b)
                let n = try MobilityMessage.bindingRevocation(m).emit(into: UnsafeMutableRawBufferPointer(rebasing: b[54...]),
                                                                      source: source, destination: destination)
                try IPv6Header(payloadLength: n, nextHeader: IPProtocol.mobility, hopLimit: 64, source: source, destination: destination)
                    .emit(into: UnsafeMutableRawBufferPointer(rebasing: b[14..<54]))
            }
            try writer.write(frame, seconds: 1_765_000_000, nanoseconds: 0)
        }
        try writer.close()

        let ours = try decodeCapture(path).map { try #require($0["mh"] as? [String: Any]) }
        let theirs = try tsharkFields(path, ["mip6.mhtype", "mip6.bri_br.type", "mip6.bri_r.trigger", "mip6.bri_status", "mip6.bri_seqnr",
                                             "mip6.bri_ip", "mip6.bri_ap", "mip6.mnid.identifier", "mip6.nemo.mnp.mnp", "_ws.malformed"])
        try #require(ours.count == 2 && theirs.count == 2)
        for (o, t) in zip(ours, theirs) {
            #expect(t["_ws.malformed"] == nil)
            #expect("\(o["type"] ?? "")" == t["mip6.mhtype"]?.first && "\(o["br_type"] ?? "")" == t["mip6.bri_br.type"]?.first)
            #expect("\(o["seq"] ?? "")" == t["mip6.bri_seqnr"]?.first)
            let pFlag = (t["mip6.bri_ip"] ?? t["mip6.bri_ap"])?.first
            #expect((o["flags"] as? [String]) == ["P"] && (pFlag == "1" || pFlag == "True"))
            let ids = (o["options"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(ids == t["mip6.mnid.identifier"])
        }
        #expect("\(ours[0]["trigger"] ?? "")" == theirs[0]["mip6.bri_r.trigger"]?.first && ours[0]["trigger"] as? Int == 3)
        #expect("\(ours[1]["status"] ?? "")" == theirs[1]["mip6.bri_status"]?.first && ours[1]["status"] as? Int == 128)
        #expect(theirs.allSatisfy { $0["mip6.nemo.mnp.mnp"] == ["2001:db8:1::"] })
    }
}
