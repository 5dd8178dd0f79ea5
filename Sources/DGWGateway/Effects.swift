// One gateway's two planes joined: what the control plane decided (binding
// changes, frames, signalling) applied to the data plane's tables and
// framed for the ports. The one place `dgw run`, `dgw replay` and the
// simulations do it.

import DGWControl
import DGWPipeline
import DGWWire

/// Control-plane effects made ready for the ports.
public struct AppliedEffects {
    /// Frames for the access link, each with the time it is due (never before `time`).
    public var access: [(time: Int64, frame: [UInt8])] = []
    /// Signalling framed for its core next hop.
    public var core: [[UInt8]] = []
    /// Binding changes the tables refused, with why.
    public var refused: [(change: BindingChange, error: GatewayTablesError)] = []
    /// Signalling not sent: no next hop, or too much already waiting for
    /// one (the retransmission covers it). The rest waits in the tables
    /// for its hop's MAC (`releaseHeld`), solicited at once.
    public var unresolved: [CorePacket] = []
}

extension GatewayTables {
    /// Applies the binding changes first (what the frames announce is then
    /// in place), then frames the signalling. The tables' one writer calls it.
    /// The signalling's frames are framed in place when `e` is the only
    /// owner of them (no copy of the packet). Leaves `e` empty with its
    /// lists' room, for the control plane to reuse (`ControlPlane.recycle`).
    public func apply(_ e: inout ControlEffects, time: Int64) -> AppliedEffects {
        var out = AppliedEffects()
        for change in e.bindings {
            switch change {
            case .install(let mn, let prefix, let anchor, let serving, let mac):
                do throws(GatewayTablesError) {
                    try install(BindingEntry(mn: mn, prefix: prefix, anchor: anchor, serving: serving, dlifMAC: mac))
                } catch {
                    out.refused.append((change, error))
                }
            case .remove(let prefix):
                remove(prefix)
            case .routeLocalNetwork(let prefix, let anchor):
                do throws(GatewayTablesError) {
                    try route(localNetwork: prefix, anchor: anchor)
                } catch {
                    out.refused.append((change, error))
                }
            case .unrouteLocalNetwork(let prefix, let anchor):
                unroute(localNetwork: prefix, anchor: anchor)
            }
        }
        reclaim()
        out.access = e.access.map { (max($0.time, time), $0.frame) }
        for i in e.core.indices {
            let destination = e.core[i].destination
            // Taken out of the effects: held once, written in place.
            var frame = e.core[i].frame
            e.core[i].frame = []
            if frameForCore(&frame, to: destination) {
                out.core.append(frame)
            } else if let solicitation = hold(frame, to: destination, time: time) {
                out.core += solicitation
            } else {
                out.unresolved.append(CorePacket(destination: destination, frame: frame))
            }
        }
        e.removeAll()
        return out
    }
}
