//! The origin's end-to-end cases (`end_to_end/cases.rs`) on PostgreSQL and S3-compatible
//! object storage: each origin gets a private PostgreSQL cluster and a private Garage store.
//! Plus what only those backends can show through the API: an object-store outage answers
//! `503` for uploads and cold chunks and publishes nothing.

/// The store these cases run on.
const BACKEND: testkit::local::Backend = testkit::local::Backend::PostgresS3;

#[path = "end_to_end/cases.rs"]
mod cases;

use protocol::{Identity, SignedManifest, codec};
use reqwest::StatusCode;
use serde_json::json;
use testkit::http::error_code;
use testkit::local::{Backend, LocalOrigin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_outage_answers_503_and_publishes_nothing() {
    // No chunk cache: every chunk read goes to the object store ("cold").
    let origin = LocalOrigin::start_on(Backend::PostgresS3, |config| {
        config.chunk_cache_bytes = 0;
    })
    .await
    .unwrap();
    let artist = origin
        .account("outage_artist", "SE", "artist", "free")
        .await;
    let listener = origin
        .account("outage_listener", "SE", "listener", "premium")
        .await;
    let metadata = json!({"title": "Before", "artist": "Outage"});
    let (status, track) = origin
        .upload(
            &artist,
            origin::synth::wav(1, 1.0, 22_050, 1),
            "a.wav",
            metadata,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    let track_id = track["id"].as_str().unwrap();
    let artist_id = track["artist_id"].as_str().unwrap();
    let node_id = Identity::from_secret_bytes(&[7; 32]).node_id().to_hex();
    let (status, grant) = origin
        .post(
            &format!("/v1/tracks/{track_id}/play"),
            Some(&listener),
            json!({"node_id": node_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let signed: SignedManifest =
        codec::decode(&hex::decode(grant["manifest"].as_str().unwrap()).unwrap()).unwrap();
    let first = signed
        .verify(&origin.running.node_id)
        .unwrap()
        .body()
        .chunks[0];
    let chunk_url = grant["chunk_url_template"]
        .as_str()
        .unwrap()
        .replace("{chunk_id}", &first.to_hex());
    let fetched = origin.http.get(&chunk_url).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);

    let services = origin.services.as_ref().unwrap();
    services.garage.stop();
    // An upload cannot store its chunks: 503, and no track appears.
    let metadata = json!({"title": "During", "artist": "Outage"});
    let (status, answer) = origin
        .upload(
            &artist,
            origin::synth::wav(2, 1.0, 22_050, 1),
            "b.wav",
            metadata,
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{answer}"
    );
    let (status, listing) = origin
        .get(&format!("/v1/artists/{artist_id}/tracks"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listing["items"].as_array().unwrap().len(),
        1,
        "nothing half-published: {listing}"
    );
    // A cold chunk cannot be read: 503 with Retry-After (not 404: it is not gone).
    let during = origin.http.get(&chunk_url).send().await.unwrap();
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(during.headers().contains_key("retry-after"));

    // The store comes back: so does everything, without restarting the origin.
    services.garage.restart().unwrap();
    let again = origin.http.get(&chunk_url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let metadata = json!({"title": "After", "artist": "Outage"});
    let (status, answer) = origin
        .upload(
            &artist,
            origin::synth::wav(3, 1.0, 22_050, 1),
            "c.wav",
            metadata,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}
