//! The origin's application without sockets: requests go straight into the router with
//! `tower::ServiceExt::oneshot`, as if from 127.0.0.1, so handler tests run in milliseconds
//! and see exactly what a client would (status, headers, the JSON envelope).

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use origin::config::OriginConfig;
use origin::http::AppState;
use origin::store::{Role, Tier};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::http::PASSWORD;

/// Where the requests appear to come from.
const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

/// The origin's router and state over a private data directory.
pub struct TestApp {
    /// The state the handlers see (its store, config, search index, ...).
    pub state: AppState,
    router: Router,
    dir: tempfile::TempDir,
}

/// An answer: status, headers, and the body as JSON (`Null` when it is not).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: axum::http::HeaderMap,
    /// The body, parsed as JSON.
    pub json: Value,
    /// The body as sent.
    pub bytes: bytes::Bytes,
}

impl Answer {
    /// The error envelope's code (`<none>` when it is not one).
    pub fn code(&self) -> &str {
        crate::http::error_code(&self.json)
    }
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("data_dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// The app with the default config (as `change` adjusts it) on a new data directory.
    pub async fn with(change: impl FnOnce(&mut OriginConfig)) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = OriginConfig {
            data_dir: dir.path().to_path_buf(),
            ..OriginConfig::default()
        };
        change(&mut config);
        let identity =
            origin::server::origin_identity(&config.data_dir).expect("the origin's identity");
        let state = origin::server::open_state(
            config,
            identity,
            "http://origin.test".into(),
            "127.0.0.1:4433".parse().expect("an address"),
        )
        .await
        .expect("the origin's state");
        let router = origin::http::app(state.clone());
        Self { state, router, dir }
    }

    /// The app with the default config.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends `request` (as from 127.0.0.1).
    pub async fn send(&self, mut request: Request<Body>) -> Answer {
        request.extensions_mut().insert(ConnectInfo(CLIENT));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the body is read");
        Answer {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        }
    }

    /// `method path` with an optional bearer token and a raw body of `content_type`.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        self.send(request.body(body.into()).expect("a request"))
            .await
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        match body {
            Some(body) => {
                self.raw(
                    method,
                    path,
                    token,
                    Some("application/json"),
                    body.to_string(),
                )
                .await
            }
            None => self.raw(method, path, token, None, Body::empty()).await,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// An account made on the store as `chorus admin` does; its access token.
    pub async fn account(&self, username: &str, role: Role, tier: Tier) -> String {
        let account = origin::accounts::new_account(username, PASSWORD, "SE", role, tier)
            .expect("a valid account");
        assert!(
            self.state
                .store
                .accounts()
                .create_account(&account)
                .await
                .expect("the store"),
            "{username} exists"
        );
        let answer = self
            .post(
                "/v1/sessions",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        answer.json["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }
}
