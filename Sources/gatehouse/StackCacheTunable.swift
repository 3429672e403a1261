import Foundation

/// Every agent connection has its own thread; glibc keeps the stacks of finished threads (up to
/// 40 MiB) for reuse, so after a burst of connections the server held memory it no longer used
/// (bench/bastion/memory.sh: +12% over the idle baseline after three bursts of 500; +8% with the
/// cache off). The cache size is a glibc tunable read only at process start, so `serve`
/// re-executes itself once, before doing anything else, with the cache turned off. An operator
/// who sets `GLIBC_TUNABLES` keeps their own value.
enum StackCacheTunable {
    static let setting = "glibc.pthread.stack_cache_size=0"

    static func reexecIfNeeded() {
        #if os(Linux)
        let environment = ProcessInfo.processInfo.environment
        guard environment["GLIBC_TUNABLES"] == nil else { return }
        setenv("GLIBC_TUNABLES", setting, 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returned: run on as we are (the cache only costs memory).
        unsetenv("GLIBC_TUNABLES")
        #endif
    }
}
