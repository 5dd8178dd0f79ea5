// `dgw check FILE...`: each configuration checked as `dgw run` checks it at
// start, then all of them together as one domain (GatewayConfig.problems):
// what only shows at run time as signalling dropped or refused.

import ArgumentParser
import DGWConfig
import Foundation

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the configurations of a domain, each on its own and all together.",
        discussion: """
            Each file is read as `dgw run` reads it at start; a refused one is reported with its \
            file, line, column and reason. Then the files are checked against each other: peers \
            that list each other, `auth:` keys on both sides and equal, each gateway's CMD or LMA \
            a node of that role that lists it, CMD modes that agree, an LMA's `operator:` labels \
            matching how the gateways peer, prefix pools that do not overlap, names and addresses \
            used once, one MN-ID per MAC. Addresses in none of the files are left alone. Prints one \
            line per problem (file:line: reason); exit status 0 when they agree, 1 when they do \
            not, 2 when a file is refused.
            """
    )

    @Argument(help: "The YAML configurations of the domain's gateways, CMD and LMA.")
    var files: [String]

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one configuration file") }
    }

    func run() throws {
        var configs: [GatewayConfig] = [], refused = false
        for file in files {
            do {
                configs.append(try GatewayConfig.load(path: file))
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                refused = true
            }
        }
        guard !refused else { throw ExitCode(2) }
        let problems = GatewayConfig.problems(of: configs)
        for p in problems { print(p) }
        guard problems.isEmpty else { throw ExitCode(1) }
        let names = configs.map(\.name).joined(separator: ", ")
        print(configs.count == 1 ? "1 configuration, valid: \(names)" : "\(configs.count) configurations agree: \(names)")
    }
}
