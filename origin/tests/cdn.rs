//! nginx as the CDN edge (`deploy/nginx/cdn.conf`) in front of two origins sharing one
//! PostgreSQL database and one Garage bucket: the API is balanced over both and fails over;
//! chunks are cached once for every URL, served only to URLs the origins check out, ranges
//! come from the cache, and cached chunks outlive an outage of every origin.

use std::time::{Duration, Instant};

use origin::grant::ChunkGrant;
use protocol::{Identity, SignedManifest, codec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::local::{Backend, LocalOrigin};
use testkit::services::{Cdn, free_port};

/// A play grant through the edge: (chunk URL template, the manifest's chunks).
async fn grant(
    http: &reqwest::Client,
    cdn: &Cdn,
    token: &str,
    track: &str,
) -> (String, Vec<protocol::ChunkId>) {
    let node_id = Identity::from_secret_bytes(&[5; 32]).node_id().to_hex();
    let answer: Value = http
        .post(format!("{}/v1/tracks/{track}/play", cdn.base))
        .bearer_auth(token)
        .json(&json!({"node_id": node_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed: SignedManifest =
        codec::decode(&hex::decode(answer["manifest"].as_str().unwrap()).unwrap()).unwrap();
    let chunks = codec::decode::<protocol::ManifestBody>(&signed.body)
        .unwrap()
        .chunks;
    (
        answer["chunk_url_template"].as_str().unwrap().to_string(),
        chunks,
    )
}

fn url(template: &str, chunk: &protocol::ChunkId) -> String {
    template.replace("{chunk_id}", &chunk.to_hex())
}

/// (status, X-Cache, body) of a GET.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    range: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut request = http.get(url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await.unwrap();
    let cache = response
        .headers()
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        response.status(),
        cache,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_balances_the_api_and_serves_cached_chunks_only_to_valid_urls() {
    let port = free_port().unwrap();
    let public = format!("http://127.0.0.1:{port}");
    let a = LocalOrigin::start_on(Backend::PostgresS3, |config| {
        config.public_url = Some(public.clone());
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    .unwrap();
    let b = a.start_peer(|_| {}).await.unwrap();
    let cdn = Cdn::start(port, &[a.http_addr(), b.http_addr()]).unwrap();
    let http = reqwest::Client::new();
    let artist = a.account("edge_artist", "SE", "artist", "free").await;
    let listener = a
        .account("edge_listener", "SE", "listener", "premium")
        .await;
    let other = a.account("edge_other", "SE", "listener", "premium").await;
    let mut tracks = Vec::new();
    for (seed, title) in [(11, "Edge One"), (12, "Edge Two")] {
        let (status, track) = a
            .upload(
                &artist,
                origin::synth::wav(seed, 2.0, 22_050, 1),
                "e.wav",
                json!({"title": title, "artist": "Edges"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{track}");
        tracks.push(track["id"].as_str().unwrap().to_string());
    }

    // The API through the edge reaches both origins.
    let served = |origin: &LocalOrigin| {
        let origin = origin.base.clone();
        let http = http.clone();
        async move {
            let text = http
                .get(format!("{origin}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .filter(|line| line.starts_with("chorus_http_requests_total{route=\"/healthz\""))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        }
    };
    for _ in 0..20 {
        let answer = http
            .get(format!("{}/healthz", cdn.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let (on_a, on_b) = (served(&a).await, served(&b).await);
    assert_eq!(on_a + on_b, 20);
    assert!(on_a > 0 && on_b > 0, "balanced: {on_a} and {on_b}");

    // Chunk URLs point at the edge; the first fetch misses, another listener's URL for the
    // same chunk hits: the cache key has no signature.
    let (template, chunks) = grant(&http, &cdn, &listener, &tracks[0]).await;
    assert!(template.starts_with(&public), "{template}");
    let (status, cache, first) = fetch(&http, &url(&template, &chunks[0]), None).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "MISS"));
    let direct = fetch(
        &http,
        &url(&template, &chunks[0]).replace(&public, &a.base),
        None,
    )
    .await;
    assert_eq!(direct.2, first, "the edge serves the origin's bytes");
    let (other_template, _) = grant(&http, &cdn, &other, &tracks[0]).await;
    assert_ne!(other_template, template);
    let (status, cache, again) = fetch(&http, &url(&other_template, &chunks[0]), None).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "HIT"));
    assert_eq!(again, first);
    // Ranges come from the cached copy.
    let (status, cache, part) =
        fetch(&http, &url(&template, &chunks[0]), Some("bytes=10-109")).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::PARTIAL_CONTENT, "HIT")
    );
    assert_eq!(part, first[10..110]);

    // A cached chunk is served to no URL that does not check out.
    let cached = url(&template, &chunks[0]);
    let tampered = format!("{}0", &cached[..cached.len() - 1]).replace("sig=", "sig=f");
    let unsigned = format!("{public}/v1/chunks/{}", chunks[0].to_hex());
    let url_key: [u8; 32] = std::fs::read(a.data_dir().join("url.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let query: std::collections::HashMap<&str, &str> = cached
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let expired = ChunkGrant {
        rendition: query["r"].to_string(),
        account: query["a"].to_string(),
        region: query["g"].to_string(),
        expires_s: 1,
    }
    .url_template(&public, &url_key);
    let (_, other_chunks) = grant(&http, &cdn, &listener, &tracks[1]).await;
    // Cache a chunk of the second track, then ask for it with the first track's URL.
    let (second_template, _) = grant(&http, &cdn, &listener, &tracks[1]).await;
    assert_eq!(
        fetch(&http, &url(&second_template, &other_chunks[0]), None)
            .await
            .0,
        StatusCode::OK
    );
    for refused in [
        tampered,
        unsigned,
        url(&expired, &chunks[0]),
        url(&template, &other_chunks[0]),
    ] {
        let (status, _, body) = fetch(&http, &refused, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert!(
            body.len() < first.len().min(1024),
            "no chunk bytes for {refused}"
        );
    }

    // Every origin down: the API fails, but chunks a listener was just served keep coming
    // from the cache.
    let second = url(&second_template, &other_chunks[0]);
    a.running.shutdown().await.unwrap();
    b.running.shutdown().await.unwrap();
    let (status, cache, stale) = fetch(&http, &second, None).await;
    assert_eq!(status, StatusCode::OK, "{}", cdn.error_log());
    assert!(cache == "HIT" || cache == "STALE", "{cache}");
    assert!(!stale.is_empty());
    let down = http
        .get(format!("{}/healthz", cdn.base))
        .send()
        .await
        .unwrap();
    assert!(down.status().is_server_error());
    let counts = cdn.counts();
    assert!(counts.hits >= 3 && counts.misses >= 2, "{counts:?}");
    assert!(counts.refused >= 4, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tracks_cached_chunks_stop_being_served_and_the_api_fails_over() {
    let port = free_port().unwrap();
    let public = format!("http://127.0.0.1:{port}");
    let a = LocalOrigin::start_on(Backend::PostgresS3, |config| {
        config.public_url = Some(public.clone());
    })
    .await
    .unwrap();
    let b = a.start_peer(|_| {}).await.unwrap();
    let cdn = Cdn::start(port, &[a.http_addr(), b.http_addr()]).unwrap();
    let http = reqwest::Client::new();
    let artist = a.account("gone_artist", "SE", "artist", "free").await;
    let listener = a
        .account("gone_listener", "SE", "listener", "premium")
        .await;
    let (status, track) = a
        .upload(
            &artist,
            origin::synth::wav(21, 2.0, 22_050, 1),
            "g.wav",
            json!({"title": "Soon Gone", "artist": "Edges"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    let track = track["id"].as_str().unwrap().to_string();
    let (template, chunks) = grant(&http, &cdn, &listener, &track).await;
    let chunk = url(&template, &chunks[0]);
    assert_eq!(fetch(&http, &chunk, None).await.0, StatusCode::OK);
    assert_eq!(fetch(&http, &chunk, None).await.1, "HIT");
    // Deleted through the other origin: the edge stops serving its cached chunk once the
    // check it cached expires (10 s at most).
    let deleted = http
        .delete(format!("{}/v1/tracks/{track}", b.base))
        .bearer_auth(&artist)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = fetch(&http, &chunk, None).await.0;
        if status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN {
            break;
        }
        assert!(Instant::now() < deadline, "still served: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // One origin killed: the API through the edge keeps answering, reads and writes.
    b.running.shutdown().await.unwrap();
    for n in 0..20 {
        let answer = http
            .get(format!("{}/v1/me", cdn.base))
            .bearer_auth(&listener)
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::OK,
            "request {n} after the stop"
        );
        let created = http
            .post(format!("{}/v1/playlists", cdn.base))
            .bearer_auth(&listener)
            .json(&json!({"name": format!("after the stop {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "write {n}");
    }
}
