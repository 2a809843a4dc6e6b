import Crypto
import Foundation
import GantryAPI
import Testing

/// openapi.yaml is the API's source: the generated types and client (GantryAPI) and the
/// document the dispatcher serves must come from the file as it is now.
@Suite struct OpenAPIDocumentTests {
    static let specification = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("openapi.yaml")

    @Test func theGeneratedCodeComesFromOpenAPIYAMLAsItIsNow() throws {
        let data = try Data(contentsOf: Self.specification)
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        #expect(
            digest == OpenAPIDocument.sha256,
            "openapi.yaml changed since Sources/GantryAPI/Generated was made: run scripts/generate-api.sh"
        )
    }

    @Test func theServedDocumentIsTheFile() throws {
        let text = try String(contentsOf: Self.specification, encoding: .utf8)
        #expect(OpenAPIDocument.yaml + "\n" == text)
    }

    @Test func everyOperationHasAnIdentifierTheClientIsNamedBy() throws {
        let text = try String(contentsOf: Self.specification, encoding: .utf8)
        let methods = text.split(separator: "\n").filter { line in
            ["    get:", "    post:", "    put:", "    delete:", "    patch:"].contains(String(line))
        }
        let identifiers = text.split(separator: "\n").filter { $0.hasPrefix("      operationId: ") }
        #expect(methods.count == identifiers.count)
        #expect(methods.count >= 14)
    }
}
