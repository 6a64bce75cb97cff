import KeukentafelProtocol

/// The fictional people of docs/domain.md as rows of the data model, with fixed ids so that the README
/// walkthrough can name them. Written through the normal push path, as the office would.
public enum DemoData {
    /// Mevrouw De Vries (84), Castricum: the case the README walkthrough edits.
    public static let deVriesCase = "c0000000-0000-4000-8000-000000000005"

    /// How many cells the demo data has (tests compare against it).
    public static var cellCount: Int { rows(node: NodeID(rawValue: 1)!, milliseconds: 0).count }

    static func id(_ prefix: String, _ n: Int) -> String {
        let digits = String(n)
        return prefix + "-0000-4000-8000-" + String(repeating: "0", count: 12 - digits.count) + digits
    }

    struct Person {
        var n: Int
        var first: String, last: String, birth: String, municipality: String, team: String
        var domains: String, status: String, question: String, melding: String, contact: String, regie: String
    }

    static let people: [Person] = [
        Person(n: 1, first: "Tarik", last: "El Amrani", birth: "1986-03-14", municipality: "heiloo", team: "heiloo",
               domains: #"["jeugd"]"#, status: "plan", question: "Zorgen om onze zoon (ADD); huiswerk loopt vast. Graag overleg met school.",
               melding: "2026-09-02", contact: "Sanne Bakker", regie: "prevention"),
        Person(n: 2, first: "Milena", last: "Kowalski", birth: "1999-07-21", municipality: "uitgeest", team: "uitgeest",
               domains: #"["schulden","wonen"]"#, status: "onderzoek", question: "Schulden bij de zorgverzekeraar en huurachterstand.",
               melding: "2026-10-12", contact: "Anne de Wit", regie: "prevention"),
        Person(n: 3, first: "Joep", last: "Visser", birth: "2014-05-30", municipality: "bergen", team: "bergen",
               domains: #"["jeugd","zorg"]"#, status: "levering", question: "Ernstige beperking; moeder is gestopt met werken om te zorgen.",
               melding: "2026-06-18", contact: "Fatima Yilmaz", regie: "expert"),
        Person(n: 4, first: "Sanne", last: "Jansen", birth: "2009-01-09", municipality: "castricum", team: "castricum-noord",
               domains: #"["wonen","jeugd"]"#, status: "melding", question: "Woont tijdelijk bij haar zus op driehoog zonder lift; bijna 18.",
               melding: "2026-11-03", contact: "Fatima Yilmaz", regie: "prevention"),
        Person(n: 5, first: "Wilhelmina", last: "De Vries", birth: "1942-04-02", municipality: "castricum", team: "castricum-noord",
               domains: #"["wmo"]"#, status: "aanvraag", question: "Hulp in het huishouden en een traplift; dochter zorgt, maar mevrouw is eenzaam.",
               melding: "2026-10-01", contact: "Fatima Yilmaz", regie: "expert"),
    ]

    /// The demo rows as changes, versioned by `node` from `milliseconds` on.
    public static func rows(node: NodeID, milliseconds: UInt64) -> [Change] {
        var clock = HybridLogicalClock()
        var changes: [Change] = []
        func add(_ table: String, _ row: String, _ cells: [(String, CellValue)]) {
            for (column, value) in cells {
                let version = CellVersion(hlc: clock.tick(wallMilliseconds: milliseconds), node: node)
                changes.append(Change(id: "demo-\(changes.count + 1)", table: table, row: row, column: column, value: value, version: version, base: nil))
            }
        }
        for (i, (code, name)) in [("bergen", "Bergen"), ("castricum", "Castricum"), ("heiloo", "Heiloo"), ("uitgeest", "Uitgeest")].enumerated() {
            add("municipalities", id("e0000000", i + 1), [("code", .text(code)), ("name", .text(name))])
        }
        for (i, (code, municipality)) in [("bergen", "bergen"), ("castricum-noord", "castricum"), ("castricum-zuid", "castricum"),
                                          ("heiloo", "heiloo"), ("uitgeest", "uitgeest")].enumerated() {
            add("teams", id("f0000000", i + 1), [("code", .text(code)), ("name", .text("Sociaal team \(code)")), ("municipality", .text(municipality))])
        }
        for p in people {
            let resident = id("a0000000", p.n), caseID = id("c0000000", p.n)
            add("residents", resident, [("first_name", .text(p.first)), ("last_name", .text(p.last)), ("birth_date", .text(p.birth)),
                                        ("municipality", .text(p.municipality)), ("preferred_channel", .text("in_person"))])
            add("cases", caseID, [("resident_id", .text(resident)), ("team", .text(p.team)), ("municipality", .text(p.municipality)),
                                  ("domains", .text(p.domains)), ("source", .text("resident")), ("question", .text(p.question)),
                                  ("status", .text(p.status)), ("contact_person", .text(p.contact)), ("regie", .text(p.regie)),
                                  ("melding_date", .text(p.melding)), ("safety_risk", .integer(0))])
            add("visits", id("b0000000", p.n), [
                ("case_id", .text(caseID)), ("happened_at", .text("\(p.melding)T10:00:00Z")), ("kind", .text("kitchen_table")),
                ("location", .text("thuis")), ("present", .text(#"["resident"]"#)), ("client_support_offered", .integer(1)),
                ("summary", .text("Keukentafelgesprek over alle leefgebieden.")),
            ])
            add("notes", id("d0000000", p.n), [
                ("case_id", .text(caseID)), ("written_at", .text("\(p.melding)T11:30:00Z")), ("author", .text(p.contact)),
                ("confidential", .integer(0)), ("body", .text("Eerste contact gelegd; vervolgafspraak gemaakt.")),
            ])
        }
        // Mevrouw De Vries: household help and a stair lift, her daughter as carer, a volunteer buddy.
        let deVries = id("a0000000", 5)
        add("cases", deVriesCase, [("application_date", .text("2026-10-20"))])
        add("provisions", id("90000000", 1), [("case_id", .text(deVriesCase)), ("law", .text("wmo")), ("kind", .text("customised")),
                                              ("provision_type", .text("household_help")), ("funding", .text("in_kind")),
                                              ("provider", .text("Thuiszorg Kennemerland")), ("status", .text("requested"))])
        add("provisions", id("90000000", 2), [("case_id", .text(deVriesCase)), ("law", .text("wmo")), ("kind", .text("customised")),
                                              ("provision_type", .text("stair_lift")), ("status", .text("requested"))])
        add("carers", id("80000000", 1), [("name", .text("Els de Vries")), ("combines_work", .integer(1)), ("young_carer", .integer(0))])
        add("care_relations", id("70000000", 1), [("carer_id", .text(id("80000000", 1))), ("recipient_id", .text(deVries)),
                                                  ("relation", .text("child")), ("hours_per_week", .real(12)),
                                                  ("tasks", .text(#"["household","transport","emotional_support"]"#))])
        add("volunteers", id("60000000", 1), [("name", .text("Kees Bakker")), ("municipality", .text("castricum")),
                                              ("status", .text("matched")), ("languages", .text(#"["nl"]"#))])
        add("help_requests", id("50000000", 1), [("resident_id", .text(deVries)), ("kind", .text("buddy")),
                                                 ("description", .text("Maatje tegen eenzaamheid")), ("status", .text("matched"))])
        add("matches", id("40000000", 1), [("volunteer_id", .text(id("60000000", 1))), ("help_request_id", .text(id("50000000", 1))),
                                           ("start_date", .text("2026-11-01")), ("status", .text("active"))])
        // Joep's mother: a carer whose load is watched; respite care.
        add("carers", id("80000000", 2), [("name", .text("Moeder van Joep")), ("combines_work", .integer(0))])
        add("care_relations", id("70000000", 2), [("carer_id", .text(id("80000000", 2))), ("recipient_id", .text(id("a0000000", 3))),
                                                  ("relation", .text("parent")), ("hours_per_week", .real(60)),
                                                  ("tasks", .text(#"["personal_care","supervision","nursing"]"#))])
        add("carer_load_assessments", id("30000000", 1), [("carer_id", .text(id("80000000", 2))), ("assessed_on", .text("2026-10-15")),
                                                          ("load", .text("overloaded")), ("assessed_by", .text("Fatima Yilmaz"))])
        add("carer_support", id("20000000", 1), [("carer_id", .text(id("80000000", 2))), ("kind", .text("respite_care")),
                                                 ("start_date", .text("2026-11-01"))])
        // Tarik and Maryam: a youth and family coach, and an evaluation date.
        add("provisions", id("90000000", 3), [("case_id", .text(id("c0000000", 1))), ("law", .text("jeugdwet")), ("kind", .text("general")),
                                              ("provision_type", .text("youth_care_light")), ("status", .text("delivering"))])
        add("plans", id("10000000", 1), [("case_id", .text(id("c0000000", 1))), ("plan_type", .text("gezinsplan")), ("status", .text("sent")),
                                         ("evaluation_due", .text("2027-02-01"))])
        return changes
    }
}
