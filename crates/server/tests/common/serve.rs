//! Running the real `salesdept serve --demo` from a test: its configuration, its start (the
//! address it prints) and a clean stop on SIGTERM. Not every test binary uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shipped `config/agents.yaml` plus one viewer token, written under `dir/config`.
pub fn write_config(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agents.yaml"),
    )
    .unwrap();
    std::fs::write(
        config.join("agents.yaml"),
        format!(
            "{shipped}\napi:\n  tokens:\n    - {{user: tester, role: viewer, token: \"{token}\"}}\n"
        ),
    )
    .unwrap();
    config
}

/// Starts `serve --demo` in `dir` (on `database`, or the embedded default) and returns it with
/// its base URL.
pub fn start(
    dir: &std::path::Path,
    config: &std::path::Path,
    database: Option<&str>,
) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_salesdept"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .args(["--config"])
        .arg(config);
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(url) = line.strip_prefix("salesdept serving on ") {
            break url.trim().to_owned();
        }
    };
    (child, url)
}

/// SIGTERM, then a clean exit (status 0) within 30 s.
pub fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}
