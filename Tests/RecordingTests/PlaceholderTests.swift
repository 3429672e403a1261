import XCTest
@testable import Recording
final class RecordingPlaceholderTests: XCTestCase { func testModuleLinks() { XCTAssertNotNil(RecordingModule.self as Any.Type?) } }
