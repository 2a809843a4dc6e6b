import Foundation

/// A plain TCP connection to a loopback port that sends nothing: what a slow or idle client
/// looks like to a server.
package final class LoopbackSocket: @unchecked Sendable {
    // Safe: the descriptor is only read after init and closed once in deinit.
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    package static func connect(port: Int) throws -> LoopbackSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw Failure("connect 127.0.0.1:\(port): errno \(errno)")
        }
        return LoopbackSocket(descriptor: fd)
    }

    /// Whether the server has closed the connection (a read would see the end).
    package func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        let read = recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return read == 0 || (read < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    deinit { close(descriptor) }
}
