import CLibSSH
import Foundation
import Refusals

/// libssh's C callbacks. They capture nothing (C function pointers cannot): server callbacks
/// recover their `FrontConnection` from `userdata`, channel callbacks their `SessionChannel`.
/// Each object outlives the pointers libssh holds to it: a channel's callbacks are removed
/// before the channel is freed.
enum FrontCallbacks {
    static func connection(_ userdata: UnsafeMutableRawPointer?) -> FrontConnection {
        Unmanaged<FrontConnection>.fromOpaque(userdata!).takeUnretainedValue()
    }

    static func channel(_ userdata: UnsafeMutableRawPointer?) -> SessionChannel {
        Unmanaged<SessionChannel>.fromOpaque(userdata!).takeUnretainedValue()
    }

    /// The server callback struct, owned by the connection for the session's life.
    final class ServerStorage {
        let server: UnsafeMutablePointer<ssh_server_callbacks_struct>
        init(_ server: UnsafeMutablePointer<ssh_server_callbacks_struct>) { self.server = server }
        deinit { server.deallocate() }
    }

    static func server(for owner: FrontConnection) -> ServerStorage {
        let callbacks = UnsafeMutablePointer<ssh_server_callbacks_struct>.allocate(capacity: 1)
        callbacks.initialize(to: ssh_server_callbacks_struct())
        callbacks.pointee.size = MemoryLayout<ssh_server_callbacks_struct>.size
        callbacks.pointee.userdata = Unmanaged.passUnretained(owner).toOpaque()
        callbacks.pointee.auth_pubkey_function = { _, user, key, state, userdata in
            FrontCallbacks.connection(userdata).authenticate(user: user.map { String(cString: $0) } ?? "", key: key, state: state)
        }
        callbacks.pointee.channel_open_request_session_function = { _, userdata in
            let front = FrontCallbacks.connection(userdata)
            guard let connection = front.authenticated else {
                front.audit("session.open", "session channel", refused: Refusal(code: "not-authenticated", rule: "connection-phase", reason: "not authenticated"),
                            ["phase": front.phase.name])
                return nil
            }
            return connection.openSessionChannel()
        }
        return ServerStorage(callbacks)
    }

    /// A zeroed channel callback struct (libssh's `ssh_callbacks_init`, which Swift cannot import).
    private static func channelCallbacks() -> UnsafeMutablePointer<ssh_channel_callbacks_struct> {
        let callbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
        callbacks.initialize(to: ssh_channel_callbacks_struct())
        callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        return callbacks
    }

    /// The agent's session channel: every request goes to `SessionChannel.handle`.
    static func sessionChannel() -> UnsafeMutablePointer<ssh_channel_callbacks_struct> {
        let callbacks = channelCallbacks()
        callbacks.pointee.channel_pty_request_function = { _, _, term, width, height, pxw, pxh, userdata in
            FrontCallbacks.channel(userdata).handle(.pty(PTYRequest(term: term.map { String(cString: $0) } ?? "", columns: width, rows: height,
                                                                     pixelWidth: pxw, pixelHeight: pxh))).libssh
        }
        callbacks.pointee.channel_shell_request_function = { _, _, userdata in
            FrontCallbacks.channel(userdata).handle(.shell).libssh
        }
        callbacks.pointee.channel_exec_request_function = { _, _, command, userdata in
            // Raw bytes, not String(cString:), which would repair invalid UTF-8 before policy sees it.
            let bytes = command.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0)).bindMemory(to: UInt8.self)) } ?? []
            return FrontCallbacks.channel(userdata).handle(.exec(bytes)).libssh
        }
        callbacks.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            FrontCallbacks.channel(userdata).handle(.subsystem(name.map { String(cString: $0) } ?? "")).libssh
        }
        callbacks.pointee.channel_env_request_function = { _, _, name, value, userdata in
            FrontCallbacks.channel(userdata).handle(.env(name: name.map { String(cString: $0) } ?? "", value: value.map { String(cString: $0) } ?? "")).libssh
        }
        callbacks.pointee.channel_pty_window_change_function = { _, _, width, height, _, _, userdata in
            FrontCallbacks.channel(userdata).handle(.windowChange(columns: width, rows: height)).libssh
        }
        callbacks.pointee.channel_signal_function = { _, _, signal, userdata in
            _ = FrontCallbacks.channel(userdata).handle(.signal(signal.map { String(cString: $0) } ?? ""))
        }
        return callbacks
    }

    /// libssh replies success to auth-agent-req whenever this callback exists, so it is set only
    /// while the channel could grant it.
    static func acceptAgentRequests(_ callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>) {
        callbacks.pointee.channel_auth_agent_req_function = { _, _, userdata in
            FrontCallbacks.channel(userdata).agentForwardingRequested()
        }
    }

    static func refuseAgentRequests(_ callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>) {
        callbacks.pointee.channel_auth_agent_req_function = nil
    }

    /// The session's twin on the target: its exit status or signal.
    static func targetChannel() -> UnsafeMutablePointer<ssh_channel_callbacks_struct> {
        let callbacks = channelCallbacks()
        callbacks.pointee.channel_exit_status_function = { _, _, status, userdata in
            FrontCallbacks.channel(userdata).targetExited(status: status)
        }
        callbacks.pointee.channel_exit_signal_function = { _, _, signal, core, message, language, userdata in
            FrontCallbacks.channel(userdata).targetKilled(signal: signal.map { String(cString: $0) } ?? "", core: core != 0,
                                                          message: message.map { String(cString: $0) } ?? "", language: language.map { String(cString: $0) } ?? "")
        }
        return callbacks
    }

    /// Everything libssh has no callback for arrives here: other authentication methods,
    /// forwarding channels and global requests, X11 and unknown channel requests. Each is decided
    /// and answered by the connection (returning 0: libssh must not send a second reply).
    static let unhandledMessage: @convention(c) (ssh_session?, ssh_message?, UnsafeMutableRawPointer?) -> Int32 = { _, message, userdata in
        guard let message else { return 1 }
        FrontCallbacks.connection(userdata).handle(message)
        return 0
    }

    // MARK: libssh's log, for the one request it answers without asking us

    /// libssh reports an auth-agent-req in its protocol log before answering it; on channels
    /// without the callback it answers failure and tells us nothing else. The log level and
    /// callback are per thread in libssh 0.10, and each connection has its own thread.
    static func watchLibSSHLog(for owner: FrontConnection) {
        ssh_set_log_userdata(Unmanaged.passUnretained(owner).toOpaque())
        ssh_set_log_callback { _, _, text, userdata in
            guard let text, let userdata, strstr(text, "Received an auth-agent-req request") != nil else { return }
            FrontCallbacks.connection(userdata).unclaimedAgentRequests += 1
        }
        ssh_set_log_level(Int32(SSH_LOG_PROTOCOL))
    }

    static func stopWatchingLibSSHLog() {
        ssh_set_log_level(Int32(SSH_LOG_NOLOG))
        ssh_set_log_callback(nil)
        ssh_set_log_userdata(nil)
    }
}
