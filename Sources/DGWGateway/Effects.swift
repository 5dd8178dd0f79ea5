// One gateway's two planes joined: what the control plane decided (binding
// changes, frames, signalling) applied to the data plane's tables and
// framed for the ports. The one place `dgw run`, `dgw replay` and the
// simulations do it.

import DGWControl
import DGWPipeline
import DGWWire

/// What applying control-plane effects did not do. The frames made ready
/// for the ports stay in the effects (`GatewayTables.apply`).
public struct AppliedEffects {
    /// Binding changes the tables refused, with why.
    public var refused: [(change: BindingChange, error: GatewayTablesError)] = []
    /// Signalling not sent: no next hop, or too much already waiting for
    /// one (the retransmission covers it). The rest waits in the tables
    /// for its hop's MAC (`releaseHeld`), solicited at once.
    public var unresolved: [CorePacket] = []
}

extension GatewayTables {
    /// Applies the binding changes first (what the frames announce is then
    /// in place), then makes the frames ready for the ports, in `e`'s own
    /// lists (no copy, no new list): `e.access` due no earlier than `time`,
    /// `e.core` framed for its next hop, or in the place of one held for
    /// its hop's MAC, the solicitation of that hop (if one is due). The
    /// signalling's frames are framed in place when `e` is the only owner of
    /// them. The caller sends the frames, then hands `e` back for the
    /// control plane to reuse (`ControlPlane.recycle`). The tables' one
    /// writer calls it.
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
        for i in e.access.indices where e.access[i].time < time { e.access[i].time = time }
        // Kept frames move down over those held or unresolved (`kept` never
        // passes `i`); a held frame's solicitation takes its place.
        var kept = 0
        for i in e.core.indices {
            let destination = e.core[i].destination
            // Taken out of the effects: held once, written in place.
            var frame = e.core[i].frame
            e.core[i].frame = []
            if frameForCore(&frame, to: destination) {
                e.core[kept] = CorePacket(destination: destination, frame: frame)
                kept += 1
            } else if let h = hold(frame, to: destination, time: time) {
                if case .heldSoliciting(let solicitation) = h {
                    e.core[kept] = CorePacket(destination: destination, frame: solicitation)
                    kept += 1
                }
            } else {
                out.unresolved.append(CorePacket(destination: destination, frame: frame))
            }
        }
        if kept < e.core.count { e.core.removeSubrange(kept...) }
        return out
    }
}
