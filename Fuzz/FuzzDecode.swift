// libFuzzer target over `dgw decode`'s dissector: any bytes as an Ethernet
// frame must give one JSON object (it begins and ends with braces) and
// never trap. Compiled with Sources/DGWWire and Sources/DGWInspect.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecode(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for linkType in [LinkType.ethernet, .raw, .linuxSLL] {
        let line = FrameDecoder(linkType: linkType).decode(bytes, number: 1, originalLength: size)
        precondition(line.utf8.first == UInt8(ascii: "{") && line.utf8.last == UInt8(ascii: "}"))
    }
    return 0
}
