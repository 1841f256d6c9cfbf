//! `chorus origin`, `chorus admin` and `chorus ingest`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use origin::admin::AccountChange;
use origin::config::OriginConfig;
use origin::store::{Role, Store, Tier};

/// Flags of `chorus origin`.
#[derive(Debug, Args)]
pub struct OriginArgs {
    /// TOML file with any `OriginConfig` field; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (database, chunk files, keys). Default: ./chorus-origin
    #[arg(long)]
    data: Option<PathBuf>,
    /// HTTP listen address. Default: 127.0.0.1:8470
    #[arg(long)]
    http: Option<SocketAddr>,
    /// QUIC listen address. Default: 127.0.0.1:8471
    #[arg(long)]
    quic: Option<SocketAddr>,
    /// QUIC address told to clients when it differs from --quic (a NAT's public address, a
    /// relay or link emulator in front of this origin).
    #[arg(long)]
    quic_public: Option<SocketAddr>,
    /// Base URL put in chunk URLs (e.g. a CDN in front of this origin).
    #[arg(long)]
    public_url: Option<String>,
    /// Tracker clients should use, as NODE_ID@HOST:PORT; repeat it for several shards
    /// (renditions are split over them by rendezvous hashing).
    #[arg(long = "tracker")]
    trackers: Vec<String>,
    /// PEM certificate chain: serve the HTTP API over HTTPS only (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where metadata lives: `embedded` (sled in --data, the default) or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. Also read from CHORUS_DATABASE, which
    /// keeps the password out of the process list.
    #[arg(long, env = "CHORUS_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Where chunks live: `files` (in --data, the default) or s3://BUCKET[/PREFIX], the
    /// endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ALLOW_HTTP.
    #[arg(long, env = "CHORUS_BLOBS")]
    blobs: Option<String>,
}

/// `chorus tls …`.
#[derive(Debug, clap::Subcommand)]
pub enum TlsCommand {
    /// Make a private certificate authority (ca.pem) and a server certificate (cert.pem,
    /// key.pem) for the given host names and addresses, in --dir.
    Init {
        /// Where to write ca.pem, cert.pem and key.pem (0600).
        #[arg(long, default_value = "chorus-tls")]
        dir: PathBuf,
        /// A DNS name or IP address the origin is reached by. Repeatable.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Replace certificates already in --dir.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `chorus tls`.
pub fn run_tls(command: TlsCommand) -> anyhow::Result<ExitCode> {
    match command {
        TlsCommand::Init { dir, hosts, force } => {
            let cert = dir.join(transport::https::CERT_FILE);
            if cert.exists() && !force {
                anyhow::bail!(
                    "{} exists; pass --force to replace it (clients trusting the old CA will refuse the new one)",
                    cert.display()
                );
            }
            let authority = transport::https::TestAuthority::generate(&hosts)?;
            authority
                .write(&dir)
                .with_context(|| format!("writing into {}", dir.display()))?;
            let show = |file: &str| dir.join(file).display().to_string();
            println!("certificate authority  {}", show(transport::https::CA_FILE));
            println!(
                "server certificate     {} (for {})",
                show(transport::https::CERT_FILE),
                hosts.join(", ")
            );
            println!(
                "server key             {}",
                show(transport::https::KEY_FILE)
            );
            println!(
                "start the origin with --tls-cert {} --tls-key {}; give clients --ca-cert {} (or CHORUS_CA_CERT)",
                show(transport::https::CERT_FILE),
                show(transport::https::KEY_FILE),
                show(transport::https::CA_FILE)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs an origin until Ctrl-C or SIGTERM.
pub fn run_origin(args: OriginArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => {
            OriginConfig::from_file(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => OriginConfig::default(),
    };
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    if let Some(http) = args.http {
        config.http_addr = http;
    }
    if let Some(quic) = args.quic {
        config.quic_addr = quic;
    }
    if args.quic_public.is_some() {
        config.quic_public_addr = args.quic_public;
    }
    if args.public_url.is_some() {
        config.public_url = args.public_url;
    }
    if !args.trackers.is_empty() {
        config.tracker = None;
        config.trackers = args.trackers;
    }
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert;
        config.tls_key = args.tls_key;
    }
    if let Some(database) = args.database {
        config.database = database;
    }
    if let Some(blobs) = args.blobs {
        config.blobs = blobs;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let running = origin::server::start(config).await?;
        println!("chorus origin {}", env!("CARGO_PKG_VERSION"));
        println!("  node id  {}", running.node_id);
        println!("  http     {}", running.base_url);
        println!("  quic     {}", running.quic_addr);
        println!("  data     {}", data_dir.display());
        let shutdown = ShutdownSignal::listen()?;
        println!("ready; Ctrl-C or SIGTERM stops it");
        shutdown.wait().await?;
        eprintln!("shutting down: finishing requests in flight");
        running.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from the moment this is made. A role makes it before
/// it prints `ready`: a supervisor that stops it right after sees a graceful shutdown, never
/// the default action of a signal nobody listens for yet.
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Starts catching the signals (inside a Tokio runtime).
    pub fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("catching SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first of them.
    #[cfg_attr(not(unix), allow(unused_mut))]
    pub async fn wait(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

/// Waits for SIGINT or SIGTERM from now on.
pub async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    ShutdownSignal::listen()?.wait().await
}

/// Where an admin command finds the origin's store: its data directory (keys, and the
/// embedded database) and, for an origin on PostgreSQL, the database.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The origin's data directory.
    #[arg(long, default_value = "chorus-origin")]
    data: PathBuf,
    /// The origin's database: `embedded` (in --data; the origin must be stopped) or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (the origin may run). Also read from
    /// CHORUS_DATABASE.
    #[arg(
        long,
        env = "CHORUS_DATABASE",
        hide_env_values = true,
        default_value = "embedded"
    )]
    database: String,
}

/// `chorus admin ...`: operator actions on an origin's store.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account (password from CHORUS_PASSWORD or a prompt).
    CreateAdmin {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        #[arg(long)]
        username: String,
        /// ISO 3166-1 alpha-2 region.
        #[arg(long, default_value = "SE")]
        region: String,
    },
    /// Create a super-node account: its node gets role tokens to cache and serve ciphertext
    /// (password from CHORUS_PASSWORD or a prompt).
    CreateSuperNode {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        #[arg(long)]
        username: String,
        /// ISO 3166-1 alpha-2 region the super-node serves.
        #[arg(long, default_value = "SE")]
        region: String,
    },
    /// Change an account's tier (free or premium).
    SetTier {
        #[command(flatten)]
        target: AccountTarget,
        /// free or premium.
        #[arg(long)]
        tier: String,
    },
    /// Change an account's role (listener, artist, admin or super_node).
    SetRole {
        #[command(flatten)]
        target: AccountTarget,
        /// listener, artist, admin or super_node.
        #[arg(long)]
        role: String,
    },
    /// Copy an embedded origin's data (sled and chunk files in --data; the origin stopped)
    /// into PostgreSQL and object storage, with progress. Resumable: run it again after an
    /// interruption and it goes on from its checkpoint. Ends by verifying every domain's count
    /// and every chunk's hash in the target. Then start the origin with the same --data and
    /// the new --database and --blobs.
    Migrate {
        /// The origin's data directory (its keys stay here and keep serving the target).
        #[arg(long, default_value = "chorus-origin")]
        data: PathBuf,
        /// The target database: postgres://USER:PASSWORD@HOST:PORT/DATABASE (also from
        /// CHORUS_TO_DATABASE).
        #[arg(long, env = "CHORUS_TO_DATABASE", hide_env_values = true)]
        to_database: String,
        /// The target chunk store: s3://BUCKET[/PREFIX] (endpoint and credentials from the
        /// AWS_* variables), or `files` to keep chunk files in --data.
        #[arg(long)]
        to_blobs: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an account's region (an ISO 3166-1 alpha-2 country code).
    SetRegion {
        #[command(flatten)]
        target: AccountTarget,
        /// e.g. SE or US.
        #[arg(long)]
        region: String,
    },
}

/// Which account an entitlement change is for, and how to reach it: through a running
/// origin's API as an admin (`--origin URL --admin NAME`, the admin's password from
/// CHORUS_PASSWORD or a prompt), or in a stopped origin's data directory (`--data`).
#[derive(Debug, Args)]
pub struct AccountTarget {
    /// The account's login name.
    #[arg(long)]
    username: String,
    /// The origin's store (used without --origin).
    #[command(flatten)]
    store: StoreArgs,
    /// A running origin's URL: the change goes through PATCH /v1/admin/accounts/{username}.
    #[arg(long, requires = "admin")]
    origin: Option<String>,
    /// The admin account to log in as with --origin.
    #[arg(long)]
    admin: Option<String>,
}

pub(crate) async fn open_store(data: &std::path::Path) -> anyhow::Result<Store> {
    open_store_at(&StoreArgs {
        data: data.to_path_buf(),
        database: "embedded".into(),
    })
    .await
}

/// Opens the store of an origin on `data` over the database `database` (`embedded` or
/// `postgres://...`).
pub(crate) async fn open_store_with(
    data: &std::path::Path,
    database: &str,
) -> anyhow::Result<Store> {
    open_store_at(&StoreArgs {
        data: data.to_path_buf(),
        database: database.to_string(),
    })
    .await
}

/// Opens the store `args` names (chunks are not touched by admin commands, so blobs stay
/// files).
async fn open_store_at(args: &StoreArgs) -> anyhow::Result<Store> {
    // A data directory gets its origin key when it gets its database, so an origin started on
    // it later finds both (and a directory with a database but no key is refused).
    origin::server::origin_identity(&args.data)?;
    let database = origin::store::Database::parse(&args.database).map_err(anyhow::Error::msg)?;
    let embedded = database == origin::store::Database::Embedded;
    let config = origin::store::StoreConfig {
        database,
        ..origin::store::StoreConfig::embedded(&args.data)
    };
    Store::open(&config).await.with_context(|| {
        if embedded {
            format!(
                "opening {} (is an origin running on it? stop it first: the database is locked)",
                args.data.display()
            )
        } else {
            format!("opening the database {}", config.database.describe())
        }
    })
}

/// Runs an admin action.
pub fn run_admin(command: AdminCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(admin(command))
}

async fn admin(command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::CreateAdmin {
            store,
            username,
            region,
        } => create_privileged(&store, &username, &region, Role::Admin).await?,
        AdminCommand::CreateSuperNode {
            store,
            username,
            region,
        } => create_privileged(&store, &username, &region, Role::SuperNode).await?,
        AdminCommand::SetTier { target, tier } => {
            let tier = match tier.as_str() {
                "free" => Tier::Free,
                "premium" => Tier::Premium,
                other => bail!("unknown tier {other:?}: free or premium"),
            };
            let change = AccountChange {
                tier: Some(tier),
                ..AccountChange::default()
            };
            change_account(&target, &change).await?;
        }
        AdminCommand::SetRole { target, role } => {
            let role = match role.as_str() {
                "listener" => Role::Listener,
                "artist" => Role::Artist,
                "admin" => Role::Admin,
                "super_node" | "super-node" => Role::SuperNode,
                other => bail!("unknown role {other:?}: listener, artist, admin or super_node"),
            };
            let change = AccountChange {
                role: Some(role),
                ..AccountChange::default()
            };
            change_account(&target, &change).await?;
        }
        AdminCommand::Migrate {
            data,
            to_database,
            to_blobs,
            json,
        } => migrate(&data, &to_database, &to_blobs, json).await?,
        AdminCommand::SetRegion { target, region } => {
            protocol::Region::assigned(&region).map_err(|_| {
                anyhow::anyhow!("--region {region:?} is not an ISO 3166-1 alpha-2 country code")
            })?;
            let change = AccountChange {
                region: Some(region),
                ..AccountChange::default()
            };
            change_account(&target, &change).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `chorus admin migrate`: embedded store in `data` → `to_database` and `to_blobs`.
async fn migrate(
    data: &std::path::Path,
    to_database: &str,
    to_blobs: &str,
    json: bool,
) -> anyhow::Result<()> {
    use origin::migrate::{Phase, checkpoint_path};
    use origin::store::{Blobs, Database, StoreConfig};
    if !data.join("meta").exists() {
        bail!("{} holds no embedded origin database", data.display());
    }
    let database = Database::parse(to_database).map_err(anyhow::Error::msg)?;
    if database == Database::Embedded {
        bail!("--to-database is the database to move to: a postgres:// URL");
    }
    let blobs = Blobs::parse(to_blobs).map_err(anyhow::Error::msg)?;
    let source = open_store(data).await?;
    let target = Store::open(&StoreConfig {
        database,
        blobs,
        chunk_cache_bytes: 0,
        ..StoreConfig::embedded(data)
    })
    .await
    .context("opening the target")?;
    let checkpoint = checkpoint_path(data);
    if checkpoint.exists() {
        eprintln!("resuming from {}", checkpoint.display());
    }
    eprintln!("from: {}\nto:   {}", source.describe(), target.describe());
    let bars = indicatif::MultiProgress::new();
    let style =
        indicatif::ProgressStyle::with_template("{prefix:24!} {bar:30} {pos:>9}/{len:9} {msg}")
            .expect("valid template");
    let spinner = indicatif::ProgressStyle::with_template("{prefix:24!} {spinner} {pos:>9} {msg}")
        .expect("valid template");
    let current: std::sync::Mutex<Option<(Phase, indicatif::ProgressBar)>> =
        std::sync::Mutex::new(None);
    let progress = |phase: Phase, done: u64, total: Option<u64>| {
        let mut current = current.lock().unwrap_or_else(|poison| poison.into_inner());
        if current.as_ref().is_none_or(|(shown, _)| *shown != phase) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = match total {
                Some(total) => {
                    bars.add(indicatif::ProgressBar::new(total).with_style(style.clone()))
                }
                None => bars.add(indicatif::ProgressBar::no_length().with_style(spinner.clone())),
            };
            *current = Some((phase, bar.with_prefix(phase.name())));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(done);
        }
    };
    let report = origin::migrate::migrate(&source, &target, &checkpoint, &progress)
        .await
        .context("migrating (run the same command again to resume)")?;
    if let Some((_, bar)) = current
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .take()
    {
        bar.finish();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (name, count) in &report.counts {
            println!("{name:>20}: {count}");
        }
        println!(
            "{:>20}: {} (read back, hashes match)",
            "chunks", report.chunks_verified
        );
        println!(
            "done: start the origin with --data {} --database <the URL> --blobs {to_blobs}",
            data.display()
        );
    }
    Ok(())
}

/// Applies an entitlement change through a running origin or in its data directory, and
/// prints the account as it now is.
async fn change_account(target: &AccountTarget, change: &AccountChange) -> anyhow::Result<()> {
    if !origin::accounts::valid_username(&target.username) {
        bail!("usernames are 3 to 32 characters of a-z, A-Z, 0-9, _ . -");
    }
    let view = match (&target.origin, &target.admin) {
        (Some(origin), Some(admin)) => {
            let password = password()?;
            change_online(origin, admin, &password, &target.username, change).await?
        }
        _ => {
            // Changing an account needs an origin's existing data, never a new directory.
            if target.store.database == "embedded" && !target.store.data.join("meta").exists() {
                bail!(
                    "{} holds no origin database (give --data, --database, or --origin and \
                     --admin)",
                    target.store.data.display()
                );
            }
            let store = open_store_at(&target.store).await?;
            let mut account = store
                .accounts()
                .account_by_username(&target.username)
                .await?
                .with_context(|| format!("no account {:?}", target.username))?;
            origin::admin::apply_change(&mut account, change)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            store.accounts().update_account(&account).await?;
            origin::admin::AccountView::from(&account)
        }
    };
    println!(
        "{}: role {:?}, tier {:?}, region {}",
        view.username, view.role, view.tier, view.region
    );
    Ok(())
}

/// The base URL of `spec` (`URL` or `NODE_ID@URL`), refused if it is plain HTTP off
/// loopback or if the origin does not answer with the pinned key.
pub async fn checked_origin(spec: &str) -> anyhow::Result<String> {
    let api = api::client::OriginApi::new(spec)?;
    if api.pinned().is_some() {
        api.network().await?;
    }
    Ok(api.base().to_string())
}

async fn change_online(
    origin: &str,
    admin: &str,
    password: &str,
    username: &str,
    change: &AccountChange,
) -> anyhow::Result<origin::admin::AccountView> {
    let base = checked_origin(origin).await?;
    let base = base.as_str();
    let http = api::client::http_client_builder()?
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = http
        .post(format!("{base}/v1/sessions"))
        .json(&api::accounts::Login {
            username: admin.to_string(),
            password: password.to_string(),
        })
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let tokens: api::accounts::Tokens = api_answer(response)
        .await
        .with_context(|| format!("logging in as {admin}"))?;
    let response = http
        .patch(format!("{base}/v1/admin/accounts/{username}"))
        .bearer_auth(&tokens.access_token)
        .json(change)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("changing {username}: {status} {text}");
    }
    serde_json::from_str(&text).context("the origin's answer")
}

/// Creates an admin or super-node account in the data directory.
async fn create_privileged(
    store_args: &StoreArgs,
    username: &str,
    region: &str,
    role: Role,
) -> anyhow::Result<()> {
    if !origin::accounts::valid_username(username) {
        bail!("usernames are 3 to 32 characters of a-z, A-Z, 0-9, _ . -");
    }
    protocol::Region::assigned(region).map_err(|_| {
        anyhow::anyhow!("--region {region:?} is not an ISO 3166-1 alpha-2 country code")
    })?;
    let password = password()?;
    if !origin::accounts::PASSWORD_CHARS.contains(&password.chars().count()) {
        bail!("passwords are 8 to 256 characters");
    }
    let store = open_store_at(store_args).await?;
    let account = origin::accounts::new_account(username, &password, region, role, Tier::Premium)
        .map_err(|_| anyhow::anyhow!("could not hash the password"))?;
    if !store.accounts().create_account(&account).await? {
        bail!("username {username:?} is taken");
    }
    let kind = if role == Role::Admin {
        "admin"
    } else {
        "super-node account"
    };
    println!("created {kind} {username} ({})", account.id);
    Ok(())
}

/// The password from `CHORUS_PASSWORD`, else a prompt.
pub fn password() -> anyhow::Result<String> {
    match std::env::var("CHORUS_PASSWORD") {
        Ok(password) => Ok(password),
        Err(_) => rpassword::prompt_password("password: ").context("reading the password"),
    }
}

/// Flags of `chorus ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Audio files (FLAC, WAV, AIFF, MP3, Ogg Vorbis, Ogg Opus, AAC/ALAC in M4A, CAF, MKV).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The origin's URL.
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    origin: String,
    /// Artist account (password from CHORUS_PASSWORD or a prompt).
    #[arg(long)]
    user: String,
    /// Artist name for every file, over the file's tags. Default: the tags' artist, else
    /// the account name.
    #[arg(long)]
    artist: Option<String>,
    /// Album title for every file, over the file's tags.
    #[arg(long)]
    album: Option<String>,
    /// Album artist for every file, over the file's tags.
    #[arg(long)]
    album_artist: Option<String>,
    /// Genre for every file, over the file's tags.
    #[arg(long)]
    genre: Option<String>,
    /// Year of release for every file, over the file's tags.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=9999))]
    year: Option<u16>,
    /// Markets, comma-separated ISO codes (e.g. SE,NO). Default: everywhere.
    #[arg(long, value_delimiter = ',')]
    markets: Vec<String>,
    /// Print one JSON object per ingested track.
    #[arg(long)]
    json: bool,
}

/// Uploads each file to the origin with a progress bar. The origin reads each file's tags;
/// the flags override them, and a file without a title tag is named after the file.
pub fn run_ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let password = password()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(ingest_files(args, password))
}

async fn ingest_files(args: IngestArgs, password: String) -> anyhow::Result<ExitCode> {
    let base = checked_origin(&args.origin).await?;
    let http = api::client::http_client_builder()?
        .timeout(Duration::from_secs(3600))
        .build()?;
    let login = http
        .post(format!("{base}/v1/sessions"))
        .json(&api::accounts::Login {
            username: args.user.clone(),
            password,
        })
        .send()
        .await
        .with_context(|| format!("reaching the origin at {base}"))?;
    let tokens: api::accounts::Tokens = api_answer(login).await.context("logging in")?;
    let token = tokens.access_token;

    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:30!} {bar:30} {bytes:>9}/{total_bytes:9} {msg}",
    )
    .expect("valid template");
    let mut failures = 0;
    for path in &args.files {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_string())
            .unwrap_or_default();
        let bar = bars.add(
            indicatif::ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix(name.clone()),
        );
        match upload(&http, &base, &token, path, &args, &bar).await {
            Ok(track) => {
                bar.finish_with_message(format!("ingested {}", track.id));
                if args.json {
                    let line = serde_json::to_string(&track).unwrap_or_default();
                    bars.suspend(|| println!("{line}"));
                }
            }
            Err(error) => {
                failures += 1;
                bar.abandon_with_message(format!("failed: {error:#}"));
            }
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &std::path::Path,
    args: &IngestArgs,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<api::catalog::TrackView> {
    use futures_util::StreamExt;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let length = file.metadata().await?.len();
    bar.set_length(length);
    bar.set_message("uploading");
    let progress = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |piece| {
        if let Ok(piece) = piece {
            progress.inc(piece.len() as u64);
        }
    });
    let metadata = api::catalog::TrackMetadata {
        artist: args.artist.clone(),
        album: args.album.clone(),
        album_artist: args.album_artist.clone(),
        genre: args.genre.clone(),
        year: args.year,
        markets: (!args.markets.is_empty()).then(|| args.markets.clone()),
        ..Default::default()
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), length)
            .file_name(file_name);
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("metadata", serde_json::to_string(&metadata)?);
    let request = http
        .post(format!("{base}/v1/tracks"))
        .bearer_auth(token)
        .multipart(form)
        .send();
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            // Once the bytes are up, the origin transcodes; say so.
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if bar.position() >= bar.length().unwrap_or(0) {
                    bar.set_message("transcoding");
                }
            }
        })
    };
    let response = request.await;
    ticker.abort();
    api_answer(response?).await
}

/// The body of a success as `T`, or the API's error code and message as an error.
async fn api_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> anyhow::Result<T> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("reading the origin's answer")?;
    if status.is_success() {
        serde_json::from_slice(&bytes).context("the origin's answer is not what the API says")
    } else {
        let refusal = serde_json::from_slice::<api::ErrorBody>(&bytes).ok();
        let (code, message) = refusal
            .map(|body| (body.error.code, body.error.message))
            .unwrap_or_else(|| ("unknown".into(), String::new()));
        bail!("{status} {code}: {message}")
    }
}
