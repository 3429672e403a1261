import Foundation

/// HTTP over a plain socket, for requests no HTTP client would send (a 1 MiB header). The
/// receive timeout is a safety net so a broken server fails the test instead of hanging it;
/// no assertion depends on timing.
enum RawHTTP {
    struct Reply { let status: Int?; let closed: Bool; let text: String }

    static func exchange(port: Int, request: String) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        // The server may answer and close before the whole request is written: a failed write
        // (EPIPE/ECONNRESET) is expected and the reply is read regardless.
        let bytes = Array(request.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            offset += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var closed = false
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { received += buffer[0..<n]; if received.count > 1 << 20 { break }; continue }
            if n == 0 || errno == ECONNRESET { closed = true }
            break
        }
        let text = String(decoding: received, as: UTF8.self)
        var status: Int?
        if text.hasPrefix("HTTP/1.1 "), let code = Int(text.dropFirst(9).prefix(3)) { status = code }
        return Reply(status: status, closed: closed, text: text)
    }
}
