import CYAML

/// A YAML document as a plain tree, every node with its position: what the
/// configuration reader needs and no more. Scalars stay strings (the reader
/// parses them itself); anchors and aliases are resolved; keys are checked
/// by the reader.
///
/// Composed from libyaml's event stream: a file of 100k static bindings
/// loads in a fraction of the time a general YAML object model takes.
struct YAMLNode {
    enum Kind {
        case scalar(String)
        case sequence([YAMLNode])
        case mapping([(key: YAMLNode, value: YAMLNode)])
    }
    var kind: Kind
    /// 1-based, as editors count.
    var line: Int
    var column: Int

    /// The text of a scalar, nil for a collection.
    var string: String? {
        if case .scalar(let s) = kind { return s }
        return nil
    }
}

/// A YAML syntax error at a position (1-based).
struct YAMLError: Error {
    var line: Int
    var column: Int
    var message: String
}

extension YAMLNode {
    /// The single document of `text`, nil when there is none.
    static func compose(_ text: String) throws(YAMLError) -> YAMLNode? {
        var text = text
        return try text.withUTF8 { bytes in Result { () throws(YAMLError) in try compose(bytes) } }.get()
    }

    static func compose(_ bytes: UnsafeBufferPointer<UInt8>) throws(YAMLError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(line: 0, column: 0, message: "out of memory") }
        defer { yaml_parser_delete(&parser) }
        // libyaml reads from the pointer as it parses; `bytes` outlives the parser.
        yaml_parser_set_input_string(&parser, bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!, bytes.count)

        /// A collection being filled (mutated in place: no copy per item).
        struct Open {
            var isMapping: Bool
            var items: [YAMLNode] = []
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var key: YAMLNode?
            var anchor: String?
            var line: Int
            var column: Int
        }
        var stack: [Open] = []
        var anchors: [String: YAMLNode] = [:]
        var root: YAMLNode?
        var documents = 0

        func place(_ node: YAMLNode) {
            let top = stack.count - 1
            if top < 0 {
                root = node
            } else if !stack[top].isMapping {
                stack[top].items.append(node)
            } else if let key = stack[top].key {
                stack[top].pairs.append((key, node))
                stack[top].key = nil
            } else {
                stack[top].key = node
            }
        }
        func text(_ p: UnsafeMutablePointer<yaml_char_t>?, _ count: Int) -> String {
            guard let p else { return "" }
            return String(decoding: UnsafeBufferPointer(start: p, count: count), as: UTF8.self)
        }
        func text(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            guard let p else { return nil }
            return String(cString: p)
        }

        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else {
                let mark = parser.problem_mark
                let problem = parser.problem.map { String(cString: $0) } ?? "cannot parse"
                let context = parser.context.map { String(cString: $0) + ": " } ?? ""
                throw YAMLError(line: mark.line + 1, column: mark.column + 1, message: context + problem)
            }
            defer { yaml_event_delete(&event) }
            let line = event.start_mark.line + 1, column = event.start_mark.column + 1
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return root
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                guard documents == 1 else {
                    throw YAMLError(line: line, column: column, message: "one document expected, found another")
                }
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let node = YAMLNode(kind: .scalar(text(s.value, s.length)), line: line, column: column)
                if let anchor = text(s.anchor) { anchors[anchor] = node }
                place(node)
            case YAML_ALIAS_EVENT:
                let name = text(event.data.alias.anchor) ?? ""
                guard let node = anchors[name] else {
                    throw YAMLError(line: line, column: column, message: "unknown alias '\(name)'")
                }
                place(node)
            case YAML_SEQUENCE_START_EVENT:
                stack.append(Open(isMapping: false, anchor: text(event.data.sequence_start.anchor), line: line, column: column))
            case YAML_MAPPING_START_EVENT:
                stack.append(Open(isMapping: true, anchor: text(event.data.mapping_start.anchor), line: line, column: column))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let open = stack.popLast() else {
                    throw YAMLError(line: line, column: column, message: "unbalanced collection")
                }
                let node = YAMLNode(kind: open.isMapping ? .mapping(open.pairs) : .sequence(open.items),
                                    line: open.line, column: open.column)
                if let anchor = open.anchor { anchors[anchor] = node }
                place(node)
            default:
                break  // stream start, document end
            }
        }
    }
}
