//! The load bench of issue 8: the real `salesdept serve` (release build) on a log of 100,000
//! imported leads, driven over HTTP. Prints the p50/p99 latency of the lead list (a page, a
//! filtered page, a text search) and of one lead with its history, then the subscription lag
//! while people append notes through the API at 1,000 a second: the lead table's lag in events
//! (read from `/metrics`) and the time from a note's 201 until the lead shows it.
//!
//! `cargo bench -p salesdept-server --bench load` (embedded SQLite in a temporary directory).
//! Settings: `LOAD_LEADS` (100000), `LOAD_DATABASE_URL` (e.g. a fresh `postgres://…`
//! database; default: SQLite), `LOAD_RATE` (1000 notes/s), `LOAD_SECONDS` (10).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "load-bench-operator-token-0123456789";
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CHUNK: usize = 10_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn salesdept(dir: &Path, config: &Path, database: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_salesdept"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("SALESDEPT_MASTER_KEY", MASTER_KEY)
        .arg("--config")
        .arg(config)
        .args(["--database", database]);
    command
}

fn write_config(dir: &Path) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agents.yaml"),
    )
    .unwrap();
    std::fs::write(
        config.join("agents.yaml"),
        format!(
            "{shipped}\napi:\n  tokens:\n    - {{user: load, role: operator, token: \"{TOKEN}\"}}\n"
        ),
    )
    .unwrap();
    config
}

/// Imports `leads` generated people in files of 10,000 rows through `salesdept import`.
fn seed(dir: &Path, config: &Path, database: &str, leads: usize) {
    let titles = [
        "CTO",
        "VP Engineering",
        "Head of Partnerships",
        "Founder",
        "Developer Advocate",
        "Head of Developer Marketing",
        "Staff Engineer",
        "Marketing Manager",
    ];
    let started = Instant::now();
    let mut done = 0;
    while done < leads {
        let rows = CHUNK.min(leads - done);
        let path = dir.join(format!("leads-{done}.csv"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(
            file,
            "First Name,Last Name,Title,Company,LinkedIn URL,Industry,Company Size"
        )
        .unwrap();
        for n in done..done + rows {
            writeln!(
                file,
                "Person{n},Surname{},{},Company{},https://www.linkedin.com/in/load-person-{n},Software Development,51-200",
                n % 977,
                titles[n % titles.len()],
                n % 3001
            )
            .unwrap();
        }
        drop(file);
        let output = salesdept(dir, config, database)
            .arg("import")
            .arg(&path)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        done += rows;
        eprintln!(
            "seeded {done} leads ({:.0} leads/s)",
            done as f64 / started.elapsed().as_secs_f64()
        );
    }
    println!(
        "seed: {leads} leads imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn serve(dir: &Path, config: &Path, database: &str) -> (Child, String) {
    let mut child = salesdept(dir, config, database)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(url) = line.strip_prefix("salesdept serving on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, url)
}

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label:<44} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   ({} requests)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let answer = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    answer.json().await.unwrap()
}

/// `requests` GETs of the paths `path(n)` from 4 concurrent clients.
async fn timed(
    client: &reqwest::Client,
    base: &str,
    requests: usize,
    path: impl Fn(usize) -> String,
) -> Vec<Duration> {
    let paths: Vec<String> = (0..requests).map(path).collect();
    let paths = Arc::new(Mutex::new(paths));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, base, paths) = (client.clone(), base.to_owned(), Arc::clone(&paths));
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let Some(path) = paths.lock().unwrap().pop() else {
                    return samples;
                };
                let started = Instant::now();
                get(&client, &format!("{base}{path}")).await;
                samples.push(started.elapsed());
            }
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.unwrap());
    }
    samples
}

fn lag_of(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with("salesdept_subscription_lag_events{subscription=\"leads\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::main]
async fn main() {
    let leads = setting("LOAD_LEADS", 100_000) as usize;
    let rate = setting("LOAD_RATE", 1_000);
    let seconds = setting("LOAD_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let database = std::env::var("LOAD_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("events.sqlite").display()));
    let backend = if database.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    println!("load bench: {leads} leads on {backend}");
    let config = write_config(dir.path());
    seed(dir.path(), &config, &database, leads);

    let started = Instant::now();
    let (child, base) = serve(dir.path(), &config, &database);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    loop {
        let page = get(&client, &format!("{base}/api/leads?limit=1")).await;
        if page["total"].as_u64().unwrap_or(0) >= leads as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "serve: the lead table caught up with the log of {leads} leads {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    let mut ids = Vec::new();
    for offset in (0..leads).step_by((leads / 20).max(1)) {
        let page = get(
            &client,
            &format!("{base}/api/leads?limit=100&order=id&offset={offset}"),
        )
        .await;
        ids.extend(
            page["leads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|lead| lead["lead_id"].as_str().unwrap().to_owned()),
        );
    }
    let ids = Arc::new(ids);
    let pick = {
        let ids = Arc::clone(&ids);
        move |n: usize| ids[(n * 7919) % ids.len()].clone()
    };

    percentiles(
        "GET /api/leads (page of 50, random offset)",
        timed(&client, &base, 1000, |n| {
            format!("/api/leads?limit=50&offset={}", (n * 7919) % leads)
        })
        .await,
    );
    percentiles(
        "GET /api/leads (Speaker, score >= 7)",
        timed(&client, &base, 1000, |n| {
            format!(
                "/api/leads?limit=50&classification=Speaker&min_score=7&offset={}",
                (n * 13) % 500
            )
        })
        .await,
    );
    percentiles(
        "GET /api/leads?q= (text search)",
        timed(&client, &base, 1000, |n| {
            format!("/api/leads?limit=50&q=Company{}", n % 3001)
        })
        .await,
    );
    percentiles(
        "GET /api/leads/{id} (with history)",
        timed(&client, &base, 1000, |n| format!("/api/leads/{}", pick(n))).await,
    );

    // Notes at `rate` a second through the API; the lag sampled meanwhile.
    let lags = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (client, base, lags, stop) = (
            client.clone(),
            base.clone(),
            Arc::clone(&lags),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                if let Some(lag) = lag_of(&text) {
                    lags.lock().unwrap().push(lag);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let visible = Arc::new(Mutex::new(Vec::new()));
    let posted = Arc::new(Mutex::new(Vec::new()));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let load_started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..(rate * seconds) as usize {
        ticker.tick().await;
        let (client, base, id) = (client.clone(), base.clone(), pick(n + 17));
        let (visible, posted) = (Arc::clone(&visible), Arc::clone(&posted));
        tasks.push(tokio::spawn(async move {
            let text = format!("load note {n}");
            let started = Instant::now();
            let answer = client
                .post(format!("{base}/api/leads/{id}/notes"))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"text": text}))
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "note: {}", answer.status());
            let returned = Instant::now();
            posted.lock().unwrap().push(returned - started);
            // One note in 50: the time until the lead table's row shows it.
            if n % 50 == 0 {
                loop {
                    let lead = get(&client, &format!("{base}/api/leads/{id}")).await;
                    // The lead table's row, not the history read from the log.
                    if lead["lead"]["notes"]
                        .as_str()
                        .is_some_and(|notes| notes.contains(&text))
                    {
                        visible.lock().unwrap().push(returned.elapsed());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let achieved = (rate * seconds) as f64 / load_started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    println!("notes appended through the API: {achieved:.0}/s (asked {rate}/s for {seconds} s)");
    percentiles("POST /api/leads/{id}/notes", posted.lock().unwrap().clone());
    percentiles(
        "note visible in GET /api/leads/{id}",
        visible.lock().unwrap().clone(),
    );
    let mut lags = lags.lock().unwrap().clone();
    lags.sort_by(f64::total_cmp);
    if !lags.is_empty() {
        let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
        println!(
            "lead table lag (events behind the head)        p50 {:>7.0}   p99 {:>7.0}   max {:>7.0}   ({} samples; at {achieved:.0}/s, p99 ~ {:.0} ms)",
            at(0.5),
            at(0.99),
            lags.last().unwrap(),
            lags.len(),
            at(0.99) / achieved * 1e3
        );
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut child = child;
    let _ = child.wait();
}
