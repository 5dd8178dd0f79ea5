// The timers against a sorted-list model: order, ties in push order,
// stale entries skipped and compacted away, whether pushes come in
// time-ordered runs (the lanes) or at random (the heap behind them).

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

    /// Runs of "now plus a delay" (more runs than lanes), random pushes,
    /// reschedules that make entries stale, pops and compactions, against
    /// a model that keeps every entry pushed and takes the earliest by
    /// (due, push order), skipping the stale, as the contract says.
    @Test(arguments: [1, 5, 12])
    func agreesWithASortedModel(runs: Int) {
        var d = Deadlines<Int>()
        var rng = SystemRandomNumberGenerator()
        var current: [Int: Int64] = [:]  // key -> its one current deadline
        var pending: [(due: Int64, stamp: Int, key: Int)] = []
        var stamp = 0, now: Int64 = 0
        let isCurrent = { (key: Int, due: Int64) in current[key] == due }
        for round in 0..<400 {
            now += Int64.random(in: 0..<20, using: &rng)
            for _ in 0..<Int.random(in: 0..<30, using: &rng) {
                let key = Int.random(in: 0..<500, using: &rng)
                // Mostly one of `runs` fixed delays from now; a tenth anywhere.
                let due = Int.random(in: 0..<10, using: &rng) == 0 ? now + Int64.random(in: -50..<500, using: &rng)
                    : now + Int64(Int.random(in: 0..<runs, using: &rng)) * 37
                d.schedule(key, at: due)
                current[key] = due
                pending.append((due, stamp, key))
                stamp += 1
            }
            if round % 50 == 49 {
                d.compact(live: current.count, isCurrent: isCurrent)
                if pending.count > 1024 && pending.count > 2 * current.count { pending.removeAll { !isCurrent($0.key, $0.due) } }
                #expect(d.count == pending.count)
            }
            // Pops on both in step, with the same notion of current.
            let dueBy = now + Int64.random(in: -10..<40, using: &rng)
            pending.sort { ($0.due, $0.stamp) < ($1.due, $1.stamp) }
            while true {
                var expected: (key: Int, due: Int64)?
                while expected == nil, let first = pending.first, first.due <= dueBy {
                    pending.removeFirst()
                    if isCurrent(first.key, first.due) { expected = (first.key, first.due) }
                }
                let got = d.next(dueBy: dueBy, isCurrent: isCurrent)
                #expect(got?.key == expected?.key && got?.due == expected?.due, "round \(round)")
                guard let (key, _) = got else { break }
                current[key] = nil
            }
            while let first = pending.first, !isCurrent(first.key, first.due) { pending.removeFirst() }
            #expect(d.earliest(isCurrent: isCurrent) == pending.first?.due)
        }
    }
}
