import JSONWriting
import Policy
import SSHCertificates

/// A task's narrowing as certificate extensions, the one way both the issuance service and
/// `gatehouse cert issue` write it: `ssh-keygen -L` shows it, the bastion enforces it.
public enum TaskExtensions {
    public static func options(_ task: TaskNarrowing) -> [CertificateOption] {
        var options: [CertificateOption] = []
        if let targets = task.targets { options.append(CertificateOption(name: CertificateExtension.targets, value: targets.joined(separator: ","))) }
        if let commands = task.commands {
            options.append(CertificateOption(name: CertificateExtension.commands, value: jsonArray(commands.map(\.source))))
        }
        if let budget = task.maxSessions { options.append(CertificateOption(name: CertificateExtension.maxSessions, value: String(budget))) }
        return options
    }

    /// `["…","…"]`: the `commands@gatehouse` value and the audit record's `task_commands`.
    static func jsonArray(_ strings: [String]) -> String {
        var w = JSONWriter()
        w.beginArray()
        for string in strings { w.string(string) }
        w.endArray()
        return w.text
    }
}
