import ArgumentParser

@main
struct Gatehouse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "An SSH bastion for AI agents: certificates, least privilege, recorded sessions.")
}
