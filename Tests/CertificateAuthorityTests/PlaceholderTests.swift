import XCTest
@testable import CertificateAuthority

final class CertificateAuthorityPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
