//! `chorus`: the one user-facing binary. Thin over the library crates: each subcommand parses
//! its flags and calls into them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;

/// Chorus: peer-assisted music streaming.
#[derive(Debug, Parser)]
#[command(name = "chorus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine: throughput of the chunk pipeline and of the QUIC data plane,
    /// each against its bare primitives in the same run (like `openssl speed`).
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bench { which } => bench::run(which),
    }
}
