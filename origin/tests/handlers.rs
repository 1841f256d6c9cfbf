//! The HTTP layer's handlers called in-process (`app().oneshot`, no socket): every refusal is
//! the JSON envelope with a stable code, whatever part of axum made it, and the routes answer
//! what the document says.

use axum::http::{Method, StatusCode, header};
use origin::store::{Role, Tier};
use serde_json::{Value, json};
use testkit::app::TestApp;

#[tokio::test]
async fn unknown_routes_and_methods_are_enveloped() {
    let app = TestApp::new().await;
    let answer = app.get("/v1/nowhere", None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "no_route")
    );
    let answer = app.call(Method::PATCH, "/v1/search?q=x", None, None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.code(), "method_not_allowed", "{:?}", answer.bytes);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn query_path_and_body_rejections_are_enveloped() {
    let app = TestApp::new().await;
    let listener = app.account("listener1", Role::Listener, Tier::Free).await;
    let token = Some(listener.as_str());

    // Query: a negative offset, a missing q.
    let answer = app.get("/v1/me/tracks?offset=-1", token).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let answer = app.get("/v1/search", token).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );

    // Path: an id that is not one.
    let answer = app.get("/v1/tracks/not-an-id", token).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        ["invalid_id", "invalid_path"].contains(&answer.code()),
        "{}",
        answer.json
    );

    // Body: not JSON, the wrong media type, the wrong shape.
    let answer = app
        .raw(
            Method::POST,
            "/v1/playlists",
            token,
            Some("application/json"),
            "{",
        )
        .await;
    assert_eq!(answer.code(), "invalid_json", "{}", answer.json);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = app
        .raw(
            Method::POST,
            "/v1/playlists",
            token,
            Some("text/plain"),
            "{}",
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let answer = app.post("/v1/playlists", token, json!(["a list"])).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json")
    );
}

#[tokio::test]
async fn a_missing_or_forged_bearer_is_401() {
    let app = TestApp::new().await;
    for token in [None, Some("forged")] {
        let answer = app.get("/v1/me", token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(answer.json["error"]["code"].is_string(), "{}", answer.json);
    }
}

#[tokio::test]
async fn a_refused_event_is_named_by_index() {
    let app = TestApp::new().await;
    let listener = app.account("listener2", Role::Listener, Tier::Free).await;
    let event = |track: &str| {
        json!({
            "id": format!("{:032x}", rand_id()),
            "play_id": "p1",
            "type": "play_start",
            "track_id": track,
            "position_ms": 0,
            "at": origin::now_ms(),
        })
    };
    // No track has this id: the first event is refused, and named.
    let unknown = "0".repeat(32);
    let answer = app
        .post(
            "/v1/events",
            Some(&listener),
            Value::Array(vec![event(&unknown), event(&unknown)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.json);
    assert_eq!(answer.code(), "unknown_track");
    assert_eq!(answer.json["error"]["index"], 0);
}

#[tokio::test]
async fn the_document_is_served_as_the_routes_make_it() {
    let app = TestApp::new().await;
    let answer = app.get("/v1/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json,
        serde_json::to_value(origin::http::document()).unwrap()
    );
}

#[tokio::test]
async fn an_admin_changes_entitlements_a_listener_cannot() {
    let app = TestApp::new().await;
    let admin = app.account("operator", Role::Admin, Tier::Premium).await;
    let listener = app.account("listener3", Role::Listener, Tier::Free).await;
    let change = json!({"tier": "premium"});
    let answer = app
        .call(
            Method::PATCH,
            "/v1/admin/accounts/listener3",
            Some(&listener),
            Some(change.clone()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    let answer = app
        .call(
            Method::PATCH,
            "/v1/admin/accounts/listener3",
            Some(&admin),
            Some(change),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["tier"], "premium");
    let me = app.get("/v1/me", Some(&listener)).await;
    assert_eq!(me.json["tier"], "premium", "{}", me.json);
}

#[tokio::test]
async fn the_console_reads_are_for_admins_and_count_what_listeners_report() {
    let app = TestApp::new().await;
    let admin = app.account("operator2", Role::Admin, Tier::Premium).await;
    let listener = app.account("listener4", Role::Listener, Tier::Free).await;
    for path in [
        "/v1/admin/overview",
        "/v1/admin/accounts?q=list",
        "/v1/admin/traffic",
        "/v1/royalties/export?month=2026-01",
    ] {
        let answer = app.get(path, Some(&listener)).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.json
        );
        assert_eq!(answer.code(), "admin_only");
    }
    // The overview: an empty catalog, no trackers configured, nothing refused yet.
    let overview = app.get("/v1/admin/overview", Some(&admin)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.json);
    assert_eq!(overview.json["catalog"]["tracks"], 0);
    assert_eq!(overview.json["trackers"], json!([]));
    // Accounts by part of the name, the exact one first; a query outside the alphabet is
    // refused.
    let found = app
        .get("/v1/admin/accounts?q=LISTENER4", Some(&admin))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.json);
    assert_eq!(found.json["items"][0]["username"], "listener4");
    let found = app.get("/v1/admin/accounts?q=ener", Some(&admin)).await;
    assert_eq!(found.json["items"].as_array().unwrap().len(), 1);
    let refused = app.get("/v1/admin/accounts?q=a%20b", Some(&admin)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    // An event reporting more bytes than any play has is refused, named by index.
    let event = json!({
        "id": "e1", "play_id": "p1", "type": "complete", "track_id": "0".repeat(32),
        "position_ms": 0, "at": origin::now_ms(),
        "sources": {"cache": 0, "peers": 5_000_000_000u64, "super_nodes": 0, "origin": 0},
    });
    let refused = app
        .post("/v1/events", Some(&listener), Value::Array(vec![event]))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert_eq!(refused.code(), "invalid_sources");
    // The royalties of an empty month are a header.
    let csv = app
        .get("/v1/royalties/export?month=2026-01", Some(&admin))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        &csv.bytes[..],
        b"track_id,title,artist_id,artist,streams,share\n"
    );
    let traffic = app.get("/v1/admin/traffic", Some(&admin)).await;
    assert_eq!(traffic.status, StatusCode::OK, "{}", traffic.json);
    assert!(traffic.json["minutes"].is_array());
    // The console's page is served, with a policy that runs only its own script.
    let page = app.raw(Method::GET, "/console", None, None, "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    let script = app
        .raw(Method::GET, "/console/app.js", None, None, "")
        .await;
    assert_eq!(script.status, StatusCode::OK);
    let missing = app.raw(Method::GET, "/console/../x", None, None, "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

fn rand_id() -> u128 {
    rand::random()
}
