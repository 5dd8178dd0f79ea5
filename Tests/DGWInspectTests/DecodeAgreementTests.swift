import Foundation
import Testing

/// `dgw decode` against tshark, frame by frame and field by field, on a
/// capture built by scapy (Tools/make-sample-capture.py): two independent
/// decoders must agree on every field both of them show.
@Suite struct DecodeAgreementTests {
    static let fields = [
        "frame.len", "eth.src", "eth.dst", "vlan.id", "ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.hlim",
        "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident",
        "icmpv6.type", "icmpv6.code", "icmpv6.checksum.status", "icmpv6.mtu",
        "icmpv6.nd.ra.router_lifetime", "icmpv6.nd.ra.flag.prf", "icmpv6.nd.ra.flag.m", "icmpv6.nd.ra.flag.o",
        "icmpv6.nd.ra.reachable_time", "icmpv6.nd.ra.retrans_timer",
        "icmpv6.opt.prefix", "icmpv6.opt.prefix.length", "icmpv6.opt.prefix.valid_lifetime",
        "icmpv6.opt.prefix.preferred_lifetime", "icmpv6.opt.prefix.flag.l", "icmpv6.opt.prefix.flag.a",
        "icmpv6.opt.route_lifetime", "icmpv6.opt.route_info.flag.route_preference", "icmpv6.opt.mtu",
        "icmpv6.opt.linkaddr", "icmpv6.nd.ns.target_address", "icmpv6.nd.na.target_address",
        "icmpv6.nd.na.flag.r", "icmpv6.nd.na.flag.s", "icmpv6.nd.na.flag.o",
        "mip6.bu.seqnr", "mip6.bu.lifetime", "mip6.bu.a_flag", "mip6.bu.h_flag", "mip6.bu.p_flag",
        "mip6.ba.status", "mip6.ba.seqnr", "mip6.ba.lifetime", "mip6.ba.p_flag",
        "mip6.mnid.identifier", "mip6.nemo.mnp.mnp", "mip6.nemo.mnp.pfl", "mip6.hi", "mip6.att",
        "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
        "_ws.malformed", "_ws.expert.severity",
    ]

    // Nested-dictionary access into our JSON.
    func obj(_ o: [String: Any], _ k: String) -> [String: Any]? { o[k] as? [String: Any] }
    func str(_ v: Any?) -> String? {
        switch v {
        case let b as Bool: return b ? "1" : "0"
        case let n as NSNumber: return n.stringValue
        case let s as String: return s
        default: return nil
        }
    }
    func bool(_ v: Any?) -> String? { (v as? Bool).map { $0 ? "1" : "0" } }
    /// tshark prints 0/1 for flags, True/False in some versions.
    func flag(_ s: String?) -> String? { s.map { $0 == "True" ? "1" : $0 == "False" ? "0" : $0 } }
    func preference(_ name: String?) -> String? {
        ["medium": "0", "high": "1", "reserved": "2", "low": "3"][name ?? ""]
    }

    @Test func agreesWithTshark() throws {
        let ours = try decodeCapture(sampleCapture)
        let theirs = try tsharkFields(sampleCapture, Self.fields,
                                      options: ["--disable-protocol", "cpfi", "-o", "ipv6.defragment:FALSE"])
        try #require(ours.count == theirs.count && ours.count == 22)
        var compared = 0
        func same(_ a: String?, _ b: String?, _ what: String, _ frame: Int) {
            #expect(a == b, "frame \(frame) \(what): dgw \(a ?? "-") tshark \(b ?? "-")")
            if a != nil || b != nil { compared += 1 }
        }
        for (i, (o, t)) in zip(ours, theirs).enumerated() {
            let f = i + 1
            let first = { (k: String) in t[k]?.first }
            same(str(o["len"]), first("frame.len"), "len", f)
            same(str(obj(o, "eth")?["src"]), first("eth.src"), "eth.src", f)
            same(str(obj(o, "eth")?["dst"]), first("eth.dst"), "eth.dst", f)
            // tshark shows 802.1Q tags as vlan.id (802.1ad ones as ieee8021ad.id).
            let vids = (o["vlan"] as? [[String: Any]])?.filter { ($0["tpid"] as? Int) == 0x8100 }.compactMap { str($0["vid"]) }
            same(vids?.joined(separator: ","), t["vlan.id"]?.joined(separator: ","), "vlan.id", f)

            // A frame whose IPv6 header did not parse has nothing more to compare.
            guard let ip = obj(o, "ipv6") else {
                #expect(o["error"] != nil || t["ipv6.src"] == nil, "frame \(f): tshark saw IPv6, dgw did not")
                continue
            }
            same(str(ip["src"]), first("ipv6.src"), "ipv6.src", f)
            same(str(ip["dst"]), first("ipv6.dst"), "ipv6.dst", f)
            same(str(ip["nh"]), first("ipv6.nxt"), "ipv6.nxt", f)
            same(str(ip["hlim"]), first("ipv6.hlim"), "ipv6.hlim", f)
            if let inner = obj(o, "inner_ipv6") {
                same(str(inner["src"]), t["ipv6.src"]?.dropFirst().first, "inner src", f)
                same(str(inner["dst"]), t["ipv6.dst"]?.dropFirst().first, "inner dst", f)
                same(str(inner["hlim"]), t["ipv6.hlim"]?.dropFirst().first, "inner hlim", f)
            }
            if let frag = obj(o, "frag") {
                // tshark shows the offset in 8-octet units.
                same((frag["offset"] as? Int).map { String($0 / 8) }, first("ipv6.fraghdr.offset"), "frag offset", f)
                same(bool(frag["more"]), flag(first("ipv6.fraghdr.more")), "frag more", f)
                same((frag["id"] as? Int).map { String(format: "0x%08x", $0) }, first("ipv6.fraghdr.ident"), "frag id", f)
            }
            if let icmp = obj(o, "icmpv6") {
                same(str(icmp["type"]), first("icmpv6.type"), "icmpv6.type", f)
                same(str(icmp["code"]), first("icmpv6.code"), "icmpv6.code", f)
                same(str(icmp["mtu"]), first("icmpv6.mtu"), "icmpv6.mtu", f)
                let bad = (o["error"] as? String) == "bad_checksum"
                same(bad ? "0" : "1", first("icmpv6.checksum.status"), "icmpv6 checksum", f)
            }
            if let ra = obj(o, "ra") {
                same(str(ra["router_lifetime"]), first("icmpv6.nd.ra.router_lifetime"), "router lifetime", f)
                same(preference(ra["prf"] as? String), first("icmpv6.nd.ra.flag.prf"), "prf", f)
                same(bool(ra["M"]), flag(first("icmpv6.nd.ra.flag.m")), "M", f)
                same(bool(ra["O"]), flag(first("icmpv6.nd.ra.flag.o")), "O", f)
                same(str(ra["reachable_time"]), first("icmpv6.nd.ra.reachable_time"), "reachable", f)
                same(str(ra["retrans_timer"]), first("icmpv6.nd.ra.retrans_timer"), "retrans", f)
                let prefixes = ra["prefixes"] as? [[String: Any]] ?? []
                let routes = ra["routes"] as? [[String: Any]] ?? []
                // tshark lists PIO and RIO prefixes in one field, in wire order (PIOs first here).
                let all = (prefixes + routes).compactMap { ($0["prefix"] as? String)?.split(separator: "/") }
                same(all.map { String($0[0]) }.joined(separator: ","), t["icmpv6.opt.prefix"]?.joined(separator: ","), "prefixes", f)
                same(all.map { String($0[1]) }.joined(separator: ","), t["icmpv6.opt.prefix.length"]?.joined(separator: ","), "prefix lengths", f)
                same(prefixes.compactMap { str($0["valid"]) }.joined(separator: ","),
                     t["icmpv6.opt.prefix.valid_lifetime"]?.joined(separator: ","), "valid", f)
                same(prefixes.compactMap { str($0["preferred"]) }.joined(separator: ","),
                     t["icmpv6.opt.prefix.preferred_lifetime"]?.joined(separator: ","), "preferred", f)
                same(prefixes.compactMap { bool($0["L"]) }.joined(separator: ","),
                     t["icmpv6.opt.prefix.flag.l"]?.map { flag($0)! }.joined(separator: ","), "L", f)
                same(prefixes.compactMap { bool($0["A"]) }.joined(separator: ","),
                     t["icmpv6.opt.prefix.flag.a"]?.map { flag($0)! }.joined(separator: ","), "A", f)
                same(routes.compactMap { str($0["lifetime"]) }.joined(separator: ","),
                     t["icmpv6.opt.route_lifetime"]?.joined(separator: ","), "route lifetime", f)
                same(routes.compactMap { preference($0["prf"] as? String) }.joined(separator: ","),
                     t["icmpv6.opt.route_info.flag.route_preference"]?.joined(separator: ","), "route prf", f)
                same(str(ra["mtu"]), first("icmpv6.opt.mtu"), "mtu", f)
                same(str(ra["sllao"]), first("icmpv6.opt.linkaddr"), "sllao", f)
            }
            if let rs = obj(o, "rs") { same(str(rs["sllao"]), first("icmpv6.opt.linkaddr"), "rs sllao", f) }
            if let ns = obj(o, "ns") {
                same(str(ns["target"]), first("icmpv6.nd.ns.target_address"), "ns target", f)
                same(str(ns["sllao"]), first("icmpv6.opt.linkaddr"), "ns sllao", f)
            }
            if let na = obj(o, "na") {
                same(str(na["target"]), first("icmpv6.nd.na.target_address"), "na target", f)
                same(bool(na["R"]), flag(first("icmpv6.nd.na.flag.r")), "R", f)
                same(bool(na["S"]), flag(first("icmpv6.nd.na.flag.s")), "S", f)
                same(bool(na["O"]), flag(first("icmpv6.nd.na.flag.o")), "O", f)
                same(str(na["tllao"]), first("icmpv6.opt.linkaddr"), "tllao", f)
            }
            if let mh = obj(o, "mh") {
                let flags = mh["flags"] as? [String] ?? []
                let has = { (l: String) in flags.contains(l) ? "1" : "0" }
                let lifetimeUnits = (mh["lifetime_s"] as? Int).map { String($0 / 4) }
                if (mh["type"] as? Int) == 5 {
                    same(str(mh["seq"]), first("mip6.bu.seqnr"), "bu seq", f)
                    same(lifetimeUnits, first("mip6.bu.lifetime"), "bu lifetime", f)
                    same(has("A"), flag(first("mip6.bu.a_flag")), "A", f)
                    same(has("H"), flag(first("mip6.bu.h_flag")), "H", f)
                    same(has("P"), flag(first("mip6.bu.p_flag")), "P", f)
                } else if (mh["type"] as? Int) == 6 {
                    same(str(mh["status"]), first("mip6.ba.status"), "ba status", f)
                    same(str(mh["seq"]), first("mip6.ba.seqnr"), "ba seq", f)
                    same(lifetimeUnits, first("mip6.ba.lifetime"), "ba lifetime", f)
                    same(has("P"), flag(first("mip6.ba.p_flag")), "ba P", f)
                }
                let options = mh["options"] as? [[String: Any]] ?? []
                let byType = { (t: Int) in options.first { ($0["type"] as? Int) == t } }
                same(str(byType(8)?["id"]), first("mip6.mnid.identifier"), "MN-ID", f)
                let hnp = (byType(22)?["prefix"] as? String)?.split(separator: "/")
                same(hnp.map { String($0[0]) }, first("mip6.nemo.mnp.mnp"), "HNP", f)
                same(hnp.map { String($0[1]) }, first("mip6.nemo.mnp.pfl"), "HNP length", f)
                same(str(byType(23)?["indicator"]), first("mip6.hi"), "handoff indicator", f)
                same(str(byType(24)?["att"]), first("mip6.att"), "access technology", f)
            }
            if let udp = obj(o, "udp") {
                same(str(udp["sport"]), first("udp.srcport"), "udp sport", f)
                same(str(udp["dport"]), first("udp.dstport"), "udp dport", f)
            }
            if let tcp = obj(o, "tcp") {
                same(str(tcp["sport"]), first("tcp.srcport"), "tcp sport", f)
                same(str(tcp["dport"]), first("tcp.dstport"), "tcp dport", f)
                same(str(tcp["seq"]), first("tcp.seq_raw"), "tcp seq", f)
            }
            // Both flag the same frames as broken, except where tshark cannot
            // tell: it does not verify Mobility Header checksums (frame 21).
            let tsharkBroken = t["_ws.malformed"] != nil
                || (t["_ws.expert.severity"] ?? []).contains { (Int($0) ?? 0) >= 0x0060_0000 }
            if f != 21 { same(o["error"] != nil ? "broken" : "ok", tsharkBroken ? "broken" : "ok", "verdict", f) }
        }
        #expect(compared > 200, "only \(compared) fields compared")
    }

    /// The frames the generator broke on purpose, with our reason for each.
    @Test func reasons() throws {
        let ours = try decodeCapture(sampleCapture)
        let errors = ours.enumerated().compactMap { i, o in (o["error"] as? String).map { (i + 1, $0) } }
        #expect(errors.map(\.0) == [16, 17, 18, 19, 20, 21])
        #expect(errors.map(\.1) == ["truncated", "bad_checksum", "zero_length_nd_option",
                                    "payload_length_beyond_frame", "option_overrun", "bad_checksum"])
        // Whatever parsed is still there.
        #expect((ours[16]["ra"] as? [String: Any])?["router_lifetime"] as? Int == 1800)
        let broken = try #require(ours[19]["mh"] as? [String: Any])
        #expect(broken["type"] as? Int == 5 && broken["seq"] as? Int == 8 && broken["lifetime_s"] as? Int == 3600)
        #expect((broken["options"] as? [Any])?.isEmpty == true)
    }

    @Test func decodesRFC8885Options() throws {
        let ours = try decodeCapture(sampleCapture)
        let pbu = try #require((ours[6]["mh"] as? [String: Any])?["options"] as? [[String: Any]])
        #expect(pbu.compactMap { $0["type"] as? Int } == [8, 22, 65, 67, 27, 23, 24])
        #expect(pbu[2]["prefix"] as? String == "2001:db8:1:1::/64")
        #expect(pbu[3]["maar"] as? String == "2001:db8:ffff::1")
        #expect(pbu[3]["prefix"] as? String == "2001:db8:1:1::/64")
        #expect(pbu[4]["timestamp_s"] as? Double == 3_973_000_000.5)
        let pbaMH = try #require(ours[7]["mh"] as? [String: Any])
        #expect(pbaMH["flags"] as? [String] == ["P", "D"])
        let pba = try #require(pbaMH["options"] as? [[String: Any]])
        #expect(pba.compactMap { $0["type"] as? Int } == [8, 65, 66, 68, 69, 70, 200])
        #expect(pba[2]["prefix"] as? String == "2001:db8:aaaa::/48")
        #expect(pba[3]["address"] as? String == "2001:db8:ffff::2")
        #expect(pba[4]["address"] as? String == "fe80::d1:1")
        #expect(pba[5]["lladdr"] as? String == "02:d1:00:00:01:01")
        #expect(pba[6]["unknown"] as? Bool == true && pba[6]["hex"] as? String == "010203")
        let layers = ours.map { ($0["layers"] as? [String]) ?? [] }
        #expect(layers[8] == ["eth", "ipv6", "ipv6", "udp"])
        #expect(layers[9] == ["eth", "vlan", "ipv6", "hbh", "dstopts", "frag", "udp"])
        #expect(layers[14] == ["eth", "vlan", "vlan", "ipv6", "icmpv6"])
    }
}
