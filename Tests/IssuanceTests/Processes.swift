import Foundation
@_exported import ProcessSupport

// The process helpers (posix_spawn, waitpid with deadlines) come from the shared ProcessSupport
// target, as in BastionTests.

/// The `gatehouse` executable SwiftPM built next to this test bundle.
var gatehouseBinary: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/gatehouse").path
}
