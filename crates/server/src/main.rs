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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` answers HTTP requests beside the department's work: it gets a worker per core.
    // Every other command is one sequence of steps waiting on the store, whose SQLite
    // connections run on threads of their own; on one thread each wake-up of a store call is a
    // single hand-off instead of also waking idle workers to look for work (a simulated month
    // spent a third of its time switching threads).
    let runtime = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
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
