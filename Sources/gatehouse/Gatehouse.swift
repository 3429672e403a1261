import ArgumentParser

@main
struct Gatehouse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "An SSH bastion for AI agents: certificates, least privilege, recorded sessions.",
        subcommands: [ServeCommand.self, CACommand.self, CertCommand.self, PolicyCommand.self, AuditCommand.self,
                      SessionsCommand.self, ReplayCommand.self, ExportCommand.self, VerifyCommand.self, LoginCommand.self, ApprovalsCommand.self,
                      MaskCommand.self, StoreCommand.self])
}

struct CertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "Issue and inspect OpenSSH certificates.", subcommands: [CertIssue.self, CertInspect.self, CertRevoke.self])
}
