import ArgumentParser
import Foundation
import KeukentafelServer
import KeukentafelTerminal

/// Who runs `ktd admin`, for the audit trail: the login name behind sudo, else the account's name.
func adminActor() -> String {
    let environment = ProcessInfo.processInfo.environment
    let account = getpwuid(getuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
    return "ktd admin (" + (environment["SUDO_USER"] ?? environment["USER"] ?? account ?? "uid \(getuid())") + ")"
}

extension Role: ExpressibleByArgument {}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Add, list and disable users (people, with a role and scopes).",
        discussion: """
            Roles:
            \(Role.allCases.map { "  \($0.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \($0.summary)" }.joined(separator: "\n"))

            A new user sees nothing until they get a scope:
              ktd admin user add fatima --role consultant
              ktd admin scope add fatima team:castricum-noord
              ktd admin device add "laptop Fatima" --user fatima
            """,
        subcommands: [Add.self, List.self, Disable.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "A unique name, e.g. fatima or \"Anne de Boer\".") var name: String
        @Option(help: "consultant, back-office, partner, auditor or admin.") var role: Role
        @Option(help: "For partners: the partner profile of the data model (what they may see), e.g. mantelzorgcentrum.")
        var profile: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let user = try store.openStore().accounts.addUser(name: name, role: role, profile: profile, actor: adminActor())
            if json { return try Terminal.printJSON(user) }
            print("User '\(user.name)' added as \(user.role.rawValue)\(user.profile.map { " (profile \($0))" } ?? "").")
            print("Give them a scope next: ktd admin scope add \(Terminal.shellQuoted(user.name)) team:<code>")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with role and scopes.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let users = try store.openStore().accounts.users()
            if json { return try Terminal.printJSON(users) }
            Terminal.printTable(["NAME", "ROLE", "SCOPES", "DISABLED"], users.map {
                [$0.name, $0.role.rawValue + ($0.profile.map { " (\($0))" } ?? ""),
                 $0.scopes.isEmpty ? "(none)" : $0.scopes.joined(separator: " "), $0.disabledAt ?? "-"]
            })
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user: every device of theirs is refused from its next request.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "User name or id.") var user: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let disabled = try store.openStore().accounts.disableUser(user, actor: adminActor())
            if json { return try Terminal.printJSON(disabled) }
            print("User '\(disabled.name)' disabled at \(disabled.disabledAt ?? "?").")
        }
    }
}

struct ScopeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scope", abstract: "Give and take scopes (teams, municipalities) of users.",
        discussion: """
            A scope is the name of a scope column of the data model, a colon and a value:
            team:castricum-noord sees the cases of that team and everything hanging off them;
            municipality:heiloo sees that municipality's volunteers. * sees every scope (not
            confidential notes, which stay within the case's own team).

            After a change the user's devices start their feed over on their next sync: they receive
            the rows they gained and delete the rows they lost. Changes they wrote while they still
            had a scope are still accepted.
            """,
        subcommands: [Add.self, Remove.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a user a scope.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "User name or id.") var user: String
        @Argument(help: "Scope, e.g. team:castricum-noord, municipality:heiloo or *.") var scope: String
        @Flag(help: "Give a scope that no row is in yet (a team whose first case is still to come). Without it, such a scope is refused as a likely typo.")
        var new = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let accounts = try store.openStore().accounts
            try accounts.checkScopeKey(scope)
            let use = try accounts.scopesInUse(like: scope)
            if !use.inUse, !new {
                let known = use.ofItsKind.isEmpty ? "no row is in any scope of that kind yet"
                    : "scopes of that kind in use: " + use.ofItsKind.joined(separator: ", ")
                throw AdminError.notFound("no row is in scope '\(scope)' (a typo?); \(known). To give it before its first row exists, "
                    + "add --new.")
            }
            let updated = try accounts.addScope(scope, to: user, actor: adminActor())
            if json { return try Terminal.printJSON(updated) }
            print("\(updated.name) now has: \(updated.scopes.joined(separator: " ")).")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a scope from a user.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "User name or id.") var user: String
        @Argument(help: "Scope to take away.") var scope: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let updated = try store.openStore().accounts.removeScope(scope, from: user, actor: adminActor())
            if json { return try Terminal.printJSON(updated) }
            print("\(updated.name) now has: \(updated.scopes.isEmpty ? "(no scopes)" : updated.scopes.joined(separator: " ")).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the scopes of a user, or of everyone.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "User name or id (default: everyone).") var user: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let serverStore = try store.openStore()
            let users = try user.map { [try serverStore.accounts.user($0)] } ?? serverStore.accounts.users()
            let rows = users.flatMap { user in user.scopes.map { [user.name, $0] } }
            if json { return try Terminal.printJSON(rows.map { ["user": $0[0], "scope": $0[1]] }) }
            Terminal.printTable(["USER", "SCOPE"], rows)
        }
    }
}

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Register, list, revoke and report lost devices, and release a device's replica.",
        subcommands: [Add.self, List.self, Revoke.self, Lost.self, Release.self, Unconfirmed.self])

    struct Unconfirmed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Devices that were told to delete rows (evicted, erased) and have not confirmed it.",
            discussion: """
                A device confirms by syncing: the cursor it comes back with shows it applied the deletions. A device \
                that stays away for long may be lost; report it (`ktd admin device lost`) so it wipes itself.
                  ktd admin device unconfirmed --days 14
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "Only deletions told at least this many days ago.") var days = 0
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard days >= 0 else { throw ValidationError("--days is 0 or more") }
            let pending = try store.openStore().deletionReceipts.unconfirmed(olderThanDays: days)
            if json { return try Terminal.printJSON(pending) }
            Terminal.printTable(["DEVICE", "USER", "KIND", "ROWS", "TOLD SINCE", "LAST SEEN"], pending.map {
                [$0.device, $0.user, $0.kind, String($0.rows), $0.since, $0.lastSeen ?? "never"]
            }, empty: days == 0 ? "(every device confirmed every deletion it was told of)" : "(none unconfirmed for \(days) days or more)")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a device of a user and print its token once.",
            discussion: "The token is stored only as a hash: copy it now into `kt init --token`.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "A name people recognise, e.g. \"laptop Fatima\".") var name: String
        @Option(help: "The user the device belongs to (see `ktd admin user list`).") var user: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (device, token) = try store.openStore().accounts.addDevice(name: name, user: user, actor: adminActor())
            if json {
                try Terminal.printJSON(["id": device.id, "name": device.name, "user": device.user, "token": token])
            } else {
                print("Device '\(device.name)' of \(device.user) registered (id \(device.id)).")
                print("Token (shown only now):\n  \(token)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered devices.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let devices = try store.openStore().accounts.devices()
            if json { return try Terminal.printJSON(devices) }
            Terminal.printTable(["ID", "NAME", "USER", "CREATED", "REPLICA", "STATE"], devices.map {
                [$0.id, $0.name, $0.user, $0.createdAt, $0.node ?? "-",
                 $0.wipedAt.map { "lost, wiped \($0)" } ?? $0.lostAt.map { "lost \($0), not yet wiped" }
                    ?? $0.revokedAt.map { "revoked \($0)" } ?? "active"]
            })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device: its next request is refused (token_revoked); its replica stays as it is.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Device id or name.") var device: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let revoked = try store.openStore().accounts.revokeDevice(device, actor: adminActor())
            if json { return try Terminal.printJSON(revoked) }
            print("Device '\(revoked.name)' revoked at \(revoked.revokedAt ?? "?").")
        }
    }

    struct Lost: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report a device lost: it is refused at once, and deletes its replica on its next contact (remote wipe).",
            discussion: """
                The replica is deleted with everything on it, changes it never sent included. To stop a device \
                syncing without wiping it, use `ktd admin device revoke`.

                  ktd admin device lost "laptop Fatima" --yes
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "Device id or name.") var device: String
        @Flag(help: "Confirm: the device's replica is wiped when it next connects, unsent changes included.") var yes = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard yes else {
                throw ValidationError("this wipes the replica on device '\(device)' when it next connects, changes it never sent included; "
                    + "run again with --yes to go ahead (to only stop it syncing: ktd admin device revoke)")
            }
        }

        func run() async throws {
            let lost = try store.openStore().accounts.markDeviceLost(device, actor: adminActor())
            if json { return try Terminal.printJSON(lost) }
            print("Device '\(lost.name)' reported lost at \(lost.lostAt ?? "?"): refused from now on; it wipes its replica when it next connects.")
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release a device from its replica, so a new replica made with the same token may sync.",
            discussion: """
                A device is bound to the replica (node) of its first push, and a push from any other replica is \
                refused (node_mismatch). When that replica is gone for good (a reinstalled laptop) and a new one \
                was made with the same token (`kt init`), release the device; the new replica binds on its next \
                push. Writes the old replica never sent are lost with it. Prefer a new token per replica \
                (`ktd admin device add`).
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "Device id or name.") var device: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let released = try store.openStore().accounts.releaseDevice(device, actor: adminActor())
            if json { return try Terminal.printJSON(released) }
            print("Device '\(released.name)' released: the next replica to push with its token is bound to it.")
        }
    }
}
