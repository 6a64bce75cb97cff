import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTesting
import Testing

/// The council's report (issue 22): records with known counts, the edge cases of docs/reports.md
/// (a provision ending on 30 June, a provider switch, a reassessment, a resident with two cases in one
/// year, a melding on 31 December, a visit just after midnight on 1 July in Dutch time), synced through
/// the real server, and every table cell checked in every format.
@Suite struct ReportTests {
    /// The records of docs/reports.md's worked example, written on the office's replica.
    static func writeExample(on office: Replica) throws {
        let r = (1...6).map { "0000000\($0)-0000-4000-8000-000000000001" }
        func c(_ n: Int) -> String { "c000000\(n)-0000-4000-8000-000000000002" }
        try office.transaction {
            try office.execute("INSERT INTO municipalities (id, code, name) VALUES (?, 'castricum', 'Castricum'), (?, 'heiloo', 'Heiloo')",
                               [.text(newID()), .text(newID())])
            try office.execute("INSERT INTO teams (id, code, name) VALUES (?, 'noord', 'Noord'), (?, 'zuid', 'Zuid')", [.text(newID()), .text(newID())])
            for resident in r { try office.execute("INSERT INTO residents (id, last_name) VALUES (?, 'Inwoner')", [.text(resident)]) }
            let cases: [(Int, Int, String, String, String, String?, String?, String?, String?, String?)] = [
                // case, resident, team, municipality, domains, kind, melding, investigation, application, decision
                (1, 0, "noord", "castricum", "[\"wmo\"]", "new", "2018-01-10", "2018-02-15", "2018-02-20", "2018-03-01"),
                (2, 0, "noord", "castricum", "[\"wmo\"]", "reassessment", "2018-05-02", "2018-06-20", "2018-06-25", "2018-07-15"),
                (3, 1, "zuid", "heiloo", "[\"wmo\",\"jeugd\"]", "new", "2018-12-31", nil, nil, nil),
                (4, 2, "zuid", "heiloo", "[\"jeugd\"]", "new", "2018-03-01", nil, "2018-03-10", "2018-05-10"),
                (5, 3, "noord", "castricum", "[\"wmo\"]", nil, "2018-08-01", "2018-08-20", "2018-08-21", nil),
                (6, 4, "noord", "castricum", "[\"wmo\"]", "new", "2017-11-01", nil, nil, "2018-01-05"),
                (7, 5, "zuid", "heiloo", "[\"participatie\"]", "new", "2019-01-15", nil, nil, nil),
            ]
            func value(_ text: String?) -> CellValue { text.map(CellValue.text) ?? .null }
            for (n, resident, team, municipality, domains, kind, melding, investigation, application, decision) in cases {
                try office.execute("""
                    INSERT INTO cases (id, resident_id, team, municipality, domains, request_kind, melding_date, investigation_date,
                                       application_date, decision_date, contact_person)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'Fatima Yilmaz')
                    """, [.text(c(n)), .text(r[resident]), .text(team), .text(municipality), .text(domains), value(kind), value(melding),
                          value(investigation), value(application), value(decision)])
            }
            for (n, kind, at) in [(1, "home_visit", "2018-01-15T10:00:00Z"), (1, "kitchen_table", "2018-06-30T22:30:00Z"),
                                  (2, "phone", "2018-05-05T10:00:00Z"), (4, "home_visit", "2018-12-31T12:00:00Z"),
                                  (7, "home_visit", "2019-01-16T10:00:00Z"), (3, "kitchen_table", "2018-03-01T09:00:00Z")] {
                try office.execute("INSERT INTO visits (id, case_id, kind, happened_at) VALUES (?, ?, ?, ?)",
                                   [.text(newID()), .text(c(n)), .text(kind), .text(at)])
            }
            let provisions: [(Int, String, String, String, String?, String?, String?, String)] = [
                // case, law, type, provider, funding, start, end, status
                (1, "wmo", "household_help", "Zorgbalans", "in_kind", "2018-03-01", "2018-06-30", "ended"),
                (1, "wmo", "household_help", "Thuiszorg", "in_kind", "2018-07-01", nil, "delivering"),
                (4, "jeugdwet", "youth_care_light", "Jeugdhulp", "in_kind", "2018-05-15", "2019-05-14", "delivering"),
                (5, "wmo", "wheelchair", "Hulpmiddelen", "in_kind", "2017-06-01", nil, "delivering"),
                (5, "wmo", "mobility_scooter", "Hulpmiddelen", "personal_budget", "2018-02-01", nil, "delivering"),
                (2, "wmo", "stair_lift", "Hulpmiddelen", nil, "2018-09-01", nil, "granted"),
                (6, "wmo", "support", "Zorgbalans", "in_kind", "2018-01-10", nil, "refused"),
                (6, "wmo", "support", "Zorgbalans", "in_kind", nil, nil, "granted"),
                (3, "wmo", "day_activities", "Zorgbalans", "in_kind", "2017-01-01", "2017-12-31", "ended"),
            ]
            for (n, law, type, provider, funding, start, end, status) in provisions {
                try office.execute("""
                    INSERT INTO provisions (id, case_id, law, provision_type, provider, funding, start_date, end_date, status)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [.text(newID()), .text(c(n)), .text(law), .text(type), .text(provider), value(funding), value(start), value(end), .text(status)])
            }
        }
    }

    /// Every cell of the 2018 report of the example, as docs/reports.md works it out: table → row labels → H1, H2, year (or the stock days).
    static let expected: [String: [[String]: [Double?]]] = [
        "wmo_requests": [["new request"]: [1, 1, 2], ["reassessment"]: [1, 0, 1], ["kind not recorded"]: [0, 1, 1],
                         ["residents who asked"]: [1, 2, 3]],
        "home_visits": [["home visit"]: [1, 1, 2], ["kitchen-table conversation"]: [1, 1, 2], ["home visits"]: [2, 2, 4]],
        "provisions_running": [["Jeugdwet", "youth_care_light"]: [1, 1], ["Wmo", "household_help"]: [1, 1], ["Wmo", "mobility_scooter"]: [1, 1],
                               ["Wmo", "stair_lift"]: [0, 1], ["Wmo", "wheelchair"]: [1, 1], ["all provisions", ""]: [4, 5]],
        "clients_per_provider": [["Hulpmiddelen"]: [1, 2, 2], ["Jeugdhulp"]: [1, 1, 1], ["Thuiszorg"]: [0, 1, 1], ["Zorgbalans"]: [1, 0, 1],
                                 ["distinct clients"]: [3, 3, 3]],
        "aids_on_loan": [["wheelchair"]: [1], ["stair_lift"]: [1], ["mobility_scooter"]: [0], ["outdoor_wheelchair"]: [0], ["aids on loan"]: [2]],
        "new_provisions": [["Jeugdwet"]: [1, 0, 1], ["Wmo"]: [2, 2, 4], ["new provisions"]: [3, 2, 5]],
        "decisions": [["Wmo"]: [2, 1, 3], ["Jeugdwet"]: [1, 0, 1], ["Participatiewet"]: [0, 0, 0], ["decisions"]: [3, 1, 4]],
        "deadlines": [
            ["Wmo", "requests (meldingen)"]: [2, 2, 4], ["Wmo", "investigation within 6 weeks"]: [1, 1, 2], ["Wmo", "investigation late"]: [1, 0, 1],
            ["Wmo", "investigation not yet due"]: [0, 1, 1], ["Wmo", "investigation in time, %"]: [50, 100, 66.7],
            ["Wmo", "applications"]: [2, 1, 3], ["Wmo", "decision within 2 weeks"]: [1, 0, 1], ["Wmo", "decision late"]: [1, 1, 2],
            ["Wmo", "decision not yet due"]: [0, 0, 0], ["Wmo", "decision in time, %"]: [50, 0, 33.3],
            ["Jeugdwet", "requests (meldingen)"]: [1, 1, 2], ["Jeugdwet", "applications"]: [1, 0, 1], ["Jeugdwet", "decision within 8 weeks"]: [0, 0, 0],
            ["Jeugdwet", "decision late"]: [1, 0, 1], ["Jeugdwet", "decision in time, %"]: [0, nil, 0],
            ["Participatiewet", "requests (meldingen)"]: [0, 0, 0], ["Participatiewet", "decision in time, %"]: [nil, nil, nil],
        ],
        "wmo_clients": [["Wmo clients"]: [2]],
    ]

    static let request = ReportRequest(firstYear: 2018, asOf: "2019-01-20")

    @Test("every cell of the example's 2018 report is what the counting rules say, and the overdue requests are listed")
    func theExampleCountsAsWorkedOut() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let writer = try server.replica("back office"), office = try server.replica("office daemon")
        try Self.writeExample(on: writer)
        try await writer.sync()
        try await office.sync()
        let report = try office.councilReport(Self.request)
        #expect(report.tables.map(\.id) == ["wmo_requests", "home_visits", "provisions_running", "clients_per_provider", "aids_on_loan",
                                            "new_provisions", "decisions", "deadlines", "wmo_clients"])
        for table in report.tables {
            let expected = try #require(Self.expected[table.id])
            for (labels, values) in expected {
                let row = try #require(table.rows.first { $0.labels == labels }, "\(table.id) has a row \(labels)")
                #expect(row.values == values, "\(table.id) \(labels)")
            }
        }
        #expect(report.tables[0].periods.map(\.label) == ["H1 2018", "H2 2018", "2018"])
        #expect(report.tables[2].periods.map(\.label) == ["30 Jun 2018", "31 Dec 2018"])
        #expect(report.tables[2].notes == ["1 granted provision(s) without a start date are not counted."])
        #expect(report.overdue.map { [$0.team ?? "", $0.law, $0.deadline, $0.due, $0.doneOn ?? "open", String($0.daysLate)] } == [
            ["noord", "Wmo", "investigation", "2018-06-13", "2018-06-20", "7"],
            ["noord", "Wmo", "decision", "2018-07-09", "2018-07-15", "6"],
            ["noord", "Wmo", "decision", "2018-09-04", "open", "138"],
            ["zuid", "Jeugdwet", "decision", "2018-05-05", "2018-05-10", "5"],
        ])
        try Self.checkEveryFormat(report)
    }

    /// The same cells read back from the JSON, the CSV, the HTML table and the text.
    static func checkEveryFormat(_ report: CouncilReport) throws {
        // JSON
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.rendered(as: .json).utf8)) as? [String: Any])
        let jsonTables = try #require(json["tables"] as? [[String: Any]])
        for table in jsonTables {
            let id = try #require(table["id"] as? String)
            for row in try #require(table["rows"] as? [[String: Any]]) {
                let labels = try #require(row["labels"] as? [String])
                guard let want = expected[id]?[labels] else { continue }
                let got = try #require(row["values"] as? [Any]).map { ($0 as? NSNumber)?.doubleValue }
                #expect(got == want, "json \(id) \(labels)")
            }
        }
        #expect((json["overdue"] as? [Any])?.count == 4)
        // CSV: table, label 1, label 2, period, start, end, unit, value, change
        var csv: [String: Double?] = [:]
        for line in try report.rendered(as: .csv).split(separator: "\n").dropFirst() {
            let f = csvFields(String(line))
            let labels = f[2].isEmpty && f[0] != "provisions_running" ? [f[1]] : [f[1], f[2]]
            csv[([f[0]] + labels + [f[3]]).joined(separator: "|")] = f[7].isEmpty ? .some(nil) : Double(f[7])
        }
        // HTML: each table's rows as their cells' text, the change spans left out.
        let html = try report.rendered(as: .html)
        var htmlRows: [String: [String]] = [:]
        for section in html.components(separatedBy: "<section id=\"").dropFirst() {
            let id = String(section.prefix { $0 != "\"" })
            for row in section.components(separatedBy: "<tr").dropFirst(2) {
                let cells = row.components(separatedBy: "</tr>")[0].components(separatedBy: "<td").dropFirst().map { cell in
                    cell.replacing(/<span class="change">[^<]*<\/span>/, with: "").replacing(/<[^>]*>/, with: "")
                        .replacing(/^[^>]*>/, with: "").replacingOccurrences(of: "&#39;", with: "'")
                }
                htmlRows[id + "|" + cells.joined(separator: "|")] = cells
            }
        }
        // Text: columns apart by two spaces or more; a value's change in brackets after it.
        let text = try report.rendered(as: .table)
        let textLines = Set(text.split(separator: "\n").map { line in
            line.split(separator: /\s{2,}/).map { $0.replacing(/\ \([+−±][^)]*\)$/, with: "").lowercased() }.joined(separator: "|")
        })
        for table in report.tables {
            for (labels, values) in expected[table.id] ?? [:] {
                let row = try #require(table.rows.first { $0.labels == labels })
                let shown = table.periods.indices.map { ReportCells(suppress: false).text(row, $0) }
                for (i, period) in table.periods.enumerated() {
                    #expect(csv[([table.id] + labels + [period.label]).joined(separator: "|")] == .some(values[i]), "csv \(table.id) \(labels) \(period.label)")
                }
                #expect(htmlRows[table.id + "|" + (labels + shown).joined(separator: "|")] != nil, "html \(table.id) \(labels + shown)")
                let textLabels = labels.filter { !$0.isEmpty }.map { $0.lowercased() }
                #expect(textLines.contains((textLabels + shown).joined(separator: "|")), "text \(table.id) \(textLabels + shown)")
            }
        }
    }

    @Test("a team's device counts what it may see: the same figures as the office's replica for that team")
    func aTeamDeviceCountsItsOwnRows() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let writer = try server.replica("back office")
        let zuid = try server.replica("laptop zuid", user: "zuid", role: .consultant, scopes: ["team:zuid"])
        try Self.writeExample(on: writer)
        try await writer.sync()
        try await zuid.sync()
        let onLaptop = try zuid.councilReport(Self.request)
        var filtered = Self.request
        filtered.team = "zuid"
        let atOffice = try writer.councilReport(filtered)
        #expect(try onLaptop.rendered(as: .csv) == atOffice.rendered(as: .csv))
        let requests = try #require(onLaptop.tables.first { $0.id == "wmo_requests" })
        #expect(requests.value(["residents who asked"], "H2 2018") == 1, "the melding of 31 December is in the second half-year")
        #expect(requests.value(["residents who asked"], "H1 2018") == 0)
        #expect(onLaptop.overdue.map(\.team) == ["zuid"])
        filtered.team = nil
        filtered.municipality = "heiloo"
        #expect(try writer.councilReport(filtered).rendered(as: .csv) == atOffice.rendered(as: .csv), "team zuid is all of Heiloo")
    }

    @Test("several years side by side, with the change against the previous period")
    func comparisonOverYears() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("back office")
        try Self.writeExample(on: office)
        let report = try office.councilReport(ReportRequest(firstYear: 2017, lastYear: 2018, asOf: "2019-01-20"))
        let visits = try #require(report.tables.first { $0.id == "home_visits" })
        #expect(visits.periods.map(\.label) == ["H1 2017", "H2 2017", "H1 2018", "H2 2018"])
        #expect(visits.value(["home visits"], "H1 2018") == 2)
        let running = try #require(report.tables.first { $0.id == "provisions_running" })
        #expect(running.periods.map(\.label) == ["30 Jun 2017", "31 Dec 2017", "30 Jun 2018", "31 Dec 2018"])
        // P4 (wheelchair, from June 2017) and P9 (day activities, all of 2017) run at the end of 2017.
        #expect(running.value(["all provisions", ""], "31 Dec 2017") == 2)
        let clients = try #require(report.tables.first { $0.id == "wmo_clients" })
        #expect(clients.periods.map(\.label) == ["2017", "2018"])
        #expect(clients.values(of: ["Wmo clients"]) == [2, 2])
        let cells = ReportCells(suppress: false)
        let total = try #require(running.rows.last)
        #expect(cells.changeText(running, total, 3) == "+1", "31 Dec 2018 (5) against the stock day before it, 30 Jun 2018 (4)")
        let csv = try report.rendered(as: .csv)
        #expect(csv.contains("provisions_running,all provisions,,31 Dec 2018,2018-12-31,2018-12-31,count,5,1\n"))
        let text = try report.rendered(as: .table)
        #expect(text.contains("ALL PROVISIONS"))
    }

    @Test("small counts are shown as <5 when asked, in every format")
    func smallCountsSuppressed() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("back office")
        try Self.writeExample(on: office)
        let report = try office.councilReport(Self.request)
        let csv = try report.rendered(as: .csv, suppressSmallCounts: true)
        #expect(csv.contains("wmo_requests,residents who asked,,2018,2018-01-01,2018-12-31,count,<5,\n"))
        #expect(csv.contains("wmo_requests,reassessment,,H2 2018,2018-07-01,2018-12-31,count,0,\n"), "a zero is no group of people")
        #expect(csv.contains("new_provisions,new provisions,,2018,2018-01-01,2018-12-31,count,5,\n"), "5 and more are shown")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.rendered(as: .json, suppressSmallCounts: true).utf8)) as? [String: Any])
        let requests = try #require((json["tables"] as? [[String: Any]])?.first)
        let total = try #require((requests["rows"] as? [[String: Any]])?.last)
        #expect((total["values"] as? [Any])?.allSatisfy { $0 is NSNull } == true)
        #expect(total["suppressed"] as? [Bool] == [true, true, true])
        #expect(try report.rendered(as: .html, suppressSmallCounts: true).contains("<rect class=\"bar suppressed\""))
        #expect(try report.rendered(as: .table, suppressSmallCounts: true).contains("Counts of 1 to 4 are shown as <5."))
        #expect(!(try report.rendered(as: .table)).contains("<5"))
    }

    @Test("a wrong year, date, municipality or team is an error that says what, never an empty report")
    func badRequestsAreErrors() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("back office")
        try Self.writeExample(on: office)
        func code(_ request: ReportRequest) -> String? {
            do { _ = try office.councilReport(request); return nil } catch let error as ReportError { return error.code } catch { return "\(error)" }
        }
        #expect(code(ReportRequest(firstYear: 2019, lastYear: 2018, asOf: "2019-01-20")) == "invalid_period")
        #expect(code(ReportRequest(firstYear: 18, asOf: "2019-01-20")) == "invalid_period")
        #expect(code(ReportRequest(firstYear: 2018, asOf: "20-01-2019")) == "invalid_date")
        #expect(code(ReportRequest(firstYear: 2018, municipality: "castricun", asOf: "2019-01-20")) == "unknown_municipality")
        #expect(code(ReportRequest(firstYear: 2018, team: "noordd", asOf: "2019-01-20")) == "unknown_team")
        do {
            _ = try office.councilReport(ReportRequest(firstYear: 2018, team: "noordd", asOf: "2019-01-20"))
        } catch let error as ReportError {
            #expect(error.message.contains("known: noord, zuid"))
        }
    }
}

/// The fields of one CSV line (RFC 4180 quoting).
func csvFields(_ line: String) -> [String] {
    var fields: [String] = [], field = "", quoted = false, previous: Character?
    for c in line {
        if quoted {
            if c == "\"" { quoted = false } else { field.append(c) }
        } else if c == "\"" {
            if previous == "\"" { field.append("\"") }
            quoted = true
        } else if c == "," {
            fields.append(field)
            field = ""
        } else {
            field.append(c)
        }
        previous = c
    }
    return fields + [field]
}

/// `kt report` as the office uses it, and its HTML page as a browser shows it.
@Suite struct ReportPageTests {
    @Test("kt report writes a page that headless Chromium renders, with a bar per period in every chart")
    func theHTMLPageRendersInChromium() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        try ReportTests.writeExample(on: office)
        let work = try temporaryDirectory("report-page")
        let page = work + "/raad-2017-2018.html"
        let written = try await onThread {
            try CommandLineTests.runBlocking("kt", ["report", "--db", office.path, "--from", "2017", "--to", "2018", "--as-of", "2019-01-20",
                                                    "--format", "html", "--out", page], in: work)
        }
        #expect(written.status == 0, "\(written.error)")
        #expect(written.error.contains("Wrote \(page) (9 tables, 5 overdue requests)"), "2017 adds case 6: decided, but no investigation date was recorded")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(!html.contains("<script"), "no scripts")
        #expect(!html.contains("src=") && !html.contains("<link"), "nothing loaded from elsewhere")

        let chromium = try #require(["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                    "headless Chromium is needed for this test: Tools/install-deps installs it (apt-get install chromium)")
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--user-data-dir=\(work)/chromium"]
        let dom = try await onThread { try Self.run(chromium, flags + ["--dump-dom", "file://\(page)"], in: work) }
        #expect(dom.status == 0, "\(dom.error)")
        // As the browser parsed it: nine charts, each with one bar per period of its table.
        let charts = dom.output.components(separatedBy: "<svg class=\"chart\"").dropFirst().map { $0.components(separatedBy: "</svg>")[0] }
        #expect(charts.count == 9)
        let bars = charts.map { $0.components(separatedBy: "<rect class=\"bar").count - 1 }
        // Half-years of two years (4), stock days (4), half-years, year ends (2), half-years ×3, years (2).
        #expect(bars == [4, 4, 4, 4, 2, 4, 4, 4, 2], "bars per chart: \(bars)")
        #expect(dom.output.contains("data-period=\"31 Dec 2018\""))
        let screenshot = work + "/page.png"
        let shot = try await onThread {
            try Self.run(chromium, flags + ["--window-size=1200,3000", "--screenshot=\(screenshot)", "file://\(page)"], in: work)
        }
        #expect(shot.status == 0, "\(shot.error)")
        let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG")
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(width == 1200 && height == 3000)
        #expect(png.count > 50_000, "a page with tables and charts, not a blank one (\(png.count) bytes)")
    }

    @Test("kt report says what is wrong: no year, a typo in a team, a folder that does not exist")
    func mistakesAreErrors() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        try ReportTests.writeExample(on: office)
        let work = try temporaryDirectory("report-cli")
        func kt(_ arguments: [String]) async throws -> CommandLineTests.Result {
            try await onThread { try CommandLineTests.runBlocking("kt", ["report", "--db", office.path] + arguments, in: work) }
        }
        let noYear = try await kt([])
        #expect(noYear.status != 0 && noYear.error.contains("say which year: --year 2025, or --from 2022 --to 2025"))
        let typo = try await kt(["--year", "2018", "--team", "noordd"])
        #expect(typo.status != 0 && typo.error.contains("no team 'noordd' on this replica (known: noord, zuid) [unknown_team]"))
        let folder = try await kt(["--year", "2018", "--format", "csv", "--out", work + "/missing/wmo.csv"])
        #expect(folder.status != 0 && folder.error.contains("the folder '\(work)/missing' for --out does not exist"))
        let missing = try await onThread { try CommandLineTests.runBlocking("kt", ["report", "--db", work + "/nothing.sqlite", "--year", "2018"], in: work) }
        #expect(missing.status != 0 && missing.error.contains("no replica at"))
        let csv = try await kt(["--year", "2018", "--as-of", "2019-01-20", "--format", "csv"])
        #expect(csv.status == 0 && csv.output.hasPrefix("table,label 1,label 2,period,start,end,unit,value,change\n"))
        #expect(csv.output.contains("wmo_clients,Wmo clients,,2018,2018-01-01,2018-12-31,count,2,\n"))
    }

    /// Chromium through `timeout`, so a browser that hangs fails the test instead of holding it up.
    static func run(_ executable: String, _ arguments: [String], in directory: String) throws -> CommandLineTests.Result {
        try CommandLineTests.runBlocking("timeout", ["120", executable] + arguments, in: directory, fromPath: true)
    }
}

extension ReportTable {
    func values(of labels: [String]) -> [Double?]? { rows.first { $0.labels == labels }?.values }
}
