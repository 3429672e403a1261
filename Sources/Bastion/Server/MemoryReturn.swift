import CLibSSH
import CSystemCalls
import Synchronization

/// Gives memory back to the system after load. Every connection has its own thread, and glibc
/// gives busy threads their own malloc arenas; memory freed in an arena stays mapped in it, so
/// after a burst of 500 sessions the process kept ~70 MiB it no longer used (measured:
/// bench/bastion/memory.sh). Two remedies, both glibc's own: fewer arenas (threads share them,
/// so freed memory is reused instead of stranded), and `malloc_trim` once the connections are
/// gone, which returns the free pages of every arena.
enum MemoryReturn {
    /// Arenas for the whole process: enough that two cores rarely contend on one.
    static let arenas: Int32 = 4

    static func limitArenas() { _ = gatehouse_limit_malloc_arenas(arenas) }

    /// The most connections seen since the last trim.
    private static let peak = Mutex(0)

    /// Called about once a second: trims when the live connections fell to a quarter of the
    /// peak seen since the last trim (or to none), so a steady load never pays for it.
    static func trimIfIdle(connections: Int) {
        let trim = peak.withLock { peak -> Bool in
            peak = max(peak, connections)
            guard peak > 0, connections * 4 <= peak else { return false }
            peak = connections
            return true
        }
        if trim { _ = gatehouse_malloc_trim() }
    }
}
