//! App passwords and API keys (`/v1/me/app-passwords`) and the log-in apps make with them
//! (`POST /v1/sessions/app`).
//!
//! A listener makes one credential per app and revokes it alone; the account password never
//! leaves the listener. An app password is 26 random characters (130 bits), stored sealed
//! under `content.kek` because Subsonic's token authentication (`md5(password + salt)`) needs
//! the password itself; an API key is stored only as its SHA-256. Neither is worth guessing,
//! so their log-in takes only the per-address cap, not the slow `unauthenticated` bucket: a
//! gateway logs in for every request of a client that salts each one anew.
//!
//! A log-in's token is derived from the credential and the current period (half the access
//! token lifetime), so logging in again within a period returns the same token and writes
//! nothing. The token carries the listener's rights only and names its credential: revoking
//! the credential removes it.

use api::accounts::{
    AppCredentialCreated, AppCredentialView, AppCredentials, AppLogin, AppSession,
    CredentialKind as KindView, KeyLogin, Me, NewAppCredential, PasswordLogin, TokenLogin,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::routes;

use super::auth::AccountSession;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::accounts;
use crate::store::{Account, AppCredential, CredentialKind, Role, TokenKind, TokenRecord};

/// Credentials one account may hold.
pub const CREDENTIALS_MAX: usize = 50;

fn kind_view(kind: CredentialKind) -> KindView {
    match kind {
        CredentialKind::AppPassword => KindView::AppPassword,
        CredentialKind::ApiKey => KindView::ApiKey,
    }
}

fn view(credential: &AppCredential) -> AppCredentialView {
    AppCredentialView {
        id: credential.id.clone(),
        name: credential.name.clone(),
        kind: kind_view(credential.kind),
        created_at_ms: credential.created_at_ms,
    }
}

#[utoipa::path(post, path = "/v1/me/app-passwords", tag = "accounts", security(("bearer" = [])), request_body = NewAppCredential, responses((status = 201, body = AppCredentialCreated, description = "Made: the secret is shown this once"), (status = 400, body = ErrorBody, description = "invalid_name"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_allowed: an app's own token cannot make credentials"), (status = 409, body = ErrorBody, description = "too_many_credentials")))]
/// `POST /v1/me/app-passwords`: a password (or, with `kind: api_key`, an API key) for one app.
async fn create_credential(
    State(state): State<AppState>,
    AccountSession(account): AccountSession,
    ApiJson(new): ApiJson<NewAppCredential>,
) -> Result<(StatusCode, Json<AppCredentialCreated>), ApiError> {
    // As the schema says: 1 to 64 characters, no control characters, not only spaces.
    let blank = new
        .name
        .chars()
        .all(|c| c.is_whitespace() || c == '\u{feff}');
    let name = new.name.trim();
    if blank || new.name.chars().count() > 64 || new.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a name is 1 to 64 characters, no control characters",
        )
        .with_field("name"));
    }
    let held = state
        .store
        .accounts()
        .app_credentials(&account.id)
        .await?
        .len();
    if held >= CREDENTIALS_MAX {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_credentials",
            format!("at most {CREDENTIALS_MAX} app passwords and API keys: revoke one first"),
        ));
    }
    let kind = match new.kind.unwrap_or(KindView::AppPassword) {
        KindView::AppPassword => CredentialKind::AppPassword,
        KindView::ApiKey => CredentialKind::ApiKey,
    };
    let (credential, secret) = state
        .store
        .create_app_credential(&account.id, name, kind, now_ms())
        .await?;
    let (password, api_key) = match kind {
        CredentialKind::AppPassword => (Some(secret), None),
        CredentialKind::ApiKey => (None, Some(secret)),
    };
    Ok((
        StatusCode::CREATED,
        Json(AppCredentialCreated {
            id: credential.id,
            name: credential.name,
            kind: kind_view(kind),
            password,
            api_key,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/me/app-passwords", tag = "accounts", security(("bearer" = [])), responses((status = 200, body = AppCredentials), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_allowed: an app's own token cannot list credentials")))]
/// `GET /v1/me/app-passwords`: the caller's app passwords and API keys, without secrets.
async fn list_credentials(
    State(state): State<AppState>,
    AccountSession(account): AccountSession,
) -> Result<Json<AppCredentials>, ApiError> {
    let mut items: Vec<AppCredentialView> = state
        .store
        .accounts()
        .app_credentials(&account.id)
        .await?
        .iter()
        .map(view)
        .collect();
    items.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    Ok(Json(AppCredentials { items }))
}

#[utoipa::path(delete, path = "/v1/me/app-passwords/{id}", tag = "accounts", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{16}$")), responses((status = 204, description = "Revoked, with every session it logged in"), (status = 400, body = ErrorBody, description = "invalid_id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_allowed: an app's own token cannot revoke credentials"), (status = 404, body = ErrorBody, description = "not_found")))]
/// `DELETE /v1/me/app-passwords/{id}`: revokes a credential and the sessions it made.
async fn delete_credential(
    State(state): State<AppState>,
    AccountSession(account): AccountSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::bad_request(
            "invalid_id",
            "credential ids are 16 lower-case hex characters",
        ));
    }
    if state
        .store
        .accounts()
        .delete_app_credential(&account.id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("app password"))
    }
}

/// How an app presented its credential.
enum Presented {
    Password(String),
    Token { token: [u8; 16], salt: String },
    ApiKey(String),
}

fn presented(login: AppLogin) -> Result<(Option<String>, Presented), ApiError> {
    let bad = |field: &'static str, message: &str| {
        Err(ApiError::bad_request("invalid_login", message.to_string()).with_field(field))
    };
    match login {
        AppLogin::ApiKey(KeyLogin { api_key }) => {
            if api_key.chars().count() > 256 {
                return bad("api_key", "an API key is at most 256 characters");
            }
            Ok((None, Presented::ApiKey(api_key)))
        }
        AppLogin::Password(PasswordLogin { username, password }) => {
            if password.chars().count() > 1024 {
                return bad("password", "a password is at most 1024 characters");
            }
            let password = match password.strip_prefix("enc:") {
                Some(hex_text) => match hex::decode(hex_text)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                {
                    Some(password) => password,
                    None => return bad("password", "an enc: password is its UTF-8 bytes in hex"),
                },
                None => password,
            };
            Ok((Some(username), Presented::Password(password)))
        }
        AppLogin::Token(TokenLogin {
            username,
            token,
            salt,
        }) => {
            let Some(token) = hex::decode(&token)
                .ok()
                .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            else {
                return bad("token", "a token is 32 hex characters");
            };
            if !(6..=256).contains(&salt.chars().count()) {
                return bad("salt", "a salt is 6 to 256 characters");
            }
            Ok((Some(username), Presented::Token { token, salt }))
        }
    }
}

/// Equal without an early exit (both sides hashed first, so lengths do not show either).
fn same(left: &[u8], right: &[u8]) -> bool {
    let (left, right) = (blake3::hash(left), blake3::hash(right));
    left.as_bytes()
        .iter()
        .zip(right.as_bytes())
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// The credential of `account` that `presented` proves, if any.
fn matching(
    state: &AppState,
    credentials: &[AppCredential],
    presented: &Presented,
) -> Option<AppCredential> {
    use md5::Digest;
    let mut found = None;
    for credential in credentials {
        // Every credential is checked (no early exit): timing does not tell which matched.
        let Ok(Some(password)) = state.store.app_password(credential) else {
            continue;
        };
        let matched = match presented {
            Presented::Password(given) => same(given.as_bytes(), password.as_bytes()),
            Presented::Token { token, salt } => {
                let expected = md5::Md5::new()
                    .chain_update(password.as_bytes())
                    .chain_update(salt.as_bytes())
                    .finalize();
                same(token, &expected)
            }
            Presented::ApiKey(_) => false,
        };
        if matched && found.is_none() {
            found = Some(credential.clone());
        }
    }
    found
}

#[utoipa::path(post, path = "/v1/sessions/app", tag = "accounts", request_body = AppLogin, responses((status = 200, body = AppSession, description = "An access token with the listener's rights, revoked with the credential"), (status = 400, body = ErrorBody, description = "invalid_login: a token, salt or enc: password that does not read"), (status = 401, body = ErrorBody, description = "wrong username, app password or API key")))]
/// `POST /v1/sessions/app`: an app logs in with an app password (plain, `enc:`, or Subsonic's
/// token and salt) or an API key.
async fn app_session(
    State(state): State<AppState>,
    ApiJson(login): ApiJson<AppLogin>,
) -> Result<Json<AppSession>, ApiError> {
    let refused = || ApiError::unauthorized("wrong username, app password or API key");
    let (username, presented) = presented(login)?;
    let (credential, account) = match (&username, &presented) {
        (_, Presented::ApiKey(key)) => {
            let credential = state
                .store
                .accounts()
                .api_key(&accounts::token_hash(key))
                .await?
                .ok_or_else(refused)?;
            let account = state
                .store
                .accounts()
                .account(&credential.account)
                .await?
                .ok_or_else(refused)?;
            (credential, account)
        }
        (Some(username), _) => {
            let account = state
                .store
                .accounts()
                .account_by_username(username)
                .await?
                .ok_or_else(refused)?;
            let credentials = state.store.accounts().app_credentials(&account.id).await?;
            let credential = matching(&state, &credentials, &presented).ok_or_else(refused)?;
            (credential, account)
        }
        (None, _) => return Err(refused()),
    };
    let now = now_ms();
    let period = (state.config.access_token_ttl_s * 1000 / 2).max(1_000);
    let window = now / period;
    let expires_at_ms = (window + 2) * period;
    let token = state.store.app_session_token(&credential, window);
    let hash = accounts::token_hash(&token);
    if state.store.accounts().token(&hash).await?.is_none() {
        let record = TokenRecord {
            account: account.id.clone(),
            kind: TokenKind::Access,
            expires_at_ms,
            credential: Some(credential.id.clone()),
        };
        state.store.accounts().put_tokens(&[(hash, record)]).await?;
        // A revoke that ran between reading the credential and storing its token removed the
        // credential and its tokens before this one was stored: look again, and take it back.
        let still = state
            .store
            .accounts()
            .app_credentials(&account.id)
            .await?
            .iter()
            .any(|held| held.id == credential.id);
        if !still {
            state.store.accounts().take_token(&hash).await?;
            return Err(refused());
        }
    }
    Ok(Json(AppSession {
        access_token: token,
        expires_in: expires_at_ms.saturating_sub(now) / 1000,
        token_type: "Bearer".into(),
        credential: credential.id,
        account: listener_view(account),
    }))
}

/// The account as an app session sees it: with the listener's rights.
fn listener_view(account: Account) -> Me {
    Me {
        id: account.id,
        username: account.username,
        region: account.region,
        role: Role::Listener,
        tier: account.tier,
    }
}

/// Managing credentials takes the per-address bucket; an app's log-in only the per-address
/// cap (see the module docs).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Ip, routes!(create_credential, list_credentials))
        .add(Limit::Ip, routes!(delete_credential))
        .add(Limit::IpOnly, routes!(app_session))
        .into()
}
