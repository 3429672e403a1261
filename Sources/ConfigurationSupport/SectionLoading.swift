import Foundation
import Yams

/// One top-level section of the configuration file, for the component that owns it (the
/// bastion's parser leaves `issuance`, `store` and `recordings_store` to theirs).
public enum ConfigurationSection {
    /// The text of `file`, or a `ConfigurationError` saying why it cannot be read.
    public static func text(of file: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "is not UTF-8 text")
        }
        return text
    }

    /// The node of section `name` in `yaml` (nil when the document has none).
    public static func node(_ name: String, in yaml: String, file: String) throws -> Node? {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)")
        }
        return root?.mapping?.first(where: { $0.key.string == name })?.value
    }
}
