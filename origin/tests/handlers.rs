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

fn rand_id() -> u128 {
    rand::random()
}
