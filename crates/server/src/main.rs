//! `salesdept`: the command line of the AI sales department.

mod adapters;
mod cli;
mod commands;
mod config;
mod database;
mod http;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Command::Migrate => commands::migrate::run(&cli.global).await,
        Command::Log(log) => commands::log::run(&cli.global, log).await,
        Command::Config(cli::ConfigCommand::Check) => commands::config::check(&cli.global),
        Command::Forget(args) => commands::forget::run(&cli.global, args).await,
        Command::Classify(command) => commands::classify::run(&cli.global, command).await,
        Command::Replay(replay) => commands::replay::run(&cli.global, replay).await,
        Command::Audit(args) => commands::audit::run(&cli.global, args).await,
        Command::Import(args) => commands::import::run(&cli.global, args).await,
        Command::Simulate(args) => commands::simulate::run(&cli.global, args).await,
        Command::Serve(args) => commands::serve::run(&cli.global, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(commands::exit_code(&error))
        }
    }
}

/// Logs: text on stderr (stdout is for the command's output), or with
/// `SALESDEPT_LOG_FORMAT=json` one JSON object per line on stdout, for a log collector.
/// Level from `RUST_LOG`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // A command's refusal (a duplicate URL, a lead already stopped) is an expected answer
        // that the caller handles; the handler's span logs it as an error, so it is hidden by
        // default.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,salesdept_events::domain::handler=off")
        });
    let json = std::env::var("SALESDEPT_LOG_FORMAT").is_ok_and(|format| format == "json");
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        logs.json()
            .with_current_span(true)
            .with_writer(std::io::stdout)
            .init();
    } else {
        logs.with_writer(std::io::stderr).init();
    }
}
