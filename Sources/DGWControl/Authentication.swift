// Authenticated signalling between the gateways, the CMD and the LMA:
// every PBU and PBA to or from a peer with a key ends with a Mobility
// Message Identifier (RFC 4285 section 6) and a Mobility Message
// Authentication option (RFC 4285 section 5, MN-HA subtype, the peer's
// SPI) carrying HMAC-SHA256 over the packet's addresses and the header.
// The identifier is the sending time, as RFC 4285 section 6's timestamp
// (NTP format: seconds since 1900, then 2^-32 s), and only grows from one
// sender: a receiver refuses what is not above the last one it accepted
// from that peer, and what is not within its replay window of its own
// clock. A replayed message is refused even when it authenticates, and
// also after the receiver restarted and forgot what it had seen.

import DGWWire

/// A peer's key for authenticated signalling, the same at both ends.
public struct SignallingKey: Sendable, Equatable {
    public var spi: UInt32
    public var secret: [UInt8]

    public init(spi: UInt32, secret: [UInt8]) {
        self.spi = spi
        self.secret = secret
    }
}

/// HMAC-SHA256(key, data). Given by whoever runs the control plane (`dgw`
/// and the tests use swift-crypto), so that it needs no crypto library.
public typealias HMACSHA256 = @Sendable (_ key: [UInt8], _ data: [UInt8]) -> [UInt8]

final class SignallingAuthenticator {
    static let authenticatorLength = 32

    enum Verdict: Equatable {
        case accepted
        /// From a peer with a key: no valid authenticator for it.
        case unauthenticated
        /// Authenticated, but its identifier is not above the last one accepted from that peer.
        case replayed
        /// Authenticated, but its time is further from this node's clock than the replay window.
        case stale
    }

    private let keys: [IPv6Address: SignallingKey]
    private let hmac: HMACSHA256?
    private var nextIdentifier: UInt64
    private var lastIdentifier: [IPv6Address: UInt64] = [:]
    private let clockOffset: Int64
    private let window: Int64
    /// The time of the event being handled (the control plane's clock).
    var now: Int64 = 0

    init(_ configuration: ControlPlaneConfiguration) {
        keys = configuration.keys
        hmac = configuration.hmacSHA256
        nextIdentifier = configuration.firstMessageIdentifier
        clockOffset = configuration.clockOffset
        window = configuration.replayWindow
        precondition(keys.isEmpty || hmac != nil, "signalling keys need an HMAC-SHA256 function")
    }

    /// Seconds from 1900 (NTP's era) to 1970.
    static let ntpEra: Int64 = 2_208_988_800

    /// The identifier of a message sent at `t` (Unix nanoseconds).
    static func identifier(unixNanoseconds t: Int64) -> UInt64 {
        let t = max(0, t)
        let fraction = UInt64(t % 1_000_000_000) << 32 / 1_000_000_000
        return UInt64(t / 1_000_000_000 + ntpEra) << 32 | fraction
    }

    /// When a message with identifier `id` was sent, in Unix nanoseconds.
    static func unixNanoseconds(ofIdentifier id: UInt64) -> Int64 {
        (Int64(id >> 32) - ntpEra) * 1_000_000_000 + Int64((id & 0xFFFF_FFFF) * 1_000_000_000 >> 32)
    }

    /// The options that end a message to `peer`: none when its signalling
    /// is not authenticated; else a fresh identifier and the
    /// authentication option, its data zero until `seal`.
    func trailer(for peer: IPv6Address) -> [MobilityOption] {
        guard let key = keys[peer] else { return [] }
        // The clock's time, or one above the last when the clock did not move (or went back).
        let identifier = max(nextIdentifier, Self.identifier(unixNanoseconds: now &+ clockOffset))
        nextIdentifier = identifier &+ 1
        return [.messageIdentifier(identifier),
                .authentication(subtype: MobilityAuthenticationSubtype.mnHA, spi: key.spi,
                                data: .owned([UInt8](repeating: 0, count: Self.authenticatorLength)))]
    }

    /// Fills in the authenticator of `header`, emitted with `trailer(for: destination)`.
    func seal(_ header: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address) throws(WireError) {
        guard let key = keys[destination], let hmac else { return }
        let packet = try MobilityHeaderPacket(checking: UnsafeRawBufferPointer(header))
        guard let trailer = MobilityAuthenticationTrailer(packet) else { throw .badOptionLength }
        let authenticator = hmac(key.secret, trailer.authenticatedData(of: packet.bytes, source: source, destination: destination))
        try MobilityAuthenticationTrailer.seal(header, source: source, destination: destination, authenticator: authenticator)
    }

    /// Whether to act on `header` (checksum verified, options checked) from `peer` to `me`.
    func check(_ header: MobilityHeaderPacket, options: MobilityOptions, from peer: IPv6Address, to me: IPv6Address) -> Verdict {
        guard let key = keys[peer] else { return .accepted }
        guard let hmac, let trailer = MobilityAuthenticationTrailer(header),
              trailer.subtype == MobilityAuthenticationSubtype.mnHA, trailer.spi == key.spi,
              header.length - trailer.dataOffset == Self.authenticatorLength
        else { return .unauthenticated }
        let expected = hmac(key.secret, trailer.authenticatedData(of: header.bytes, source: peer, destination: me))
        // Compared in full whatever differs, so the time taken tells nothing.
        var difference: UInt8 = expected.count == Self.authenticatorLength ? 0 : 1
        for (i, byte) in expected.prefix(Self.authenticatorLength).enumerated() {
            difference |= byte ^ header.bytes[trailer.dataOffset + i]
        }
        guard difference == 0, let identifier = options.messageIdentifier else { return .unauthenticated }
        if let last = lastIdentifier[peer], identifier <= last { return .replayed }
        guard (Self.unixNanoseconds(ofIdentifier: identifier) - (now &+ clockOffset)).magnitude <= UInt64(window) else { return .stale }
        lastIdentifier[peer] = identifier
        return .accepted
    }
}
