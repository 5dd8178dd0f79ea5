// libFuzzer target over the configuration reader: any bytes as a YAML file
// (libyaml's events composed by YAMLNode, then every key checked) must give
// a configuration or a ConfigError with a position, and never trap; and the
// address parsers, on the same bytes as text, must agree with their own
// printing. Compiled with Sources/DGWConfig against the DGWWire module.

import DGWWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        _ = try GatewayConfig.parse(text, file: "fuzz.yaml")
    } catch {
        precondition(error.line >= 0 && !error.message.isEmpty)
    }
    // A parsed address prints in RFC 5952 form, which parses back to itself.
    if let a = IPv6Address(text) { precondition(IPv6Address(a.description) == a) }
    if let p = IPv6Prefix(text) { precondition(IPv6Prefix(p.description) == p) }
    if let m = MACAddress(text) { precondition(MACAddress(m.description) == m) }
    return 0
}
