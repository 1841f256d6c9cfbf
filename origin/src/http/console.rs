//! The operator console: its page at `/console` (embedded, admins sign in on it), and the
//! admin reads it draws from: `GET /v1/admin/overview`, `GET /v1/admin/accounts`,
//! `GET /v1/admin/traffic` and `GET /v1/royalties/export` (a month as CSV).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::routes;

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, bounded};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::admin::AccountView;
use crate::store::{Account, Role};
use api::admin::{
    AccountList, CatalogSize, Egress, IngestJobs, Overview, Refusals, TrackerState, Traffic,
};

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const APP_CSS: &str = include_str!("../../console/app.css");

/// Most accounts an account search looks at before saying it was cut short.
const ACCOUNTS_SCANNED_MAX: usize = 100_000;
/// How long a tracker has to answer the console's ping.
const PING_WAIT: Duration = Duration::from_secs(2);

/// `403 admin_only` unless `caller` is an admin; `what` says what is theirs.
fn admin_only(caller: &Account, what: &str) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "admin_only",
            format!("{what} are for admins"),
        ))
    }
}

fn admin(caller: &Account) -> Result<(), ApiError> {
    admin_only(caller, "the console's reads")
}

#[utoipa::path(get, path = "/v1/admin/overview", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Overview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "admin_only")))]
/// `GET /v1/admin/overview`: the catalog's size, ingest jobs, chunk egress, tracker shards
/// (pinged now), super-nodes with a current role token and rate-limit refusals, since this
/// origin started.
pub async fn overview(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Overview>, ApiError> {
    admin(&caller)?;
    let tracks = state.store.catalog().track_count().await?;
    let search = state.search.clone();
    let counted = tokio::task::spawn_blocking(move || {
        use crate::search::{Filter, Kind, Sort};
        let albums = search
            .browse(Kind::Album, &Filter::default(), Sort::Name, 1, 0)?
            .0;
        let artists = search
            .browse(Kind::Artist, &Filter::default(), Sort::Name, 1, 0)?
            .0;
        Ok::<_, crate::search::SearchError>((albums, artists))
    })
    .await
    .map_err(ApiError::internal)?;
    // While the index warms up the counts are not known yet.
    let (albums, artists) = match counted {
        Ok((albums, artists)) => (Some(albums as u64), Some(artists as u64)),
        Err(error) => {
            tracing::debug!(%error, "catalog counts not read");
            (None, None)
        }
    };
    let metrics = &state.metrics;
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    let trackers =
        futures_util::future::join_all(state.trackers.nodes().into_iter().map(|(node, addr)| {
            let state = state.clone();
            async move { ping(&state, node, addr).await }
        }))
        .await;
    let now = now_ms();
    Ok(Json(Overview {
        at_ms: now,
        started_at_ms: state.traffic.started_at_ms(),
        catalog: CatalogSize {
            tracks,
            albums,
            artists,
        },
        ingest: IngestJobs {
            running: load(&metrics.ingest_running),
            done: load(&metrics.ingest_ok),
            rejected: load(&metrics.ingest_rejected),
            failed: load(&metrics.ingest_failed),
            audio_s: load(&metrics.ingest_audio_ms) / 1000,
        },
        egress: Egress {
            quic: load(&metrics.chunk_bytes_quic),
            http: load(&metrics.chunk_bytes_http),
            opening: load(&metrics.chunk_bytes_opening),
        },
        trackers,
        super_nodes: state.traffic.super_nodes(now),
        refusals: metrics
            .refusals()
            .into_iter()
            .map(|(bucket, refused)| Refusals {
                bucket: bucket.to_string(),
                refused,
            })
            .collect(),
    }))
}

/// Pings one tracker shard over QUIC (`Ping`/`Pong`) from the origin's endpoint.
async fn ping(state: &AppState, node: protocol::NodeId, addr: String) -> TrackerState {
    let mut seen = TrackerState {
        addr: addr.clone(),
        node_id: node.to_hex(),
        online: false,
        rtt_ms: None,
    };
    let Some(endpoint) = state.traffic.endpoint() else {
        return seen;
    };
    let asked = async {
        let socket = tokio::net::lookup_host(&addr).await.ok()?.next()?;
        let started = std::time::Instant::now();
        let peer = endpoint.connect(node, socket).await.ok()?;
        let nonce = rand::random::<u64>();
        match peer
            .request_one(&protocol::wire::Request::Ping { nonce })
            .await
        {
            Ok(protocol::wire::Response::Pong { nonce: echoed }) if echoed == nonce => {
                Some(started.elapsed().as_secs_f64() * 1000.0)
            }
            _ => None,
        }
    };
    if let Ok(Some(rtt)) = tokio::time::timeout(PING_WAIT, asked).await {
        seen.online = true;
        seen.rtt_ms = Some((rtt * 100.0).round() / 100.0);
    }
    seen
}

/// Query of `GET /v1/admin/accounts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Part of the username (case-insensitive), 1 to 32 characters.
    #[param(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    q: String,
    /// At most this many, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/admin/accounts", tag = "admin", security(("bearer" = [])), params(AccountQuery), responses((status = 200, body = AccountList), (status = 400, body = ErrorBody, description = "invalid_query"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "admin_only")))]
/// `GET /v1/admin/accounts`: accounts whose username contains `q`, the exact match first,
/// then by username.
pub async fn find_accounts(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> Result<Json<AccountList>, ApiError> {
    admin(&caller)?;
    let limit = bounded("limit", query.limit, 20, 1..=100)?;
    let q = query.q.to_ascii_lowercase();
    if q.is_empty()
        || q.len() > 32
        || !q
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(
            ApiError::bad_request("invalid_query", "q is 1 to 32 of A-Z a-z 0-9 _ . -")
                .with_field("q"),
        );
    }
    let accounts = state.store.accounts();
    let mut found: Vec<Account> = Vec::new();
    if let Some(exact) = accounts.account_by_username(&query.q).await? {
        found.push(exact);
    }
    let (mut cursor, mut scanned, mut truncated) = (None::<String>, 0, false);
    const PAGE: usize = 1_000;
    loop {
        let page = accounts.accounts_after(cursor.as_deref(), PAGE).await?;
        scanned += page.len();
        let done = page.len() < PAGE;
        cursor = page.last().map(|account| account.id.clone());
        for account in page {
            if account.username.to_ascii_lowercase().contains(&q)
                && !found.iter().any(|seen| seen.id == account.id)
            {
                found.push(account);
            }
        }
        if done {
            break;
        }
        if scanned >= ACCOUNTS_SCANNED_MAX || found.len() > limit {
            truncated = true;
            break;
        }
    }
    let exact = found
        .first()
        .filter(|first| first.username.eq_ignore_ascii_case(&query.q))
        .map(|first| first.id.clone());
    found.sort_by(|a, b| {
        let a_exact = Some(&a.id) == exact.as_ref();
        let b_exact = Some(&b.id) == exact.as_ref();
        b_exact
            .cmp(&a_exact)
            .then_with(|| a.username.cmp(&b.username))
    });
    if found.len() > limit {
        truncated = true;
        found.truncate(limit);
    }
    Ok(Json(AccountList {
        items: found.iter().map(AccountView::from).collect(),
        truncated,
    }))
}

#[utoipa::path(get, path = "/v1/admin/traffic", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Traffic), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "admin_only")))]
/// `GET /v1/admin/traffic`: the last day a minute at a time: this origin's chunk egress
/// (measured) and the bytes listeners reported by source with their listening events.
pub async fn traffic(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Traffic>, ApiError> {
    admin(&caller)?;
    state
        .traffic
        .sample_egress(now_ms(), state.metrics.egress_total());
    Ok(Json(Traffic {
        minutes: state.traffic.minutes(),
    }))
}

/// Query of `GET /v1/royalties/export`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `YYYY-MM` (UTC).
    #[param(pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$")]
    month: String,
}

#[utoipa::path(get, path = "/v1/royalties/export", tag = "activity", security(("bearer" = [])), params(ExportParams), responses(
    (status = 200, content_type = "text/csv", body = String, description = "One row per track with qualified streams, most streamed first: `track_id,title,artist_id,artist,streams,share`"),
    (status = 400, body = ErrorBody, description = "invalid_month"),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "admin_only"),
    (status = 507, body = ErrorBody, description = "too_many_streams: the month is too large for an online report")))]
/// `GET /v1/royalties/export`: the month's royalty report (as `GET /v1/royalties`) with
/// every track, as CSV for a spreadsheet.
pub async fn export_royalties(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    admin_only(&caller, "royalty reports")?;
    let csv = super::events::royalty_csv(&state, &params.month).await?;
    let mut response = csv.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"royalties-{}.csv\"",
        params.month
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The admin reads behind the console.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Ip, routes!(overview))
        .add(Limit::Ip, routes!(find_accounts))
        .add(Limit::Ip, routes!(traffic))
        .add(Limit::Ip, routes!(export_royalties))
        .into()
}

/// The console's page and files (outside the API document: they are not API operations).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/console", axum::routing::get(page))
        .route("/console/{asset}", axum::routing::get(asset))
}

fn secured(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn page() -> Response {
    secured(INDEX_HTML, "text/html; charset=utf-8")
}

async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => secured(APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => secured(APP_CSS, "text/css; charset=utf-8"),
        _ => ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route").into_response(),
    }
}
