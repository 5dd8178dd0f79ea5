// dgw-pcapgen: access and core captures of D-GW traffic plus the matching
// configuration, for tests, benchmarks and users.
//   dgw-pcapgen --mns N --frames N --out DIR [--seed S] [--malformed-percent P] [--size BYTES]
// Writes DIR/access.pcap, DIR/core.pcap and DIR/gw.yaml; then
//   dgw replay --config DIR/gw.yaml --access DIR/access.pcap --core DIR/core.pcap ...

import DGWPorts
import DGWTraffic
import Foundation

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: dgw-pcapgen --mns N --frames N --out DIR [--seed S] [--malformed-percent P] [--size BYTES]\n".utf8))
    exit(2)
}

var mns = 1000, frames = 100_000, out: String?, seed: UInt64?, malformed = 1, size: Int?
var args = CommandLine.arguments.dropFirst()
while let flag = args.popFirst() {
    guard let value = args.popFirst() else { usage() }
    switch flag {
    case "--mns": guard let v = Int(value), v >= 10 else { usage() }; mns = v
    case "--frames": guard let v = Int(value), v > 0 else { usage() }; frames = v
    case "--out": out = value
    case "--seed": guard let v = UInt64(value) else { usage() }; seed = v
    case "--malformed-percent": guard let v = Int(value), (0...100).contains(v) else { usage() }; malformed = v
    case "--size": guard let v = Int(value), (62...1514).contains(v) else { usage() }; size = v
    default: usage()
    }
}
guard let dir = out else { usage() }
try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
var plan = TrafficPlan(mns: mns)
if let seed { plan.seed = seed }
plan.malformedPercent = malformed
plan.frameSize = size
do {
    try Data(plan.yaml.utf8).write(to: URL(fileURLWithPath: dir + "/gw.yaml"))
    let access = try PcapFileWriter(path: dir + "/access.pcap", writeBehind: true), core = try PcapFileWriter(path: dir + "/core.pcap", writeBehind: true)
    var generator = TrafficPlan.Generator(plan)
    var counts = (0, 0)
    for n in 0..<frames {
        let (toAccess, bytes) = generator.frame()
        // One frame every microsecond, from 2025-11-24.
        let t = 1_764_000_000_000_000_000 + n * 1000
        try (toAccess ? access : core).write(bytes, seconds: t / 1_000_000_000, nanoseconds: t % 1_000_000_000)
        if toAccess { counts.0 += 1 } else { counts.1 += 1 }
    }
    try access.close()
    try core.close()
    print("{\"mns\":\(mns),\"frames\":\(frames),\"access\":\(counts.0),\"core\":\(counts.1),\"dir\":\"\(dir)\"}")
} catch {
    FileHandle.standardError.write(Data("dgw-pcapgen: \(error)\n".utf8))
    exit(1)
}
