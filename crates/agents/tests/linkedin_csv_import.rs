//! CSV import of exported prospect lists: header mapping per tool, row errors with line
//! numbers, in-file duplicates, and files that cannot be imported at all.

use salesdept_agents::linkedin::csv_import::{ImportError, RowErrorReason, plan_import};

#[test]
fn exports_of_each_tool_map_to_the_same_prospect() {
    let exports = [
        (
            "Apollo",
            "First Name,Last Name,Title,Company,# Employees,Industry,Person Linkedin Url,City,Email\n\
             Maya,Lindqvist,CTO,Fjordbyte,51-200,Software Development,http://www.linkedin.com/in/maya-lindqvist-d1,Stockholm,maya@fjordbyte.example\n",
        ),
        (
            "Clay",
            "Full Name,Job Title,Company Name,LinkedIn Profile,Location\n\
             Maya Lindqvist,CTO,Fjordbyte,linkedin.com/in/Maya-Lindqvist-D1/,Stockholm\n",
        ),
        (
            "Sales Navigator",
            "First Name,Last Name,Current Title,Account Name,LinkedIn URL,Geography\n\
             Maya,Lindqvist,CTO,Fjordbyte,https://uk.linkedin.com/in/maya-lindqvist-d1?trk=sn,Stockholm\n",
        ),
        (
            "Dripify",
            "firstName,lastName,headline,company,profileUrl,location\n\
             Maya,Lindqvist,CTO,Fjordbyte,https://www.linkedin.com/in/maya-lindqvist-d1,Stockholm\n",
        ),
        (
            "manual sheet (semicolons, BOM, padded headers)",
            "\u{feff} Name ; Position ; Organization ; LinkedIn URL \n\
             Maya Lindqvist;CTO;Fjordbyte;https://www.linkedin.com/in/maya-lindqvist-d1\n",
        ),
    ];
    for (tool, csv) in exports {
        let plan = plan_import(csv.as_bytes()).unwrap_or_else(|error| panic!("{tool}: {error}"));
        assert!(plan.is_clean(), "{tool}: {:?}", plan.rejected);
        assert_eq!(plan.accepted.len(), 1, "{tool}");
        let prospect = &plan.accepted[0];
        assert_eq!(prospect.line, 2, "{tool}");
        assert_eq!(prospect.name, "Maya Lindqvist", "{tool}");
        assert_eq!(prospect.position.as_deref(), Some("CTO"), "{tool}");
        assert_eq!(prospect.company.as_deref(), Some("Fjordbyte"), "{tool}");
        assert_eq!(
            prospect.profile_url.as_str(),
            "https://www.linkedin.com/in/maya-lindqvist-d1",
            "{tool}"
        );
    }
}

#[test]
fn bad_rows_are_rejected_with_their_line_numbers() {
    let csv = "Full Name,Title,LinkedIn URL\n\
               Maya Lindqvist,CTO,https://www.linkedin.com/in/maya-lindqvist-d1\n\
               No Url,CEO,\n\
               Bad Host,CEO,https://example.com/in/bad-host\n\
               ,VP,https://www.linkedin.com/in/nameless\n\
               Feed Page,CMO,https://www.linkedin.com/feed/\n\
               \n\
               \"Multi\nLine Name\",Founder,https://www.linkedin.com/in/multi-line\n\
               Arjun Mehta,CEO,https://www.linkedin.com/in/arjun-mehta-d2\n";
    let plan = plan_import(csv.as_bytes()).unwrap();
    let rejected: Vec<(u64, &str)> = plan
        .rejected
        .iter()
        .map(|error| {
            (
                error.line,
                match &error.reason {
                    RowErrorReason::MissingUrl => "missing url",
                    RowErrorReason::InvalidUrl(_) => "invalid url",
                    RowErrorReason::MissingName => "missing name",
                    RowErrorReason::Unreadable(_) => "unreadable",
                    RowErrorReason::FieldTooLong(_) => "too long",
                },
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (3, "missing url"),
            (4, "invalid url"),
            (5, "missing name"),
            (6, "invalid url"),
        ],
        "{:?}",
        plan.rejected
    );
    let accepted: Vec<(u64, &str)> = plan
        .accepted
        .iter()
        .map(|prospect| (prospect.line, prospect.name.as_str()))
        .collect();
    // The blank line 7 is skipped; the quoted name spans lines 8–9, so Arjun is on line 10.
    assert_eq!(
        accepted,
        [
            (2, "Maya Lindqvist"),
            (8, "Multi\nLine Name"),
            (10, "Arjun Mehta")
        ]
    );
    assert!(!plan.is_clean());
}

#[test]
fn duplicates_within_the_file_are_found_by_normalised_url() {
    let csv = "First Name,Last Name,LinkedIn URL\n\
               Maya,Lindqvist,https://www.linkedin.com/in/maya-lindqvist-d1\n\
               Arjun,Mehta,https://www.linkedin.com/in/arjun-mehta-d2\n\
               Maya,L.,http://linkedin.com/in/Maya-Lindqvist-D1/\n\
               Maya,Lindqvist,www.linkedin.com/in/maya-lindqvist-d1?utm_source=share\n";
    let plan = plan_import(csv.as_bytes()).unwrap();
    assert_eq!(plan.accepted.len(), 2);
    let duplicate_lines: Vec<u64> = plan.duplicates.iter().map(|(line, _)| *line).collect();
    assert_eq!(duplicate_lines, [4, 5]);
    assert!(
        plan.duplicates
            .iter()
            .all(|(_, url)| url.as_str() == "https://www.linkedin.com/in/maya-lindqvist-d1")
    );
    assert!(plan.is_clean(), "duplicates are not errors");
}

#[test]
fn a_first_or_last_name_alone_is_a_name() {
    let csv = "First Name,Last Name,LinkedIn URL\n\
               Maya,,https://www.linkedin.com/in/maya\n\
               ,Mehta,https://www.linkedin.com/in/mehta\n\
               ,,https://www.linkedin.com/in/nobody\n";
    let plan = plan_import(csv.as_bytes()).unwrap();
    let names: Vec<&str> = plan.accepted.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Maya", "Mehta"]);
    assert_eq!(plan.rejected.len(), 1);
    assert_eq!(plan.rejected[0].line, 4);
    assert_eq!(plan.rejected[0].reason, RowErrorReason::MissingName);
}

#[test]
fn invalid_utf8_rows_are_unreadable_and_the_rest_import() {
    let mut csv =
        b"Full Name,LinkedIn URL\nMaya Lindqvist,https://www.linkedin.com/in/maya\n".to_vec();
    csv.extend_from_slice(b"J\xffrgen,https://www.linkedin.com/in/jurgen\n");
    csv.extend_from_slice(b"Arjun Mehta,https://www.linkedin.com/in/arjun\n");
    let plan = plan_import(&csv).unwrap();
    assert_eq!(plan.accepted.len(), 2);
    assert_eq!(plan.rejected.len(), 1);
    assert_eq!(plan.rejected[0].line, 3);
    assert!(matches!(
        plan.rejected[0].reason,
        RowErrorReason::Unreadable(_)
    ));
}

#[test]
fn files_that_cannot_be_imported_say_why() {
    for (input, expected, why) in [
        ("", ImportError::Empty, "empty file"),
        (
            "Full Name,Title\nMaya,CTO\n",
            ImportError::NoUrlColumn("Full Name, Title".into()),
            "no URL column",
        ),
        (
            "Title,LinkedIn URL\nCTO,https://www.linkedin.com/in/maya\n",
            ImportError::NoNameColumn("Title, LinkedIn URL".into()),
            "no name column",
        ),
    ] {
        assert_eq!(
            plan_import(input.as_bytes()).unwrap_err(),
            expected,
            "{why}"
        );
    }
}

#[test]
fn a_header_only_file_plans_nothing() {
    let plan = plan_import(b"Full Name,LinkedIn URL\n").unwrap();
    assert_eq!(plan, Default::default());
}
