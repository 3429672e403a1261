import Foundation
import ProcessSupport
import XCTest

/// A `/metrics` page read the way Prometheus reads it: by Python `prometheus_client`'s text
/// parser (`text_string_to_metric_families`; `make deps` installs it), not by string matching.
/// A page the parser rejects fails the test with the parser's own error.
struct PrometheusText {
    struct Sample {
        let family: String
        let type: String
        let name: String
        let labels: [String: String]
        let value: Double
    }

    let samples: [Sample]

    static let parser = """
    import json, sys
    from prometheus_client.parser import text_string_to_metric_families
    out = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        for s in family.samples:
            out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
    print(json.dumps(out))
    """

    init(parsing text: String) throws {
        let result = try runBinary("/usr/bin/env", ["python3", "-c", Self.parser], stdin: Data(text.utf8))
        guard result.status == 0 else {
            throw ParseFailure(message: result.err, page: text)
        }
        let items = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [[String: Any]])
        samples = try items.map { item in
            Sample(family: try XCTUnwrap(item["family"] as? String), type: try XCTUnwrap(item["type"] as? String),
                   name: try XCTUnwrap(item["name"] as? String), labels: try XCTUnwrap(item["labels"] as? [String: String]),
                   value: try XCTUnwrap(item["value"] as? Double ?? (item["value"] as? Int).map(Double.init)))
        }
    }

    struct ParseFailure: Error, CustomStringConvertible {
        let message: String
        let page: String
        var description: String { "prometheus_client could not parse /metrics: \(message)\n\(page)" }
    }

    /// The value of the sample with exactly this name and these labels.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The type prometheus_client gave the family (`counter`, `gauge`, `histogram`, …).
    func type(ofFamily family: String) -> String? { samples.first { $0.family == family }?.type }

    /// Every sample of a family.
    func samples(of name: String) -> [Sample] { samples.filter { $0.name == name } }
}
