// swift-tools-version:6.1
import PackageDescription

// Module graph (dependencies point one way, left to right):
//
//   CDGWShim, CPcap  ->  DGWPorts (pcap files, AF_PACKET, live pcap) ──────┐
//   DGWWire  ->  DGWInspect (dgw decode) ──────────────────────────────────┤
//   DGWWire, DGWTables  ->  DGWPipeline (the data plane, sans-I/O) ────────┼─>  dgw (CLI)
//   DGWWire  ->  DGWControl (the control plane, sans-I/O) ─────────────────┤
//   DGWPipeline, DGWControl  ->  DGWGateway (effects applied) ─────────────┤
//                                  └─> DGWSimulation (gateways in memory, for tests)
//   DGWWire, CYAML  ->  DGWConfig (the YAML configuration) ─────────────────┘
//
// (see README "Architecture").

// Release builds of the modules a handover runs through (the control
// plane's books, the tables' writer in DGWPipeline, effects applied, the
// harness) go without the dynamic exclusivity checks of class-held state
// (swift_beginAccess and its thread-local access set on each touch):
// +10% handovers/s for DGWControl, then 3.4% of the profile and about
// +5% for the others (`dgw-bench signalling`, BENCHMARKS.md). The
// pipeline's per-frame path has none to remove (`dgw-bench pipeline` is
// unchanged). Debug builds, so every test and the TSan run, keep them;
// bounds and overflow checks stay in both. Not DGWTables (0.6% of that
// profile): the Benchmarks package builds it as a dependency, where
// SwiftPM may refuse unsafe flags, and its gain is too small to find out.
let uncheckedExclusivityInRelease: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
let package = Package(
    name: "dgw",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dgw", targets: ["dgw"]),
        .library(name: "DGWWire", targets: ["DGWWire"]),
        .library(name: "DGWInspect", targets: ["DGWInspect"]),
        .library(name: "DGWPorts", targets: ["DGWPorts"]),
        .library(name: "DGWTables", targets: ["DGWTables"]),
        .library(name: "DGWPipeline", targets: ["DGWPipeline"]),
        .library(name: "DGWConfig", targets: ["DGWConfig"]),
        .library(name: "DGWControl", targets: ["DGWControl"]),
        .library(name: "DGWSimulation", targets: ["DGWSimulation"]),
        .executable(name: "dgw-bench", targets: ["dgw-bench"]),
        .executable(name: "dgw-pcapgen", targets: ["dgw-pcapgen"]),
        .executable(name: "dgw-testbed", targets: ["dgw-testbed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // HMAC-SHA256 for authenticated signalling (given to DGWControl by dgw and the tests).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // Linux syscalls and macros Swift cannot see; compiled with _GNU_SOURCE.
        .target(
            name: "CDGWShim",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        // Wire formats: zero-copy views and validated value types. No Foundation.
        .target(name: "DGWWire"),
        // Lock-free tables read by the data plane: HNP longest-prefix match,
        // logical-MAC exact match, QSBR reclamation.
        .target(name: "DGWTables", dependencies: ["DGWWire", "CDGWShim"]),
        // The data plane: batches of frames in, verdicts and frames out (sans-I/O).
        .target(name: "DGWPipeline", dependencies: ["DGWWire", "DGWTables", "CDGWShim"], swiftSettings: uncheckedExclusivityInRelease),
        // The control plane, sans-I/O: frames and time in, frames out.
        .target(name: "DGWControl", dependencies: ["DGWWire"], swiftSettings: uncheckedExclusivityInRelease),
        // Gateways (data and control plane), MNs and correspondents wired in
        // memory, on virtual time: the tests' and benchmarks' domain.
        // The two planes of one gateway joined: control effects applied to the tables.
        .target(name: "DGWGateway", dependencies: ["DGWWire", "DGWPipeline", "DGWControl"], swiftSettings: uncheckedExclusivityInRelease),
        .target(name: "DGWSimulation", dependencies: ["DGWWire", "DGWPipeline", "DGWControl", "DGWGateway"], swiftSettings: uncheckedExclusivityInRelease),
        // The gateway's YAML configuration (libyaml), checked key by key.
        .target(name: "DGWConfig", dependencies: ["DGWWire", "CYAML"]),
        // Frame dissection into JSON lines (`dgw decode`), shared by tests and tools.
        .target(name: "DGWInspect", dependencies: ["DGWWire"]),
        // Packet I/O: pcap files through libpcap, syscalls through the shim.
        .target(name: "DGWPorts", dependencies: ["CDGWShim", "CPcap"]),
        .executableTarget(
            name: "dgw",
            dependencies: [
                "DGWWire", "DGWInspect", "DGWPorts", "DGWConfig", "DGWPipeline", "DGWControl", "DGWGateway", "DGWTables", "CDGWShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Benchmarks that print JSON lines, against the anchors of ../shared/bench.
        .executableTarget(name: "dgw-bench", dependencies: ["DGWTables", "DGWWire", "DGWPipeline", "DGWTraffic", "DGWPorts",
                                                          "DGWControl", "DGWSimulation", "CMallocCounter"],
                          path: "Tools/dgw-bench"),
        // Synthetic D-GW traffic (bindings of every kind, frames of every direction).
        .target(name: "DGWTraffic", dependencies: ["DGWWire"], path: "Tools/DGWTraffic"),
        .executableTarget(name: "dgw-pcapgen", dependencies: ["DGWTraffic", "DGWPorts"], path: "Tools/dgw-pcapgen"),
        // The handover testbed with real Linux hosts in namespaces (`make demo`, issue 7) and its traffic programs.
        .executableTarget(name: "dgw-testbed", dependencies: ["DGWWire", "DGWControl", "DGWPorts", "DGWTestSupport"], path: "Tools/testbed/handover"),
        // Counts mallocs for dgw-bench's mallocs_per_packet (interposes malloc; dgw-bench only).
        .target(name: "CMallocCounter", path: "Tools/CMallocCounter"),
        // Running executables and tools from tests (and background programs for dgw-testbed).
        .target(name: "DGWTestSupport", path: "Tests/DGWTestSupport"),
        .testTarget(name: "DGWWireTests", dependencies: ["DGWWire", "DGWTestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "DGWPipelineTests", dependencies: ["DGWPipeline", "DGWControl", "DGWWire", "DGWConfig", "DGWPorts", "DGWTestSupport", "dgw", "dgw-pcapgen"]),
        // No test links dgw-bench: it interposes malloc, which Thread Sanitizer cannot share.
        .testTarget(name: "DGWTablesTests", dependencies: ["DGWTables", "DGWWire", "DGWTraffic", "DGWTestSupport"]),
        .testTarget(
            name: "DGWInspectTests",
            dependencies: ["DGWWire", "DGWInspect", "DGWPorts", "DGWTestSupport", "dgw"]
        ),
        .testTarget(name: "DGWPortsTests", dependencies: ["DGWPorts", "CDGWShim", "DGWTestSupport"]),
        .testTarget(name: "DGWControlTests", dependencies: ["DGWControl", "DGWWire", "DGWSimulation", "DGWGateway", "DGWPipeline", "DGWPorts", "DGWTestSupport",
                                                         .product(name: "Crypto", package: "swift-crypto")]),
        // `dgw run` between network namespaces (root), and the handover testbed.
        .testTarget(name: "DGWLiveTests", dependencies: ["DGWTestSupport", "dgw", "dgw-testbed"]),
    ]
)
