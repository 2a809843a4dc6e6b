// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "gantry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gantry", targets: ["gantry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        // MARK: C bridges (only these import C)
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // posix_spawn with the GNU extensions, and the wait-status macros (glibc; nothing to link).
        .systemLibrary(name: "CSpawn"),

        // MARK: Runtime (threads for blocking C calls, the wall clock, retrying)
        .target(
            name: "GantryRuntime",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Child processes (posix_spawn through CSpawn), for the workers' commands
        .target(
            name: "GantryProcess",
            dependencies: ["CSpawn", "GantryRuntime"],
            swiftSettings: swiftSettings
        ),

        // MARK: Pure domain
        .target(
            name: "GantryCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: I/O edges
        .target(
            name: "GantryRedis",
            dependencies: [
                "GantryRuntime",
                "CHiredis",
                "GantryCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GantryPostgres",
            dependencies: [
                "GantryRuntime",
                "CLibPQ",
                "GantryCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GantryHTTP",
            dependencies: [
                "GantryRuntime",
                "CCurl",
                "GantryCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GantryWorkers",
            dependencies: [
                "GantryRuntime",
                "GantryProcess",
                "GantryCore",
                "GantryHTTP",
                "GantryRedis",
                "GantryPostgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The API's types and client, generated from openapi.yaml (scripts/generate-api.sh).
        .target(
            name: "GantryAPI",
            dependencies: [
                "GantryCore",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            exclude: ["openapi-generator-config.yaml"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GantryDispatcher",
            dependencies: [
                "GantryAPI",
                "GantryRuntime",
                "GantryCore",
                "GantryRedis",
                "GantryPostgres",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "gantry",
            dependencies: [
                "GantryRuntime",
                "GantryProcess",
                "GantryCore",
                "GantryRedis",
                "GantryPostgres",
                "GantryWorkers",
                "GantryDispatcher",
                "GantryHTTP",
                "GantryAPI",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        // What the tests that use the real servers share: a namespace and schema of their own
        // (TestEnvironment), gantry processes, the API harness, a local HTTP server. Not a product.
        .target(
            name: "GantryTestSupport",
            dependencies: [
                "GantryCore",
                "GantryRuntime",
                "GantryRedis",
                "GantryPostgres",
                "GantryHTTP",
                "GantryWorkers",
                "GantryDispatcher",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/GantryTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryCoreTests",
            dependencies: ["GantryCore"],
            // Scanner reports written to the published schemas, read from disk by the tests.
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryHTTPTests",
            dependencies: [
                "GantryHTTP",
                "GantryTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            // AWS's SigV4 test suite (Apache 2.0, LICENSE and NOTICE inside), read from disk by the tests.
            exclude: ["aws-sig-v4-test-suite"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryAPITests",
            dependencies: ["GantryAPI", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryRuntimeTests",
            dependencies: ["GantryRuntime", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryRedisTests",
            dependencies: ["GantryCore", "GantryRedis", "GantryRuntime", "GantryTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryPostgresTests",
            dependencies: [
                "GantryCore",
                "GantryPostgres",
                "GantryRuntime",
                "GantryTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryDispatcherTests",
            dependencies: ["GantryCore", "GantryDispatcher", "GantryRedis", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryWorkersTests",
            dependencies: ["GantryCore", "GantryWorkers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GantryIntegrationTests",
            dependencies: [
                "GantryCore",
                "GantryRuntime",
                "GantryRedis",
                "GantryPostgres",
                "GantryWorkers",
                "GantryDispatcher",
                "GantryHTTP",
                "GantryTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // A fake kubectl (a script the tests put on a worker's PATH).
            exclude: ["Fakes"],
            swiftSettings: swiftSettings
        ),
    ]
)
