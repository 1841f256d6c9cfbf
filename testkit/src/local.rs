//! An origin in this process on loopback ports the system picks, with a private data
//! directory, and async helpers to make accounts and upload tracks the way operators and
//! artists do.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, ensure};
use api::accounts::{Login, Tokens};
use api::catalog::{TrackMetadata, TrackView};
use origin::config::OriginConfig;
use origin::server::{self, Running};
use origin::store::{Role, Store, Tier};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::PASSWORD;

/// A running in-process origin. Dropping it deletes its data directory; its tasks end with
/// the runtime it was started on (call `running.shutdown()` to stop it sooner).
pub struct LocalOrigin {
    /// The running origin.
    pub running: Running,
    /// Its API's base URL.
    pub base: String,
    /// An HTTP client for it (many idle connections, for load).
    pub http: reqwest::Client,
    operator: tokio::sync::OnceCell<String>,
    /// The config it was started with.
    pub config: OriginConfig,
    dir: tempfile::TempDir,
    /// PostgreSQL and Garage, for an origin on [`Backend::PostgresS3`] (dropped after it).
    pub services: Option<crate::services::Services>,
}

/// Which store an in-process origin runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// sled and files in its data directory.
    Embedded,
    /// A private PostgreSQL cluster and a private Garage object store.
    PostgresS3,
}

impl std::fmt::Debug for LocalOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOrigin")
            .field("base", &self.base)
            .field("data_dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl LocalOrigin {
    /// An origin with the default config (loopback ports, 4 MiB uploads) as `change` adjusts it.
    pub async fn start_with(change: impl FnOnce(&mut OriginConfig)) -> anyhow::Result<Self> {
        Self::start_on(Backend::Embedded, change).await
    }

    /// [`LocalOrigin::start_with`] on `backend` (for PostgreSQL and S3, private servers are
    /// started first and kept with the origin).
    pub async fn start_on(
        backend: Backend,
        change: impl FnOnce(&mut OriginConfig),
    ) -> anyhow::Result<Self> {
        let services = match backend {
            Backend::Embedded => None,
            Backend::PostgresS3 => {
                Some(tokio::task::spawn_blocking(crate::services::Services::start).await??)
            }
        };
        let dir = tempfile::tempdir()?;
        let mut config = OriginConfig {
            data_dir: dir.path().to_path_buf(),
            http_addr: "127.0.0.1:0".parse()?,
            quic_addr: "127.0.0.1:0".parse()?,
            upload_bytes_max: 4 * 1024 * 1024,
            ..OriginConfig::default()
        };
        if let Some(services) = &services {
            services.configure(&mut config, "origin")?;
        }
        change(&mut config);
        Self::launch(config, dir, services).await
    }

    async fn launch(
        config: OriginConfig,
        dir: tempfile::TempDir,
        services: Option<crate::services::Services>,
    ) -> anyhow::Result<Self> {
        let running = server::start(config.clone()).await?;
        let base = format!("http://{}", running.http_addr);
        let http = api::client::http_client_builder()?
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            running,
            base,
            http,
            operator: tokio::sync::OnceCell::new(),
            config,
            dir,
            services,
        })
    }

    /// Another origin of the same service: the same database and object store, a copy of
    /// this one's keys in a data directory of its own, loopback ports of its own.
    pub async fn start_peer(&self, change: impl FnOnce(&mut OriginConfig)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        server::copy_service_keys(self.data_dir(), dir.path())?;
        let mut config = OriginConfig {
            data_dir: dir.path().to_path_buf(),
            http_addr: "127.0.0.1:0".parse()?,
            quic_addr: "127.0.0.1:0".parse()?,
            ..self.config.clone()
        };
        change(&mut config);
        Self::launch(config, dir, None).await
    }

    /// Stops this origin, runs `meanwhile`, and starts it again on the same data directory and
    /// config (new loopback ports unless the config names them).
    pub async fn restart_after(
        self,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<Self> {
        let Self {
            running,
            config,
            dir,
            services,
            ..
        } = self;
        running.shutdown().await?;
        meanwhile.await;
        Self::launch(config, dir, services).await
    }

    /// A value of this origin's `/metrics` (the first sample of `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// An origin with the default config; panics if it does not start (for tests).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await.expect("the origin starts")
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where its QUIC endpoint is bound.
    pub fn quic_addr(&self) -> SocketAddr {
        self.running.quic_addr
    }

    /// Where its HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.running.http_addr
    }

    /// An account made on the store, as `chorus admin` does (role, tier and region are the
    /// operator's to give); its access token.
    pub async fn create_account(
        &self,
        username: &str,
        region: &str,
        role: Role,
        tier: Tier,
    ) -> anyhow::Result<String> {
        let store = self.running.store();
        create_account(store, &self.http, &self.base, username, region, role, tier).await
    }

    /// An admin made on the store; its token (panics on failure, for tests).
    pub async fn admin(&self, username: &str) -> String {
        self.create_account(username, "SE", Role::Admin, Tier::Premium)
            .await
            .expect("an admin account")
    }

    /// An account made as a stranger would (sign-up), whose role, tier and region an
    /// operator then sets (`PATCH /v1/admin/accounts/{username}`); its token (panics on
    /// failure, for tests).
    pub async fn account(&self, username: &str, region: &str, role: &str, tier: &str) -> String {
        let body = json!({"username": username, "password": PASSWORD});
        let (status, answer) = self.post("/v1/accounts", None, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["tier"], "free", "{answer}");
        assert_eq!(answer["role"], "listener", "{answer}");
        let operator = self
            .operator
            .get_or_init(|| self.admin("operator_admin"))
            .await;
        let response = self
            .http
            .patch(format!("{}/v1/admin/accounts/{username}", self.base))
            .bearer_auth(operator)
            .json(&json!({"role": role, "tier": tier, "region": region}))
            .send()
            .await
            .expect("PATCH the account");
        assert_eq!(response.status(), StatusCode::OK);
        let login = json!({"username": username, "password": PASSWORD});
        let (status, tokens) = self.post("/v1/sessions", None, login).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        tokens["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    /// `POST path` with an optional bearer token and JSON body: (status, JSON answer).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with `body`, which must succeed: its answer as `T`.
    pub async fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &(impl serde::Serialize + Sync),
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        call_as(&self.http, reqwest::Method::POST, &url, token, Some(body)).await
    }

    /// `GET path`: (status, JSON answer).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (status, body, _) = self.get_with_headers(path, token).await;
        (status, body)
    }

    /// `GET path`: (status, JSON answer, headers).
    pub async fn get_with_headers(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET");
        let (status, headers) = (response.status(), response.headers().clone());
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            headers,
        )
    }

    /// Uploads `file` named `name` with `metadata` (any JSON) as the artist `token`:
    /// (status, answer).
    pub async fn upload(
        &self,
        token: &str,
        file: Vec<u8>,
        name: &str,
        metadata: Value,
    ) -> (StatusCode, Value) {
        self.upload_parts(token, file, name, Some(metadata)).await
    }

    /// Uploads `file` named `name` with a `metadata` part only if given (the origin then goes
    /// by the file's tags): (status, answer).
    pub async fn upload_parts(
        &self,
        token: &str,
        file: Vec<u8>,
        name: &str,
        metadata: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name(name.to_string()),
        );
        if let Some(metadata) = metadata {
            form = form.text("metadata", metadata.to_string());
        }
        let response = self
            .http
            .post(format!("{}/v1/tracks", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Uploads a body larger than the origin takes: `Ok(status, answer)`, or `Err` when the
    /// origin answered and closed the connection before the client had written the body
    /// (the client then sees a broken pipe or a reset, not the answer). Any other failure
    /// panics.
    pub async fn upload_too_large(
        &self,
        token: &str,
        file: Vec<u8>,
        name: &str,
        metadata: Value,
    ) -> Result<(StatusCode, Value), String> {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(file).file_name(name.to_string()),
            )
            .text("metadata", metadata.to_string());
        let sent = self
            .http
            .post(format!("{}/v1/tracks", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                Ok((status, response.json().await.unwrap_or(Value::Null)))
            }
            Err(error) => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
                while let Some(inner) = cause {
                    if let Some(io) = inner.downcast_ref::<std::io::Error>()
                        && matches!(
                            io.kind(),
                            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                        )
                    {
                        return Err(error.to_string());
                    }
                    cause = inner.source();
                }
                panic!("upload: {error:?}");
            }
        }
    }

    /// Uploads `seconds` of the synthesizer's stereo piece for `seed` as `metadata`.
    pub async fn upload_synth(
        &self,
        token: &str,
        seed: u64,
        seconds: f64,
        metadata: &TrackMetadata,
    ) -> anyhow::Result<TrackView> {
        upload_synth(&self.http, &self.base, token, seed, seconds, metadata).await
    }
}

/// `method url` with an optional bearer `token` and JSON `body`, which must succeed: its
/// answer as `T` (an error names the URL, the status and the body).
pub async fn call_as<T: serde::de::DeserializeOwned, B: serde::Serialize + Sync + ?Sized>(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&B>,
) -> anyhow::Result<T> {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    ensure!(
        status.is_success(),
        "{url}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).with_context(|| format!("{url}: the answer"))
}

/// An account made on `store` as `chorus admin` does (password [`PASSWORD`]), then logged
/// in at the origin at `base`; its access token.
pub async fn create_account(
    store: &Store,
    http: &reqwest::Client,
    base: &str,
    username: &str,
    region: &str,
    role: Role,
    tier: Tier,
) -> anyhow::Result<String> {
    let account = origin::accounts::new_account(username, PASSWORD, region, role, tier)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    ensure!(
        store.accounts().create_account(&account).await?,
        "{username} exists"
    );
    let login = Login {
        username: username.to_string(),
        password: PASSWORD.to_string(),
    };
    let response = http
        .post(format!("{base}/v1/sessions"))
        .json(&login)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "log-in: {}",
        response.status()
    );
    let tokens: Tokens = response.json().await.context("log-in answer")?;
    Ok(tokens.access_token)
}

/// Uploads `seconds` of the synthesizer's stereo piece for `seed` to the origin at `base` as
/// the artist whose access token is `token`; the created track.
pub async fn upload_synth(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    seed: u64,
    seconds: f64,
    metadata: &TrackMetadata,
) -> anyhow::Result<TrackView> {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(origin::synth::wav(seed, seconds, 44_100, 2))
                .file_name("synth.wav"),
        )
        .text("metadata", serde_json::to_string(metadata)?);
    let response = http
        .post(format!("{base}/v1/tracks"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    ensure!(
        status.is_success(),
        "upload: {status} {}",
        response.text().await.unwrap_or_default()
    );
    Ok(response.json().await?)
}
