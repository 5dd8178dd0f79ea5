import DGWWire

/// Link types `dgw decode` understands (pcap LINKTYPE_ values).
public enum LinkType: Int32, Sendable {
    case ethernet = 1     // LINKTYPE_ETHERNET
    case raw = 101        // LINKTYPE_RAW (DLT_RAW is 12 on Linux, mapped by libpcap)
    case ipv6 = 229       // LINKTYPE_IPV6
    case linuxSLL = 113   // LINKTYPE_LINUX_SLL ("tcpdump -i any")
    case linuxSLL2 = 276  // LINKTYPE_LINUX_SLL2

    /// From a libpcap data-link value (DLT_*), which differs from the
    /// LINKTYPE_* value for raw IP on some platforms.
    public init?(dlt: Int32) {
        switch dlt {
        case 1: self = .ethernet
        case 12, 14, 101: self = .raw
        case 229: self = .ipv6
        case 113: self = .linuxSLL
        case 276: self = .linuxSLL2
        default: return nil
        }
    }
}

/// Turns one captured frame into the JSON object of `dgw decode`: every
/// layer that parses, and `"error"` for the first one that does not. Never
/// traps, whatever the bytes.
public struct FrameDecoder {
    /// Nil for a link type we do not dissect: each frame then says so.
    public let linkType: LinkType?

    public init(linkType: LinkType?) { self.linkType = linkType }

    public init(dataLinkType dlt: Int32) { linkType = LinkType(dlt: dlt) }

    public func decode(_ frame: UnsafeRawBufferPointer, number: Int, originalLength: Int) -> String {
        var d = Dissection()
        var unsupported = false
        switch linkType {
        case .ethernet: d.ethernet(frame)
        case .raw, .ipv6: d.ipv6(frame, outer: true)
        case .linuxSLL: d.cooked(frame, headerLength: 16, protocolOffset: 14)
        case .linuxSLL2: d.cooked(frame, headerLength: 20, protocolOffset: 0)
        case nil: unsupported = true
        }
        var out = JSONWriter()
        out.beginObject()
        out.field("frame", number)
        out.field("len", originalLength)
        if originalLength != frame.count { out.field("caplen", frame.count) }
        out.beginArray("layers")
        for l in d.layers { out.element(l) }
        out.endArray()
        d.body(&out)
        if let e = d.error { out.field("error", e.reason) }
        if unsupported { out.field("error", "unsupported_link_type") }
        out.endObject()
        return out.string
    }
}

/// What one frame turned into, layer by layer.
struct Dissection {
    var layers: [String] = []
    var error: WireError?
    private var sections: [(inout JSONWriter) -> Void] = []
    private var sawInnerIPv6 = false

    func body(_ out: inout JSONWriter) {
        for s in sections { s(&out) }
    }

    private mutating func fail(_ e: WireError) { if error == nil { error = e } }

    mutating func ethernet(_ bytes: UnsafeRawBufferPointer) {
        let frame: EthernetFrame
        do { frame = try EthernetFrame(checking: bytes) } catch { fail(error); return }
        layers.append("eth")
        let src = frame.source.description, dst = frame.destination.description, type = frame.etherType
        sections.append { o in
            o.beginObject("eth"); o.field("src", src); o.field("dst", dst); o.field("type", type); o.endObject()
        }
        if frame.tagCount > 0 {
            let tags = (0..<frame.tagCount).map { frame.tag($0) }
            for _ in tags { layers.append("vlan") }
            sections.append { o in
                o.beginArray("vlan")
                for t in tags {
                    o.beginObject(); o.field("vid", t.vid); o.field("pcp", t.pcp); o.field("dei", t.dei)
                    o.field("tpid", t.tpid); o.endObject()
                }
                o.endArray()
            }
        }
        if type == EtherType.ipv6 { ipv6(frame.payload, outer: true) }
    }

    /// Linux cooked capture: a pseudo link header with the EtherType.
    mutating func cooked(_ bytes: UnsafeRawBufferPointer, headerLength: Int, protocolOffset: Int) {
        guard bytes.count >= headerLength else { fail(.truncated); return }
        layers.append("sll")
        let type = UInt16(bytes[protocolOffset]) << 8 | UInt16(bytes[protocolOffset + 1])
        sections.append { o in o.beginObject("sll"); o.field("type", type); o.endObject() }
        if type == EtherType.ipv6 {
            ipv6(UnsafeRawBufferPointer(rebasing: bytes[headerLength...]), outer: true)
        }
    }

    mutating func ipv6(_ bytes: UnsafeRawBufferPointer, outer: Bool) {
        let packet: IPv6Packet
        do { packet = try IPv6Packet(checking: bytes) } catch { fail(error); return }
        layers.append("ipv6")
        let key = outer ? "ipv6" : "inner_ipv6"
        let header = IPv6Header(packet)
        if outer || !sawInnerIPv6 {
            if !outer { sawInnerIPv6 = true }
            sections.append { o in
                o.beginObject(key)
                o.field("src", header.source.description)
                o.field("dst", header.destination.description)
                o.field("nh", header.nextHeader)
                o.field("hlim", header.hopLimit)
                o.field("plen", header.payloadLength)
                if header.trafficClass != 0 { o.field("tc", header.trafficClass) }
                if header.flowLabel != 0 { o.field("flow", header.flowLabel) }
                o.endObject()
            }
        }
        var chain = IPv6HeaderChain(packet: packet)
        var fragmented = false
        do {
            while let ext = try chain.next() {
                layers.append(ext.kind.name)
                if ext.kind == .fragment {
                    fragmented = true
                    let f = IPv6FragmentHeader(ext)
                    sections.append { o in
                        o.beginObject("frag"); o.field("offset", f.offset); o.field("more", f.moreFragments)
                        o.field("id", f.identification); o.endObject()
                    }
                } else if ext.kind == .routing {
                    let r = IPv6RoutingHeader(ext)
                    sections.append { o in
                        o.beginObject("routing"); o.field("type", r.routingType)
                        o.field("segments_left", r.segmentsLeft); o.endObject()
                    }
                }
            }
        } catch { fail(error); return }
        if chain.isNonFirstFragment { return }
        let upper = chain.remainder
        switch chain.nextHeader {
        case IPProtocol.ipv6: ipv6(upper, outer: false)
        case IPProtocol.icmpv6: icmpv6(upper, source: packet.source, destination: packet.destination)
        case IPProtocol.mobility: mobility(upper, source: packet.source, destination: packet.destination)
        case IPProtocol.udp: udp(upper, firstFragment: fragmented)
        case IPProtocol.tcp: tcp(upper)
        default: break
        }
    }

    mutating func udp(_ bytes: UnsafeRawBufferPointer, firstFragment: Bool) {
        let u: UDPPacket
        do { u = try UDPPacket(checking: bytes, firstFragment: firstFragment) } catch { fail(error); return }
        layers.append("udp")
        let sp = u.sourcePort, dp = u.destinationPort, len = u.length
        sections.append { o in
            o.beginObject("udp"); o.field("sport", sp); o.field("dport", dp); o.field("len", len); o.endObject()
        }
    }

    mutating func tcp(_ bytes: UnsafeRawBufferPointer) {
        let t: TCPSegment
        do { t = try TCPSegment(checking: bytes) } catch { fail(error); return }
        layers.append("tcp")
        let h = TCPHeader(t)
        sections.append { o in
            o.beginObject("tcp"); o.field("sport", h.sourcePort); o.field("dport", h.destinationPort)
            o.field("seq", h.sequence); o.field("ack", h.acknowledgement); o.field("flags", h.flags)
            o.endObject()
        }
    }

    mutating func icmpv6(_ bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address) {
        let p: ICMPv6Packet
        do { p = try ICMPv6Packet(checking: bytes) } catch { fail(error); return }
        layers.append("icmpv6")
        // A bad checksum is reported, and the message still shown if it parses.
        if !p.checksumIsValid(source: source, destination: destination) { fail(.badChecksum) }
        let type = p.type, code = p.code
        let message: ICMPv6Message?
        do { message = try ICMPv6Message.parse(unverified: p) } catch { fail(error); message = nil }
        sections.append { o in
            o.beginObject("icmpv6"); o.field("type", type); o.field("code", code)
            if case .packetTooBig(let mtu, _)? = message { o.field("mtu", mtu) }
            if case .parameterProblem(_, let ptr, _)? = message { o.field("pointer", ptr) }
            if case .echoRequest(let id, let seq, _)? = message { o.field("id", id); o.field("seq", seq) }
            if case .echoReply(let id, let seq, _)? = message { o.field("id", id); o.field("seq", seq) }
            o.endObject()
        }
        guard let message else { return }
        switch message {
        case .routerAdvertisement(let ra):
            let section = Self.routerAdvertisement(ra)
            sections.append(section)
        case .routerSolicitation(let options):
            let sllao = options.sourceLinkLayerAddress?.description
            sections.append { o in
                o.beginObject("rs"); if let sllao { o.field("sllao", sllao) }; o.endObject()
            }
        case .neighborSolicitation(let target, let options):
            let sllao = options.sourceLinkLayerAddress?.description
            sections.append { o in
                o.beginObject("ns"); o.field("target", target.description)
                if let sllao { o.field("sllao", sllao) }; o.endObject()
            }
        case .neighborAdvertisement(let na):
            let tllao = na.options.targetLinkLayerAddress?.description
            sections.append { o in
                o.beginObject("na"); o.field("target", na.target.description)
                o.field("R", na.router); o.field("S", na.solicited); o.field("O", na.override)
                if let tllao { o.field("tllao", tllao) }; o.endObject()
            }
        default: break
        }
    }

    static func routerAdvertisement(_ ra: RouterAdvertisement) -> (inout JSONWriter) -> Void {
        var prefixes: [PrefixInformation] = [], routes: [RouteInformation] = []
        var mtu: UInt32?, sllao: String?
        for option in ra.options {
            switch option {
            case .prefixInformation(let p): prefixes.append(p)
            case .routeInformation(let r): routes.append(r)
            case .mtu(let m): mtu = m
            case .sourceLinkLayerAddress(let a): sllao = a.description
            default: break
            }
        }
        return { o in
            o.beginObject("ra")
            o.field("cur_hop_limit", ra.curHopLimit)
            o.field("M", ra.managed)
            o.field("O", ra.otherConfig)
            o.field("router_lifetime", ra.routerLifetime)
            o.field("prf", ra.preference.name)
            o.field("reachable_time", ra.reachableTime)
            o.field("retrans_timer", ra.retransTimer)
            o.beginArray("prefixes")
            for p in prefixes {
                o.beginObject(); o.field("prefix", p.prefix.description); o.field("valid", p.validLifetime)
                o.field("preferred", p.preferredLifetime); o.field("L", p.onLink); o.field("A", p.autonomous)
                o.endObject()
            }
            o.endArray()
            o.beginArray("routes")
            for r in routes {
                o.beginObject(); o.field("prefix", r.prefix.description); o.field("lifetime", r.lifetime)
                o.field("prf", r.preference.name); o.endObject()
            }
            o.endArray()
            if let mtu { o.field("mtu", mtu) }
            if let sllao { o.field("sllao", sllao) }
            o.endObject()
        }
    }

    mutating func mobility(_ bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address) {
        let p: MobilityHeaderPacket
        do { p = try MobilityHeaderPacket(checking: bytes) } catch { fail(error); return }
        layers.append("mh")
        if !p.checksumIsValid(source: source, destination: destination) { fail(.badChecksum) }
        // Fixed fields come from the view, so a message with a broken
        // option still shows them, and the options before the broken one.
        if p.hasOptions {
            do { _ = try MobilityOptions(checking: p.uncheckedOptions.bytes) } catch { fail(error) }
        }
        let type = p.type
        let isUpdate = type == MobilityHeaderType.bindingUpdate
        let fixed = p.isBinding
            ? (seq: p.sequence, lifetime: Int(p.lifetime) * 4, status: p.bindingAckStatus,
               buFlags: p.bindingUpdateFlags, baFlags: p.bindingAckFlags)
            : nil
        let options = p.uncheckedOptions
        let data = UnsafeRawBufferPointer(rebasing: p.bytes[6...])  // after the checksum
        let revocation = p.isRevocation
            ? (type: p.revocationType, code: p.revocationTriggerOrStatus, seq: p.revocationSequence, flags: p.revocationFlags) : nil
        sections.append { o in
            o.beginObject("mh")
            o.field("type", type)
            if let revocation {
                // RFC 5846: an indication's trigger, an acknowledgement's status.
                o.field("br_type", revocation.type)
                o.field(revocation.type == BindingRevocationType.indication ? "trigger" : "status", revocation.code)
                o.field("seq", revocation.seq)
                o.beginArray("flags")
                for (flag, letter) in BindingRevocationFlags.letters where revocation.flags.contains(flag) { o.element(letter) }
                o.endArray()
                Self.options(options, &o)
            } else if let fixed {
                if !isUpdate { o.field("status", fixed.status) }
                o.field("seq", fixed.seq)
                o.beginArray("flags")
                if isUpdate {
                    for (flag, letter) in BindingUpdateFlags.letters where fixed.buFlags.contains(flag) { o.element(letter) }
                } else {
                    for (flag, letter) in BindingAckFlags.letters where fixed.baFlags.contains(flag) { o.element(letter) }
                }
                o.endArray()
                o.field("lifetime_s", fixed.lifetime)
                Self.options(options, &o)
            } else {
                o.field("hex", hexString(data))
            }
            o.endObject()
        }
    }

    static func options(_ options: MobilityOptions, _ o: inout JSONWriter) {
        o.beginArray("options")
        for option in options {
            o.beginObject()
            o.field("type", option.type)
            switch option {
            case .mobileNodeIdentifier(let subtype, let id):
                o.field("subtype", subtype)
                o.field("id", printable(id) ?? hexString(id))
            case .authentication(let subtype, let spi, let data):
                o.field("subtype", subtype)
                o.field("spi", spi)
                o.field("authenticator", hexString(data))
            case .messageIdentifier(let v): o.field("identifier", v)
            case .homeNetworkPrefix(let p), .anchoredPrefix(let p), .localPrefix(let p):
                o.field("prefix", p.description)
            case .handoffIndicator(let v): o.field("indicator", v)
            case .accessTechnologyType(let v): o.field("att", v)
            case .mobileNodeLinkLayerIdentifier(let id): o.field("identifier", hexString(id))
            case .linkLocalAddress(let a): o.field("address", a.description)
            case .timestamp(let t):
                o.field("timestamp", t)
                // NTP format: seconds since 1900 and a binary fraction.
                o.field("timestamp_s", Double(t >> 32) + Double(t & 0xFFFF_FFFF) / 4_294_967_296.0)
            case .previousMAAR(let maar, let p):
                o.field("maar", maar.description)
                o.field("prefix", p.description)
            case .servingMAAR(let a), .dlifLinkLocalAddress(let a): o.field("address", a.description)
            case .dlifLinkLayerAddress(let a): o.field("lladdr", a.description)
            case .unknown(_, let data):
                o.field("unknown", true)
                o.field("hex", hexString(data))
            }
            o.endObject()
        }
        o.endArray()
    }

    /// The identifier as text when it is printable ASCII (an NAI is).
    static func printable(_ bytes: RawBytes) -> String? {
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: Array(bytes), as: UTF8.self)
    }
}
