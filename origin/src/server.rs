//! Runs an origin: keys, store, the HTTP API and the QUIC chunk protocol, with graceful
//! shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use protocol::{Identity, NodeId};
use tokio::sync::{Semaphore, oneshot};
use transport::chunks::{ChunkService, system_clock};
use transport::{Endpoint, Limits};

use crate::chunk_source::StoreChunkSource;
use crate::config::OriginConfig;
use crate::http::{self, AppState, Shared};
use crate::metrics::Metrics;
use crate::store::Store;

fn load_or_create_secret(path: &Path) -> anyhow::Result<[u8; 32]> {
    transport::keyfile::load_or_create_secret(path)
        .with_context(|| format!("reading or creating {}", path.display()))
}

/// The origin's signing identity, kept in `DATA/origin.key`.
///
/// The data directory is made private (0700). A data directory that already holds a
/// database but no `origin.key` is an error, not a new key: every manifest, license and
/// client's pinned key names the old one, so a silently new identity would break them all.
pub fn origin_identity(data_dir: &Path) -> anyhow::Result<Identity> {
    transport::keyfile::create_private_dir(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key_path = data_dir.join("origin.key");
    if !key_path.exists() && data_dir.join("meta").exists() {
        anyhow::bail!(
            "{} is missing but {} holds an origin's database: restore the key from a backup \
             (a new key would change the origin's node id, which every manifest and client names)",
            key_path.display(),
            data_dir.display()
        );
    }
    Ok(Identity::from_secret_bytes(&load_or_create_secret(
        &key_path,
    )?))
}

/// The key files every origin of one service shares (in its data directory): the signing
/// identity (manifests, licenses, the QUIC node id clients pin), the chunk-URL key (a URL
/// signed by one origin is checked by another, or by the CDN) and the content-key wrapping key.
pub const SERVICE_KEY_FILES: [&str; 3] = ["origin.key", "url.key", "content.kek"];

/// Copies the [`SERVICE_KEY_FILES`] from one origin's data directory to another's (created
/// private if needed): how a second origin of a service is set up.
pub fn copy_service_keys(from: &Path, to: &Path) -> anyhow::Result<()> {
    transport::keyfile::create_private_dir(to)
        .with_context(|| format!("creating {}", to.display()))?;
    for name in SERVICE_KEY_FILES {
        let (source, target) = (from.join(name), to.join(name));
        let bytes =
            std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        transport::keyfile::write_private(&target, &bytes)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// What origins sharing a database compare to know they share their keys: a hash of the
/// node id and the chunk-URL key (the content-key wrapping key is checked by the store).
fn service_fingerprint(identity: &Identity, url_key: &[u8; 32]) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("chorus service keys v1");
    hasher.update(identity.node_id().as_bytes());
    hasher.update(url_key);
    hasher.finalize().to_hex().to_string()
}

/// How long the change feed keeps an entry: an origin stopped for longer rebuilds its search
/// index when it starts again.
pub const CHANGES_KEPT_MS: u64 = 7 * 24 * 3600 * 1000;

/// How often [`janitor`] looks at the time (and, with a shared database, claims the lead of a
/// stopped leader).
const JANITOR_TICK: std::time::Duration = std::time::Duration::from_secs(30);

/// Background upkeep, hourly. Every origin drops what left trending's window from its own
/// memory. The origin leading the jobs ([`crate::store::Coordination::lead`]: one among those
/// sharing a database) also purges expired tokens, event ids and plays older than a month, and
/// change-feed entries older than [`CHANGES_KEPT_MS`], so those tables stay bounded by live
/// sessions and a month of listening.
async fn janitor(state: AppState) {
    let mut every = tokio::time::interval(JANITOR_TICK);
    let mut pruned_at: Option<std::time::Instant> = None;
    let mut purged_at: Option<std::time::Instant> = None;
    let hourly = |at: Option<std::time::Instant>| {
        at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(3600))
    };
    loop {
        every.tick().await;
        let now = crate::now_ms();
        state
            .traffic
            .sample_egress(now, state.metrics.egress_total());
        if hourly(pruned_at) {
            state.activity.prune(now);
            pruned_at = Some(std::time::Instant::now());
        }
        let store = &state.store;
        match store.coordination().lead().await {
            Ok(true) => {}
            Ok(false) => {
                // Another origin leads; if it stops, this one takes over with a full hour's
                // work at once.
                purged_at = None;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "claiming the lead of the background jobs failed");
                continue;
            }
        }
        if !hourly(purged_at) {
            continue;
        }
        let purged = async {
            let tokens = store.accounts().purge_expired_tokens(now).await?;
            let activity = store
                .listening()
                .prune_activity(
                    now.saturating_sub(crate::activity::EVENT_AGE_MAX_MS + 24 * 3600 * 1000),
                )
                .await?;
            let changes = store
                .coordination()
                .prune_changes(now.saturating_sub(CHANGES_KEPT_MS))
                .await?;
            Ok::<_, crate::store::StoreError>((tokens, activity, changes))
        }
        .await;
        match purged {
            Ok((tokens, activity, changes)) => {
                purged_at = Some(std::time::Instant::now());
                if tokens + activity + changes > 0 {
                    tracing::info!(
                        tokens,
                        activity,
                        changes,
                        "purged expired tokens, old activity and old changes"
                    )
                }
            }
            Err(error) => tracing::warn!(%error, "purging failed"),
        }
    }
}

/// Catalogs up to this many tracks are indexed for search before the API opens.
pub const SEARCH_BUILD_BEFORE_OPEN_MAX: usize = 50_000;

/// A running origin.
#[derive(Debug)]
pub struct Running {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The API's base URL on that address: `https://…` with TLS, `http://…` without.
    pub base_url: String,
    /// Where the QUIC chunk protocol listens.
    pub quic_addr: SocketAddr,
    /// The origin's node id (its signing key).
    pub node_id: NodeId,
    /// Where the extra plain-HTTP listener is (`http_plain_addr`), if any.
    pub http_plain_addr: Option<SocketAddr>,
    store: Arc<Store>,
    search: Arc<crate::search::Search>,
    shutdown: Option<oneshot::Sender<()>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    plain: Option<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    janitor: tokio::task::JoinHandle<()>,
    recommender: tokio::task::JoinHandle<()>,
    followers: [tokio::task::JoinHandle<()>; 3],
    quic: Endpoint,
}

impl Running {
    /// The store (operator tools in the same process: accounts with privileged roles).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The search index (benchmarks in the same process: ranking with and without pruning).
    pub fn search(&self) -> &Arc<crate::search::Search> {
        &self.search
    }

    /// Stops accepting, lets requests in flight finish, and closes the QUIC endpoint.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some((stop, task)) = self.plain.take() {
            let _ = stop.send(());
            task.await
                .context("plain HTTP server task")?
                .context("plain HTTP server")?;
        }
        self.quic.close();
        self.janitor.abort();
        self.recommender.abort();
        for follower in &self.followers {
            follower.abort();
        }
        (&mut self.http)
            .await
            .context("HTTP server task")?
            .context("HTTP server")?;
        Ok(())
    }
}

/// The origin's state for `config`: keys, store, search index, listening activity, region
/// rules and limits; everything [`http::app`] needs to answer requests, and no socket.
/// `public_url` is the API's base URL as clients reach it and `quic_addr` the chunk
/// protocol's address, both as the network sees them. Handler tests build this and call the
/// app with `tower::ServiceExt::oneshot`.
pub async fn open_state(
    config: OriginConfig,
    identity: Identity,
    public_url: String,
    quic_addr: SocketAddr,
) -> anyhow::Result<AppState> {
    let url_key = load_or_create_secret(&config.data_dir.join("url.key"))?;
    let store_config = config.store_config().context("the origin config")?;
    let store = Arc::new(Store::open(&store_config).await.with_context(|| {
        format!(
            "opening the store (metadata: {}, data: {})",
            store_config.database.describe(),
            store_config.data_dir.display()
        )
    })?);
    tracing::info!(store = store.describe(), "store open");
    let fingerprint = service_fingerprint(&identity, &url_key);
    let recorded = store
        .coordination()
        .service_keys(&fingerprint)
        .await
        .context("recording the service's keys")?;
    if recorded != fingerprint {
        anyhow::bail!(
            "this database is served by origins with other keys: every origin of one service \
             needs the same {} as the others (copy origin.key, url.key and content.kek from \
             the data directory of one that runs)",
            SERVICE_KEY_FILES.join(", ")
        );
    }
    let metrics = Arc::new(Metrics::default());
    let chunk_source = Arc::new(StoreChunkSource::new(store.clone(), metrics.clone()));
    // The search index persists in the data directory and follows the change feed. When it
    // cannot resume (first start, another database, too long stopped) it is rebuilt: a small
    // catalog before the API opens, a large one (minutes for millions of tracks) by the
    // follower in the background, search answering 503 until it is done.
    let search = Arc::new(
        crate::search::Search::open(Some(&config.data_dir.join("search")))
            .context("opening the search index")?,
    );
    let feed = store
        .coordination()
        .feed_state()
        .await
        .context("reading the change feed")?;
    match search.resume(&feed) {
        Some(cursor) => tracing::info!(
            documents = search.progress().0,
            cursor,
            behind = feed.head - cursor,
            "search index resumed"
        ),
        None => {
            search.clear().context("clearing the search index")?;
            if store.catalog().track_count().await? < SEARCH_BUILD_BEFORE_OPEN_MAX as u64 {
                search
                    .fill(&store)
                    .await
                    .context("building the search index")?;
            }
        }
    }
    let activity = crate::events::Activity::load(
        &store,
        crate::activity::TrendingConfig::default(),
        crate::now_ms(),
    )
    .await
    .context("loading listening activity")?;
    let region_rules = config.region_rules().context("the origin config")?;
    let trackers = config.tracker_shards().context("the origin config")?;
    let passwords = crate::passwords::PasswordPool::new(config.password_jobs_max);
    // Uploads are spooled here; anything left is from a crash.
    let uploads = crate::publish::uploads_dir(&config.data_dir);
    let _ = std::fs::remove_dir_all(&uploads);
    transport::keyfile::create_private_dir(&uploads)
        .with_context(|| format!("creating {}", uploads.display()))?;
    Ok(AppState::new(Shared {
        account_ingests: Arc::new(crate::publish::AccountIngests::new(
            config.ingest_per_account_max,
        )),
        chunk_source,
        passwords: Arc::new(passwords),
        region_rules: Arc::new(region_rules),
        search,
        activity: Arc::new(activity),
        recommender: Arc::new(crate::recommendations::Recommender::default()),
        track_views: Arc::new(crate::publish::TrackViews::default()),
        limiter: Arc::new(crate::ratelimit::Limiter::new(
            config.rate_limits,
            config.trusted_proxies.clone(),
        )),
        store,
        identity: Arc::new(identity),
        url_key: Arc::new(url_key),
        ingest_slots: Arc::new(Semaphore::new(config.ingest_jobs_max.max(1))),
        trackers: Arc::new(trackers),
        config: Arc::new(config),
        public_url,
        quic_addr,
        metrics,
        traffic: Arc::new(crate::traffic::TrafficLog::new(crate::now_ms())),
    }))
}

/// Starts an origin with `config`: opens the store, loads or creates the keys, binds HTTP and
/// QUIC. Returns once both listen.
pub async fn start(config: OriginConfig) -> anyhow::Result<Running> {
    let identity = origin_identity(&config.data_dir)?;
    let quic = Endpoint::bind(&identity, config.quic_addr, Limits::default())
        .context("binding the QUIC endpoint")?;
    let bound_quic_addr = quic.local_addr()?;
    let quic_addr = config.quic_public_addr.unwrap_or(bound_quic_addr);

    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            transport::https::server_config(cert, key).context("loading the TLS certificate")?,
        )),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate (tls_cert) and its key (tls_key)"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let plain_listener = match config.http_plain_addr {
        Some(addr) if !addr.ip().is_loopback() => {
            anyhow::bail!("http_plain_addr {addr} is not a loopback address")
        }
        Some(_) if tls.is_none() => {
            anyhow::bail!("http_plain_addr is for an origin serving HTTPS (tls_cert, tls_key)")
        }
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding plain HTTP on {addr}"))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{http_addr}"));
    let node_id = identity.node_id();
    let state = open_state(config, identity, public_url, quic_addr).await?;
    state.traffic.set_endpoint(quic.clone());
    let store = state.store.clone();
    let search = state.search.clone();
    let service = ChunkService::new(state.chunk_source.clone(), node_id, system_clock());
    tokio::spawn(transport::serve(quic.clone(), Arc::new(service)));
    let janitor = tokio::spawn(janitor(state.clone()));
    let followers = [
        tokio::spawn(crate::follow::caches(state.clone())),
        tokio::spawn(crate::follow::trending(state.clone())),
        tokio::spawn(crate::follow::search(
            state.search.clone(),
            state.store.clone(),
        )),
    ];
    let recommender = tokio::spawn(crate::recommendations::refresh(
        state.store.clone(),
        state.recommender.clone(),
        std::time::Duration::from_secs(state.config.recommendations_refresh_s),
    ));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let limits = state.config.http;
    let trusted_proxies = state.config.trusted_proxies.clone();
    let app = http::app(state);
    let mut plain = None;
    let mut http_plain_addr = None;
    if let Some(listener) = plain_listener {
        http_plain_addr = Some(listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::listener::serve(
            listener,
            app.clone(),
            limits,
            trusted_proxies.clone(),
            None,
            stopped,
        ));
        plain = Some((stop, task));
    }
    let http = tokio::spawn(crate::listener::serve(
        listener,
        app,
        limits,
        trusted_proxies,
        tls,
        stopped,
    ));
    Ok(Running {
        http_addr,
        http_plain_addr,
        plain,
        base_url: format!("{scheme}://{http_addr}"),
        quic_addr: bound_quic_addr,
        node_id,
        store,
        search,
        shutdown: Some(shutdown),
        http,
        janitor,
        recommender,
        followers,
        quic,
    })
}
