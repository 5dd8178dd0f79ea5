import ArgumentParser
import DGWInspect
import DGWPorts
#if canImport(Glibc)
import Glibc
#endif

@main
struct DGW: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dgw",
        abstract: "Distributed Gateway for network-based Distributed Mobility Management.",
        version: "0.1.0",
        subcommands: [Decode.self, Replay.self, Run.self, Ctl.self, Check.self]
    )
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each frame of a pcap or pcapng file as one JSON object per line.",
        discussion: """
            Layers that parse are shown; a frame that does not parse gets "error" with the \
            reason, and decoding goes on with the next frame. Exit status 0 unless the file \
            cannot be read.
            """
    )

    @Argument(help: "A pcap or pcapng capture file.")
    var file: String

    func run() throws {
        let reader: PcapFileReader
        do {
            reader = try PcapFileReader(path: file)
        } catch {
            FileHandleStderr.write("dgw decode: \(error)\n")
            throw ExitCode(2)
        }
        let decoder = FrameDecoder(dataLinkType: reader.dataLinkType)
        var out = BufferedOutput(fd: STDOUT_FILENO)
        var number = 0
        do {
            while let record = try reader.next() {
                number += 1
                try out.write(decoder.decode(record.data, number: number, originalLength: record.originalLength))
                try out.write("\n")
            }
            try out.flush()
        } catch {
            try? out.flush()
            // A file cut short mid-record: what was read is printed, then the error.
            FileHandleStderr.write("dgw decode: \(error) (after \(number) frames)\n")
            throw ExitCode(1)
        }
    }
}

/// Why a command cannot go on (a bad configuration, an unreadable file, a
/// missing interface): said on stderr as "dgw COMMAND: message", exit status 2.
struct Refusal: Error {
    let message: String

    init(message: String) { self.message = message }

    /// `body`'s result, or its refusal reported.
    static func reported<T>(by command: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let refusal as Refusal {
            FileHandleStderr.write("dgw \(command): \(refusal.message)\n")
            throw ExitCode(2)
        }
    }
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
