import Foundation
import KeukentafelProtocol

/// What the counting rules need of the records, read from the model's tables with plain SQL.
struct ReportFacts: Sendable {
    struct Case: Sendable {
        var id: String
        var resident: String
        var team: String?
        var domains: [String]
        var requestKind: String?
        var melding: String?
        var investigation: String?
        var application: String?
        var decision: String?
        var contactPerson: String?
    }

    struct Visit: Sendable {
        var kind: String
        /// The day it happened in Dutch time.
        var day: String
    }

    struct Provision: Sendable {
        var resident: String
        var law: String?
        var type: String?
        var provider: String?
        var funding: String?
        var start: String?
        var end: String?
        var status: String?
    }

    var cases: [Case] = []
    var visits: [Visit] = []
    var provisions: [Provision] = []

    /// The columns version 3 of the data model added; an older replica has to upgrade first.
    static let requiredColumns = [("cases", "request_kind"), ("cases", "investigation_date")]

    /// Reads the facts of the cases of `municipality` and `team` (nil: all) and what hangs off them.
    static func read(from replica: Replica, municipality: String?, team: String?) throws -> ReportFacts {
        let filter = "(?1 IS NULL OR c.municipality = ?1) AND (?2 IS NULL OR c.team = ?2)"
        let arguments: [CellValue] = [municipality.map(CellValue.text) ?? .null, team.map(CellValue.text) ?? .null]
        var facts = ReportFacts()
        for row in try replica.query("""
            SELECT c.id, c.resident_id, c.team, c.domains, c.request_kind, c.melding_date, c.investigation_date,
                   c.application_date, c.decision_date, c.contact_person
            FROM cases c WHERE \(filter)
            """, arguments).rows {
            facts.cases.append(Case(id: row[0].string ?? "", resident: row[1].string ?? "", team: row[2].string,
                                    domains: row[3].string.flatMap(parseStringList) ?? [], requestKind: row[4].string,
                                    melding: row[5].string, investigation: row[6].string, application: row[7].string,
                                    decision: row[8].string, contactPerson: row[9].string))
        }
        for row in try replica.query("""
            SELECT v.kind, v.happened_at FROM visits v JOIN cases c ON c.id = v.case_id
            WHERE v.kind IN ('home_visit', 'kitchen_table') AND \(filter)
            """, arguments).rows {
            guard let kind = row[0].string, let at = row[1].string, let day = DutchDay.of(at) else { continue }
            facts.visits.append(Visit(kind: kind, day: day))
        }
        for row in try replica.query("""
            SELECT c.resident_id, p.law, p.provision_type, p.provider, p.funding, p.start_date, p.end_date, p.status
            FROM provisions p JOIN cases c ON c.id = p.case_id WHERE \(filter)
            """, arguments).rows {
            facts.provisions.append(Provision(resident: row[0].string ?? "", law: row[1].string, type: row[2].string, provider: row[3].string,
                                              funding: row[4].string, start: row[5].string, end: row[6].string, status: row[7].string))
        }
        return facts
    }
}

/// The calendar day of a stored time (always UTC) in the Netherlands: a visit at 00:30 on 1 July,
/// Dutch time, is stored as 22:30 on 30 June and belongs to the second half-year.
enum DutchDay {
    static let zone = TimeZone(identifier: "Europe/Amsterdam")

    static func of(_ datetime: String) -> String? {
        guard isValidDateTime(datetime) else { return isValidDate(datetime) ? datetime : nil }
        guard let zone else { return String(datetime.prefix(10)) }
        let utf8 = Array(datetime.utf8)
        func number(_ range: Range<Int>) -> Int { Int(String(decoding: utf8[range], as: UTF8.self)) ?? 0 }
        let day = CalendarDay.number(year: number(0..<4), month: number(5..<7), day: number(8..<10))
        let seconds = Double(day) * 86_400 + Double(number(11..<13) * 3600 + number(14..<16) * 60 + number(17..<19))
        let offset = zone.secondsFromGMT(for: Date(timeIntervalSince1970: seconds))
        return CalendarDay.string(Int(((seconds + Double(offset)) / 86_400).rounded(.down)))
    }
}
