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

/// Background upkeep: every 2 s, search popularity follows the play counts; hourly, expired
/// tokens go, trending drops what left its window, and event ids and plays older than a month
/// are forgotten (so those trees stay bounded by live sessions and a month of listening).
async fn janitor(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut ticks: u64 = 0;
    loop {
        every.tick().await;
        match state.search.refresh_popularity(&state.store).await {
            Err(error) => tracing::warn!(%error, "refreshing search popularity failed"),
            Ok(count) if count > 0 => tracing::debug!(count, "search popularity refreshed"),
            Ok(_) => {}
        }
        ticks += 1;
        if ticks % 1800 != 1 {
            continue;
        }
        let now = crate::now_ms();
        state.activity.prune(now);
        let store = &state.store;
        let purged = async {
            let tokens = store.accounts().purge_expired_tokens(now).await?;
            let activity = store
                .listening()
                .prune_activity(
                    now.saturating_sub(crate::activity::EVENT_AGE_MAX_MS + 24 * 3600 * 1000),
                )
                .await?;
            Ok::<_, crate::store::StoreError>((tokens, activity))
        }
        .await;
        match purged {
            Ok((tokens, activity)) if tokens + activity > 0 => {
                tracing::info!(tokens, activity, "purged expired tokens and old activity")
            }
            Err(error) => tracing::warn!(%error, "purging failed"),
            Ok(_) => {}
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
    shutdown: Option<oneshot::Sender<()>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    plain: Option<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    janitor: tokio::task::JoinHandle<()>,
    recommender: tokio::task::JoinHandle<()>,
    quic: Endpoint,
}

impl Running {
    /// The store (operator tools in the same process: accounts with privileged roles).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
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
    let metrics = Arc::new(Metrics::default());
    let chunk_source = Arc::new(StoreChunkSource::new(store.clone(), metrics.clone()));
    // A small catalog is indexed before the API opens; a large one (minutes for millions of
    // tracks) in the background, search answering 503 until it is done.
    let search = Arc::new(
        crate::search::Search::new_in(Some(&config.data_dir.join("search")))
            .context("creating the search index")?,
    );
    let fill = {
        let (search, store) = (search.clone(), store.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match search.fill(&store).await {
                Ok(()) => tracing::info!(
                    tracks = search.progress().0,
                    seconds = started.elapsed().as_secs_f64(),
                    "search index built"
                ),
                Err(error) => tracing::error!(%error, "building the search index failed"),
            }
        })
    };
    if store.catalog().track_count().await? < SEARCH_BUILD_BEFORE_OPEN_MAX as u64 {
        fill.await.context("building the search index")?;
    }
    let activity = crate::events::Activity::load(
        &store,
        crate::activity::TrendingConfig::default(),
        crate::now_ms(),
    )
    .await
    .context("loading listening activity")?;
    let region_rules = config.region_rules().context("the origin config")?;
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
        config: Arc::new(config),
        public_url,
        quic_addr,
        metrics,
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
    let store = state.store.clone();
    let service = ChunkService::new(state.chunk_source.clone(), node_id, system_clock());
    tokio::spawn(transport::serve(quic.clone(), Arc::new(service)));
    let janitor = tokio::spawn(janitor(state.clone()));
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
        shutdown: Some(shutdown),
        http,
        janitor,
        recommender,
        quic,
    })
}
