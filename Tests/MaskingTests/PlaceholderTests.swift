import XCTest
@testable import Masking

final class PlaceholderTests: XCTestCase {
    func testRecordEnd() { XCTAssertEqual(MaskRecord(offset: 3, length: 4, rule: "x").end, 7) }
}
