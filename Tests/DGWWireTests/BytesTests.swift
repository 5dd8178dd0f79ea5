import DGWWire
import Testing

struct BytesTests {
    /// A new frame's octets are all zero, whatever frames were written
    /// before it, at every size up to the copied zeroes' end and past it.
    @Test func zeroedFramesAreZeroes() {
        for count in [0, 1, 54, 1514, 9018, 16_383, 16_384, 16_385, 70_000] {
            var frame = [UInt8](zeroed: count)
            #expect(frame.count == count && frame.allSatisfy { $0 == 0 }, "\(count)")
            // Writing one frame leaves the next one zero.
            for i in frame.indices { frame[i] = 0xA5 }
            let next = [UInt8](zeroed: count)
            #expect(next.allSatisfy { $0 == 0 }, "\(count) after a written frame")
        }
    }
}
