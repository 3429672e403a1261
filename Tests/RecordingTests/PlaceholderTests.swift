import XCTest
@testable import Recording

final class RecordingPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
