//! Helpers shared by the binary's end-to-end tests.

use std::process::Command;

pub mod serve;

/// A database of the calling test's own on the test PostgreSQL server (`DATABASE_URL`, which
/// the README's test command sets), dropped when this value is.
pub struct ScratchDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub fn create(prefix: &str) -> Self {
        let server = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL must name the test PostgreSQL server (the README's test command sets it)",
        );
        let name = format!("{prefix}_{}", std::process::id());
        let base = server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        let database = Self { server, name, url };
        database.admin(&format!("DROP DATABASE IF EXISTS {}", database.name));
        database.admin(&format!("CREATE DATABASE {}", database.name));
        database
    }

    fn admin(&self, sql: &str) {
        let status = Command::new("psql")
            .args([&self.server, "-q", "-c", sql])
            .status()
            .expect("psql");
        assert!(status.success(), "psql {sql}");
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Best effort, and never a second panic while a failing test unwinds.
        let _ = Command::new("psql")
            .args([&self.server, "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .status();
    }
}
