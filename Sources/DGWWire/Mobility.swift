// The Mobility Header (RFC 6275 6.1) carrying Proxy Binding Update and
// Acknowledgement (RFC 5213) with the DMM D flag (RFC 8885).
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Payload Proto |  Header Len   |   MH Type     |   Reserved    |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |           Checksum            |   message data ...
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// Header Len: 8-octet units after the first 8. Checksum: Internet checksum
// with the IPv6 pseudo-header, next header 135.
//
// Binding Update (type 5), from offset 6:
// |          Sequence #           |A|H|L|K|M|R|P|F|T|B|S|D| Rsvd  |
// |           Lifetime            |   options ...                    (lifetime in 4 s units)
// Binding Acknowledgement (type 6), from offset 6:
// |    Status     |K|R|P|T|B|S|D|r|          Sequence #           |
// |           Lifetime            |   options ...
// Binding Revocation (type 16, RFC 5846 6.1), from offset 6:
// | B.R. Type     | R. Trigger / Status  (Indication 1 / Acknowledgement 2)
// |          Sequence #           |P|V|G|       Reserved          |
// |   options ...

public enum MobilityHeaderType {
    public static let bindingRefreshRequest: UInt8 = 0  // RFC 6275
    public static let bindingUpdate: UInt8 = 5          // RFC 6275
    public static let bindingAcknowledgement: UInt8 = 6 // RFC 6275
    public static let bindingError: UInt8 = 7           // RFC 6275
    public static let bindingRevocation: UInt8 = 16     // RFC 5846
}

@usableFromInline enum MobilityField {
    @usableFromInline static let payloadProto = 0
    @usableFromInline static let headerLength = 1
    @usableFromInline static let type = 2
    @usableFromInline static let checksum = 4
    @usableFromInline static let data = 6
    // Binding Update
    @usableFromInline static let buSequence = 6
    @usableFromInline static let buFlags = 8
    @usableFromInline static let buLifetime = 10
    // Binding Acknowledgement
    @usableFromInline static let baStatus = 6
    @usableFromInline static let baFlags = 7
    @usableFromInline static let baSequence = 8
    @usableFromInline static let baLifetime = 10
    // Binding Revocation
    @usableFromInline static let brType = 6
    @usableFromInline static let brTriggerOrStatus = 7
    @usableFromInline static let brSequence = 8
    @usableFromInline static let brFlags = 10
    @usableFromInline static let options = 12
    @usableFromInline static let minimumLength = 8
}

/// Binding Update flags (RFC 6275, 5213, 8885; numbers of DESIGN.md).
public struct BindingUpdateFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let acknowledge = Self(rawValue: 0x8000)          // A, RFC 6275
    public static let homeRegistration = Self(rawValue: 0x4000)     // H, RFC 6275
    public static let linkLocalCompatibility = Self(rawValue: 0x2000) // L, RFC 6275
    public static let keyManagement = Self(rawValue: 0x1000)        // K, RFC 6275
    public static let mapRegistration = Self(rawValue: 0x0800)      // M, RFC 4140
    public static let mobileRouter = Self(rawValue: 0x0400)         // R, RFC 3963
    public static let proxyRegistration = Self(rawValue: 0x0200)    // P, RFC 5213
    public static let forceUDP = Self(rawValue: 0x0100)             // F, RFC 5555
    public static let tlvHeader = Self(rawValue: 0x0080)            // T, RFC 5845
    public static let bulkBinding = Self(rawValue: 0x0040)          // B, RFC 6602
    public static let s = Self(rawValue: 0x0020)                    // S, IANA BU flags registry (DESIGN.md)
    public static let distributedGateway = Self(rawValue: 0x0010)   // D, RFC 8885

    /// Letters in wire order, for `dgw decode`.
    public static let letters: [(Self, String)] = [
        (.acknowledge, "A"), (.homeRegistration, "H"), (.linkLocalCompatibility, "L"),
        (.keyManagement, "K"), (.mapRegistration, "M"), (.mobileRouter, "R"),
        (.proxyRegistration, "P"), (.forceUDP, "F"), (.tlvHeader, "T"), (.bulkBinding, "B"),
        (.s, "S"), (.distributedGateway, "D"),
    ]
}

/// Binding Acknowledgement flags.
public struct BindingAckFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let keyManagement = Self(rawValue: 0x80)        // K, RFC 6275
    public static let mobileRouter = Self(rawValue: 0x40)         // R, RFC 3963
    public static let proxyRegistration = Self(rawValue: 0x20)    // P, RFC 5213
    public static let tlvHeader = Self(rawValue: 0x10)            // T, RFC 5845
    public static let bulkBinding = Self(rawValue: 0x08)          // B, RFC 6602
    public static let s = Self(rawValue: 0x04)                     // S, IANA BA flags registry (DESIGN.md)
    public static let distributedGateway = Self(rawValue: 0x02)   // D, RFC 8885

    public static let letters: [(Self, String)] = [
        (.keyManagement, "K"), (.mobileRouter, "R"), (.proxyRegistration, "P"), (.tlvHeader, "T"),
        (.bulkBinding, "B"), (.s, "S"), (.distributedGateway, "D"),
    ]
}

/// Binding Acknowledgement status codes (IANA "Status Codes" registry).
public enum BindingAckStatus {
    public static let accepted: UInt8 = 0                           // RFC 6275
    public static let acceptedPrefixDiscoveryNecessary: UInt8 = 1   // RFC 6275
    public static let reasonUnspecified: UInt8 = 128                // RFC 6275
    public static let administrativelyProhibited: UInt8 = 129       // RFC 6275
    public static let insufficientResources: UInt8 = 130            // RFC 6275
    public static let homeRegistrationNotSupported: UInt8 = 131     // RFC 6275
    public static let notHomeSubnet: UInt8 = 132                    // RFC 6275
    public static let notHomeAgentForThisMobileNode: UInt8 = 133    // RFC 6275
    public static let duplicateAddressDetectionFailed: UInt8 = 134  // RFC 6275
    public static let sequenceNumberOutOfWindow: UInt8 = 135        // RFC 6275
    public static let proxyRegistrationNotEnabled: UInt8 = 152      // RFC 5213 8.9
    public static let notLMAForThisMobileNode: UInt8 = 153          // RFC 5213
    public static let magNotAuthorizedForProxyRegistration: UInt8 = 154 // RFC 5213
    public static let notAuthorizedForHomeNetworkPrefix: UInt8 = 155    // RFC 5213
    public static let timestampMismatch: UInt8 = 156                // RFC 5213
    public static let timestampLowerThanPreviousAccepted: UInt8 = 157 // RFC 5213
    public static let missingHomeNetworkPrefixOption: UInt8 = 158   // RFC 5213
    public static let bcePbuPrefixSetDoNotMatch: UInt8 = 159        // RFC 5213
    public static let missingMNIdentifierOption: UInt8 = 160        // RFC 5213
    public static let missingHandoffIndicatorOption: UInt8 = 161    // RFC 5213
    public static let missingAccessTechTypeOption: UInt8 = 162      // RFC 5213

    /// Accepted codes are below 128 (RFC 6275 6.1.8).
    public static func isAccepted(_ status: UInt8) -> Bool { status < 128 }
}

/// Binding Revocation (RFC 5846): what a message is, why it was sent, how
/// it was answered, and its flags (the high octet of its flag field).
public enum BindingRevocationType {
    public static let indication: UInt8 = 1
    public static let acknowledgement: UInt8 = 2
}

public enum RevocationTrigger {
    public static let unspecified: UInt8 = 0
    public static let administrativeReason: UInt8 = 1
    public static let interMAGHandoverSameAccessType: UInt8 = 2
    public static let interMAGHandoverDifferentAccessType: UInt8 = 3
    public static let interMAGHandoverUnknown: UInt8 = 4
    public static let userInitiatedSessionTermination: UInt8 = 5
}

public enum BindingRevocationStatus {
    public static let success: UInt8 = 0
    public static let partialSuccess: UInt8 = 1
    public static let bindingDoesNotExist: UInt8 = 128
}

public struct BindingRevocationFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let proxyBinding = Self(rawValue: 0x80)   // P
    public static let ipv4HomeAddressOnly = Self(rawValue: 0x40)  // V
    public static let global = Self(rawValue: 0x20)         // G

    public static let letters: [(Self, String)] = [(.proxyBinding, "P"), (.ipv4HomeAddressOnly, "V"), (.global, "G")]
}

/// A checked view of a Mobility Header: length fields agree with the
/// buffer, and for BU, BA and Binding Revocation the fixed fields are present.
public struct MobilityHeaderPacket {
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= MobilityField.minimumLength else { throw .truncated }
        let length = (Int(bytes.u8(MobilityField.headerLength)) + 1) * 8
        guard length <= bytes.count else { throw .truncated }
        let type = bytes.u8(MobilityField.type)
        if type == MobilityHeaderType.bindingUpdate || type == MobilityHeaderType.bindingAcknowledgement
            || type == MobilityHeaderType.bindingRevocation {
            guard length >= MobilityField.options else { throw .badLength }
        }
        self.bytes = bytes.slice(0..<length)
    }

    @inlinable public var payloadProto: UInt8 { bytes.u8(MobilityField.payloadProto) }
    @inlinable public var type: UInt8 { bytes.u8(MobilityField.type) }
    @inlinable public var checksum: UInt16 { bytes.u16(MobilityField.checksum) }
    @inlinable public var length: Int { bytes.count }

    @inlinable
    public func checksumIsValid(source: IPv6Address, destination: IPv6Address) -> Bool {
        upperLayerChecksum(bytes, source: source, destination: destination, nextHeader: IPProtocol.mobility).isValid
    }

    /// Writes the checksum of `header` (a whole Mobility Header) over the
    /// pseudo-header, the field taken as zero.
    public static func writeChecksum(_ header: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address) {
        header.put16(0, at: MobilityField.checksum)
        let sum = upperLayerChecksum(UnsafeRawBufferPointer(header), source: source, destination: destination,
                                     nextHeader: IPProtocol.mobility)
        header.put16(sum.value, at: MobilityField.checksum)
    }

    /// True for BU and BA, whose fixed fields the checked view guarantees.
    @inlinable public var isBinding: Bool {
        type == MobilityHeaderType.bindingUpdate || type == MobilityHeaderType.bindingAcknowledgement
    }

    /// True for a Binding Revocation message, whose fixed fields the checked view guarantees.
    @inlinable public var isRevocation: Bool { type == MobilityHeaderType.bindingRevocation }

    /// Options from offset 12: BU, BA and Binding Revocation.
    @inlinable public var hasOptions: Bool { isBinding || isRevocation }

    // Fixed fields of a Binding Revocation (valid when `isRevocation`).
    @inlinable public var revocationType: UInt8 { bytes.u8(MobilityField.brType) }
    @inlinable public var revocationTriggerOrStatus: UInt8 { bytes.u8(MobilityField.brTriggerOrStatus) }
    @inlinable public var revocationSequence: UInt16 { bytes.u16(MobilityField.brSequence) }
    @inlinable public var revocationFlags: BindingRevocationFlags { BindingRevocationFlags(rawValue: bytes.u8(MobilityField.brFlags)) }

    // Fixed fields of a BU or BA (valid when `isBinding`).
    @inlinable public var sequence: UInt16 {
        bytes.u16(type == MobilityHeaderType.bindingUpdate ? MobilityField.buSequence : MobilityField.baSequence)
    }
    @inlinable public var lifetime: UInt16 { bytes.u16(MobilityField.buLifetime) }
    @inlinable public var bindingUpdateFlags: BindingUpdateFlags { BindingUpdateFlags(rawValue: bytes.u16(MobilityField.buFlags)) }
    @inlinable public var bindingAckStatus: UInt8 { bytes.u8(MobilityField.baStatus) }
    @inlinable public var bindingAckFlags: BindingAckFlags { BindingAckFlags(rawValue: bytes.u8(MobilityField.baFlags)) }

    /// The options of a BU, BA or Binding Revocation, unchecked: iterating stops at the first
    /// option that does not parse (`MobilityOptions(checking:)` says why).
    @inlinable public var uncheckedOptions: MobilityOptions { .parsed(bytes.slice(from: MobilityField.options)) }
}

public struct BindingUpdate: Equatable {
    public var sequence: UInt16
    public var flags: BindingUpdateFlags
    /// In units of 4 seconds (RFC 6275 6.1.7); 0 = de-registration.
    public var lifetime: UInt16
    public var options: MobilityOptions

    public init(sequence: UInt16, flags: BindingUpdateFlags, lifetime: UInt16, options: MobilityOptions) {
        self.sequence = sequence
        self.flags = flags
        self.lifetime = lifetime
        self.options = options
    }

    public var lifetimeSeconds: Int { Int(lifetime) * 4 }
}

public struct BindingAcknowledgement: Equatable {
    public var status: UInt8
    public var flags: BindingAckFlags
    public var sequence: UInt16
    /// In units of 4 seconds.
    public var lifetime: UInt16
    public var options: MobilityOptions

    public init(status: UInt8, flags: BindingAckFlags, sequence: UInt16, lifetime: UInt16, options: MobilityOptions) {
        self.status = status
        self.flags = flags
        self.sequence = sequence
        self.lifetime = lifetime
        self.options = options
    }

    public var lifetimeSeconds: Int { Int(lifetime) * 4 }
}

/// A Binding Revocation Indication or Acknowledgement (RFC 5846): a
/// binding's anchor tells the gateway it granted it to that it is gone.
public struct BindingRevocation: Equatable {
    /// `BindingRevocationType`: indication or acknowledgement.
    public var type: UInt8
    /// The indication's Revocation Trigger, the acknowledgement's status.
    public var triggerOrStatus: UInt8
    public var sequence: UInt16
    public var flags: BindingRevocationFlags
    public var options: MobilityOptions

    public init(type: UInt8, triggerOrStatus: UInt8, sequence: UInt16, flags: BindingRevocationFlags, options: MobilityOptions) {
        self.type = type
        self.triggerOrStatus = triggerOrStatus
        self.sequence = sequence
        self.flags = flags
        self.options = options
    }
}

/// A Mobility Header message as a value.
public enum MobilityMessage: Equatable {
    case bindingUpdate(BindingUpdate)
    case bindingAcknowledgement(BindingAcknowledgement)
    case bindingRevocation(BindingRevocation)
    /// Any other MH type: the message data after the checksum, kept as is.
    case other(type: UInt8, data: RawBytes)

    /// Parses a message whose checksum is verified against the pseudo-header.
    @inlinable
    public static func parse(_ packet: MobilityHeaderPacket, source: IPv6Address, destination: IPv6Address)
        throws(WireError) -> MobilityMessage
    {
        guard packet.checksumIsValid(source: source, destination: destination) else { throw .badChecksum }
        return try parse(unverified: packet)
    }

    @inlinable
    public static func parse(unverified packet: MobilityHeaderPacket) throws(WireError) -> MobilityMessage {
        let b = packet.bytes
        switch packet.type {
        case MobilityHeaderType.bindingUpdate:
            return .bindingUpdate(BindingUpdate(
                sequence: b.u16(MobilityField.buSequence),
                flags: BindingUpdateFlags(rawValue: b.u16(MobilityField.buFlags)),
                lifetime: b.u16(MobilityField.buLifetime),
                options: try MobilityOptions(checking: b.slice(from: MobilityField.options))))
        case MobilityHeaderType.bindingAcknowledgement:
            return .bindingAcknowledgement(BindingAcknowledgement(
                status: b.u8(MobilityField.baStatus),
                flags: BindingAckFlags(rawValue: b.u8(MobilityField.baFlags)),
                sequence: b.u16(MobilityField.baSequence),
                lifetime: b.u16(MobilityField.baLifetime),
                options: try MobilityOptions(checking: b.slice(from: MobilityField.options))))
        case MobilityHeaderType.bindingRevocation:
            return .bindingRevocation(BindingRevocation(
                type: b.u8(MobilityField.brType),
                triggerOrStatus: b.u8(MobilityField.brTriggerOrStatus),
                sequence: b.u16(MobilityField.brSequence),
                flags: BindingRevocationFlags(rawValue: b.u8(MobilityField.brFlags)),
                options: try MobilityOptions(checking: b.slice(from: MobilityField.options))))
        default:
            return .other(type: packet.type, data: .borrowed(b.slice(from: MobilityField.data)))
        }
    }

    /// The options of a BU, BA or Binding Revocation (none for other types).
    public var options: MobilityOptions {
        switch self {
        case .bindingUpdate(let bu): bu.options
        case .bindingAcknowledgement(let ba): ba.options
        case .bindingRevocation(let br): br.options
        case .other: .none
        }
    }

    /// The message with `more` options after its own (a BU, BA or Binding
    /// Revocation; others as they are).
    public func appending(_ more: [MobilityOption]) -> MobilityMessage {
        guard !more.isEmpty else { return self }
        switch self {
        case .bindingUpdate(var bu):
            bu.options = .built(Array(bu.options) + more)
            return .bindingUpdate(bu)
        case .bindingAcknowledgement(var ba):
            ba.options = .built(Array(ba.options) + more)
            return .bindingAcknowledgement(ba)
        case .bindingRevocation(var br):
            br.options = .built(Array(br.options) + more)
            return .bindingRevocation(br)
        case .other:
            return self
        }
    }

    public var type: UInt8 {
        switch self {
        case .bindingUpdate: MobilityHeaderType.bindingUpdate
        case .bindingAcknowledgement: MobilityHeaderType.bindingAcknowledgement
        case .bindingRevocation: MobilityHeaderType.bindingRevocation
        case .other(let t, _): t
        }
    }

    /// Total length, padded to a multiple of 8.
    public var bufferLength: Int {
        switch self {
        case .bindingUpdate(let bu): bu.options.paddedEnd(from: MobilityField.options)
        case .bindingAcknowledgement(let ba): ba.options.paddedEnd(from: MobilityField.options)
        case .bindingRevocation(let br): br.options.paddedEnd(from: MobilityField.options)
        case .other(_, let data): (MobilityField.data + data.count + 7) / 8 * 8
        }
    }

    private var isOther: Bool { if case .other = self { true } else { false } }

    /// The longest message written (its Header Len octet counts 8-octet units).
    public static let maximumLength = 2048

    /// Writes the message (payload proto 59) with its checksum; returns its
    /// length. The options are laid out once, as they are written; the
    /// length octet and the checksum follow.
    @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address)
        throws(WireError) -> Int
    {
        let room = bytes.slice(0..<min(bytes.count, Self.maximumLength))
        // Room for the fixed fields; the options' own check covers the rest.
        guard room.count >= (isOther ? MobilityField.minimumLength : MobilityField.options) else { throw .bufferTooSmall }
        room.put8(IPProtocol.noNextHeader, at: MobilityField.payloadProto)
        room.put8(type, at: MobilityField.type)
        room.put8(0, at: 3)
        room.put16(0, at: MobilityField.checksum)
        let n: Int
        switch self {
        case .bindingUpdate(let bu):
            room.put16(bu.sequence, at: MobilityField.buSequence)
            room.put16(bu.flags.rawValue, at: MobilityField.buFlags)
            room.put16(bu.lifetime, at: MobilityField.buLifetime)
            n = try Self.emit(bu.options, into: room, bytes.count)
        case .bindingAcknowledgement(let ba):
            room.put8(ba.status, at: MobilityField.baStatus)
            room.put8(ba.flags.rawValue, at: MobilityField.baFlags)
            room.put16(ba.sequence, at: MobilityField.baSequence)
            room.put16(ba.lifetime, at: MobilityField.baLifetime)
            n = try Self.emit(ba.options, into: room, bytes.count)
        case .bindingRevocation(let br):
            room.put8(br.type, at: MobilityField.brType)
            room.put8(br.triggerOrStatus, at: MobilityField.brTriggerOrStatus)
            room.put16(br.sequence, at: MobilityField.brSequence)
            room.put8(br.flags.rawValue, at: MobilityField.brFlags)
            room.put8(0, at: MobilityField.brFlags + 1)
            n = try Self.emit(br.options, into: room, bytes.count)
        case .other(_, let data):
            n = bufferLength
            guard n <= Self.maximumLength else { throw .badLength }
            guard n <= room.count else { throw .bufferTooSmall }
            data.withUnsafeBytes { room.copy($0, to: MobilityField.data) }
            room.zero((MobilityField.data + data.count)..<n)
        }
        room.put8(UInt8(n / 8 - 1), at: MobilityField.headerLength)
        let b = room.slice(0..<n)
        MobilityHeaderPacket.writeChecksum(b, source: source, destination: destination)
        return n
    }

    /// The options from their offset to the padded end, in `room` (at most
    /// `maximumLength` of a buffer of `available` octets): past its end, a
    /// message too long when the buffer had room, else a buffer too small.
    @inline(__always)
    static func emit(_ options: MobilityOptions, into room: UnsafeMutableRawBufferPointer, _ available: Int) throws(WireError) -> Int {
        do {
            return try options.emit(into: room, from: MobilityField.options)
        } catch .bufferTooSmall where available > maximumLength {
            throw .badLength
        }
    }
}
