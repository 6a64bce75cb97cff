import Foundation

/// Everything the app prints goes through here, one block at a time, so that a status line, a case
/// that changed and a command's answer never interleave.
actor Screen {
    private var lastStatus = ""

    /// Written straight to the file descriptor, unbuffered: a script reading the output sees each
    /// block at once. (Not `fflush(nil)`: it would wait for stdin's lock, held by the thread that
    /// waits in `readLine()`.)
    func show(_ lines: [String]) {
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    /// The status line, printed only when it says something new.
    func status(_ line: String) {
        guard line != lastStatus else { return }
        lastStatus = line
        show(["[sync] " + line])
    }
}
