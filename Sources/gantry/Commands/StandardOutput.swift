import Foundation

/// Standard output as CI and shell pipelines use it: written at once with write(2) (C's
/// stdout, which `print` uses, holds 4 KiB back when it is a pipe or a file, so a CI log
/// showed nothing until the command ended), and a reader that went away
/// (`gantry logs … | head -1`) ends the command quietly, with the status a shell expects of
/// SIGPIPE, instead of a crash. Streaming commands write their lines through it.
enum StandardOutput {
    /// 128 + SIGPIPE: what `sh` reports for a writer whose reader closed the pipe.
    static let brokenPipeStatus: Int32 = 128 + SIGPIPE

    static func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    static func write(_ bytes: UnsafeRawBufferPointer) {
        // What print() buffered goes first, so that the order holds.
        fflush(nil)
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(1, bytes.baseAddress! + offset, bytes.count - offset)
            if written >= 0 {
                offset += written
            } else if errno == EINTR {
                continue
            } else if errno == EPIPE {
                exit(brokenPipeStatus)
            } else {
                return
            }
        }
    }
}
