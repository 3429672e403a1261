import CLibSSH

/// libssh's C callbacks. They capture nothing (C function pointers cannot); each recovers its
/// FrontConnection from `userdata`, which the connection keeps alive for as long as libssh
/// holds the pointer (the callback structs are owned by the connection too).
enum FrontCallbacks {
    static func connection(_ userdata: UnsafeMutableRawPointer?) -> FrontConnection {
        Unmanaged<FrontConnection>.fromOpaque(userdata!).takeUnretainedValue()
    }

    static func server(for owner: FrontConnection) -> UnsafeMutablePointer<ssh_server_callbacks_struct> {
        let callbacks = UnsafeMutablePointer<ssh_server_callbacks_struct>.allocate(capacity: 1)
        callbacks.initialize(to: ssh_server_callbacks_struct())
        callbacks.pointee.size = MemoryLayout<ssh_server_callbacks_struct>.size
        callbacks.pointee.userdata = Unmanaged.passUnretained(owner).toOpaque()
        callbacks.pointee.auth_pubkey_function = { _, user, key, state, userdata in
            FrontCallbacks.connection(userdata).authenticate(user: user.map { String(cString: $0) } ?? "", key: key, state: state)
        }
        callbacks.pointee.channel_open_request_session_function = { _, userdata in
            FrontCallbacks.connection(userdata).openSessionChannel()
        }
        return callbacks
    }

    /// A zeroed channel callback struct (libssh's `ssh_callbacks_init`, which Swift cannot import).
    static func channelCallbacks(for owner: FrontConnection) -> UnsafeMutablePointer<ssh_channel_callbacks_struct> {
        let callbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
        callbacks.initialize(to: ssh_channel_callbacks_struct())
        callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        callbacks.pointee.userdata = Unmanaged.passUnretained(owner).toOpaque()
        return callbacks
    }

    static func frontChannel(for owner: FrontConnection) -> UnsafeMutablePointer<ssh_channel_callbacks_struct> {
        let callbacks = channelCallbacks(for: owner)
        callbacks.pointee.channel_pty_request_function = { _, _, term, width, height, pxw, pxh, userdata in
            FrontCallbacks.connection(userdata).ptyRequest(PTYRequest(term: term.map { String(cString: $0) } ?? "", columns: width, rows: height, pixelWidth: pxw, pixelHeight: pxh))
        }
        callbacks.pointee.channel_shell_request_function = { _, _, userdata in
            FrontCallbacks.connection(userdata).startRequest(.shell)
        }
        callbacks.pointee.channel_exec_request_function = { _, _, command, userdata in
            // Raw bytes, not String(cString:), which would repair invalid UTF-8 before policy sees it.
            let bytes = command.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0)).bindMemory(to: UInt8.self)) } ?? []
            return FrontCallbacks.connection(userdata).execRequest(bytes)
        }
        callbacks.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            FrontCallbacks.connection(userdata).startRequest(.subsystem(name.map { String(cString: $0) } ?? ""))
        }
        callbacks.pointee.channel_env_request_function = { _, _, name, value, userdata in
            FrontCallbacks.connection(userdata).envRequest(name: name.map { String(cString: $0) } ?? "", value: value.map { String(cString: $0) } ?? "")
        }
        callbacks.pointee.channel_pty_window_change_function = { _, _, width, height, pxw, pxh, userdata in
            FrontCallbacks.connection(userdata).windowChange(columns: width, rows: height, pixelWidth: pxw, pixelHeight: pxh)
        }
        callbacks.pointee.channel_signal_function = { _, _, signal, userdata in
            FrontCallbacks.connection(userdata).signalRequest(signal.map { String(cString: $0) } ?? "")
        }
        // libssh consumes auth-agent-req without replying (OpenSSH sends it with want_reply 0):
        // the decision is audited and, if granted, passed to the target with the session.
        callbacks.pointee.channel_auth_agent_req_function = { _, _, userdata in
            FrontCallbacks.connection(userdata).agentForwardingRequest()
        }
        return callbacks
    }

    static func targetChannel(for owner: FrontConnection) -> UnsafeMutablePointer<ssh_channel_callbacks_struct> {
        let callbacks = channelCallbacks(for: owner)
        callbacks.pointee.channel_exit_status_function = { _, _, status, userdata in
            FrontCallbacks.connection(userdata).targetExited(status: status)
        }
        callbacks.pointee.channel_exit_signal_function = { _, _, signal, core, message, language, userdata in
            FrontCallbacks.connection(userdata).targetKilled(signal: signal.map { String(cString: $0) } ?? "", core: core != 0,
                                              message: message.map { String(cString: $0) } ?? "", language: language.map { String(cString: $0) } ?? "")
        }
        return callbacks
    }

    /// Everything libssh has no callback for arrives here: other authentication methods,
    /// forwarding channels and global requests, X11 requests. Each is decided and answered by
    /// the connection (returning 0: libssh must not send a second, default reply).
    static let unhandledMessage: @convention(c) (ssh_session?, ssh_message?, UnsafeMutableRawPointer?) -> Int32 = { _, message, userdata in
        guard let message else { return 1 }
        FrontCallbacks.connection(userdata).handleAgentMessage(message)
        return 0
    }
}
