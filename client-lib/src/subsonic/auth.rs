//! Who a Subsonic request is: its credentials (`u` with `p` or `t`+`s`, or `apiKey`) logged in
//! at the origin (`POST /v1/sessions/app`), the session remembered per credential.
//!
//! The gateway never sees an account password and cannot check a token itself (that needs
//! the app password, which only the origin holds): it asks the origin once per distinct
//! credential and keeps the answer for at most [`REVALIDATE`] (so a revoked credential stops
//! working within it), or until the session's token nears its end. A client that
//! salts every request anew costs one origin round trip per request; one that keeps its salt
//! (as Symfonium does) or uses an API key costs one per session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use api::accounts::{AppLogin, AppSession, KeyLogin, PasswordLogin, TokenLogin};
use api::client::{ApiError, OriginApi};
use tokio::sync::Mutex;

use super::params::Params;
use super::response::{ErrorCode, Failure};

/// Sessions remembered (one per distinct credential; a client with fresh salts makes many).
pub const SESSIONS_MAX: usize = 4_096;

/// A session kept this long before its token's end is logged in again.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// A session is checked with the origin again at least this often: a revoked app password
/// or API key stops working at the gateway within this time.
pub const REVALIDATE: Duration = Duration::from_secs(60);

/// The credentials a request presents, checked for form (not yet for truth).
pub fn login_of(params: &Params) -> Result<AppLogin, Failure> {
    let conflicting = || {
        Failure::new(
            ErrorCode::ConflictingAuth,
            "Multiple conflicting authentication mechanisms provided",
        )
    };
    let (user, password, token, salt, key) = (
        params.get("u"),
        params.get("p"),
        params.get("t"),
        params.get("s"),
        params.get("apiKey"),
    );
    if let Some(key) = key {
        if user.is_some() || password.is_some() || token.is_some() {
            return Err(conflicting());
        }
        return Ok(AppLogin::ApiKey(KeyLogin {
            api_key: key.to_string(),
        }));
    }
    let user = user.ok_or_else(|| Failure::missing("u"))?;
    match (password, token, salt) {
        (Some(_), Some(_), _) => Err(conflicting()),
        (Some(password), None, _) => Ok(AppLogin::Password(PasswordLogin {
            username: user.to_string(),
            password: password.to_string(),
        })),
        (None, Some(token), Some(salt)) => Ok(AppLogin::Token(TokenLogin {
            username: user.to_string(),
            token: token.to_string(),
            salt: salt.to_string(),
        })),
        (None, Some(_), None) => Err(Failure::missing("s")),
        (None, None, _) => Err(Failure::missing("p or t")),
    }
}

fn key_of(login: &AppLogin) -> [u8; 32] {
    let text = serde_json::to_string(login).unwrap_or_default();
    *blake3::hash(text.as_bytes()).as_bytes()
}

/// A logged-in Subsonic caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The origin's answer: token and account.
    pub session: AppSession,
    key: [u8; 32],
}

impl Caller {
    /// The access token for origin calls.
    pub fn token(&self) -> &str {
        &self.session.access_token
    }

    /// The login name.
    pub fn username(&self) -> &str {
        &self.session.account.username
    }
}

/// Sessions by credential.
#[derive(Debug, Default)]
pub struct Sessions {
    known: Mutex<HashMap<[u8; 32], (AppSession, Instant)>>,
}

impl Sessions {
    /// The session for `params`' credentials: remembered, or logged in at the origin.
    pub async fn caller(&self, api: &OriginApi, params: &Params) -> Result<Caller, Failure> {
        let login = login_of(params)?;
        let key = key_of(&login);
        let now = Instant::now();
        if let Some((session, until)) = self.known.lock().await.get(&key)
            && *until > now
        {
            return Ok(Caller {
                session: session.clone(),
                key,
            });
        }
        let session = api.app_session(&login).await.map_err(|error| {
            let api_key = matches!(login, AppLogin::ApiKey(_));
            match ApiError::of(&error) {
                Some(refused) if refused.status == 401 && api_key => {
                    Failure::new(ErrorCode::InvalidApiKey, "Invalid API key")
                }
                Some(refused) if refused.status == 401 || refused.status == 400 => {
                    Failure::new(ErrorCode::WrongCredentials, "Wrong username or password")
                }
                _ => Failure::generic(format!("the origin could not log in: {error:#}")),
            }
        })?;
        let lasts = Duration::from_secs(session.expires_in)
            .saturating_sub(RENEW_BEFORE)
            .min(REVALIDATE);
        let mut known = self.known.lock().await;
        if known.len() >= SESSIONS_MAX {
            known.retain(|_, (_, until)| *until > now);
            if known.len() >= SESSIONS_MAX {
                known.clear();
            }
        }
        known.insert(key, (session.clone(), now + lasts));
        Ok(Caller { session, key })
    }

    /// Forgets `caller`'s session (the origin refused its token: revoked or expired).
    pub async fn forget(&self, caller: &Caller) {
        self.known.lock().await.remove(&caller.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(query: &str) -> Result<AppLogin, ErrorCode> {
        login_of(&Params::parse(query, b"").unwrap()).map_err(|failure| failure.code)
    }

    #[test]
    fn credential_forms() {
        let plain = login("u=me&p=secret").unwrap();
        assert_eq!(
            plain,
            AppLogin::Password(PasswordLogin {
                username: "me".into(),
                password: "secret".into()
            })
        );
        let token = login("u=me&t=0123&s=salty").unwrap();
        assert!(matches!(&token, AppLogin::Token(login) if login.salt == "salty"));
        assert_eq!(
            login("apiKey=k").unwrap(),
            AppLogin::ApiKey(KeyLogin {
                api_key: "k".into()
            })
        );
        assert_eq!(login("apiKey=k&u=me"), Err(ErrorCode::ConflictingAuth));
        assert_eq!(login("u=me&p=x&t=y&s=z"), Err(ErrorCode::ConflictingAuth));
        assert_eq!(login("u=me&t=y"), Err(ErrorCode::MissingParameter));
        assert_eq!(login("u=me"), Err(ErrorCode::MissingParameter));
        assert_eq!(login("p=x"), Err(ErrorCode::MissingParameter));
        assert_ne!(key_of(&plain), key_of(&token));
    }
}
