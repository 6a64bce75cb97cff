import Foundation

extension Terminal {
    /// Asks for a secret on the controlling terminal with echo off; nil when there is no terminal.
    public static func readSecret(prompt: String) -> String? {
        let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard tty >= 0 else { return nil }
        defer { close(tty) }
        var saved = termios()
        let canHideEcho = tcgetattr(tty, &saved) == 0
        if canHideEcho {
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(tty, TCSAFLUSH, &silent)
        }
        defer {
            if canHideEcho { tcsetattr(tty, TCSAFLUSH, &saved) }
            _ = "\n".withCString { write(tty, $0, 1) }
        }
        _ = prompt.withCString { write(tty, $0, strlen($0)) }
        return readLine(from: tty)
    }

    /// One line from a file descriptor, without its line break; nil at once-empty end of input.
    public static func readLine(from fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
