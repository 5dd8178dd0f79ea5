// The timer heap against a sorted-list model: order, ties in push order,
// stale entries skipped and compacted away.

@testable import DGWControl
import Testing

@Suite struct DeadlinesTests {
    @Test func popsInTimeOrderAndTiesInPushOrder() {
        var d = Deadlines<Int>()
        var rng = SystemRandomNumberGenerator()
        var model: [(due: Int64, key: Int)] = []
        for key in 0..<2000 {
            let due = Int64.random(in: 0..<300, using: &rng)
            d.schedule(key, at: due)
            model.append((due, key))
        }
        model.sort { $0.due != $1.due ? $0.due < $1.due : $0.key < $1.key }
        #expect(d.earliest { _, _ in true } == model.first?.due)
        var got: [(Int64, Int)] = []
        while let (key, due) = d.next(dueBy: 149, isCurrent: { _, _ in true }) { got.append((due, key)) }
        let expected = model.filter { $0.due <= 149 }
        #expect(got.map(\.0) == expected.map(\.due) && got.map(\.1) == expected.map(\.key))
        #expect(d.earliest { _, _ in true } == model.first { $0.due > 149 }?.due)
    }

    @Test func staleEntriesAreSkippedAndCompacted() {
        var d = Deadlines<Int>()
        var current: [Int: Int64] = [:]
        // Each of 100 keys rescheduled 50 times: only the last time counts.
        for round in 0..<50 {
            for key in 0..<100 {
                let due = Int64(1000 - round * 10 + key)
                current[key] = due
                d.schedule(key, at: due)
            }
        }
        let isCurrent = { (key: Int, due: Int64) in current[key] == due }
        #expect(d.count == 5000)
        d.compact(live: current.count, isCurrent: isCurrent)
        #expect(d.count == 100)
        #expect(d.earliest(isCurrent: isCurrent) == 510)
        current[0] = nil  // cancelled
        var popped: [Int] = []
        while let (key, _) = d.next(dueBy: .max, isCurrent: isCurrent) { popped.append(key) }
        #expect(popped == Array(1..<100))
        #expect(d.earliest(isCurrent: isCurrent) == nil)
    }
}
