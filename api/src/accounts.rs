//! Sign-up, log-in, refresh and the caller's own account.

use serde::{Deserialize, Serialize};

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Listens.
    Listener,
    /// Listens and uploads tracks.
    Artist,
    /// Operates the service; created only by `chorus admin`.
    Admin,
    /// Runs a super-node (gets role tokens); created only by `chorus admin`.
    SuperNode,
}

/// An account's subscription tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Up to normal quality.
    Free,
    /// Every quality.
    Premium,
}

/// Body of `POST /v1/accounts`. Only the username and password are the caller's to choose:
/// the role is a listener (or an artist where the operator opened artist sign-up), the tier
/// is free and the region comes from the operator's rules. A caller may state `role`, `tier`
/// or `region` to check them; asking for more than it may have is `403 not_allowed` naming
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// 3 to 32 characters of `a-z A-Z 0-9 _ . -`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$", min_length = 3, max_length = 32)]
    pub username: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// Must be the region the operator's rules give this address, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::assigned_region_schema)]
    pub region: Option<String>,
    /// `listener` (default), or `artist` where artist sign-up is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// `free` (the only tier a sign-up gets), if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// `201` answer of `POST /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountCreated {
    /// Account id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// The region the operator's rules gave it.
    pub region: String,
    /// Its role.
    pub role: Role,
    /// Its tier.
    pub tier: Tier,
}

/// Body of `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The login name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Body of `POST /v1/sessions/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// A refresh token from a log-in or an earlier refresh (each works once).
    pub refresh_token: String,
}

/// Tokens of a session: the answer of a log-in and of a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tokens {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Renews the session once (`POST /v1/sessions/refresh`).
    pub refresh_token: String,
    /// Seconds the access token lasts.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: String,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    /// Account id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Login name.
    pub username: String,
    /// Region.
    pub region: String,
    /// Role.
    pub role: Role,
    /// Tier.
    pub tier: Tier,
}

/// What an app credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A password for one app: Subsonic's `p`, `enc:` and token+salt (`t`, `s`) with the
    /// username.
    AppPassword,
    /// An API key: OpenSubsonic's `apiKey`, alone.
    ApiKey,
}

/// Body of `POST /v1/me/app-passwords`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppCredential {
    /// What it is for ("Symfonium on my phone"): 1 to 64 characters, not only spaces, no
    /// control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// `app_password` (default) or `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CredentialKind>,
}

/// `201` answer of `POST /v1/me/app-passwords`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppCredentialCreated {
    /// Its id (revoke with `DELETE /v1/me/app-passwords/{id}`).
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Password or API key.
    pub kind: CredentialKind,
    /// The app password (with the username) when `kind` is `app_password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The API key when `kind` is `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// One of the caller's app credentials, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppCredentialView {
    /// Its id.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Password or API key.
    pub kind: CredentialKind,
    /// When it was made, Unix ms.
    pub created_at_ms: u64,
}

/// `GET /v1/me/app-passwords`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppCredentials {
    /// Oldest first.
    pub items: Vec<AppCredentialView>,
}

/// Body of `POST /v1/sessions/app`: an app's credentials, as a Subsonic client sends them,
/// in exactly one of three forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AppLogin {
    /// The username and an app password.
    Password(PasswordLogin),
    /// The username and a token made from an app password and a salt.
    Token(TokenLogin),
    /// An API key alone.
    ApiKey(KeyLogin),
}

/// `username` and `password`: an app password, or `enc:` and its UTF-8 bytes in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordLogin {
    /// The login name.
    #[schema(max_length = 32)]
    pub username: String,
    /// The app password, or `enc:` and hex.
    #[schema(max_length = 1024)]
    pub password: String,
}

/// `username`, `token` (`md5(app password + salt)`, hex) and `salt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenLogin {
    /// The login name.
    #[schema(max_length = 32)]
    pub username: String,
    /// `md5(app password + salt)` in hex.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    pub token: String,
    /// The salt the token was made with: 6 to 256 characters.
    #[schema(min_length = 6, max_length = 256)]
    pub salt: String,
}

/// `api_key` alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyLogin {
    /// An API key.
    #[schema(max_length = 256)]
    pub api_key: String,
}

/// Answer of `POST /v1/sessions/app`: an access token (no refresh: the app's credential logs
/// in again) and who it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppSession {
    /// Bearer token for API calls; revoked with the credential.
    pub access_token: String,
    /// Seconds it lasts.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: String,
    /// The id of the credential that logged in.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub credential: String,
    /// The account.
    pub account: Me,
}
