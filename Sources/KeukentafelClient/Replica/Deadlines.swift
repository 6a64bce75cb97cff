import KeukentafelProtocol

/// Legal deadlines of a case, computed offline from its dates.
///
/// - Investigation (*onderzoek*): within 6 weeks of the melding (Wmo 2015, art. 2.3.2).
/// - Decision (*beschikking*): within 2 weeks of the application for Wmo; 8 weeks for youth
///   (Jeugdwet) and participation (Participatiewet). A case in several domains gets the strictest.
/// - The next contact date the consultant agreed, if any.
public enum Deadlines {
    public enum Kind: String, Codable, Sendable {
        case investigation, decision, nextContact = "next_contact"
    }

    public struct Deadline: Codable, Sendable, Equatable {
        public var kind: Kind
        public var due: String
        /// Negative when overdue.
        public var daysLeft: Int
    }

    /// What a case's deadlines depend on.
    public struct CaseFacts: Sendable {
        public var status: String?
        public var domains: [String]
        public var meldingDate: String?
        public var applicationDate: String?
        public var decisionDate: String?
        public var nextContactDue: String?
        public var closedDate: String?
        /// When the investigation was completed (data model version 3); it closes that deadline.
        public var investigationDate: String?

        public init(status: String?, domains: [String], meldingDate: String?, applicationDate: String?,
                    decisionDate: String?, nextContactDue: String?, closedDate: String?, investigationDate: String? = nil) {
            self.status = status
            self.domains = domains
            self.meldingDate = meldingDate
            self.applicationDate = applicationDate
            self.decisionDate = decisionDate
            self.nextContactDue = nextContactDue
            self.closedDate = closedDate
            self.investigationDate = investigationDate
        }
    }

    static let investigationOpen: Set<String> = ["melding", "onderzoek"]
    static let decided: Set<String> = ["beschikking", "levering", "evaluatie", "gesloten"]

    /// The deadlines still open for a case on `today` (YYYY-MM-DD).
    public static func open(for facts: CaseFacts, today: String) -> [Deadline] {
        guard facts.closedDate == nil, facts.status != "gesloten", let now = CalendarDay.number(today) else { return [] }
        var result: [Deadline] = []
        func add(_ kind: Kind, _ day: Int) {
            result.append(Deadline(kind: kind, due: CalendarDay.string(day), daysLeft: day - now))
        }
        if let melding = facts.meldingDate.flatMap(CalendarDay.number), investigationOpen.contains(facts.status ?? "melding"),
           facts.investigationDate == nil {
            add(.investigation, melding + 42)
        }
        if let application = facts.applicationDate.flatMap(CalendarDay.number), facts.decisionDate == nil, !decided.contains(facts.status ?? "") {
            let weeks = facts.domains.contains("wmo") || facts.domains.isEmpty ? 2
                : (facts.domains.contains("jeugd") || facts.domains.contains("participatie") ? 8 : 2)
            add(.decision, application + weeks * 7)
        }
        if let next = facts.nextContactDue.flatMap(CalendarDay.number) { add(.nextContact, next) }
        return result
    }

}

/// One line of `kt due`.
public struct DueItem: Codable, Sendable, Equatable {
    public var caseID: String
    public var resident: String
    public var contactPerson: String?
    public var deadline: Deadlines.Deadline
}

extension Replica {
    /// Open deadlines that are overdue or due within `days` of `today`, soonest first. Offline.
    public func due(today: String, within days: Int, contactPerson: String? = nil) throws -> [DueItem] {
        let rows = try query("""
            SELECT c.id, coalesce(r.first_name || ' ', '') || coalesce(r.last_name, '?'), c.contact_person, c.status, c.domains,
                   c.melding_date, c.application_date, c.decision_date, c.next_contact_due, c.closed_date,
                   \(dataModel.table(named: "cases")?.column(named: "investigation_date") == nil ? "NULL" : "c.investigation_date")
            FROM cases c LEFT JOIN residents r ON r.id = c.resident_id
            """).rows
        var items: [DueItem] = []
        for r in rows {
            if let contactPerson, r[2].string != contactPerson { continue }
            let facts = Deadlines.CaseFacts(status: r[3].string, domains: r[4].string.flatMap(parseStringList) ?? [],
                                            meldingDate: r[5].string, applicationDate: r[6].string, decisionDate: r[7].string,
                                            nextContactDue: r[8].string, closedDate: r[9].string, investigationDate: r[10].string)
            for deadline in Deadlines.open(for: facts, today: today) where deadline.daysLeft <= days {
                items.append(DueItem(caseID: r[0].string ?? "", resident: r[1].string ?? "?", contactPerson: r[2].string, deadline: deadline))
            }
        }
        return items.sorted { ($0.deadline.due, $0.caseID) < ($1.deadline.due, $1.caseID) }
    }
}
