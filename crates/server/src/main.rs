//! `salesdept`: the command line of the AI sales department.

mod adapters;
mod cli;
mod commands;
mod config;
mod database;
mod http;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = telemetry::init();
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
    // Every command, `serve` after its graceful shutdown included, flushes its last spans.
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(commands::exit_code(&error))
        }
    }
}
