import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// An element of a small XML document (S3's answers are a few kilobytes): its name, its text
/// and its children, read with Foundation's XMLParser so entities, CDATA and namespaces are
/// handled by a real parser rather than by string slicing.
public struct XMLTree: Sendable, Equatable {
    public let name: String
    public let text: String
    public let children: [XMLTree]

    /// The first child named `name` (S3 element names carry no prefix; namespaces are ignored).
    public func child(_ name: String) -> XMLTree? { children.first { $0.name == name } }
    public func children(_ name: String) -> [XMLTree] { children.filter { $0.name == name } }
    /// The text of the first child named `name`.
    public func value(_ name: String) -> String? { child(name)?.text }

    /// Parses `data`; nil when it is not well-formed XML.
    public static func parse(_ data: Data) -> XMLTree? {
        let builder = Builder()
        let parser = XMLParser(data: data)
        parser.delegate = builder
        parser.shouldProcessNamespaces = true
        parser.shouldResolveExternalEntities = false
        guard parser.parse(), let root = builder.root else { return nil }
        return root
    }

    private final class Builder: NSObject, XMLParserDelegate {
        private var stack: [(name: String, text: String, children: [XMLTree])] = []
        var root: XMLTree?

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            stack.append((elementName, "", []))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += string
        }

        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += String(decoding: CDATABlock, as: UTF8.self)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
                    qualifiedName: String?) {
            guard let open = stack.popLast() else { return }
            // Text of an element with children is the whitespace between them: dropped.
            let element = XMLTree(name: open.name, text: open.children.isEmpty ? open.text : "", children: open.children)
            if stack.isEmpty { root = element } else { stack[stack.count - 1].children.append(element) }
        }
    }
}
