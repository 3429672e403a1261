#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free function so types with their own `close()` method can reach the system call.
func systemClose(_ fd: Int32) -> Int32 { close(fd) }

/// CLOCK_MONOTONIC in nanoseconds: record times never jump when the wall clock is stepped.
public enum MonotonicClock {
    @Sendable public static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

/// CLOCK_REALTIME in microseconds since the Unix epoch, for the header's start time.
public enum WallClock {
    @Sendable public static func microseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1_000
    }
}
