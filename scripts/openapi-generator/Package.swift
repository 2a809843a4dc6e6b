// swift-tools-version:6.0
// Builds swift-openapi-generator for scripts/generate-api.sh; the server's own package does
// not depend on it (the generated files are committed, so a build needs no generator).
import PackageDescription

let package = Package(
    name: "gantry-openapi-generator",
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator", exact: "1.14.3"),
    ]
)
