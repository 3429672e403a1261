import XCTest
@testable import Issuance

final class IssuancePlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
