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

/// Names of the hits for `query` on `origin`.
async fn search_names(origin: &LocalOrigin, token: &str, query: &str) -> Vec<String> {
    let (status, found) = origin
        .get(&format!("/v1/search?q={query}"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["name"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` every 100 ms until it holds (a bound for a broken build, not a timing claim).
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_origins_serve_one_service_and_follow_each_others_changes() {
    // Recommendations rebuilt every second (and so within a second of a change).
    let a = LocalOrigin::start_on(Backend::PostgresS3, |config| {
        config.recommendations_refresh_s = 1
    })
    .await
    .unwrap();
    let b = a.start_peer(|_| {}).await.unwrap();
    assert_eq!(a.running.node_id, b.running.node_id, "one signing identity");
    let artist = a.account("twin_artist", "SE", "artist", "free").await;
    let listener = a
        .account("twin_listener", "SE", "listener", "premium")
        .await;
    let metadata = json!({"title": "Marmalade Skies", "artist": "Twin Origins"});
    let (status, track) = a
        .upload(
            &artist,
            origin::synth::wav(3, 1.0, 22_050, 1),
            "m.wav",
            metadata,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    let track_id = track["id"].as_str().unwrap().to_string();
    // A token issued by one origin works on the other; the other's index follows the upload.
    eventually("the other origin's search finds the upload", || async {
        search_names(&b, &listener, "marmalade").await == ["Marmalade Skies"]
    })
    .await;
    // A grant from one origin signs chunk URLs the other serves (one URL key).
    let node_id = Identity::from_secret_bytes(&[9; 32]).node_id().to_hex();
    let (status, grant) = b
        .post(
            &format!("/v1/tracks/{track_id}/play"),
            Some(&listener),
            json!({"node_id": node_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let signed: SignedManifest =
        codec::decode(&hex::decode(grant["manifest"].as_str().unwrap()).unwrap()).unwrap();
    let first = signed.verify(&a.running.node_id).unwrap().body().chunks[0];
    let chunk_url = grant["chunk_url_template"]
        .as_str()
        .unwrap()
        .replace("{chunk_id}", &first.to_hex())
        .replace(&b.base, &a.base);
    assert!(chunk_url.starts_with(&a.base), "{chunk_url}");
    assert_eq!(
        a.http.get(&chunk_url).send().await.unwrap().status(),
        StatusCode::OK
    );
    // A stream taken in by one origin counts in the other's trending too.
    let start = origin::now_ms() - 40_000;
    let events = json!([
        {"id": "twin-s", "play_id": "twin", "type": "play_start", "track_id": track_id, "position_ms": 0, "at": start},
        {"id": "twin-p", "play_id": "twin", "type": "progress", "track_id": track_id, "position_ms": 31_000, "at": start + 31_000},
    ]);
    let (status, answer) = a.post("/v1/events", Some(&listener), events).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["streams"], 1, "{answer}");
    for (origin, name) in [(&a, "the origin that took it"), (&b, "the other origin")] {
        eventually(&format!("{name} trends the stream"), || async {
            let (_, trending) = origin.get("/v1/trending?region=SE", None).await;
            trending["items"][0]["track"]["id"] == track_id.as_str()
                && trending["items"][0]["streams"] == 1
        })
        .await;
    }
    // The first origin leads the recommendation builds; the other serves the model it
    // publishes, which holds the track and its stream, and builds none of its own.
    let newcomer = a.account("twin_newcomer", "SE", "listener", "free").await;
    for (origin, name) in [(&a, "the leader"), (&b, "the other origin")] {
        eventually(&format!("{name} recommends the streamed track"), || async {
            let (_, picks) = origin.get("/v1/recommendations", Some(&newcomer)).await;
            picks["items"][0]["track"]["id"] == track_id.as_str()
        })
        .await;
    }
    const BUILT: &str = "chorus_recommendation_models_total{how=\"built\"}";
    const LOADED: &str = "chorus_recommendation_models_total{how=\"loaded\"}";
    let built = a.metric(BUILT).await.unwrap();
    assert!(
        built >= 2.0,
        "the leader built at its start and after the upload"
    );
    assert_eq!(
        b.metric(BUILT).await,
        Some(0.0),
        "the other origin builds none"
    );
    assert!(b.metric(LOADED).await.unwrap() >= 1.0);
    // An origin started now loads it with trending, and its following (which starts behind
    // the load, for late commits) does not count it again.
    let c = a.start_peer(|_| {}).await.unwrap();
    // Read again behind the cursors (every 5 s), it is still counted once everywhere.
    tokio::time::sleep(std::time::Duration::from_millis(6_000)).await;
    for origin in [&a, &b, &c] {
        let (_, trending) = origin.get("/v1/trending?region=SE", None).await;
        assert_eq!(trending["items"][0]["track"]["id"], track_id.as_str());
        assert_eq!(trending["items"][0]["streams"], 1, "{trending}");
    }
    // The new origin serves the published model at once, without building.
    let (_, picks) = c.get("/v1/recommendations", Some(&newcomer)).await;
    assert_eq!(
        picks["items"][0]["track"]["id"],
        track_id.as_str(),
        "{picks}"
    );
    assert_eq!(c.metric(BUILT).await, Some(0.0));
    drop(c);
    // A delete through one origin reaches the other's caches and index.
    assert_eq!(
        a.get(&format!("/v1/tracks/{track_id}"), Some(&listener))
            .await
            .0,
        StatusCode::OK
    );
    let deleted = b
        .http
        .delete(format!("{}/v1/tracks/{track_id}", b.base))
        .bearer_auth(&artist)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    eventually("the other origin forgets the deleted track", || async {
        a.get(&format!("/v1/tracks/{track_id}"), Some(&listener))
            .await
            .0
            == StatusCode::NOT_FOUND
            && search_names(&a, &listener, "marmalade").await.is_empty()
    })
    .await;
    // An origin with keys of its own is refused: it would sign URLs and manifests the others
    // reject.
    let stranger = tempfile::tempdir().unwrap();
    let refused = origin::server::start(origin::config::OriginConfig {
        data_dir: stranger.path().to_path_buf(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        quic_addr: "127.0.0.1:0".parse().unwrap(),
        ..a.config.clone()
    })
    .await
    .unwrap_err();
    assert!(format!("{refused:#}").contains("other keys"), "{refused:#}");
    // The leader stops: the other origin takes over the recommendation builds.
    let a = a
        .restart_after(eventually(
            "the other origin takes over the builds",
            || async { b.metric(BUILT).await.is_some_and(|built| built >= 1.0) },
        ))
        .await
        .unwrap();
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_origin_resumes_its_search_index_and_catches_up() {
    let a = LocalOrigin::start_on(Backend::PostgresS3, |_| {})
        .await
        .unwrap();
    let b = a.start_peer(|_| {}).await.unwrap();
    let artist = a.account("resume_artist", "SE", "artist", "free").await;
    let listener = a
        .account("resume_listener", "SE", "listener", "premium")
        .await;
    let upload = |title: &'static str, seed: u64| {
        let (a, artist) = (&a, &artist);
        async move {
            let metadata = json!({"title": title, "artist": "Resumers"});
            let (status, track) = a
                .upload(
                    artist,
                    origin::synth::wav(seed, 1.0, 22_050, 1),
                    "r.wav",
                    metadata,
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{track}");
        }
    };
    upload("Before The Stop", 4).await;
    eventually("the peer indexes the first upload", || async {
        !search_names(&b, &listener, "before").await.is_empty()
    })
    .await;
    assert_eq!(b.metric("chorus_search_builds_total").await, Some(1.0));
    // Stopped while the catalog changes; started again on the same data directory.
    let b = b.restart_after(upload("While Stopped", 5)).await.unwrap();
    assert_eq!(
        b.metric("chorus_search_builds_total").await,
        Some(0.0),
        "resumed, not rebuilt"
    );
    // The leader stays up, so the restarted origin serves the leader's model without building.
    assert_eq!(
        b.metric("chorus_recommendation_models_total{how=\"built\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(
        search_names(&b, &listener, "before").await,
        ["Before The Stop"]
    );
    eventually("the restarted origin catches up", || async {
        search_names(&b, &listener, "stopped").await == ["While Stopped"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_builds_its_own_model_when_the_leader_publishes_none() {
    // The leader (first to start) has the job off, as an older version would publish
    // nothing; the other waits a refresh's grace (1 s here), then builds for itself.
    let a = LocalOrigin::start_on(Backend::PostgresS3, |config| {
        config.recommendations_refresh_s = 0
    })
    .await
    .unwrap();
    let b = a
        .start_peer(|config| config.recommendations_refresh_s = 1)
        .await
        .unwrap();
    const BUILT: &str = "chorus_recommendation_models_total{how=\"built\"}";
    eventually("the other origin builds its own model", || async {
        b.metric(BUILT).await.is_some_and(|built| built >= 1.0)
    })
    .await;
    assert_eq!(
        b.metric("chorus_recommendation_models_total{how=\"loaded\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(
        a.metric(BUILT).await,
        Some(0.0),
        "the job is off on the leader"
    );
}
