/// `POST /v1/wiped`: a lost device tells the server it wiped its replica (deletion receipts,
/// decision 0028). The only request a device reported lost may still make.
public struct WipeReceipt: Codable, Sendable, Equatable, CustomStringConvertible {
    /// The replica was encrypted and its key file was destroyed (its data unreadable), or nil if plain.
    public var keyDestroyed: Bool?
    /// Every file of the replica (database, log, attachments) was deleted.
    public var filesDeleted: Bool
    /// What failed, in words, if something did.
    public var problem: String?

    public init(keyDestroyed: Bool?, filesDeleted: Bool, problem: String? = nil) {
        self.keyDestroyed = keyDestroyed
        self.filesDeleted = filesDeleted
        self.problem = problem
    }

    public var description: String {
        var parts = [filesDeleted ? "files deleted" : "files not all deleted"]
        if let keyDestroyed { parts.append(keyDestroyed ? "key destroyed" : "key NOT destroyed") }
        if let problem { parts.append(problem) }
        return parts.joined(separator: "; ")
    }
}
