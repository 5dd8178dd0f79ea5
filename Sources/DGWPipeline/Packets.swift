// Frames in flight: fixed-size slots in one allocation, each with headroom
// so that encapsulation prepends the outer header in place (no copy).

import CDGWShim

public enum GatewayPort: Int, Sendable, CaseIterable {
    case access = 0, core = 1
    public var name: String { self == .access ? "access" : "core" }
}

/// Why a frame was dropped. Every drop has one, and a counter.
public enum DropReason: Int, CaseIterable, Sendable {
    case malformed
    case notIPv6
    case vlanTagged
    case unknownDestinationMAC      // access: not a DLIF of an MN attached here
    case notForThisGateway          // core: destination MAC neither ours nor multicast
    case sourceCheck                // access: source not one of the MN's prefixes
    case noRoute
    case hopLimitExceeded
    case packetTooBig
    case decapsulationRefused       // tunnelled from a gateway not bound to the prefix
    case neighborUnresolved
    case punted                     // not forwarded: handed to the control plane (RS, NS, signalling, ...)
    case poolExhausted
    case frameTooLong               // longer than a packet slot: never reached the pipeline
    case receiveRingFull            // the kernel found the port's receive ring (or buffer) full: never reached the gateway

    public var name: String {
        switch self {
        case .malformed: "malformed"
        case .notIPv6: "not_ipv6"
        case .vlanTagged: "vlan_tagged"
        case .unknownDestinationMAC: "unknown_destination_mac"
        case .notForThisGateway: "not_for_this_gateway"
        case .sourceCheck: "source_check"
        case .noRoute: "no_route"
        case .hopLimitExceeded: "hop_limit_exceeded"
        case .packetTooBig: "packet_too_big"
        case .decapsulationRefused: "decapsulation_refused"
        case .neighborUnresolved: "neighbor_unresolved"
        case .punted: "punted_to_control_plane"
        case .poolExhausted: "pool_exhausted"
        case .frameTooLong: "frame_too_long"
        case .receiveRingFull: "receive_ring_full"
        }
    }
}

/// What the pipeline did with a frame (or made), one counter each.
public enum Action: Int, CaseIterable, Sendable {
    case uplinkNative               // MN -> core, prefix anchored here
    case uplinkEncapsulated         // MN -> its prefix's anchor
    case uplinkDecapsulated         // from a serving gateway, anchored here -> core (or on, by destination)
    case uplinkDelivered            // MN -> a host attached here (another MN, a local network's host)
    case downlinkDelivered          // core -> MN attached here
    case downlinkEncapsulated       // core -> the MN's serving gateway
    case downlinkDecapsulated       // from the anchor -> MN attached here
    case uplinkRelayed              // LMA: from the serving gateway, into the tunnel to the prefix's anchor
    case downlinkRelayed            // LMA: from the anchor, into the tunnel to the serving gateway
    case puntedMobility             // Mobility Header for the control plane
    case puntedNeighborDiscovery    // RS, NS, NA, RA for the control plane
    case puntedForGateway           // anything else addressed to the gateway
    case puntedUnknownMN            // unicast from a MAC with no DLIF here: the control plane may attach it
    case icmpError                  // Time Exceeded, Packet Too Big, Unreachable sent
    case icmpRateLimited            // one that the rate limit held back
    case neighborAdvertised         // NA sent for our core address
    case neighborSolicited          // NS sent to resolve a next hop
    case neighborLearned
    case echoReplied
    case heldForBinding             // ahead of its binding here (tunnelled from a peer, or from an MN to a DLIF not shown yet): held, tried again on each change

    public var name: String {
        switch self {
        case .uplinkNative: "uplink_native"
        case .uplinkEncapsulated: "uplink_encapsulated"
        case .uplinkDecapsulated: "uplink_decapsulated"
        case .uplinkDelivered: "uplink_delivered"
        case .downlinkDelivered: "downlink_delivered"
        case .downlinkEncapsulated: "downlink_encapsulated"
        case .downlinkDecapsulated: "downlink_decapsulated"
        case .uplinkRelayed: "uplink_relayed"
        case .downlinkRelayed: "downlink_relayed"
        case .puntedMobility: "punted_mobility"
        case .puntedNeighborDiscovery: "punted_neighbor_discovery"
        case .puntedForGateway: "punted_for_gateway"
        case .puntedUnknownMN: "punted_unknown_mn"
        case .icmpError: "icmp_error_sent"
        case .icmpRateLimited: "icmp_rate_limited"
        case .neighborAdvertised: "neighbor_advertisement_sent"
        case .neighborSolicited: "neighbor_solicitation_sent"
        case .neighborLearned: "neighbor_learned"
        case .echoReplied: "echo_reply_sent"
        case .heldForBinding: "held_for_binding"
        }
    }
}

public enum Verdict: Equatable, Sendable {
    case pending
    case forward(GatewayPort)
    case drop(DropReason)
    /// Handled by the gateway itself (an NS answered, an NA learned).
    case consumed
    /// Copied aside until a binding for it may have come (`Pipeline.processHeld`):
    /// neither sent nor dropped yet; `punted`: handed to the control plane
    /// too (a frame from an MN not attached here, which may attach it).
    case held(punted: Bool)

    /// Whether the control plane is to see the frame.
    @inlinable public var isPunted: Bool {
        switch self {
        case .drop(.punted), .held(punted: true): true
        default: false
        }
    }

    @inlinable public var isHeld: Bool { if case .held = self { true } else { false } }
}

/// One frame: where it sits in the pool, where it came from, what becomes of it.
public struct Packet: Sendable {
    public var slot: Int
    public var offset: Int
    public var length: Int
    public var port: GatewayPort
    /// Nanoseconds (capture time in replay).
    public var time: Int64
    public var verdict = Verdict.pending

    public init(slot: Int, offset: Int, length: Int, port: GatewayPort, time: Int64) {
        self.slot = slot
        self.offset = offset
        self.length = length
        self.port = port
        self.time = time
    }
}

/// Fixed slots of `slotSize` bytes; a frame starts `headroom` bytes in.
public final class PacketPool: @unchecked Sendable {
    public static let headroom = 128
    public let slotSize: Int
    public let count: Int
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Free slots as a stack; `free[count]` holds the stack's height. Unsafe
    /// storage: taken and given back per frame without the dynamic
    /// exclusivity checks of a class's stored `var`.
    @usableFromInline let free: UnsafeMutablePointer<Int>

    public init(count: Int, slotSize: Int = 2048 + 128) {
        self.count = count
        self.slotSize = slotSize
        base = UnsafeMutableRawPointer.allocate(byteCount: count * slotSize, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count * slotSize)
        free = .allocate(capacity: count + 1)
        for i in 0..<count { free[i] = count - 1 - i }
        free[count] = count
    }

    deinit {
        base.deallocate()
        free.deallocate()
    }

    /// Largest frame a slot holds after the headroom.
    @inlinable public var capacity: Int { slotSize - Self.headroom }

    @inlinable @inline(__always)
    public func allocate() -> Int? {
        let n = free[count]
        guard n > 0 else { return nil }
        free[count] = n - 1
        return free[n - 1]
    }

    @inlinable @inline(__always)
    public func release(_ slot: Int) {
        let n = free[count]
        precondition(n < count, "a slot released twice")
        free[n] = slot
        free[count] = n + 1
    }

    public var available: Int { free[count] }

    /// The whole slot.
    @inlinable
    public func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * slotSize, count: slotSize)
    }

    /// The frame's bytes.
    @inlinable
    public func bytes(_ p: Packet) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + p.slot * slotSize + p.offset, count: p.length)
    }

    /// Copies `frame` into a fresh slot; nil when the pool is empty or the frame too long.
    @inlinable
    public func load(_ frame: UnsafeRawBufferPointer, port: GatewayPort, time: Int64) -> Packet? {
        guard frame.count <= capacity, let s = allocate() else { return nil }
        if let from = frame.baseAddress { dgw_copy_frame(base + s * slotSize + Self.headroom, from, frame.count) }
        return Packet(slot: s, offset: Self.headroom, length: frame.count, port: port, time: time)
    }
}

/// Counters, bumped in a local copy per batch and added once.
public struct Counters: Sendable, Equatable {
    public var actions = [Int](repeating: 0, count: Action.allCases.count)
    public var drops = [Int](repeating: 0, count: DropReason.allCases.count)
    public var framesIn = 0
    public var framesOut = 0

    public init() {}

    public subscript(_ a: Action) -> Int { actions[a.rawValue] }
    public subscript(_ d: DropReason) -> Int { drops[d.rawValue] }

    public mutating func add(_ other: Counters) {
        for i in actions.indices { actions[i] += other.actions[i] }
        for i in drops.indices { drops[i] += other.drops[i] }
        framesIn += other.framesIn
        framesOut += other.framesOut
    }
}
