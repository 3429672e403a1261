import AsyncHTTPClient
import Foundation
import NIOCore
import ObjectStorage
import ProcessSupport

// Adapted from Tests/ObjectStorageTests/MotoServer.swift (test targets cannot import each other):
// the same start, readiness check and stop by pid; a fixed port may be given so a test can stop
// the store and start it again at the same address ("the object store comes back"), and the
// IAM policy may be chosen (a test denies reads to see an upload whose HEAD fails).

/// moto's server mode (PyPI `moto[server]`), a stand-in for S3 on loopback: the client under
/// test speaks plain S3 and nothing moto-specific. Only the setup below uses moto's own API.
///
/// moto does not check the payload against `x-amz-content-sha256`, `Content-MD5` or
/// `x-amz-checksum-sha256`: it stores the checksum header as given. What it computes itself
/// from the bytes received is the ETag (MD5, or MD5 of part MD5s "-N"), so the tests here
/// also GET the object back and compare its SHA-256 with the file's.
final class MotoServer {
    let port: Int
    let pid: pid_t
    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Starts `python3 -m moto.server` on 127.0.0.1 and waits (up to 30 s) until it answers.
    init(port fixedPort: Int? = nil) async throws {
        guard let python = Self.findOnPath("python3") else { throw MotoError("python3 not found on PATH") }
        let check = try runBinary(python, ["-c", "import moto.server"])
        guard check.status == 0 else {
            throw MotoError("moto is not installed (make deps installs it: pip install 'moto[server]'): \(check.err)")
        }
        port = try fixedPort ?? freePort()
        pid = try spawnDaemon(python, ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)])
        do { try await waitUntilAnswering(deadline: Date().addingTimeInterval(30)) } catch { stop(); throw error }
    }

    private func waitUntilAnswering(deadline: Date) async throws {
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { throw MotoError("moto exited during start (status \(status))") }
            if let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "\(endpoint)/moto-api/data.json"), timeout: .seconds(2)) {
                _ = try? await response.body.collect(upTo: 1 << 20)
                if response.status == .ok { return }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw MotoError("moto did not answer on \(endpoint) within 30 s")
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s; always reaped.
    func stop() {
        kill(pid, SIGTERM)
        let until = Date().addingTimeInterval(5)
        var status: Int32 = 0
        while Date() < until {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }

    /// Creates an IAM user with an access key under `policy` (default: `s3:*` allowed), then
    /// turns signature checking and authorisation on.
    /// The IAM calls go before authentication is on, so their own signature is not checked.
    func enableAuthentication(policy: String = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#) async throws -> SigV4Credentials {
        let setup = SigV4Signer(credentials: SigV4Credentials(accessKeyID: "AKIASETUP", secretAccessKey: "setup"),
                                region: "us-east-1", service: "iam", pathEncoding: .normalizedDoubleEncoded, addsContentSHA256Header: false)
        _ = try await iam(setup, ["Action": "CreateUser", "UserName": "gatehouse"])
        let key = try await iam(setup, ["Action": "CreateAccessKey", "UserName": "gatehouse"])
        guard let accessKey = key.child("CreateAccessKeyResult")?.child("AccessKey"),
              let id = accessKey.value("AccessKeyId"), let secret = accessKey.value("SecretAccessKey") else {
            throw MotoError("CreateAccessKey answered without a key")
        }
        _ = try await iam(setup, ["Action": "PutUserPolicy", "UserName": "gatehouse", "PolicyName": "s3", "PolicyDocument": policy])

        var request = HTTPClientRequest(url: "\(endpoint)/moto-api/reset-auth")
        request.method = .POST
        // Not form-encoded: moto reads the raw body as the number of unauthenticated requests left.
        request.headers.add(name: "Content-Type", value: "text/plain")
        request.body = .bytes(ByteBuffer(string: "0"))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        guard response.status == .ok else { throw MotoError("reset-auth: \(response.status) \(String(buffer: body))") }
        return SigV4Credentials(accessKeyID: id, secretAccessKey: secret)
    }

    private func iam(_ signer: SigV4Signer, _ parameters: [String: String]) async throws -> XMLTree {
        let form = SigV4Encoding.canonicalQuery((parameters.merging(["Version": "2010-05-08"]) { a, _ in a }).map { ($0.key, $0.value) })
        let body = Data(form.utf8)
        let headers = [("Host", "127.0.0.1:\(port)"), ("Content-Type", "application/x-www-form-urlencoded")]
        let signature = signer.sign(SigV4Request(method: "POST", path: "/", headers: headers, payload: .sha256Hex(PartDigest(body).sha256Hex)), at: Date())
        var request = HTTPClientRequest(url: "\(endpoint)/")
        request.method = .POST
        for (name, value) in headers + signature.headersToAdd { request.headers.add(name: name, value: value) }
        request.body = .bytes(body)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let answer = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        guard response.status == .ok, let tree = XMLTree.parse(answer) else {
            throw MotoError("IAM \(parameters["Action"]!): \(response.status) \(String(decoding: answer, as: UTF8.self))")
        }
        return tree
    }

    static func findOnPath(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

struct MotoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
