import KeukentafelProtocol
import KeukentafelSQLite

/// What a push did: the answer for the device, and what it touched, for waking long-polls.
public struct PushOutcome: Sendable {
    public var response: PushResponse
    public var footprint: ChangeFootprint
}

/// A push, applied in one transaction (decision 0016): authorised per change (`PushAuthorizer`), merged
/// in windows (`PushContext`), and answered per change.
struct PushPath: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// Applies a pushed batch in one transaction and answers per change, in order.
    ///
    /// A change that is invalid, or too far ahead of the server clock, is rejected and stored
    /// nowhere; the rest of the batch still applies. A change id seen before answers with its first
    /// result and changes nothing, so a client may always retry a batch whose response it lost.
    func push(_ changes: [Change], device: String, node: NodeID? = nil, access: Access = .system, clientSchemaVersion: Int? = nil,
                     rejectedWhileDecoding: [Int: ChangeRejection] = [:], resolutions: [Resolution] = []) throws -> PushOutcome {
        if let clientVersion = clientSchemaVersion, let minimum = store.dataModel.minimumClientVersion, clientVersion < minimum {
            let message = "this device's data model is version \(clientVersion); the server accepts writes from version \(minimum) on. "
                + "Run `kt upgrade` on the device; the change is kept until then."
            return PushOutcome(response: PushResponse(serverTime: store.clock(), results: changes.map {
                ChangeResult(id: $0.id, status: .rejected, code: .upgradeRequired, message: message)
            }), footprint: ChangeFootprint())
        }
        let now = store.clock()
        var resolved: [Int64] = []
        var refusedResolutions: [RefusedResolution] = []
        var footprint = ChangeFootprint()
        let results = try store.writer.withLock { connection -> [ChangeResult] in
            try connection.transaction {
                // The office's own writes (`ktd admin`) come with the system access and no device to judge.
                var deviceState = access == .system ? nil : try DeviceState.read(device, connection)
                if let node, deviceState != nil, let previous = try deviceState?.bind(to: node, connection), let state = deviceState {
                    try store.audit.append(connection, actor: state.name, action: "device.takeover", subject: state.name,
                                           detail: "replica \(node) moved here from revoked device '\(previous)'")
                }
                var refused = rejectedWhileDecoding
                var authorizer = try PushAuthorizer(access: access, store: store, connection: connection, device: deviceState)
                var allowedResolutions: [Resolution] = []
                for resolution in resolutions {
                    if let refusal = try authorizer.resolutionRefusal(conflict: resolution.conflict) {
                        refusedResolutions.append(RefusedResolution(conflict: resolution.conflict, code: refusal.code, message: refusal.message))
                    } else {
                        allowedResolutions.append(resolution)
                    }
                }
                refuseMissingAttachments(changes, device: device, access: access, connection: connection, &refused)
                // Rows that exist are judged on the store before the batch; new rows after it.
                var newRows: [Int] = []
                var readBefore = PushContext.RowsReadBefore()
                if access != .system {
                    // A new row with a refused link (to an erased row, or to one the writer may not see) is refused whole.
                    var refusedNewRows: [PushContext.RowAddress: ChangeRejection] = [:]
                    readBefore = try authorizer.readExistence(of: changes)
                    for (index, change) in changes.enumerated() where refused[index] == nil {
                        if let refusal = authorizer.nodeRefusal(of: change) {
                            refused[index] = refusal
                            continue
                        }
                        let exists = try authorizer.exists(change.table, change.row)
                        if let refusal = try authorizer.referenceRefusal(of: change, rowExists: exists) {
                            refused[index] = refusal
                            if !exists { refusedNewRows[PushContext.RowAddress(table: change.table, row: change.row)] = refusal }
                        } else if exists {
                            if let refusal = try authorizer.refusal(of: change) { refused[index] = refusal }
                        } else {
                            newRows.append(index)
                        }
                    }
                    if !refusedNewRows.isEmpty { refuseWhole(refusedNewRows, changes, &refused, &newRows) }
                }
                while true {
                    do {
                        // A savepoint: a batch that creates rows outside the writer's scopes is undone and
                        // applied again without them (rare: only a misbehaving or stale device does this).
                        let results = try connection.transaction {
                            let results = try apply(changes, refused: refused, resolutions: allowedResolutions, resolved: &resolved,
                                                    footprint: &footprint, device: device, now: now, readBefore: readBefore.take(),
                                                    connection: connection)
                            authorizer.forget()
                            var lateRefusals: [Int: ChangeRejection] = [:]
                            for index in newRows where refused[index] == nil {
                                if let refusal = try authorizer.refusal(of: changes[index]) { lateRefusals[index] = refusal }
                            }
                            if !lateRefusals.isEmpty { throw RefusedAfterApplying(refusals: lateRefusals) }
                            return results
                        }
                        if deviceState != nil {
                            let newest = zip(changes, results).lazy.filter { $0.1.status != .rejected }.map(\.0.version.hlc).max()
                            if let newest { try deviceState?.raiseHighWater(to: newest, connection) }
                        }
                        return results
                    } catch let late as RefusedAfterApplying {
                        refused.merge(late.refusals) { first, _ in first }
                        resolved.removeAll()
                        authorizer.forget()
                    }
                }
            }
        }
        return PushOutcome(response: PushResponse(serverTime: now, results: results, resolved: resolutions.isEmpty ? nil : resolved,
                                                  refusedResolutions: refusedResolutions.isEmpty ? nil : refusedResolutions),
                           footprint: footprint)
    }

    /// Refuses changes that refer to attachment content the server does not hold (or that this device
    /// neither uploaded nor may see): a device must never receive a reference it cannot download.
    /// The client uploads first and sends such a change again once the content is there.
    private func refuseMissingAttachments(_ changes: [Change], device: String, access: Access, connection: any StoreConnection,
                                          _ refused: inout [Int: ChangeRejection]) {
        var known: [String: Bool] = [:]
        for (index, change) in changes.enumerated() where refused[index] == nil {
            guard store.pushPlans[change.table]?.attachmentColumns.contains(change.column) == true, case .text(let text) = change.value,
                  let reference = AttachmentReference(cellText: text) else { continue }
            let present: Bool
            if let answer = known[reference.sha256] {
                present = answer
            } else {
                present = (try? store.attachments.mayRefer(to: reference.sha256, device: device, access: access, connection)) ?? false
                known[reference.sha256] = present
            }
            if !present {
                refused[index] = ChangeRejection(.attachmentMissing, "\(change.table).\(change.column): the content of '\(reference.name)' "
                    + "(sha256 \(reference.sha256.prefix(12))…) is not on the server yet; upload it, then send the change again")
            }
        }
    }

    /// Refuses every change of new rows whose link was refused, so no half row is stored. A new row
    /// under a row refused for referring to an erased row (a goal of a new plan of an erased case)
    /// goes too, with the same code: nothing of it reaches the store, and the device purges it.
    private func refuseWhole(_ rows: [PushContext.RowAddress: ChangeRejection], _ changes: [Change], _ refused: inout [Int: ChangeRejection],
                             _ newRows: inout [Int]) {
        var rows = rows
        var grew = true
        while grew {
            grew = false
            for index in newRows {
                let change = changes[index]
                let row = PushContext.RowAddress(table: change.table, row: change.row)
                guard rows[row] == nil, case .parent(let column, let parentTable)? = store.scopePlan.rules[change.table], change.column == column,
                      case .text(let parent) = change.value, let parentRefusal = rows[PushContext.RowAddress(table: parentTable, row: parent)],
                      parentRefusal.code == .rowErased else { continue }
                rows[row] = ChangeRejection(.rowErased, "\(change.table) \(change.row) belongs to \(parentTable) \(parent), which refers to "
                    + "an erased row; it is not stored and is removed from the device")
                grew = true
            }
        }
        for (index, change) in changes.enumerated() where refused[index] == nil {
            if let refusal = rows[PushContext.RowAddress(table: change.table, row: change.row)] { refused[index] = refusal }
        }
        newRows.removeAll { refused[$0] != nil }
    }

    private func apply(_ changes: [Change], refused: [Int: ChangeRejection], resolutions: [Resolution], resolved: inout [Int64],
                       footprint: inout ChangeFootprint, device: String, now: Int64, readBefore: consuming PushContext.RowsReadBefore,
                       connection: any StoreConnection) throws -> [ChangeResult] {
        // The sequence lives in the store, read and written inside the write transaction, so
        // `ktd admin` writing from another process can never hand out the same number.
        let sequence = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
        let writer = try HistoryWriter(device: device, at: now, connection)
        if let number = writer.number { store.deviceNumbers.note(device, number: Int(number)) }
        var context = PushContext(connection: connection, sequence: sequence, device: device, receivedAt: iso8601(now),
                                  store: store, batchStartSequence: sequence, nowMilliseconds: now, batch: changes,
                                  pending: PendingWrites(columns: store.columnNames.current, devices: store.deviceNumbers.current,
                                                         writer: writer))
        context.readBefore = consume readBefore  // its records alone: the first write to one changes it in place
        var results: [ChangeResult] = []
        results.reserveCapacity(changes.count)
        // In windows: what the window's changes need from the store is read in a few statements, and
        // their writes are flushed before the next window reads.
        for start in stride(from: 0, to: changes.count, by: PushContext.windowSize) {
            let window = start..<min(start + PushContext.windowSize, changes.count)
            try context.prefetch(changes, window, refused: refused)
            for index in window {
                if !refused.isEmpty, let rejection = refused[index] {
                    let change = changes[index]
                    results.append(ChangeResult(id: change.id, status: .rejected, code: rejection.code, message: rejection.message))
                } else {
                    results.append(try context.apply(changes[index], at: index, now: now))
                }
            }
            try context.flushWrites()
        }
        try context.rescope()
        try context.marks.save(connection)
        for resolution in resolutions where try context.resolve(resolution) { resolved.append(resolution.conflict) }
        try connection.run("UPDATE meta SET value = ? WHERE key = 'seq'", [.integer(context.sequence)])
        footprint = try context.finishFootprint()
        if context.sequence != sequence, let postgres = connection as? PostgresStoreConnection { try postgres.announcePush(footprint) }
        return results
    }
}
