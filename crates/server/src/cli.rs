//! The command line's shape (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// An AI sales department: Lead Finder, Outreach and Sales Manager agents on an event log.
#[derive(Debug, Parser)]
#[command(name = "salesdept", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Event store: postgres://… or sqlite://…; else DATABASE_URL; else the embedded SQLite
    /// file data/salesdept.sqlite.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Configuration directory (agents.yaml, llm.yaml).
    #[arg(long, global = true, default_value = "config")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations.
    Migrate,
    /// Low-level access to the event log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Erase a person's personal data (crypto-shredding): their events stay, unreadable.
    Forget(ForgetArgs),
    /// Run the configured classifier on a JSON-lines file, one JSON line out per line in.
    #[command(subcommand)]
    Classify(ClassifyCommand),
    /// Rebuild a projection from the event log.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// History from the log: events in a time range, one lead's history, time travel.
    Audit(AuditArgs),
    /// Import an exported prospect list (LinkedIn, Sales Navigator, Dripify, Clay, Apollo…
    /// CSV): every valid row becomes a lead once, classified and scored.
    Import(ImportArgs),
    /// Run the whole department in simulated time on the sandbox network and summarise the log.
    Simulate(SimulateArgs),
    /// Run the service: the department on the wall clock and the HTTP API.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A fast demo schedule: the first search at once, Outreach and the inbox every minute
    /// around the clock.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file (comma- or semicolon-separated, a header line naming the columns).
    pub file: PathBuf,
    /// Where the file came from (recorded on each lead as its import format).
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Import the valid rows even when others are rejected (by default a file with a
    /// rejected row imports nothing).
    #[arg(long)]
    pub skip_invalid: bool,
    /// Read and check the file, print the report, store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Classify with the rules engine even when an LLM is configured.
    #[arg(long)]
    pub rules: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Who imports: human:NAME (default: the OS user).
    #[arg(long)]
    pub actor: Option<String>,
}

/// `simulate --days N [--seed S] [--accounts K] [--json]`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Simulated days to run.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Seeds the sandbox network and every draw in it: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sending accounts, in priority order: the configured ones first, then reserves.
    #[arg(long, default_value_t = 2)]
    pub accounts: u32,
    /// People in the sandbox network.
    #[arg(long, default_value_t = 20_000)]
    pub network_size: u32,
    /// The simulated start (RFC 3339 or a date; default Monday 2026-01-05, 00:00 UTC).
    #[arg(long)]
    pub start: Option<String>,
    /// Where the run's files go (mail outbox, the Sheet's CSV and, without --database, the
    /// SQLite log); default data/simulate/seed-<S>-<wall-clock time>.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// Skip the end-of-run invariant checks (they rebuild every projection).
    #[arg(long)]
    pub no_check: bool,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClassifyCommand {
    /// Classify prospects: Speaker / Sponsor / Other, confidence, quality score, rationale.
    Profiles(ClassifyFileArgs),
    /// Analyse replies: sentiment, intent, confidence.
    Replies(ClassifyFileArgs),
}

#[derive(Debug, Args)]
pub struct ClassifyFileArgs {
    /// A JSON-lines file in the fixtures' format (labels optional); `-` reads stdin.
    pub file: PathBuf,
    /// Use the rules engine even when an LLM is configured.
    #[arg(long)]
    pub rules: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Rewrite the Google Sheet (or the CSV file, the default) from the log, after reading
    /// back what people typed into it; rebuilds the lead → row mapping.
    Sheet,
    /// Rebuild the lead table into a new table and swap it in atomically.
    Leads,
}

/// `audit [--from T] [--to T] [--actor A] [--type T] [--json]`, or `audit lead …`, or
/// `audit table --at T`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Events that occurred at or after this time (RFC 3339, or a date: its start).
    #[arg(long)]
    pub from: Option<String>,
    /// Events that occurred at or before this time (RFC 3339, or a date: its end).
    #[arg(long)]
    pub to: Option<String>,
    /// Only events by this actor: agent:NAME, human:NAME or system:NAME.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only events of this type, e.g. message_sent.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// One JSON object per line: the columns of `log read --json` plus `summary`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// One lead's whole history, or its row as of a time (--at).
    Lead(AuditLeadArgs),
    /// The whole lead table as it was at a time.
    Table(AuditTableArgs),
}

#[derive(Debug, Args)]
pub struct AuditLeadArgs {
    /// The lead's id, or the person's LinkedIn profile URL.
    pub lead: String,
    /// Print the lead's row as it was at this time (RFC 3339, or a date: its end) instead.
    #[arg(long)]
    pub at: Option<String>,
    /// JSON: one object per event per line (or the row as one object with --at).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditTableArgs {
    /// The time to look at (RFC 3339, or a date: its end).
    #[arg(long)]
    pub at: String,
    /// JSON lines (one row per line) instead of CSV with the Sheet's headers.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The lead's id, or the person's LinkedIn profile URL.
    pub lead: String,
    /// Who asks: human:NAME (default: the OS user).
    #[arg(long)]
    pub actor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration directory; print the effective settings as YAML.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Append one event to a stream.
    Append(AppendArgs),
    /// Read events, from the whole log in order or from one stream.
    Read(ReadArgs),
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Stream id, e.g. lead-<uuid>, account-<id>, department.
    #[arg(long)]
    pub stream: String,
    /// Event type, snake_case, e.g. note_added.
    #[arg(long = "type")]
    pub event_type: String,
    /// The event body as JSON.
    #[arg(long)]
    pub data: String,
    /// any, none (the stream must not exist) or the stream's current version.
    #[arg(long, default_value = "any")]
    pub expected_version: String,
    /// Idempotency key: appending the same event id twice stores it once.
    #[arg(long)]
    pub event_id: Option<uuid::Uuid>,
    /// Who appends: agent:NAME, human:NAME or system:NAME (default: the OS user as a human).
    #[arg(long)]
    pub actor: Option<String>,
    /// Extra metadata fields as a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Print the stored event as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Read only this stream (in stream order); else the whole log in global order.
    #[arg(long)]
    pub stream: Option<String>,
    /// Continue after this checkpoint (as printed by a previous read); whole log only.
    #[arg(long, conflicts_with = "stream")]
    pub after: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// One JSON object per line: every column of the events table, plus `checkpoint`.
    #[arg(long)]
    pub json: bool,
}
