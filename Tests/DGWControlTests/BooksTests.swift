// The control plane's small inline books: the last sequence number per
// serving gateway, and the DLIF slots of one MN.

@testable import DGWControl
import DGWWire
import Testing

@Suite struct BooksTests {
    @Test func lastSequencesPerGateway() {
        let g = (1...4).map { IPv6Address(high: 0x2001_0DB8_FFFF_0000, low: UInt64($0)) }
        var last = LastSequences()
        #expect(last[g[0]] == nil)
        for (i, gateway) in g.enumerated() { last[gateway] = UInt16(10 * (i + 1)) }
        #expect(g.map { last[$0] } == [10, 20, 30, 40])
        last[g[2]] = 31
        last[g[0]] = nil
        #expect(g.map { last[$0] } == [nil, 20, 31, 40])
        last[g[0]] = 11
        #expect(g.map { last[$0] } == [11, 20, 31, 40])
        // Equal whatever the order they were learned in.
        var other = LastSequences()
        for (gateway, s) in zip(g.reversed(), [40, 31, 20, 11] as [UInt16]) { other[gateway] = s }
        #expect(last == other)
        other[g[1]] = 21
        #expect(last != other)
    }

    @Test func slotListKeepsOrderAndRemovesWhatMatches() {
        var list = SlotList()
        #expect(list.isEmpty && Array(list).isEmpty)
        for s in [5, 9, 2, 7] { list.append(s) }
        #expect(Array(list) == [5, 9, 2, 7])
        var removed: [Int] = []
        list.removeAll(where: { $0 == 9 || $0 == 7 }) { removed.append($0) }
        #expect(removed == [9, 7] && Array(list) == [5, 2])
        list.removeAll(where: { _ in true }) { removed.append($0) }
        #expect(list.isEmpty && removed == [9, 7, 5, 2])
        #expect(Array(SlotList(3)) == [3])
    }
}
