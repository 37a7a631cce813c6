//! Malformed CSV imports through the built binary, as a table of (file bytes, what is wrong,
//! what the answer must say): each is refused with a clear message naming the line where a
//! row is at fault, and the event log holds no event afterwards (nothing half-imported).
//! Files that are unusual but readable (a byte-order mark, a repeated header) import.

use std::path::Path;
use std::process::{Command, Output};

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn salesdept(dir: &Path, database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salesdept"))
        .current_dir(dir)
        .args(args)
        .args(["--database", database])
        .env_remove("DATABASE_URL")
        .env("SALESDEPT_MASTER_KEY", MASTER_KEY)
        .output()
        .expect("run salesdept")
}

fn event_count(dir: &Path, database: &str) -> usize {
    let output = salesdept(
        dir,
        database,
        &["log", "read", "--json", "--limit", "100000"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with('{'))
        .count()
}

const HEADER: &str = "Full Name,LinkedIn URL,Title\n";

#[test]
fn malformed_imports_are_refused_whole_with_the_line_at_fault() {
    let huge_about = format!(
        "Full Name,LinkedIn URL,About\nAda,https://www.linkedin.com/in/ada,{}\n",
        "x".repeat(2_000_000)
    );
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (Vec::new(), "an empty file", "the file is empty"),
        (
            b"Full Name,Title\nAda,CTO\n".to_vec(),
            "no URL column",
            "no LinkedIn URL column (headers: Full Name, Title)",
        ),
        (
            b"LinkedIn URL,Title\nhttps://www.linkedin.com/in/ada,CTO\n".to_vec(),
            "no name column",
            "no name column",
        ),
        (
            [HEADER.as_bytes(), b"Ada \xe9,https://www.linkedin.com/in/ada,CTO\n"].concat(),
            "Latin-1, not UTF-8",
            "line 2: rejected: unreadable row: not valid UTF-8",
        ),
        (
            format!(
                "{HEADER}Bob,https://www.linkedin.com/in/bob,CTO\n\"Ada,https://www.linkedin.com/in/ada,CTO\n"
            )
            .into_bytes(),
            "an unterminated quote swallowing the rest of the file",
            "line 3: rejected: no LinkedIn URL",
        ),
        (
            format!("{HEADER}Ada,https://example.com/in/ada,CTO\n").into_bytes(),
            "not a LinkedIn URL",
            "line 2: rejected: invalid LinkedIn URL",
        ),
        (
            huge_about.into_bytes(),
            "a 2 MB field",
            "line 2: rejected: the About field is longer than 10000 bytes",
        ),
    ];
    let dir = tempfile::TempDir::new().unwrap();
    for (index, (bytes, what, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{index}.csv"));
        std::fs::write(&file, bytes).unwrap();
        let database = format!(
            "sqlite://{}",
            dir.path().join(format!("case-{index}.sqlite")).display()
        );
        let output = salesdept(dir.path(), &database, &["import", file.to_str().unwrap()]);
        let answer = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{what}: accepted: {answer}");
        assert!(answer.contains(expected), "{what}: {answer}");
        assert!(answer.contains("nothing imported"), "{what}: {answer}");
        assert!(answer.len() < 2_000, "{what}: the answer repeats the input");
        assert_eq!(
            event_count(dir.path(), &database),
            0,
            "{what}: events stored"
        );
    }
}

#[test]
fn a_byte_order_mark_and_a_repeated_header_still_import() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            [
                "\u{feff}".as_bytes(),
                HEADER.as_bytes(),
                b"Ada,https://www.linkedin.com/in/ada,CTO\n",
            ]
            .concat(),
            "a UTF-8 byte-order mark",
        ),
        (
            b"Full Name,LinkedIn URL,LinkedIn URL\nAda,https://www.linkedin.com/in/ada,https://www.linkedin.com/in/other\n"
                .to_vec(),
            "a repeated URL column (the first wins)",
        ),
    ];
    let dir = tempfile::TempDir::new().unwrap();
    for (index, (bytes, what)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{index}.csv"));
        std::fs::write(&file, bytes).unwrap();
        let database = format!(
            "sqlite://{}",
            dir.path().join(format!("case-{index}.sqlite")).display()
        );
        let output = salesdept(
            dir.path(),
            &database,
            &["import", file.to_str().unwrap(), "--rules"],
        );
        let answer = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{what}: {answer}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            answer.contains("imported 1 of 1 valid row(s)"),
            "{what}: {answer}"
        );
        let log = salesdept(dir.path(), &database, &["log", "read", "--json"]);
        let log = String::from_utf8_lossy(&log.stdout);
        assert!(log.contains("lead_discovered"), "{what}: {log}");
        assert!(
            !log.contains("/in/other"),
            "{what}: the second URL column was read"
        );
    }
}
