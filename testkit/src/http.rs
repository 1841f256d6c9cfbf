//! Blocking HTTP helpers for tests that talk to an origin process: every call answers its
//! status and JSON body (`Null` when the body is not JSON), and the normal paths (sign-up,
//! log-in, upload) send the `api` crate's types.

use api::accounts::{Login, NewAccount, Role, Tokens};
use api::catalog::TrackMetadata;
use reqwest::Method;
use reqwest::blocking::Client;
use serde::Serialize;
use serde_json::Value;

/// The password every test account has.
pub const PASSWORD: &str = "correct horse battery";

/// `method url` with an optional bearer `token` and JSON `body`: (status, JSON answer).
pub fn call(
    http: &Client,
    method: Method,
    url: impl AsRef<str>,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = url.as_ref();
    let mut request = http.request(method.clone(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// `GET url`.
pub fn get(http: &Client, url: impl AsRef<str>, token: Option<&str>) -> (u16, Value) {
    call(http, Method::GET, url, token, None)
}

/// `POST url` with `body` as JSON.
pub fn post(
    http: &Client,
    url: impl AsRef<str>,
    token: Option<&str>,
    body: impl Serialize,
) -> (u16, Value) {
    let body = serde_json::to_value(body).expect("the body serializes");
    call(http, Method::POST, url, token, Some(body))
}

/// `POST url` that must succeed: its JSON answer.
pub fn post_ok(
    http: &Client,
    url: impl AsRef<str>,
    token: Option<&str>,
    body: impl Serialize,
) -> Value {
    let (status, answer) = post(http, url.as_ref(), token, body);
    assert!(
        (200..300).contains(&status),
        "POST {}: {status} {answer}",
        url.as_ref()
    );
    answer
}

/// The error code of an error envelope (`<none>` when it is not one).
pub fn error_code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("<none>")
}

/// Signs `username` up (password [`PASSWORD`]) as `role` (`None`: the default, a listener);
/// the answer, which must be `201`.
pub fn sign_up(http: &Client, base: &str, username: &str, role: Option<Role>) -> Value {
    let body = NewAccount {
        username: username.to_string(),
        password: PASSWORD.to_string(),
        region: None,
        role,
        tier: None,
    };
    let (status, answer) = post(http, format!("{base}/v1/accounts"), None, body);
    assert_eq!(status, 201, "sign-up of {username}: {answer}");
    answer
}

/// Logs `username` in (password [`PASSWORD`]): its access token.
pub fn login(http: &Client, base: &str, username: &str) -> String {
    let body = Login {
        username: username.to_string(),
        password: PASSWORD.to_string(),
    };
    let answer = post_ok(http, format!("{base}/v1/sessions"), None, body);
    let tokens: Tokens = serde_json::from_value(answer).expect("a log-in answers tokens");
    tokens.access_token
}

/// Track metadata with a title and artist and nothing else.
pub fn metadata(title: &str, artist: &str) -> TrackMetadata {
    TrackMetadata {
        title: Some(title.to_string()),
        artist: Some(artist.to_string()),
        ..TrackMetadata::default()
    }
}

/// Uploads `file` named `name` with `metadata` (any JSON, so tests can send bad metadata) as
/// the artist `token`: (status, answer).
pub fn upload(
    http: &Client,
    base: &str,
    token: &str,
    file: Vec<u8>,
    name: &str,
    metadata: &Value,
) -> (u16, Value) {
    let form = reqwest::blocking::multipart::Form::new()
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(file).file_name(name.to_string()),
        )
        .text("metadata", metadata.to_string());
    let response = http
        .post(format!("{base}/v1/tracks"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .unwrap_or_else(|error| panic!("upload to {base}: {error}"));
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// Uploads `seconds` of the synthesizer's stereo piece for `seed` with `metadata`; the track,
/// which must be created.
pub fn upload_synth(
    http: &Client,
    base: &str,
    token: &str,
    seed: u64,
    seconds: f64,
    metadata: &TrackMetadata,
) -> Value {
    let file = origin::synth::wav(seed, seconds, 44_100, 2);
    let metadata = serde_json::to_value(metadata).expect("metadata serializes");
    let (status, track) = upload(http, base, token, file, "synth.wav", &metadata);
    assert_eq!(status, 201, "upload: {track}");
    track
}
