//! `chorus login` and `chorus play`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use client_lib::decode::{StreamDecoder, WavSink};
use client_lib::origin_api::OriginApi;
use client_lib::player::{self, Output, PlayOptions};
use serde_json::json;
use transport::{Endpoint, Limits};

use crate::origin_cmd::password;

/// Flags of `chorus login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The origin's URL.
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    origin: String,
    /// Account name (password from CHORUS_PASSWORD or a prompt).
    #[arg(long)]
    user: String,
}

/// Flags of `chorus play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The track id.
    track: String,
    /// Where the decoded audio goes: a WAV file, or `-` for stdout (pipe it into any player).
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary as the last line (needs --out FILE: stdout carries audio otherwise).
    #[arg(long)]
    json: bool,
    /// low, normal or high (default: the best the account's tier allows).
    #[arg(long)]
    quality: Option<String>,
    #[command(flatten)]
    listener: ListenerArgs,
}

/// Flags `chorus play` and `chorus gateway` share.
#[derive(Debug, Args)]
pub struct ListenerArgs {
    /// Log in here instead of using the saved session (password from CHORUS_PASSWORD).
    #[arg(long)]
    origin: Option<String>,
    /// Account for --origin.
    #[arg(long, requires = "origin")]
    user: Option<String>,
    /// Local cache cap, e.g. 2G (default: 10% of the free space, 256 MiB to 10 GiB).
    #[arg(long, value_parser = crate::network_cmd::parse_bytes)]
    cache_bytes: Option<u64>,
}

/// Flags of `chorus gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Where to listen for players.
    #[arg(long, default_value = "127.0.0.1:8480")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    listener: ListenerArgs,
    /// Do not share cached chunks with other listeners.
    #[arg(long)]
    no_share: bool,
    /// The network is metered (mobile data): do not upload.
    #[arg(long)]
    metered: bool,
    /// Upload cap for sharing, kbit/s.
    #[arg(long, default_value_t = 2000)]
    upload_kbps: u64,
}

/// Where `chorus login` keeps its session and the client's node key:
/// `$CHORUS_CONFIG_DIR`, else `$XDG_CONFIG_HOME/chorus`, else `~/.config/chorus`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CHORUS_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("chorus"));
    }
    let home = std::env::var_os("HOME").context("no HOME, XDG_CONFIG_HOME or CHORUS_CONFIG_DIR")?;
    Ok(PathBuf::from(home).join(".config").join("chorus"))
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

fn save_session(dir: &Path, origin: &str, user: &str, refresh_token: &str) -> anyhow::Result<()> {
    let body = json!({"origin": origin, "user": user, "refresh_token": refresh_token});
    write_private(&dir.join("session.json"), body.to_string().as_bytes())
}

/// Runs `chorus login`.
pub fn run_login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = password()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let api = OriginApi::new(&args.origin)?;
        let session = api.session(&args.user, &password).await?;
        let dir = config_dir()?;
        save_session(&dir, api.base(), &args.user, &session.refresh_token)?;
        println!(
            "logged in to {} as {}; session kept in {}",
            api.base(),
            args.user,
            dir.join("session.json").display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// An access token: from `--origin/--user` with CHORUS_PASSWORD, or the saved session
/// (whose refresh token rotates and is saved again).
async fn access(args: &PlayArgs, dir: &Path) -> anyhow::Result<(OriginApi, String)> {
    let (api, session) = session(
        args.listener.origin.as_deref(),
        args.listener.user.as_deref(),
        dir,
    )
    .await?;
    Ok((api, session.access_token))
}

async fn session(
    origin: Option<&str>,
    user: Option<&str>,
    dir: &Path,
) -> anyhow::Result<(OriginApi, client_lib::origin_api::Session)> {
    if let Some(user) = user {
        let api = OriginApi::new(origin.unwrap_or("http://127.0.0.1:8470"))?;
        let session = api.session(user, &password()?).await?;
        return Ok((api, session));
    }
    let path = dir.join("session.json");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| {
            format!(
                "no saved session at {}: run `chorus login` first, or pass --origin and --user",
                path.display()
            )
        })?)
        .with_context(|| format!("{} is damaged: run `chorus login` again", path.display()))?;
    let saved_origin = saved["origin"].as_str().context("session without origin")?;
    let user = saved["user"].as_str().context("session without user")?;
    let api = OriginApi::new(origin.unwrap_or(saved_origin))?;
    let session = api
        .refresh(
            saved["refresh_token"]
                .as_str()
                .context("session without token")?,
        )
        .await
        .context("the saved session expired: run `chorus login` again")?;
    save_session(dir, api.base(), user, &session.refresh_token)?;
    Ok((api, session))
}

fn open_cache(
    dir: &Path,
    cache_bytes: Option<u64>,
) -> anyhow::Result<client_lib::cache::ClientCache> {
    let cache_dir = dir.join("cache");
    let cap = cache_bytes.unwrap_or_else(|| client_lib::cache::default_cap(&cache_dir));
    client_lib::cache::ClientCache::open(&cache_dir, cap)
        .with_context(|| format!("opening the cache in {}", cache_dir.display()))
}

/// Runs `chorus gateway` until Ctrl-C or SIGTERM.
pub fn run_gateway(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dir = config_dir()?;
        let identity = transport::keyfile::load_or_create_identity(&dir.join("node.key"))
            .with_context(|| format!("node key in {}", dir.display()))?;
        let (api, session) = session(
            args.listener.origin.as_deref(),
            args.listener.user.as_deref(),
            &dir,
        )
        .await?;
        let cache = std::sync::Arc::new(open_cache(&dir, args.listener.cache_bytes)?);
        let endpoint = Endpoint::bind(&identity, "0.0.0.0:0".parse()?, Limits::default())?;
        let base = api.base().to_string();
        let share = client_lib::serve::ServeConfig {
            enabled: !args.no_share,
            metered: args.metered,
            upload_kbps: Some(args.upload_kbps.max(1)),
            ..client_lib::serve::ServeConfig::default()
        };
        let gateway =
            client_lib::gateway::Gateway::new(api, session, endpoint.clone(), cache, share);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("chorus gateway {}", env!("CARGO_PKG_VERSION"));
        println!("  origin   {base}");
        println!("  http     http://{addr}");
        println!("ready; play http://{addr}/tracks/TRACK_ID in any player; Ctrl-C stops it");
        axum::serve(listener, gateway.router())
            .with_graceful_shutdown(async {
                let _ = crate::origin_cmd::wait_for_shutdown_signal().await;
            })
            .await?;
        endpoint.close();
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `chorus play`.
pub fn run_play(args: PlayArgs) -> anyhow::Result<ExitCode> {
    let to_stdout = args.out.as_os_str() == "-";
    if args.json && to_stdout {
        bail!("--json needs --out FILE: with --out - stdout carries the audio");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let pressed = Instant::now();
        let dir = config_dir()?;
        let identity = transport::keyfile::load_or_create_identity(&dir.join("node.key"))
            .with_context(|| format!("node key in {}", dir.display()))?;
        let (api, access) = access(&args, &dir).await?;
        let grant = api
            .play(&access, &args.track, &identity.node_id(), args.quality.as_deref(), false)
            .await?;
        let endpoint = Endpoint::bind(&identity, "0.0.0.0:0".parse()?, Limits::default())?;
        let decoder = if to_stdout {
            StreamDecoder::start(WavSink::stream(std::io::stdout()), grant.gain_db)?
        } else {
            StreamDecoder::start(WavSink::file(&args.out)?, grant.gain_db)?
        };
        let cache = open_cache(&dir, args.listener.cache_bytes)?;
        let options = PlayOptions {
            cache: Some(std::sync::Arc::new(cache)),
            ..PlayOptions::default()
        };
        let (out, mut outputs) = tokio::sync::mpsc::channel(64);
        let playback = {
            let (endpoint, grant) = (endpoint.clone(), grant.clone());
            tokio::spawn(async move {
                player::play(&endpoint, &grant, Default::default(), options, out).await
            })
        };
        let mut decoder_alive = true;
        while let Some(output) = outputs.recv().await {
            match output {
                Output::Audio(piece) => {
                    if decoder_alive {
                        decoder_alive = tokio::task::block_in_place(|| decoder.push(piece));
                    }
                }
                Output::Event(event) => tracing::info!(?event, "playback"),
                Output::Stats(_) => {}
            }
        }
        let stats = playback.await.context("playback task")??;
        let summary = tokio::task::spawn_blocking(move || decoder.finish())
            .await?
            .map_err(|error| anyhow::anyhow!("decoding: {error}"))?;
        endpoint.close();
        let first_audio_ms = summary
            .first_pcm
            .map(|at| at.duration_since(pressed).as_millis() as u64);
        if args.json {
            println!(
                "{}",
                json!({
                    "first_audio_ms": first_audio_ms,
                    "bytes_origin": stats.bytes_origin,
                    "bytes_peers": stats.bytes_peers + stats.bytes_super_nodes,
                    "bytes_cache": stats.bytes_cache,
                    "stutters": stats.stutters,
                    "duration_ms": summary.duration_ms(),
                })
            );
        } else if !to_stdout {
            println!(
                "played {} ({} ms of audio) to {}: first audio after {} ms, {} KiB from the origin, {} KiB from peers, {} stutters",
                args.track,
                summary.duration_ms(),
                args.out.display(),
                first_audio_ms.unwrap_or(0),
                stats.bytes_origin / 1024,
                (stats.bytes_peers + stats.bytes_super_nodes) / 1024,
                stats.stutters
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
