/// The terminal player's logic, without a terminal: it turns elapsed wall time and key commands
/// into writes, so speed, idle limit, pause, step, seek and markers are unit-testable. The CLI
/// owns the terminal (raw mode, reading keys, restoring it on exit) and feeds this.
public struct Player<Source: PlaybackSource> {
    public enum Command: Sendable, Equatable {
        case togglePause, step, seekForward, seekBackward, nextMarker, faster, slower, quit
    }

    public enum Output: Sendable, Equatable {
        case write([UInt8])
        /// Clear the screen before a seek's redraw.
        case clearScreen
        case resized(TerminalSize)
        case marker(String)
        case exited(ExitOutcome)
        case finished
    }

    public private(set) var source: Source
    public private(set) var speed: Double
    public let idleLimitMicros: UInt64?
    public let seekStepMicros: UInt64
    public private(set) var paused = false
    public private(set) var finished = false
    public private(set) var quit = false
    /// Recording time of the last event shown (or of the last seek).
    private var lastEventTime: UInt64 = 0
    /// Recording time waited since then, after the idle limit is applied.
    private var waited: UInt64 = 0
    private var upcoming: PlaybackEvent?

    public init(source: Source, speed: Double = 1, idleLimit: Double? = nil, seekStep: Double = 5) {
        self.source = source
        self.speed = max(1.0 / 64, min(64, speed))
        self.idleLimitMicros = idleLimit.map { UInt64(max(0, $0) * 1_000_000) }
        self.seekStepMicros = UInt64(max(0.001, seekStep) * 1_000_000)
    }

    /// Where playback is, in recording time.
    public var position: UInt64 {
        guard let upcoming else { return lastEventTime + waited }
        return min(upcoming.time, lastEventTime + waited)
    }

    /// Starts at `time` (`--at`): the screen as it is then.
    public mutating func start(at time: UInt64) throws -> [Output] { try seek(to: time) }

    /// Plays `wallMicros` of real time: every event now due, at `speed`, with pauses longer than
    /// the idle limit shortened to it.
    public mutating func advance(wallMicros: UInt64) throws -> [Output] {
        guard !paused, !finished, !quit else { return [] }
        var budget = UInt64(Double(wallMicros) * speed)
        var out: [Output] = []
        while true {
            guard let event = try peek() else {
                if !source.mayGrow { finished = true; out.append(.finished) }
                break
            }
            let due = effectiveGap(to: event)
            if waited + budget < due { waited += budget; break }
            budget -= due - waited
            out += emit(event)
        }
        return out
    }

    /// Real time until the next event is due (the I/O loop's wait), nil while paused or done.
    public mutating func wallMicrosUntilNextEvent() throws -> UInt64? {
        guard !paused, !finished, !quit else { return nil }
        guard let event = try peek() else { return source.mayGrow ? 100_000 : 0 }
        let due = effectiveGap(to: event)
        return UInt64(Double(due > waited ? due - waited : 0) / speed)
    }

    public mutating func handle(_ command: Command) throws -> [Output] {
        switch command {
        case .togglePause:
            paused.toggle()
            return []
        case .step:
            paused = true
            guard let event = try peek() else { return [] }
            return emit(event)
        case .seekForward:
            return try seek(to: min(source.durationMicros, position + seekStepMicros))
        case .seekBackward:
            let now = position
            return try seek(to: now > seekStepMicros ? now - seekStepMicros : 0)
        case .nextMarker:
            let now = position
            guard let marker = source.markers.first(where: { $0.time > now }) else { return [] }
            return try seek(to: marker.time) + [.marker(marker.label)]
        case .faster:
            speed = min(64, speed * 2)
            return []
        case .slower:
            speed = max(1.0 / 64, speed / 2)
            return []
        case .quit:
            quit = true
            return []
        }
    }

    private mutating func seek(to time: UInt64) throws -> [Output] {
        let redraw = try source.seek(to: time)
        lastEventTime = time
        waited = 0
        upcoming = nil
        finished = false
        return redraw.isEmpty ? [.clearScreen] : [.clearScreen, .write(redraw)]
    }

    private mutating func peek() throws -> PlaybackEvent? {
        if upcoming == nil { upcoming = try source.next() }
        return upcoming
    }

    private func effectiveGap(to event: PlaybackEvent) -> UInt64 {
        let gap = event.time > lastEventTime ? event.time - lastEventTime : 0
        return idleLimitMicros.map { min(gap, $0) } ?? gap
    }

    private mutating func emit(_ event: PlaybackEvent) -> [Output] {
        upcoming = nil
        lastEventTime = max(lastEventTime, event.time)
        waited = 0
        switch event {
        case .output(_, let bytes): return [.write(bytes)]
        case .resize(_, let size): return [.resized(size)]
        case .marker(_, let label): return [.marker(label)]
        case .exit(_, let outcome): return [.exited(outcome)]
        }
    }
}
