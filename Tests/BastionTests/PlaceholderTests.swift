import XCTest
@testable import Bastion
final class BastionPlaceholderTests: XCTestCase { func testModuleLinks() { XCTAssertNotNil(BastionModule.self as Any.Type?) } }
