import KeukentafelProtocol

/// The fictional people of DOMAIN.md as rows of the data model, with fixed ids so that the README
/// walkthrough can name them. Written through the normal push path, as the office would.
public enum DemoData {
    public struct Person: Sendable {
        public var residentID: String
        public var caseID: String
        public var name: String
    }

    /// Mevrouw De Vries (84), Castricum: the case the README walkthrough edits.
    public static let deVries = Person(residentID: "a0000000-0000-4000-8000-000000000005", caseID: "c0000000-0000-4000-8000-000000000005",
                                       name: "Mevrouw De Vries")

    static let people: [(id: Int, name: String, birth: String, municipality: String, team: String, domain: String,
                         status: String, question: String, melding: String, contact: String)] = [
        (1, "Tarik El Amrani", "1986-03-14", "heiloo", "heiloo", "jeugd", "plan",
         "Zorgen om zoon (ADD), huiswerk loopt vast; overleg met school gewenst.", "2026-09-02", "Sanne Bakker"),
        (2, "Milena Kowalski", "1999-07-21", "uitgeest", "uitgeest", "schulden", "onderzoek",
         "Schulden bij zorgverzekeraar en huurachterstand.", "2026-10-12", "Anne de Wit"),
        (3, "Joep Visser", "2014-05-30", "bergen", "bergen", "jeugd", "levering",
         "Ernstige beperking; moeder is gestopt met werken om te zorgen. Respijtzorg gevraagd.", "2026-06-18", "Fatima Yilmaz"),
        (4, "Sanne Jansen", "2009-01-09", "castricum", "castricum-noord", "wonen", "melding",
         "Woont tijdelijk bij zus en nichtje op derde verdieping zonder lift; bijna 18.", "2026-11-03", "Fatima Yilmaz"),
        (5, "Mevrouw De Vries", "1942-04-02", "castricum", "castricum-noord", "wmo", "aanvraag",
         "Huishoudelijke hulp en traplift; dochter is mantelzorger; eenzaam.", "2026-10-01", "Fatima Yilmaz"),
    ]

    /// The demo rows as changes, versioned by `node` from `milliseconds` on.
    public static func changes(node: NodeID, milliseconds: UInt64) -> [Change] {
        var clock = HybridLogicalClock()
        var changes: [Change] = []
        func add(_ table: String, _ row: String, _ cells: [(String, CellValue)]) {
            for (column, value) in cells {
                let version = CellVersion(hlc: clock.tick(wallMilliseconds: milliseconds), node: node)
                changes.append(Change(id: "demo-\(changes.count + 1)", table: table, row: row, column: column, value: value, version: version, base: nil))
            }
        }
        for person in people {
            let n = String(format2: person.id)
            let resident = "a0000000-0000-4000-8000-0000000000\(n)", caseID = "c0000000-0000-4000-8000-0000000000\(n)"
            add("residents", resident, [("name", .text(person.name)), ("birth_date", .text(person.birth)),
                                        ("municipality", .text(person.municipality)), ("preferred_channel", .text("in_person"))])
            add("cases", caseID, [("resident_id", .text(resident)), ("team", .text(person.team)), ("domain", .text(person.domain)),
                                  ("question", .text(person.question)), ("status", .text(person.status)),
                                  ("contact_person", .text(person.contact)), ("melding_date", .text(person.melding)), ("safety_risk", .integer(0))])
            add("visits", "b0000000-0000-4000-8000-0000000000\(n)", [
                ("case_id", .text(caseID)), ("happened_at", .text("\(person.melding)T10:00:00Z")), ("kind", .text("kitchen_table")),
                ("location", .text("thuis")), ("summary", .text("Keukentafelgesprek over alle leefgebieden.")),
            ])
            add("notes", "d0000000-0000-4000-8000-0000000000\(n)", [
                ("case_id", .text(caseID)), ("written_at", .text("\(person.melding)T11:30:00Z")), ("author", .text(person.contact)),
                ("confidential", .integer(0)), ("body", .text("Eerste contact gelegd; vervolgafspraak gemaakt.")),
            ])
        }
        return changes
    }
}

private extension String {
    init(format2 value: Int) { self = value < 10 ? "0\(value)" : String(value) }
}

extension ServerStore {
    /// Loads the demo data as writes of the office. Running it twice changes nothing.
    public func loadDemoData() throws -> PushResponse {
        let changes = DemoData.changes(node: try node, milliseconds: UInt64(clock()))
        return try push(changes, device: "demo")
    }
}
