//! `chorus login` and `chorus play`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use api::client::OriginApi;
use clap::Args;
use client_lib::decode::{StreamDecoder, WavSink};
use client_lib::player::PlayOptions;
use serde_json::json;
use transport::{Endpoint, Limits};

use crate::origin_cmd::password;

/// Flags of `chorus login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The origin's URL (https://…; http:// only to loopback), or NODE_ID@URL to pin its key
    /// (otherwise the key seen at this log-in is pinned and kept with the session).
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    origin: String,
    /// Account name (password from CHORUS_PASSWORD or a prompt).
    #[arg(long)]
    user: String,
}

/// Flags of `chorus play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The track id, or several: a queue, played in order into one output.
    #[arg(
        required_unless_present_any = ["search", "resume"],
        conflicts_with_all = ["search", "resume"]
    )]
    tracks: Vec<String>,
    /// Play the best match of a catalog search instead (typos allowed), e.g.
    /// --search "bohemian rhapsody".
    #[arg(long, conflicts_with = "resume")]
    search: Option<String>,
    /// Pick up where this account last stopped, on any device: the saved queue from the
    /// saved track, at the saved position.
    #[arg(long, conflicts_with = "start")]
    resume: bool,
    /// The name this device saves its place under, 1 to 100 characters (default: "chorus on
    /// HOSTNAME").
    #[arg(long, value_parser = parse_device)]
    device: Option<String>,
    /// Where the decoded audio goes: a WAV file, or `-` for stdout (pipe it into any player).
    #[arg(long, required_unless_present = "sound", conflicts_with = "sound")]
    out: Option<PathBuf>,
    /// Play to the sound card (needs a build with the `sound` feature).
    #[arg(long)]
    sound: bool,
    /// Print a JSON summary as the last line (not with --out -: stdout carries audio then).
    #[arg(long)]
    json: bool,
    /// low, normal or high (default: adaptive, from the measured rate, up to what the
    /// account's tier allows).
    #[arg(long)]
    quality: Option<String>,
    /// Shuffle the queue.
    #[arg(long)]
    shuffle: bool,
    /// off, all or one. With all or one the queue never ends by itself: Ctrl-C stops it.
    #[arg(long, default_value = "off")]
    repeat: client_lib::queue::Repeat,
    /// Seed of the shuffle (default: from the clock); the same seed plays the same order.
    #[arg(long)]
    seed: Option<u64>,
    /// Start the first track this many seconds in (e.g. 90, or 1:30).
    #[arg(long, value_parser = parse_position)]
    start: Option<u64>,
    /// Fetch the origin's chunks over HTTPS through the signed chunk URLs the origin hands
    /// out (its `--public-url`: a CDN edge, cached) instead of over its QUIC endpoint; for
    /// networks that block UDP. Peers are still asked over QUIC.
    #[arg(long)]
    chunks_over_https: bool,
    #[command(flatten)]
    listener: ListenerArgs,
}

/// Flags of `chorus download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Tracks to download for offline play.
    tracks: Vec<String>,
    /// low, normal or high (default: the best the account's tier allows).
    #[arg(long)]
    quality: Option<String>,
    /// List the downloads and when their offline licenses expire.
    #[arg(long)]
    list: bool,
    /// Delete these downloads instead.
    #[arg(long)]
    remove: bool,
    /// Renew the offline licenses that expire within a week (also done by `chorus play`).
    #[arg(long)]
    renew: bool,
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
    /// Do not share cached chunks with other listeners (sharing is on by default).
    #[arg(long)]
    no_share: bool,
    /// The network is metered (mobile data): do not upload.
    #[arg(long)]
    metered: bool,
    /// Upload cap for sharing, kbit/s.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    upload_kbps: u64,
}

impl ListenerArgs {
    /// The sharing settings these flags ask for.
    fn share(&self) -> client_lib::serve::ServeConfig {
        client_lib::serve::ServeConfig {
            enabled: !self.no_share,
            metered: self.metered,
            upload_kbps: Some(self.upload_kbps),
            ..client_lib::serve::ServeConfig::default()
        }
    }
}

/// Flags of `chorus gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Where to listen for players. Loopback by default. On any other address (a household:
    /// `--listen 0.0.0.0:4533`) Subsonic apps log in with their own app passwords, and
    /// /tracks needs --auth.
    #[arg(long, default_value = "127.0.0.1:8480")]
    listen: std::net::SocketAddr,
    /// Require HTTP Basic authentication as this user, with the password from
    /// CHORUS_GATEWAY_PASSWORD (players take http://USER:PASSWORD@HOST/tracks/ID).
    #[arg(long)]
    auth: Option<String>,
    /// A host name players use for this gateway (besides IP addresses and localhost);
    /// requests naming any other host are refused (DNS rebinding). Repeatable.
    #[arg(long = "host")]
    hosts: Vec<String>,
    #[command(flatten)]
    listener: ListenerArgs,
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
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    transport::keyfile::write_private(path, contents)
        .with_context(|| format!("writing {}", path.display()))
}

/// Keeps the session: the origin, its key pinned at log-in, the user and the refresh token.
fn save_session(
    dir: &Path,
    api: &OriginApi,
    user: &str,
    refresh_token: &str,
) -> anyhow::Result<()> {
    let body = json!({
        "origin": api.base(),
        "origin_id": api.pinned().map(|node| node.to_hex()),
        "user": user,
        "refresh_token": refresh_token,
    });
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
        save_session(&dir, &api, &args.user, &session.refresh_token)?;
        println!(
            "logged in to {} as {}; origin key {} pinned; session kept in {}",
            api.base(),
            args.user,
            api.pinned()
                .map(|node| node.to_string())
                .unwrap_or_default(),
            dir.join("session.json").display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// An access token: from `--origin/--user` with CHORUS_PASSWORD, or the saved session
/// (whose refresh token rotates and is saved again).
async fn access(listener: &ListenerArgs, dir: &Path) -> anyhow::Result<(OriginApi, String)> {
    let (api, session) = session(listener.origin.as_deref(), listener.user.as_deref(), dir).await?;
    Ok((api, session.access_token))
}

fn offline_store(dir: &Path) -> client_lib::offline::OfflineStore {
    client_lib::offline::OfflineStore::new(&dir.join("offline"))
}

fn when(ms: u64) -> String {
    let now = client_lib::player::unix_now().0;
    if ms <= now {
        format!("expired {} h ago", (now - ms) / 3_600_000)
    } else {
        let hours = (ms - now) / 3_600_000;
        format!("expires in {} d {} h", hours / 24, hours % 24)
    }
}

/// Runs `chorus download`.
pub fn run_download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let dir = config_dir()?;
    let store = offline_store(&dir);
    if args.list {
        let list = store.list()?;
        if list.is_empty() {
            println!("no downloads");
        }
        for info in list {
            println!(
                "{}  {:<6}  {:>6.1} MiB  {:>4} s  {}",
                info.track_id,
                info.quality.as_str(),
                info.bytes as f64 / (1024.0 * 1024.0),
                info.duration_ms / 1000,
                when(info.expires_at_ms)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.remove {
        for track in &args.tracks {
            if store.remove(track)? {
                println!("removed {track}");
            } else {
                println!("{track} was not downloaded");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.tracks.is_empty() && !args.renew {
        bail!("name tracks to download, or pass --list, --renew or --remove TRACK");
    }
    let quality = args.quality.as_deref().map(parse_quality).transpose()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let identity = transport::keyfile::load_or_create_identity(&dir.join("node.key"))
            .with_context(|| format!("node key in {}", dir.display()))?;
        let (api, access) = access(&args.listener, &dir).await?;
        let endpoint = Endpoint::bind(&identity, "0.0.0.0:0".parse()?, Limits::default())?;
        let cache = std::sync::Arc::new(open_cache(&dir, args.listener.cache_bytes)?);
        let mut failed = 0;
        for track in &args.tracks {
            match client_lib::offline::download(
                &endpoint,
                &api,
                &access,
                track,
                quality,
                &store,
                Some(cache.clone()),
            )
            .await
            {
                Ok(info) => println!(
                    "downloaded {} ({}, {:.1} MiB, {} s): {}",
                    info.track_id,
                    info.quality.as_str(),
                    info.bytes as f64 / (1024.0 * 1024.0),
                    info.duration_ms / 1000,
                    when(info.expires_at_ms)
                ),
                Err(error) => {
                    failed += 1;
                    eprintln!("chorus download: {track}: {error:#}");
                }
            }
        }
        if args.renew {
            let now = client_lib::player::unix_now().0;
            for (track, result) in
                client_lib::offline::renew_due(&endpoint, &api, &access, &store, now).await
            {
                match result {
                    Ok(expires) => println!("renewed {track}: {}", when(expires)),
                    Err(error) => {
                        failed += 1;
                        eprintln!("chorus download: renewing {track}: {error:#}");
                    }
                }
            }
        }
        endpoint.close();
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

async fn session(
    origin: Option<&str>,
    user: Option<&str>,
    dir: &Path,
) -> anyhow::Result<(OriginApi, api::client::Session)> {
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
    let same_origin = origin.is_none() || api.base() == saved_origin.trim_end_matches('/');
    if same_origin && let Some(pinned) = saved["origin_id"].as_str() {
        let pinned = pinned
            .parse()
            .with_context(|| format!("{} is damaged: run `chorus login` again", path.display()))?;
        api.pin(pinned)?;
    }
    let session = api
        .refresh(
            saved["refresh_token"]
                .as_str()
                .context("session without token")?,
        )
        .await
        .context("the saved session expired: run `chorus login` again")?;
    save_session(dir, &api, user, &session.refresh_token)?;
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
    let access = gateway_access(&args)?;
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
        let share = args.listener.share();
        let gateway =
            client_lib::gateway::Gateway::new(api, session, endpoint.clone(), cache, share);
        gateway.keep_web_downloads_in(dir.join("web-downloads"));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("chorus gateway {}", env!("CARGO_PKG_VERSION"));
        println!("  origin   {base}");
        println!("  http     http://{addr}");
        let shutdown = crate::origin_cmd::ShutdownSignal::listen()?;
        println!("  subsonic http://{addr} (OpenSubsonic at /rest: log in with an app password)");
        println!("  web      http://{addr}/ (the web player: sign in with your Chorus account)");
        if access.tracks_open {
            println!("ready; play http://{addr}/tracks/TRACK_ID in any player; Ctrl-C stops it");
        } else {
            println!(
                "ready; /tracks is closed on a shared address without --auth; Ctrl-C stops it"
            );
        }
        axum::serve(listener, gateway.router(access.clone()))
            .with_graceful_shutdown(async {
                let _ = shutdown.wait().await;
            })
            .await?;
        endpoint.close();
        Ok(ExitCode::SUCCESS)
    })
}

/// `chorus app-password`.
#[derive(Debug, clap::Subcommand)]
pub enum AppPasswordCommand {
    /// Make an app password (or, with --api-key, an API key) for one app; it is shown once.
    Create {
        /// What it is for, e.g. "Symfonium on my phone".
        name: String,
        /// An API key (OpenSubsonic's apiKey) instead of a password.
        #[arg(long)]
        api_key: bool,
    },
    /// List the app passwords and API keys (never their secrets).
    List,
    /// Revoke one by id: the apps using it are logged out.
    Revoke {
        /// Its id, from `list`.
        id: String,
    },
}

/// Runs `chorus app-password`.
pub fn run_app_password(command: AppPasswordCommand) -> anyhow::Result<ExitCode> {
    use api::accounts::{AppCredentialCreated, AppCredentials, CredentialKind, NewAppCredential};
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dir = config_dir()?;
        let (api, session) = session(None, None, &dir).await?;
        let access = session.access_token.as_str();
        match command {
            AppPasswordCommand::Create { name, api_key } => {
                let kind = if api_key {
                    CredentialKind::ApiKey
                } else {
                    CredentialKind::AppPassword
                };
                let made: AppCredentialCreated = api
                    .send_as(
                        reqwest::Method::POST,
                        access,
                        "/v1/me/app-passwords",
                        Some(&NewAppCredential {
                            name,
                            kind: Some(kind),
                        }),
                    )
                    .await
                    .context("making an app password")?;
                println!("id       {}", made.id);
                println!("name     {}", made.name);
                if let Some(password) = made.password {
                    println!("password {password}");
                    println!("In the app: the server is this network's gateway (chorus gateway),");
                    println!("the user is your Chorus username and the password the one above.");
                }
                if let Some(key) = made.api_key {
                    println!("api key  {key}");
                }
                println!(
                    "It is shown only now; `chorus app-password revoke {}` ends it.",
                    made.id
                );
            }
            AppPasswordCommand::List => {
                let list: AppCredentials = api
                    .get_as(access, "/v1/me/app-passwords")
                    .await
                    .context("listing app passwords")?;
                if list.items.is_empty() {
                    println!("no app passwords or API keys yet: `chorus app-password create NAME`");
                }
                for item in list.items {
                    let kind = match item.kind {
                        CredentialKind::AppPassword => "password",
                        CredentialKind::ApiKey => "api key",
                    };
                    println!("{}  {kind:<8}  {}", item.id, item.name);
                }
            }
            AppPasswordCommand::Revoke { id } => {
                if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    bail!("{id:?} is not an app password id (16 hex characters, from `list`)");
                }
                api.send_as::<serde_json::Value, ()>(
                    reqwest::Method::DELETE,
                    access,
                    &format!("/v1/me/app-passwords/{id}"),
                    None,
                )
                .await
                .with_context(|| format!("revoking {id}"))?;
                println!("revoked {id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Who may use the gateway: a public listen address needs credentials (it decrypts with
/// the user's licenses).
fn gateway_access(args: &GatewayArgs) -> anyhow::Result<client_lib::gateway::Access> {
    let basic = match &args.auth {
        Some(user) => {
            let password = std::env::var("CHORUS_GATEWAY_PASSWORD")
                .context("--auth needs the password in CHORUS_GATEWAY_PASSWORD")?;
            if password.len() < 8 {
                bail!("CHORUS_GATEWAY_PASSWORD must be at least 8 characters");
            }
            Some((user.clone(), password))
        }
        None => None,
    };
    // Reachable from other machines without --auth, only the Subsonic API is open (each app
    // logs in with its own app password); /tracks, which would play as this gateway's user,
    // is closed.
    let tracks_open = args.listen.ip().is_loopback() || basic.is_some();
    Ok(client_lib::gateway::Access {
        tracks_open,
        host_names: args
            .hosts
            .iter()
            .map(|host| host.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        basic,
    })
}

/// One track of a `chorus play` run.
#[derive(Debug, Default)]
struct TrackRecord {
    track_id: String,
    quality: String,
    prefetched: bool,
    started: Option<Instant>,
    gain_db: f64,
    first_pcm: Option<Instant>,
    first_audio_ms: Option<u64>,
    stats: client_lib::scheduler::PlayStats,
    duration_ms: u64,
    skipped: bool,
    error: Option<String>,
}

/// `SECONDS`, `M:SS` or `H:MM:SS` → milliseconds.
fn parse_device(text: &str) -> Result<String, String> {
    let length = text.trim().chars().count();
    if (1..=100).contains(&length) {
        Ok(text.trim().to_string())
    } else {
        Err("a device name is 1 to 100 characters".into())
    }
}

fn parse_position(text: &str) -> Result<u64, String> {
    let mut seconds = 0f64;
    for part in text.split(':') {
        let value: f64 = part
            .parse()
            .ok()
            .filter(|value: &f64| value.is_finite() && *value >= 0.0)
            .ok_or_else(|| format!("{text:?}: expected seconds, M:SS or H:MM:SS"))?;
        seconds = seconds * 60.0 + value;
    }
    if seconds > 24.0 * 3600.0 {
        return Err(format!("{text:?}: past any track's end"));
    }
    Ok((seconds * 1000.0) as u64)
}

fn parse_quality(text: &str) -> anyhow::Result<protocol::Quality> {
    protocol::Quality::ALL
        .into_iter()
        .find(|quality| quality.as_str() == text)
        .with_context(|| format!("quality {text:?}: expected low, normal or high"))
}

/// The sound card, when asked for.
#[cfg(feature = "sound")]
fn open_sound(wanted: bool) -> anyhow::Result<Option<Box<dyn client_lib::decode::PcmSink>>> {
    if !wanted {
        return Ok(None);
    }
    Ok(Some(Box::new(client_lib::sound::SoundSink::open()?)))
}

/// The sound card, when asked for: this build has none.
#[cfg(not(feature = "sound"))]
fn open_sound(wanted: bool) -> anyhow::Result<Option<Box<dyn client_lib::decode::PcmSink>>> {
    if wanted {
        bail!(
            "this chorus was built without the `sound` feature: rebuild with \
             `cargo build --release --features sound` (on Linux it needs libasound2-dev), \
             or pipe `--out -` into any player"
        );
    }
    Ok(None)
}

/// Runs `chorus play`.
/// Where playback is, as [`PlaceSaver`] is told: the queue index, and the position at a
/// moment (it moves on by the clock while `playing`).
#[derive(Debug, Clone, Copy)]
struct Place {
    index: usize,
    from_ms: u64,
    since: Instant,
    playing: bool,
    /// Bumped by each note that asks for a save at once.
    urgent: u64,
}

impl Place {
    fn position_ms(&self) -> u64 {
        if self.playing {
            self.from_ms + self.since.elapsed().as_millis() as u64
        } else {
            self.from_ms
        }
    }
}

/// Saves the place in the background ([`client_lib::place::PlaceKeeper`]): at once when a
/// track starts or playback stops, else every 15 s by its own clock; playback never waits
/// for a save, and a failed save is logged.
struct PlaceSaver {
    latest: tokio::sync::watch::Sender<Option<Place>>,
    task: tokio::task::JoinHandle<()>,
    queue: Vec<String>,
    /// Where the next track is looked for in `queue`.
    next_from: usize,
}

/// How a [`PlaceSaver`] gets its keeper: read already (`--resume`), or to read in the
/// background (so playback does not wait for it).
enum Keeper {
    Ready(client_lib::place::PlaceKeeper),
    Load(OriginApi, String, String),
}

impl PlaceSaver {
    fn spawn(keeper: Keeper, queue: Vec<String>, start_index: usize) -> Self {
        let (latest, mut changes) = tokio::sync::watch::channel(None::<Place>);
        let saved_queue = queue.clone();
        let task = tokio::spawn(async move {
            let mut keeper = match keeper {
                Keeper::Ready(keeper) => keeper,
                Keeper::Load(api, access, device) => {
                    match client_lib::place::PlaceKeeper::load(api, access, device).await {
                        Ok((keeper, _)) => keeper,
                        Err(error) => {
                            tracing::warn!(%error, "the place will not be saved");
                            return;
                        }
                    }
                }
            };
            let started = Instant::now();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(
                client_lib::place::SAVE_EVERY_MS,
            ));
            let mut urgent_seen = 0u64;
            loop {
                let open = tokio::select! {
                    changed = changes.changed() => changed.is_ok(),
                    _ = tick.tick() => true,
                };
                let Some(place) = *changes.borrow_and_update() else {
                    if open {
                        continue;
                    }
                    return;
                };
                let clock = started.elapsed().as_millis() as u64;
                // The last place is always saved when playback stops.
                let urgent = place.urgent > urgent_seen || !open;
                urgent_seen = place.urgent;
                if urgent || keeper.due(clock) {
                    let saved = keeper
                        .save(
                            &saved_queue,
                            place.index,
                            place.position_ms(),
                            clock,
                            urgent,
                        )
                        .await;
                    if let Err(error) = saved {
                        tracing::warn!(%error, "the place was not saved");
                    }
                }
                if !open {
                    return;
                }
            }
        });
        Self {
            latest,
            task,
            queue,
            next_from: start_index,
        }
    }

    /// A track started (at `from_ms`): saved at once.
    fn started(&mut self, track: &str, from_ms: u64) {
        let Some(index) = client_lib::place::locate(&self.queue, self.next_from, track) else {
            return;
        };
        self.next_from = index + 1;
        self.latest.send_modify(|place| {
            let urgent = place.map_or(0, |place| place.urgent) + 1;
            *place = Some(Place {
                index,
                from_ms,
                since: Instant::now(),
                playing: true,
                urgent,
            });
        });
    }

    /// The play head moved to `position_ms` (a seek).
    fn seeked(&self, position_ms: u64) {
        self.latest.send_modify(|place| {
            if let Some(place) = place {
                (place.from_ms, place.since) = (position_ms, Instant::now());
            }
        });
    }

    /// The track ended: its position stops moving.
    fn ended(&self) {
        self.latest.send_modify(|place| {
            if let Some(place) = place {
                place.from_ms = place.position_ms();
                place.playing = false;
            }
        });
    }

    /// Playback stopped: the place is saved (waiting at most 5 s).
    async fn finish(self) {
        let Self { latest, task, .. } = self;
        drop(latest);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
}

pub fn run_play(args: PlayArgs) -> anyhow::Result<ExitCode> {
    use client_lib::decode::Continuous;
    use client_lib::listener::{Listener, ListenerConfig, QueueControl, QueueOutput};
    use client_lib::queue::Queue;

    let out_path = args.out.clone().unwrap_or_default();
    let to_stdout = out_path.as_os_str() == "-";
    if args.json && to_stdout {
        bail!("--json needs --out FILE: with --out - stdout carries the audio");
    }
    let device = open_sound(args.sound)?;
    let quality = args.quality.as_deref().map(parse_quality).transpose()?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64)
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let pressed = Instant::now();
        let dir = config_dir()?;
        let identity = transport::keyfile::load_or_create_identity(&dir.join("node.key"))
            .with_context(|| format!("node key in {}", dir.display()))?;
        let store = offline_store(&dir);
        let endpoint = Endpoint::bind(&identity, "0.0.0.0:0".parse()?, Limits::default())?;
        let (api, access) = match access(&args.listener, &dir).await {
            Ok(found) => found,
            // No network: downloaded tracks still play.
            Err(error) if client_lib::listener::unreachable(&error) => {
                eprintln!("chorus play: offline ({error:#}); only downloaded tracks play");
                (OriginApi::new("http://127.0.0.1:9")?, String::new())
            }
            Err(error) => return Err(error),
        };
        // Online: renew offline licenses that run out within a week, alongside playback.
        let renewal = (!access.is_empty()).then(|| {
            let (endpoint, api, access, store) =
                (endpoint.clone(), api.clone(), access.clone(), store.clone());
            tokio::spawn(async move {
                let now = client_lib::player::unix_now().0;
                for (track, result) in
                    client_lib::offline::renew_due(&endpoint, &api, &access, &store, now).await
                {
                    match result {
                        Ok(_) => tracing::info!(track, "offline license renewed"),
                        Err(error) => tracing::warn!(track, %error, "offline renewal failed"),
                    }
                }
            })
        });
        // The place this device saves as it plays (online only). --resume reads it first;
        // otherwise it is read in the background, so playback does not wait for it.
        let device_name = args.device.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("chorus on {}", host.trim())
        });
        let mut start_ms = args.start.unwrap_or(0);
        let mut start_index = 0;
        let mut keeper = (!access.is_empty())
            .then(|| Keeper::Load(api.clone(), access.clone(), device_name.clone()));
        let tracks = match &args.search {
            None if args.resume => {
                if access.is_empty() {
                    bail!("--resume needs the origin, which cannot be reached now");
                }
                let (loaded, state) =
                    client_lib::place::PlaceKeeper::load(api.clone(), access.clone(), device_name)
                        .await
                        .context("reading where you stopped")?;
                keeper = Some(Keeper::Ready(loaded));
                let Some((tracks, index, position_ms)) = client_lib::place::resume_from(&state)
                else {
                    bail!("no saved place to resume: play something first");
                };
                eprintln!(
                    "chorus play: resuming {} at {}:{:02} (saved by {})",
                    tracks[index],
                    position_ms / 60_000,
                    position_ms / 1000 % 60,
                    state.device
                );
                (start_ms, start_index) = (position_ms, index);
                tracks
            }
            Some(text) => {
                let hits = api.search_tracks(text, 1).await?;
                let Some((id, title, artist)) = hits.into_iter().next() else {
                    bail!("no track matches {text:?}");
                };
                eprintln!("chorus play: {title} by {artist} ({id})");
                vec![id]
            }
            None => args.tracks.clone(),
        };
        let mut saver =
            keeper.map(|keeper| PlaceSaver::spawn(keeper, tracks.clone(), start_index));
        let mut queue = Queue::new(tracks, seed)?;
        queue.set_shuffle(args.shuffle);
        queue.set_repeat(args.repeat);
        if start_index > 0 {
            queue.jump(start_index);
        }
        let cache = open_cache(&dir, args.listener.cache_bytes)?;
        let edge = if args.chunks_over_https {
            let http = api::client::http_client_builder()?.build()?;
            Some(client_lib::edge::ChunkEdge::new(http))
        } else {
            None
        };
        let options = PlayOptions {
            cache: Some(std::sync::Arc::new(cache)),
            edge,
            ..PlayOptions::default()
        };
        // Listening events wait in the data directory until the origin has them (offline
        // plays are reported at the next online run).
        let events = client_lib::events::EventLog::open(dir.join("events.jsonl"))
            .context("reading queued listening events")?;
        let (events_api, events_token) = (api.clone(), access.clone());
        let listener = Listener::new(
            api,
            access,
            endpoint.clone(),
            options,
            ListenerConfig {
                quality,
                offline: Some(store),
                events: Some(events.clone()),
                start_ms,
                share: args.listener.share(),
                ..ListenerConfig::default()
            },
        );
        let sink: Continuous<Box<dyn client_lib::decode::PcmSink>> = if let Some(device) = device
        {
            Continuous::new(device)
        } else if to_stdout {
            Continuous::new(Box::new(WavSink::stream(std::io::stdout())))
        } else {
            Continuous::new(Box::new(WavSink::file(&out_path)?))
        };
        let (out, mut outputs) = tokio::sync::mpsc::channel(64);
        let (controls, control_rx) = tokio::sync::mpsc::channel(4);
        let playback = tokio::spawn(async move {
            let result = listener.play_queue(&mut queue, out, control_rx).await;
            (result, queue)
        });
        // Ctrl-C ends the queue cleanly (the WAV header gets its length).
        let stopper = {
            let controls = controls.clone();
            tokio::spawn(async move {
                if crate::origin_cmd::wait_for_shutdown_signal().await.is_ok() {
                    let _ = controls.send(QueueControl::Stop).await;
                }
            })
        };
        let mut records: Vec<TrackRecord> = Vec::new();
        let mut decoder: Option<StreamDecoder> = None;
        let mut decoder_alive = false;
        // The first track may start past 0 (--start, --resume).
        let mut first_start_ms = Some(start_ms);
        while let Some(output) = outputs.recv().await {
            match output {
                QueueOutput::TrackStarted {
                    track_id,
                    gain_db,
                    quality,
                    prefetched,
                } => {
                    let from_ms = first_start_ms.take().unwrap_or(0);
                    if let Some(saver) = &mut saver {
                        saver.started(&track_id, from_ms);
                    }
                    // The decoder starts with the first audio (or the headers of a seek).
                    decoder = None;
                    records.push(TrackRecord {
                        track_id,
                        quality: quality.as_str().to_string(),
                        prefetched,
                        gain_db,
                        started: Some(if records.is_empty() { pressed } else { Instant::now() }),
                        ..TrackRecord::default()
                    });
                }
                QueueOutput::Audio(piece) => {
                    if decoder.is_none() {
                        let gain = records.last().map_or(0.0, |record| record.gain_db);
                        decoder = Some(StreamDecoder::start(sink.clone(), gain)?);
                        decoder_alive = true;
                    }
                    if let Some(decoder) = &decoder
                        && decoder_alive
                    {
                        decoder_alive = tokio::task::block_in_place(|| decoder.push(piece));
                    }
                }
                QueueOutput::Seeked { position_ms, header } => {
                    // The decoder starts over from the headers, then the audio that follows.
                    if let Some(old) = decoder.take() {
                        let summary = tokio::task::spawn_blocking(move || old.finish())
                            .await?
                            .map_err(|error| anyhow::anyhow!("decoding: {error}"))?;
                        if let Some(record) = records.last_mut() {
                            record.duration_ms += summary.duration_ms();
                            record.first_pcm = record.first_pcm.or(summary.first_pcm);
                        }
                    }
                    let gain = records.last().map_or(0.0, |record| record.gain_db);
                    let fresh = StreamDecoder::start(sink.clone(), gain)?;
                    decoder_alive = tokio::task::block_in_place(|| fresh.push(header));
                    decoder = Some(fresh);
                    if let Some(saver) = &saver {
                        saver.seeked(position_ms);
                    }
                    tracing::info!(position_ms, "seeked");
                }
                QueueOutput::Event(event) => tracing::info!(?event, "playback"),
                QueueOutput::Prefetched { track_id, chunks } => {
                    tracing::info!(track_id, chunks, "next track prefetched");
                }
                QueueOutput::PrefetchUnused { track_id, bytes } => {
                    tracing::info!(track_id, bytes, "a prefetch went unused");
                }
                QueueOutput::TrackEnded {
                    track_id,
                    stats,
                    skipped,
                    ..
                } => {
                    if let Some(saver) = &saver {
                        saver.ended();
                    }
                    let summary = match decoder.take() {
                        Some(decoder) => tokio::task::spawn_blocking(move || decoder.finish())
                            .await?
                            .map_err(|error| anyhow::anyhow!("decoding {track_id}: {error}"))?,
                        None => Default::default(),
                    };
                    if let Some(record) = records.last_mut() {
                        record.stats = stats;
                        record.skipped = skipped;
                        record.duration_ms += summary.duration_ms();
                        record.first_pcm = record.first_pcm.or(summary.first_pcm);
                        record.first_audio_ms = match (record.first_pcm, record.started) {
                            (Some(pcm), Some(started)) => {
                                Some(pcm.duration_since(started).as_millis() as u64)
                            }
                            _ => None,
                        };
                    }
                }
                QueueOutput::TrackFailed { track_id, error } => {
                    if let Some(decoder) = decoder.take() {
                        let _ = tokio::task::spawn_blocking(move || decoder.finish()).await;
                    }
                    eprintln!("chorus play: {track_id} failed: {error}");
                    match records.last_mut() {
                        Some(record) if record.track_id == track_id && record.error.is_none() => {
                            record.error = Some(error);
                        }
                        _ => records.push(TrackRecord {
                            track_id,
                            error: Some(error),
                            ..TrackRecord::default()
                        }),
                    }
                }
            }
        }
        stopper.abort();
        if let Some(saver) = saver {
            saver.finish().await;
        }
        if let Some(renewal) = renewal {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), renewal).await;
        }
        let (result, _queue) = playback.await.context("playback task")?;
        sink.close().context("finishing the output")?;
        if !events_token.is_empty() && !events.is_empty() {
            let sent = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                events.flush(&events_api, &events_token),
            )
            .await;
            if !matches!(sent, Ok(Ok(_))) {
                eprintln!(
                    "chorus play: {} listening events wait for the next run",
                    events.len()
                );
            }
        }
        endpoint.close();
        result?;
        let played: Vec<&TrackRecord> = records.iter().filter(|r| r.error.is_none()).collect();
        let failed = records.len() - played.len();
        let sum = |f: fn(&TrackRecord) -> u64| played.iter().map(|r| f(r)).sum::<u64>();
        let first_audio_ms = played.first().and_then(|record| record.first_audio_ms);
        if args.json {
            let tracks: Vec<serde_json::Value> = records
                .iter()
                .map(|record| {
                    json!({
                        "track_id": record.track_id,
                        "quality": record.quality,
                        "prefetched": record.prefetched,
                        "first_audio_ms": record.first_audio_ms,
                        "bytes_origin": record.stats.bytes_origin,
                        "bytes_peers": record.stats.bytes_peers + record.stats.bytes_super_nodes,
                        "bytes_cache": record.stats.bytes_cache,
                        "stutters": record.stats.stutters,
                        "duration_ms": record.duration_ms,
                        "skipped": record.skipped,
                        "error": record.error,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "first_audio_ms": first_audio_ms,
                    "bytes_origin": sum(|r| r.stats.bytes_origin),
                    "bytes_peers": sum(|r| r.stats.bytes_peers + r.stats.bytes_super_nodes),
                    "bytes_cache": sum(|r| r.stats.bytes_cache),
                    "stutters": sum(|r| u64::from(r.stats.stutters)),
                    "duration_ms": sum(|r| r.duration_ms),
                    "failed": failed,
                    "tracks": tracks,
                })
            );
        } else if !to_stdout {
            let output = if args.sound {
                "the sound card".to_string()
            } else {
                out_path.display().to_string()
            };
            for record in &played {
                println!(
                    "played {} ({}, {} ms of audio{}): first audio after {} ms, {} KiB from the origin, {} KiB from peers, {} KiB from the cache, {} stutters",
                    record.track_id,
                    record.quality,
                    record.duration_ms,
                    if record.prefetched { ", prefetched" } else { "" },
                    record.first_audio_ms.unwrap_or(0),
                    record.stats.bytes_origin / 1024,
                    (record.stats.bytes_peers + record.stats.bytes_super_nodes) / 1024,
                    record.stats.bytes_cache / 1024,
                    record.stats.stutters
                );
            }
            println!("output: {output}");
        }
        if failed > 0 {
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapped {
        #[command(flatten)]
        args: GatewayArgs,
    }

    fn access(flags: &[&str]) -> client_lib::gateway::Access {
        let wrapped =
            Wrapped::try_parse_from(std::iter::once("gateway").chain(flags.iter().copied()))
                .unwrap();
        gateway_access(&wrapped.args).unwrap()
    }

    #[test]
    fn a_shared_gateway_closes_tracks_without_its_own_password() {
        assert!(access(&[]).tracks_open);
        assert!(access(&["--listen", "127.0.0.2:4533"]).tracks_open);
        // A household: Subsonic apps with their app passwords, and no /tracks for anyone.
        let household = access(&["--listen", "0.0.0.0:4533", "--host", "Music.LAN."]);
        assert!(!household.tracks_open);
        assert_eq!(household.host_names, ["music.lan"]);
    }
}
