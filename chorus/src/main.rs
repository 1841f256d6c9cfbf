//! `chorus`: the one user-facing binary. Thin over the library crates: each subcommand parses
//! its flags and calls into them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod alloc;
mod bench;
mod devnet;
mod logging;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;
mod network_cmd;
mod origin_cmd;
mod play_cmd;
mod sim_cmd;
mod sim_scaling;
mod validate_cmd;

/// Chorus: peer-assisted music streaming.
#[derive(Debug, Parser)]
#[command(name = "chorus", version, about, long_about = None)]
struct Cli {
    /// Trust the certificate authorities in this PEM file besides the system's, for every
    /// HTTPS connection to an origin (a private CA, the devnet's). Also CHORUS_CA_CERT.
    #[arg(long, global = true, value_name = "PEM")]
    ca_cert: Option<std::path::PathBuf>,
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
    /// Run an origin: catalog and account API, ingest, play authorization, chunk serving over
    /// HTTP and QUIC. Works with no flags (data in ./chorus-origin, loopback ports).
    Origin(origin_cmd::OriginArgs),
    /// Upload audio files to an origin as an artist, with a progress bar per file.
    Ingest(origin_cmd::IngestArgs),
    /// Run a tracker: tells clients who holds what, under licensing and region rules. Works
    /// with no flags when an origin runs on this machine (it reads the origin's key).
    Tracker(network_cmd::TrackerArgs),
    /// Run a super-node: caches popular renditions (ciphertext only) within --cache-bytes and
    /// serves them to licensed peers. Needs a super-node account on the origin.
    Node(network_cmd::NodeArgs),
    /// Log in to an origin; the session is kept in the user's config directory.
    Login(play_cmd::LoginArgs),
    /// Play a track or a queue (shuffle, repeat): fetched from the origin and peers (or played
    /// from offline downloads), verified, decrypted and decoded, written as WAV to a file or
    /// stdout.
    Play(play_cmd::PlayArgs),
    /// Download tracks for offline play (30-day licenses, renewed when online); list, renew
    /// or remove downloads.
    Download(play_cmd::DownloadArgs),
    /// A local HTTP server that serves any track, decrypted, with byte ranges, so unmodified
    /// players (ffmpeg, mpv, VLC, a browser) play P2P-assisted audio from it, and the
    /// OpenSubsonic API at /rest for Subsonic apps (DSub, Symfonium, Feishin…).
    Gateway(play_cmd::GatewayArgs),
    /// App passwords and API keys for Subsonic apps: make one per app (shown once), list
    /// them, revoke one. Uses the saved session (`chorus login`).
    AppPassword {
        #[command(subcommand)]
        command: play_cmd::AppPasswordCommand,
    },
    /// The whole network on this machine in one command: origin, tracker, super-nodes and a
    /// crowd of listeners streaming real audio over QUIC through emulated WAN links, with a
    /// live view and (with --duration D --json) a JSON summary.
    Devnet(devnet::DevnetArgs),
    /// Simulate a network of up to a million peers running the real scheduler, tracker and
    /// super-node cache code over a flow-level network model: a scenario (TOML), a seed, a
    /// progress bar, CSV and SVG plots in --out, a JSON summary with --json.
    Sim(sim_cmd::SimArgs),
    /// The devnet and the simulator on the same crowd and seed, side by side: origin share,
    /// first audio p50 and p90 and stutter rate, their differences, and whether each agrees
    /// within 15% (or 2 points).
    Validate(validate_cmd::ValidateArgs),
    /// TLS for a private deployment: `chorus tls init` makes a certificate authority and a
    /// server certificate for `chorus origin --tls-cert/--tls-key`; clients take --ca-cert.
    Tls {
        #[command(subcommand)]
        command: origin_cmd::TlsCommand,
    },
    /// Operator actions on an origin's data directory (run with the origin stopped).
    Admin {
        #[command(subcommand)]
        command: origin_cmd::AdminCommand,
    },
    /// Print the origin's HTTP contract: the OpenAPI 3.1 document every origin serves at
    /// /v1/openapi.json, generated from its routes (the repository keeps a copy in
    /// docs/openapi.json).
    Openapi,
}

fn main() -> ExitCode {
    logging::init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Roles that keep secrets on disk (keys, sessions, licenses, databases) create every file
/// private to the user: 0600 files, 0700 directories.
fn private_files() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Origin(_)
            | Command::Admin { .. }
            | Command::Tracker(_)
            | Command::Node(_)
            | Command::Login(_)
            | Command::AppPassword { .. }
            | Command::Download(_)
            | Command::Gateway(_)
            | Command::Devnet(_)
            | Command::Tls { .. }
    ) {
        private_files();
    }
    if let Some(path) = &cli.ca_cert {
        transport::https::trust_also(path);
    }
    match cli.command {
        Command::Bench { which } => bench::run(which),
        Command::Origin(args) => origin_cmd::run_origin(args),
        Command::Ingest(args) => origin_cmd::run_ingest(args),
        Command::Admin { command } => origin_cmd::run_admin(command),
        Command::Tls { command } => origin_cmd::run_tls(command),
        Command::Tracker(args) => network_cmd::run_tracker(args),
        Command::Login(args) => play_cmd::run_login(args),
        Command::Play(args) => play_cmd::run_play(args),
        Command::Download(args) => play_cmd::run_download(args),
        Command::Gateway(args) => play_cmd::run_gateway(args),
        Command::AppPassword { command } => play_cmd::run_app_password(command),
        Command::Node(args) => network_cmd::run_node(args),
        Command::Devnet(args) => devnet::run(args),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Validate(args) => validate_cmd::run(args),
        Command::Openapi => {
            println!("{}", origin::http::document_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}
