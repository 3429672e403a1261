import Foundation

/// `serve` ignores SIGHUP, SIGTERM and SIGINT and takes them through dispatch signal sources. On
/// Linux libdispatch installs a source's handler on its own thread some time after `resume()`;
/// until then the signal is still ignored, and an ignored signal is discarded when it is sent. A
/// supervisor that sends SIGTERM the moment "listening" is printed then stopped nothing (a
/// restarted `serve` once ran on past a 30 s stop timeout). So `serve` waits, bounded, until the
/// handlers are in place before it says it is listening.
enum SignalSources {
    static func awaitInstalled(_ signals: [Int32], within seconds: TimeInterval = 5) {
        let deadline = Date().addingTimeInterval(seconds)
        for signal in signals {
            while Date() < deadline, isIgnored(signal) { usleep(1000) }
        }
    }

    static func isIgnored(_ signal: Int32) -> Bool {
        var action = sigaction()
        guard sigaction(signal, nil, &action) == 0 else { return false }
        // SIG_IGN is the handler value 1.
        return unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self) == 1
    }
}
