//! Rate limits where routes are declared: every operation is added with a [`Limit`], so a
//! route cannot exist without one, and no path is matched twice.
//!
//! [`admit`] runs before routing: it resolves the client's address (behind trusted proxies,
//! the last `X-Forwarded-For` entry) and the bearer token once, for the limits and the
//! handlers. The layer each operation carries then takes the tokens its [`Limit`] names from
//! the [`crate::ratelimit::Limiter`] and answers `429 rate_limited` with `Retry-After` when a
//! bucket is empty.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{ClientIp, ResolvedToken};
use super::error::ApiError;
use super::state::{AppState, now_ms};
use crate::metrics::Metrics;
use crate::ratelimit::{Class, Key, Limiter, limit_key};

/// How an operation is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Not limited: signed chunk URLs (scoped by their signature, what a CDN caches), health,
    /// metrics and the OpenAPI document.
    Exempt,
    /// The per-IP cap, and without a token the `unauthenticated` bucket of the address.
    Ip,
    /// The per-IP cap alone, token or not: an app's log-in with an app password or API key
    /// (secrets of 130 bits and more, not worth guessing; a gateway logs in for each request
    /// of a client that salts every one anew).
    IpOnly,
    /// The per-IP cap and the class's bucket: the account's, or without a token the
    /// `unauthenticated` bucket of the address. [`Class::Unauthenticated`] (sign-up, log-in,
    /// refresh) always takes the address's bucket, whatever bearer comes along.
    Class(Class),
}

impl Limit {
    /// The name the OpenAPI document gives it (`x-rate-limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Exempt => "none",
            Limit::Ip => "ip",
            Limit::IpOnly => "ip_only",
            Limit::Class(class) => class.as_str(),
        }
    }
}

/// What [`admit`] resolved for the per-operation limits.
#[derive(Debug, Clone)]
struct Admitted {
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
    /// The address as limited (IPv4, or an IPv6 /64).
    ip: Option<IpAddr>,
    /// The account of a current bearer token.
    account: Option<String>,
}

/// The middleware before routing: resolves the client address ([`ClientIp`]) and the bearer
/// token ([`ResolvedToken`], so `Authed` does not look it up again).
pub async fn admit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let ip = peer.map(|peer| {
        if state.limiter.trusts(&peer) {
            request
                .headers()
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok())
                .and_then(|list| list.rsplit(',').next())
                .and_then(|last| last.trim().parse().ok())
                .unwrap_or(peer)
        } else {
            peer
        }
    });
    if let Some(ip) = ip {
        // Sign-up reads it for the operator's region rules.
        request.extensions_mut().insert(ClientIp(ip));
    }
    let now = now_ms();
    let token_hash = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(crate::accounts::token_hash);
    let session = match token_hash {
        Some(hash) => state.store.accounts().session(&hash).await.ok().flatten(),
        None => None,
    }
    .filter(|(record, _)| record.expires_at_ms > now);
    let record = session.as_ref().map(|(record, _)| record.clone());
    let account = record.as_ref().map(|record| record.account.clone());
    if let Some((record, account)) = session {
        request
            .extensions_mut()
            .insert(ResolvedToken(record, account));
    }
    request.extensions_mut().insert(Admitted {
        limiter: state.limiter.clone(),
        metrics: state.metrics.clone(),
        // An IPv6 client usually has a whole /64: it is limited as one address.
        ip: ip.map(limit_key),
        account,
    });
    next.run(request).await
}

/// The layer an operation carries: takes the tokens `limit` names.
pub async fn enforce(limit: Limit, request: Request, next: Next) -> Response {
    if limit == Limit::Exempt {
        return next.run(request).await;
    }
    let Some(admitted) = request.extensions().get::<Admitted>() else {
        return next.run(request).await;
    };
    let now = now_ms();
    let ip = admitted.ip;
    if let Some(ip) = ip
        && let Err(wait) = admitted.limiter.take(Class::Ip, Key::Ip(ip), now)
    {
        admitted.metrics.rate_limited(Class::Ip.as_str());
        return too_many(Class::Ip, wait);
    }
    let class = match limit {
        Limit::Class(class) => Some(class),
        Limit::Ip | Limit::Exempt => None,
        Limit::IpOnly => return next.run(request).await,
    };
    let limited = match (&admitted.account, class, ip) {
        // Sign-up, log-in and refresh are limited per address whatever bearer comes along.
        (_, Some(Class::Unauthenticated), Some(ip)) => Some((Class::Unauthenticated, Key::Ip(ip))),
        (_, Some(Class::Unauthenticated), None) => None,
        (Some(account), Some(class), _) => Some((class, Key::Account(account.clone()))),
        (Some(_), None, _) => None,
        (None, _, Some(ip)) => Some((Class::Unauthenticated, Key::Ip(ip))),
        (None, _, None) => None,
    };
    if let Some((class, key)) = limited
        && let Err(wait) = admitted.limiter.take(class, key, now)
    {
        admitted.metrics.rate_limited(class.as_str());
        return too_many(class, wait);
    }
    next.run(request).await
}

fn too_many(class: Class, wait_ms: u64) -> Response {
    let seconds = wait_ms.div_ceil(1000).clamp(1, 3600);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many {} requests: retry in {seconds} s",
            class.as_str().replace('_', " ")
        ),
    )
    .with_retry_after(seconds)
    .into_response()
}
