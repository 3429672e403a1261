import XCTest
@testable import SSHCertificates

final class SSHCertificatesPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
