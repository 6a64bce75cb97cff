// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Keukentafel",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "KeukentafelProtocol", targets: ["KeukentafelProtocol"]),
        .library(name: "KeukentafelClient", targets: ["KeukentafelClient"]),
        .library(name: "KeukentafelServer", targets: ["KeukentafelServer"]),
        // For an app's tests: an in-process server, replicas, and a network that fails on purpose.
        .library(name: "KeukentafelTesting", targets: ["KeukentafelTesting"]),
        .executable(name: "ktd", targets: ["ktd"]),
        .executable(name: "kt", targets: ["kt"]),
        .executable(name: "kt-bench", targets: ["kt-bench"]),
        .executable(name: "kt-torture", targets: ["kt-torture"]),
        .executable(name: "kt-soak", targets: ["kt-soak"]),
        .executable(name: "kt-field", targets: ["kt-field"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // Already built for Hummingbird: its HTTP part types, for a channel handler of our own.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // System libraries, reached through pkg-config.
        .systemLibrary(
            name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),

        // The protocol and merge rules: pure, no I/O. The only module client and server share
        // (besides the SQLite wrapper, which is infrastructure; see docs/decisions/0002).
        .target(name: "KeukentafelProtocol", swiftSettings: strict),
        // The VFS that encrypts a replica's pages (the cipher itself is Swift, in KeukentafelSQLite/Cipher).
        .target(name: "CKeukentafelCipher", dependencies: ["CSQLite"]),
        .target(
            name: "KeukentafelSQLite",
            dependencies: ["CSQLite", "CKeukentafelCipher", "KeukentafelProtocol", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .target(name: "KeukentafelCompression", dependencies: ["CZlib"], swiftSettings: strict),
        .target(name: "KeukentafelTerminal", dependencies: ["KeukentafelProtocol"], swiftSettings: strict),

        .target(
            name: "KeukentafelClient",
            dependencies: ["KeukentafelProtocol", "KeukentafelSQLite", "KeukentafelCompression", "CCurl",
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "_CryptoExtras", package: "swift-crypto")],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "KeukentafelServer",
            dependencies: [
                "KeukentafelProtocol", "KeukentafelSQLite", "KeukentafelCompression",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md", "HTTP/README.md", "Store/README.md", "Admin/README.md", "Demo/README.md", "Model/README.md"],
            swiftSettings: strict),

        .target(
            name: "KeukentafelTesting",
            dependencies: [
                "KeukentafelClient", "KeukentafelServer", "KeukentafelProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        .executableTarget(
            name: "ktd",
            dependencies: [
                "KeukentafelServer", "KeukentafelProtocol", "KeukentafelTerminal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "kt",
            dependencies: [
                "KeukentafelClient", "KeukentafelProtocol", "KeukentafelTerminal", "KeukentafelSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "kt-bench",
            dependencies: [
                "KeukentafelClient", "KeukentafelServer", "KeukentafelProtocol", "KeukentafelSQLite", "KeukentafelProcesses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .target(name: "KeukentafelProcesses", swiftSettings: strict),
        .executableTarget(
            name: "kt-soak",
            dependencies: [
                "KeukentafelClient", "KeukentafelServer", "KeukentafelProtocol", "KeukentafelSQLite", "KeukentafelProcesses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "kt-torture",
            dependencies: [
                "KeukentafelClient", "KeukentafelServer", "KeukentafelProtocol", "KeukentafelSQLite", "KeukentafelProcesses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // An example field app on the public client API only (Examples/FieldApp/README.md).
        .executableTarget(
            name: "kt-field",
            dependencies: [
                "KeukentafelClient", "KeukentafelProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/FieldApp",
            exclude: ["README.md"],
            swiftSettings: strict),

        .testTarget(
            name: "KeukentafelProtocolTests", dependencies: ["KeukentafelProtocol", "KeukentafelCompression"],
            swiftSettings: strict),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "KeukentafelClient", "KeukentafelServer", "KeukentafelProtocol", "KeukentafelSQLite", "KeukentafelTerminal",
                "KeukentafelProcesses", "KeukentafelTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
