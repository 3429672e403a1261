import ArgumentParser
import Foundation
import Recording

extension ExportFormat: ExpressibleByArgument {}
extension RecordStream: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a recording: raw bytes, ttyrec, asciicast v2/v3, or grep-able text.")
    @OptionGroup var store: RecordingsOptions
    @OptionGroup var trust: RecordingTrustOptions
    @Argument(help: "Recording id (<session>-ch<n>) or session id.") var id: String
    @Option(help: "raw, ttyrec, asciicast-v2, asciicast-v3 or text.") var format: ExportFormat
    @Option(help: "For raw: stdout, stderr or stdin.") var stream: RecordStream = .stdout
    @Option(name: .shortAndLong, help: "Write here instead of standard output.") var output: String?
    @Option(help: "Only what was recorded up to this time (seconds, or m:ss): with --format text, the lines on the player's screen at `replay --at` that time.")
    var at: String?
    @OptionGroup var masking: UnmaskedOption

    func run() throws {
        let path = try store.resolve(id)
        try trust.checkHeader(of: path, defaultState: store.configState)
        let view = try masking.view(of: path, command: "export --format \(format.rawValue)", state: trust.state ?? store.configState, config: store.config)
        let until = try at.map(ReplayCommand.parseOffset)
        let handle: FileHandle
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil, attributes: [.posixPermissions: 0o600]),
                  let file = FileHandle(forWritingAtPath: output) else { throw CLIError("cannot create \(output)") }
            handle = file
        } else {
            handle = FileHandle.standardOutput
        }
        let report: ExportReport
        do { report = try RecordingExporter.export(path: path, format: format, stream: stream, until: until, view: view) { try handle.write(contentsOf: $0) } } catch {
            throw CLIError("\(error)")
        }
        try? handle.synchronize()
        FileHandle.standardError.write(Data("exported \(report.note)\n".utf8))
    }
}
