//! The web player's endpoints on a real `chorus gateway`, black-box and without a browser:
//! sign-in and its refusals, what the page may ask of the origin through the gateway and what
//! it may not, a session outliving its access token (the origin here issues 2-second ones),
//! and signing out.

#[path = "subsonic/world.rs"]
mod world;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

/// A browser tab: the session cookie it was given, and the page's header on every request.
struct Tab {
    http: Client,
    base: String,
    cookie: String,
}

impl Tab {
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-chorus-web", "1")
    }

    fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.request(reqwest::Method::GET, path).send().unwrap()
    }
}

fn sign_in(http: &Client, base: &str, user: &str, password: &str) -> reqwest::blocking::Response {
    http.post(format!("{base}/web/session"))
        .header("x-chorus-web", "1")
        .json(&json!({"username": user, "password": password}))
        .send()
        .unwrap()
}

fn error_code(response: reqwest::blocking::Response) -> String {
    let body: Value = response.json().unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_web_endpoints_sign_in_proxy_only_what_the_page_needs_renew_and_sign_out() {
    let world = world::world_configured("access_token_ttl_s = 2\n");
    let http = Client::new();
    let base = world.gateway_base.clone();

    // Sign-in: the page's header is required; a wrong password is refused.
    let bare = http
        .post(format!("{base}/web/session"))
        .json(&json!({"username": "listener", "password": testkit::PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    let wrong = sign_in(&http, &base, "listener", "not the password");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let garbage = http
        .post(format!("{base}/web/session"))
        .header("x-chorus-web", "1")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    // Without a session, nothing but the page itself.
    assert_eq!(
        http.get(format!("{base}/web/api/v1/me"))
            .send()
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let signed = sign_in(&http, &base, "listener", testkit::PASSWORD);
    assert_eq!(signed.status(), StatusCode::OK);
    let set_cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let tab = Tab {
        http: http.clone(),
        base: base.clone(),
        cookie: set_cookie.split(';').next().unwrap().to_string(),
    };
    let me: Value = tab.get("/web/api/v1/me").json().unwrap();
    assert_eq!(me["username"], "listener");

    // Only the routes the page uses, with plain segments: no admin API, no dots or escapes
    // that the origin's router would read as another path, no change without the header.
    for path in [
        "/web/api/v1/admin/accounts",
        "/web/api/v1/me/app-passwords",
        "/web/api/v1/albums/../admin/accounts",
        "/web/api/v1/albums/%2e%2e%2fadmin",
        "/web/api/v1/tracks/x/upload",
    ] {
        let status = tab.get(path).status();
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }
    let unheaded = http
        .post(format!("{base}/web/api/v1/playlists"))
        .header("cookie", &tab.cookie)
        .json(&json!({"name": "sneaky"}))
        .send()
        .unwrap();
    assert_eq!(unheaded.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(unheaded), "not_from_page");

    // The access token lasts 2 s: past it, the account's API and the stream still answer
    // (the gateway renews the session once, with its refresh token); covers and the catalog
    // are public reads.
    std::thread::sleep(std::time::Duration::from_millis(2_600));
    let me: Value = tab.get("/web/api/v1/me").json().unwrap();
    assert_eq!(me["username"], "listener");
    let cover = tab.get(&format!("/web/cover/al-{}?size=120", world.album));
    assert_eq!(cover.status(), StatusCode::OK);
    assert!(
        cover.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/")
    );
    std::thread::sleep(std::time::Duration::from_millis(2_600));
    let album: Value = tab
        .get(&format!("/web/api/v1/albums/{}", world.album))
        .json()
        .unwrap();
    assert_eq!(album["tracks"]["items"].as_array().unwrap().len(), 2);
    std::thread::sleep(std::time::Duration::from_millis(2_600));
    let stream = tab.get(&format!("/web/stream/{}", world.single));
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.bytes().unwrap().starts_with(b"OggS"));
    let traffic: Value = tab
        .get(&format!("/web/traffic/{}", world.single))
        .json()
        .unwrap();
    assert!(traffic["origin"].as_u64().unwrap() > 0, "{traffic}");
    // What another browser's streams moved is not told to this one.
    let other = sign_in(&http, &base, "listener", testkit::PASSWORD);
    let other = Tab {
        http: http.clone(),
        base: base.clone(),
        cookie: other.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string(),
    };
    let streamed = other.get(&format!("/web/stream/{}", world.first));
    assert_eq!(streamed.status(), StatusCode::OK);
    assert!(!streamed.bytes().unwrap().is_empty());
    assert_eq!(
        other.get(&format!("/web/traffic/{}", world.first)).status(),
        StatusCode::OK
    );
    assert_eq!(
        tab.get(&format!("/web/traffic/{}", world.first)).status(),
        StatusCode::NOT_FOUND
    );

    // Signing out ends the session here: the same cookie is refused afterwards.
    let out = tab
        .request(reqwest::Method::DELETE, "/web/session")
        .send()
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(tab.get("/web/api/v1/me").status(), StatusCode::UNAUTHORIZED);
}
