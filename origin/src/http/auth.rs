//! Who is asking: the bearer token's account and the client's address.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use super::error::ApiError;
use super::state::{AppState, now_ms};
use crate::accounts;
use crate::store::{Account, TokenKind, TokenRecord};

/// The stored record of the request's bearer token and its account, as the rate limiter
/// found them (one store read per request for both, usually answered by the session cache).
#[derive(Debug, Clone)]
pub struct ResolvedToken(pub TokenRecord, pub Option<Account>);

/// The authenticated account behind `Authorization: Bearer <access token>`. A token an app
/// credential logged in for (`POST /v1/sessions/app`) carries the listener's rights only,
/// whatever the account's role: its `role` reads `listener`.
#[derive(Debug)]
pub struct Authed(pub Account);

/// Like [`Authed`], refusing tokens an app credential logged in for (`403 not_allowed`):
/// for what only the account password may do, such as managing app credentials.
#[derive(Debug)]
pub struct AccountSession(pub Account);

impl FromRequestParts<AppState> for AccountSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (record, account) = resolve(parts, state).await?;
        if record.credential.is_some() {
            return Err(ApiError::forbidden(
                "not_allowed",
                "an app password or API key cannot do this: log in with the account password",
            ));
        }
        Ok(AccountSession(account))
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (record, mut account) = resolve(parts, state).await?;
        if record.credential.is_some() {
            account.role = crate::store::Role::Listener;
        }
        Ok(Authed(account))
    }
}

/// The request's live access token and its account.
async fn resolve(parts: &Parts, state: &AppState) -> Result<(TokenRecord, Account), ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthorized("expected a bearer token"))?;
    let resolved = parts.extensions.get::<ResolvedToken>().cloned();
    let (record, account) = match resolved {
        Some(ResolvedToken(record, account)) => (Some(record), account),
        None => match state
            .store
            .accounts()
            .session(&accounts::token_hash(token))
            .await?
        {
            Some((record, account)) => (Some(record), account),
            None => (None, None),
        },
    };
    let record = record
        .filter(|record| record.kind == TokenKind::Access && record.expires_at_ms > now_ms())
        .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
    let account = account
        .filter(|account| account.id == record.account)
        .ok_or_else(|| ApiError::unauthorized("account gone"))?;
    Ok((record, account))
}

/// The client address the rate limiter resolved (behind trusted proxies, `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);
