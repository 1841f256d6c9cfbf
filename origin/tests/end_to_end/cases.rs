//! The origin's end-to-end cases, run on each store backend: included by
//! `origin_end_to_end.rs` (embedded) and `origin_end_to_end_postgres.rs` (PostgreSQL and S3).
//!
//! A real origin on loopback: accounts, upload and ingest, play authorization, and chunks over
//! HTTP (signed URLs) and QUIC (license tokens), decrypted and decoded back to audio.

use origin::config::OriginConfig;
use origin::synth;
use protocol::{ChunkCipher, ContentKey, Identity, LicenseToken, SealLabel, SignedManifest, codec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use transport::chunks::{self, RangeItem};
use transport::{Endpoint, Limits};

use testkit::local::LocalOrigin as Origin;

/// An origin on the backend of the test binary including these cases.
async fn start() -> Origin {
    start_with(|_| {}).await
}

/// An origin whose config `change` adjusts.
async fn start_with(change: impl FnOnce(&mut OriginConfig)) -> Origin {
    Origin::start_on(crate::BACKEND, change).await.unwrap()
}

use testkit::http::error_code;

fn decoded_ms(file: &[u8]) -> u64 {
    let (frames, rate) = origin::ingest::decoded_frames(file).unwrap();
    frames * 1000 / u64::from(rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_authorize_and_fetch_over_http_and_quic() {
    let origin = start().await;
    let artist = origin.account("the_artist", "SE", "artist", "free").await;
    let free_se = origin
        .account("free_listener", "SE", "listener", "free")
        .await;
    let premium_us = origin
        .account("premium_us", "US", "listener", "premium")
        .await;

    let wav = synth::wav(11, 4.0, 44_100, 2);
    let metadata = json!({"title": "Cold Harbour", "artist": "The Artist", "album": "Ports", "genre": "ambient", "markets": ["SE", "NO"]});
    let (status, track) = origin
        .upload(&artist, wav, "cold-harbour.wav", metadata)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    let track_id = track["id"].as_str().unwrap().to_string();
    assert_eq!(track["renditions"].as_array().unwrap().len(), 3);
    assert!((track["duration_ms"].as_u64().unwrap() as i64 - 4000).abs() < 50);

    // Catalog reads.
    let fetched: Value = origin
        .http
        .get(format!("{}/v1/tracks/{track_id}", origin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["title"], "Cold Harbour");
    let album_id = fetched["album_id"].as_str().unwrap();
    let album: Value = origin
        .http
        .get(format!("{}/v1/albums/{album_id}", origin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(album["tracks"]["items"][0]["id"], track_id.as_str());
    let artist_id = fetched["artist_id"].as_str().unwrap();
    let artist_view: Value = origin
        .http
        .get(format!("{}/v1/artists/{artist_id}", origin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(artist_view["name"], "The Artist");
    let listing: Value = origin
        .http
        .get(format!(
            "{}/v1/artists/{artist_id}/tracks?limit=5",
            origin.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["items"][0]["id"], track_id.as_str());

    // Search: typos, type filter, bad queries.
    let search = |query: &str| {
        let url = format!("{}/v1/search?{query}", origin.base);
        let http = origin.http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, found) = search("q=cold%20harbor&type=track").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["items"][0]["id"], track_id.as_str(), "{found}");
    assert_eq!(found["items"][0]["artist"], "The Artist");
    let (_, found) = search("q=the%20artst&type=artist").await;
    assert_eq!(found["items"][0]["name"], "The Artist", "{found}");
    let (status, answer) = search("q=cold&type=song").await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_type")
    );
    let (status, answer) = search("q=").await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_query")
    );

    let (status, answer) = search(&format!("q={}", "x".repeat(10 * 1024))).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_query")
    );

    // Play rules: market, tier, authentication.
    let client = Identity::from_secret_bytes(&[0x42; 32]);
    let node_id = client.node_id().to_hex();
    let play = format!("/v1/tracks/{track_id}/play");
    let (status, answer) = origin
        .post(&play, Some(&premium_us), json!({"node_id": node_id}))
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_in_market")
    );
    let (status, answer) = origin
        .post(
            &play,
            Some(&free_se),
            json!({"node_id": node_id, "quality": "high"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "tier_quality")
    );
    let (status, _) = origin.post(&play, None, json!({"node_id": node_id})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) = origin
        .post(
            &format!("/v1/tracks/{}/play", "0".repeat(32)),
            Some(&free_se),
            json!({"node_id": node_id}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let (status, grant) = origin
        .post(&play, Some(&free_se), json!({"node_id": node_id}))
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    assert_eq!(grant["quality"], "normal");
    let signed: SignedManifest =
        codec::decode(&hex::decode(grant["manifest"].as_str().unwrap()).unwrap()).unwrap();
    let origin_id = origin.running.node_id;
    let manifest = signed.verify(&origin_id).unwrap();
    let key: [u8; 32] = hex::decode(grant["content_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let cipher = ChunkCipher::new(
        &ContentKey(key),
        SealLabel {
            track: manifest.body().track,
            quality: manifest.body().quality,
        },
    );

    // The first-chunk path: opening chunks in the answer, checked against the manifest;
    // asking for too many is refused.
    assert_eq!(grant["opening_chunks"], json!([]));
    let (status, opened) = origin
        .post(
            &play,
            Some(&free_se),
            json!({"node_id": node_id, "opening_chunks": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    let opening = opened["opening_chunks"].as_array().unwrap();
    assert_eq!(opening.len(), 2.min(manifest.chunk_count() as usize));
    for (index, text) in opening.iter().enumerate() {
        use base64::Engine;
        let chunk = base64::engine::general_purpose::STANDARD
            .decode(text.as_str().unwrap())
            .unwrap();
        protocol::content::verify_chunk(manifest.chunk_id(index as u32).unwrap(), &chunk).unwrap();
    }
    let (status, answer) = origin
        .post(
            &play,
            Some(&free_se),
            json!({"node_id": node_id, "opening_chunks": 3}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_opening_chunks")
    );
    // `opening_ms`: chunks until they hold that much audio by the manifest's timing, within
    // the limit of two; the first chunk alone when it reaches far enough.
    let ends = manifest.body().chunk_end_ms.clone();
    assert!(ends.len() >= 2 && ends[0] > 0, "{ends:?}");
    for (opening_ms, expected) in [(ends[0], 1), (ends[0] + 1, 2), (60_000, 2)] {
        let (status, opened) = origin
            .post(
                &play,
                Some(&free_se),
                json!({"node_id": node_id, "opening_chunks": 1, "opening_ms": opening_ms}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{opened}");
        assert_eq!(
            opened["opening_chunks"].as_array().unwrap().len(),
            expected,
            "opening_ms {opening_ms}, chunk ends {ends:?}"
        );
    }
    let (status, answer) = origin
        .post(
            &play,
            Some(&free_se),
            json!({"node_id": node_id, "opening_ms": 60_001}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_opening_ms")
    );

    // Every chunk over HTTP with the signed URL template, verified and decrypted.
    let template = grant["chunk_url_template"].as_str().unwrap();
    let mut over_http = Vec::new();
    for (index, id) in manifest.body().chunks.iter().enumerate() {
        let response = origin
            .http
            .get(template.replace("{chunk_id}", &id.to_hex()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            response.headers()["etag"],
            format!("\"{}\"", id.to_hex()).as_str()
        );
        let body = response.bytes().await.unwrap();
        over_http.extend(cipher.open(index as u32, id, &body).unwrap());
    }
    assert!((decoded_ms(&over_http) as i64 - 4000).abs() < 60);

    // Bad chunk URLs: tampered signature, expired, path tricks.
    let first = manifest.body().chunks[0].to_hex();
    let good = template.replace("{chunk_id}", &first);
    let tampered = format!("{}0", &good[..good.len() - 1]);
    let status = origin
        .http
        .get(if good.ends_with('0') {
            good.replace("sig=", "sig=1")
        } else {
            tampered
        })
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let expired_grant = origin::grant::ChunkGrant {
        rendition: manifest.id().to_hex(),
        account: "0".repeat(32),
        region: "SE".into(),
        expires_s: 1,
    };
    let expired = expired_grant
        .url_template(&origin.base, &[0; 32])
        .replace("{chunk_id}", &first);
    assert_eq!(
        origin.http.get(expired).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    for tricky in ["..%2F..%2Forigin.key", "%2e%2e", "abc"] {
        let response = origin
            .http
            .get(format!(
                "{}/v1/chunks/{tricky}?exp=9999999999&sig=00",
                origin.base
            ))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{tricky}: {}",
            response.status()
        );
    }

    // The same rendition over QUIC with the license token.
    let license =
        LicenseToken::from_bytes(&hex::decode(grant["license"].as_str().unwrap()).unwrap())
            .unwrap();
    // The license carries the track's markets, so trackers and peers apply the region rules.
    let claims = license
        .verify(
            &origin_id,
            &client.node_id(),
            protocol::UnixMillis(origin::now_ms()),
        )
        .unwrap();
    let markets: Vec<&str> = claims.markets.iter().map(|m| m.as_str()).collect();
    assert_eq!(markets, ["SE", "NO"]);
    let endpoint =
        Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let peer = endpoint
        .connect(origin_id, origin.running.quic_addr)
        .await
        .unwrap();
    let fetched = chunks::fetch_manifest(&peer, &origin_id, &manifest.id(), &license)
        .await
        .unwrap();
    assert_eq!(fetched, manifest);
    let items = chunks::fetch_range(
        &peer,
        &manifest,
        0,
        manifest.chunk_count(),
        protocol::wire::Priority::Playing,
        &license,
    )
    .await
    .unwrap();
    let mut over_quic = Vec::new();
    for item in items {
        let RangeItem::Chunk { index, data } = item else {
            panic!("origin lacks a chunk")
        };
        over_quic.extend(
            cipher
                .open(index, manifest.chunk_id(index).unwrap(), &data)
                .unwrap(),
        );
    }
    assert_eq!(over_quic, over_http);
    // The manifest says how far each chunk lets playback reach, read from the file's Ogg
    // pages; the last reaches the end of the decoded audio.
    let ends = &manifest.body().chunk_end_ms;
    assert_eq!(ends.len(), manifest.chunk_count() as usize);
    assert_eq!(
        ends,
        &protocol::ogg::chunk_ends_ms(
            &over_quic,
            manifest.body().chunk_bytes,
            manifest.body().codec
        )
        .unwrap()
    );
    let decoded = decoded_ms(&over_quic);
    let last = u64::from(*ends.last().unwrap());
    assert!(
        last.abs_diff(decoded) <= 30,
        "timing {last} ms, audio {decoded} ms"
    );

    // The license is bound to the client's node: another node cannot use it.
    let thief = Endpoint::bind(
        &Identity::from_secret_bytes(&[0x43; 32]),
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
    )
    .unwrap();
    let peer = thief
        .connect(origin_id, origin.running.quic_addr)
        .await
        .unwrap();
    assert!(
        chunks::fetch_range(
            &peer,
            &manifest,
            0,
            1,
            protocol::wire::Priority::Playing,
            &license
        )
        .await
        .is_err()
    );

    // Offline licenses: 30 days, on at most 5 devices per account.
    for device in 0..5u8 {
        let node = Identity::from_secret_bytes(&[0x50 + device; 32])
            .node_id()
            .to_hex();
        let (status, grant) = origin
            .post(
                &play,
                Some(&free_se),
                json!({"node_id": node, "offline": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{grant}");
        let lifetime_ms = grant["expires_at"].as_u64().unwrap() - origin::now_ms();
        assert!(
            lifetime_ms > 29 * 24 * 3600 * 1000,
            "offline license lasts {lifetime_ms} ms"
        );
    }
    let sixth = Identity::from_secret_bytes(&[0x60; 32]).node_id().to_hex();
    let (status, answer) = origin
        .post(
            &play,
            Some(&free_se),
            json!({"node_id": sixth, "offline": true}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "device_limit")
    );

    // Deletion: only the owner; afterwards the track is gone.
    let response = origin
        .http
        .delete(format!("{}/v1/tracks/{track_id}", origin.base))
        .bearer_auth(&free_se)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = origin
        .http
        .delete(format!("{}/v1/tracks/{track_id}", origin.base))
        .bearer_auth(&artist)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = origin
        .http
        .get(format!("{}/v1/tracks/{track_id}", origin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Search follows the delete: gone once the delete is answered.
    let (_, found) = search("q=cold%20harbour&type=track").await;
    assert_eq!(found["total"], 0, "{found}");
    origin.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_stable_codes_and_loses_nothing() {
    let origin = start().await;
    let artist = origin.account("artist2", "DE", "artist", "premium").await;
    let listener = origin.account("listener2", "DE", "listener", "free").await;

    // Rejections by the HTTP layer itself (query, method) are JSON envelopes too.
    let (status, answer) = origin.get("/v1/me/tracks?offset=-1", Some(&listener)).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("offset"),
        "{answer}"
    );
    let (status, answer) = origin.get("/v1/search", Some(&listener)).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let (status, answer) = origin.get("/v1/tracks/x/radio", Some(&listener)).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );
    let (status, answer) = origin
        .get("/v1/search?q=cold&limit=51", Some(&listener))
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let (status, answer) = origin.get("/v1/search?q=%21%21", Some(&listener)).await;
    assert_eq!(
        (status, answer["total"].clone()),
        (StatusCode::OK, json!(0)),
        "punctuation alone finds nothing: {answer}"
    );
    // serde would read a struct from an array of its fields; the API does not.
    let (status, answer) = origin
        .post(
            "/v1/playlists",
            Some(&listener),
            json!(["Mix", "about", true]),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json")
    );
    let (status, answer) = origin.get("/v1/nowhere", Some(&listener)).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "no_route")
    );
    let response = origin
        .http
        .patch(format!("{}/v1/search", origin.base))
        .bearer_auth(&listener)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().contains_key("allow"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(error_code(&answer), "method_not_allowed");

    // Accounts.
    let (status, answer) = origin
        .post(
            "/v1/accounts",
            None,
            json!({"username": "artist2", "password": "another password"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "username_taken")
    );
    let (status, answer) = origin
        .post(
            "/v1/accounts",
            None,
            json!({"username": "root", "password": "another password", "role": "admin"}),
        )
        .await;
    assert_eq!(
        (
            status,
            error_code(&answer),
            answer["error"]["field"].as_str()
        ),
        (StatusCode::FORBIDDEN, "not_allowed", Some("role"))
    );
    let (status, answer) = origin
        .post(
            "/v1/accounts",
            None,
            json!({"username": "x/../y", "password": "another password"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_username")
    );
    let (status, answer) = origin
        .post(
            "/v1/accounts",
            None,
            json!({"username": "okname", "password": "pw"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_password")
    );
    let (status, answer) = origin
        .post(
            "/v1/sessions",
            None,
            json!({"username": "artist2", "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // Oversized and malformed JSON, invalid UTF-8.
    let huge = json!({"username": "a".repeat(100_000), "password": "x", "region": "DE", "role": "listener"});
    let (status, answer) = origin.post("/v1/accounts", None, huge).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    for body in [&b"{not json"[..], b"{\"username\": \"\xff\xfe\"}"] {
        let response = origin
            .http
            .post(format!("{}/v1/accounts", origin.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(error_code(&answer), "invalid_json");
    }
    let response = origin
        .http
        .post(format!("{}/v1/accounts", origin.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Uploads.
    let metadata = json!({"title": "T", "artist": "A"});
    let (status, answer) = origin
        .upload(
            &listener,
            synth::wav(1, 1.0, 44_100, 2),
            "a.wav",
            metadata.clone(),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_an_artist")
    );
    let (status, answer) = origin
        .upload(
            &artist,
            b"this is a text file, not audio".to_vec(),
            "a.mp3",
            metadata.clone(),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_audio")
    );
    let (status, answer) = origin
        .upload(&artist, Vec::new(), "a.wav", metadata.clone())
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_audio")
    );
    // Refused: with 413, or by closing the connection while the body is still being
    // written (the client then never reads the 413). Either way nothing is stored: the
    // catalog is checked below.
    if let Ok((status, answer)) = origin
        .upload_too_large(
            &artist,
            vec![0; 5 * 1024 * 1024],
            "big.wav",
            metadata.clone(),
        )
        .await
    {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    }
    let (status, answer) = origin
        .upload(
            &artist,
            synth::wav(2, 1.0, 44_100, 2),
            "a.wav",
            json!({"title": "", "artist": "A"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_metadata")
    );
    let (status, answer) = origin
        .upload(
            &artist,
            synth::wav(2, 1.0, 44_100, 2),
            "a.wav",
            json!({"title": "T", "artist": "A", "markets": ["Sweden"]}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_market")
    );

    // Unknown ids and path tricks.
    for path in [
        "/v1/tracks/nothex",
        "/v1/tracks/..%2F..%2Fetc",
        &format!("/v1/tracks/{}", "f".repeat(32)),
    ] {
        let status = origin
            .http
            .get(format!("{}{path}", origin.base))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }

    // After all that, the origin still works: a good upload succeeds, and it is the only
    // track the refused ones left in the catalog.
    let (status, answer) = origin
        .upload(&artist, synth::wav(3, 1.5, 48_000, 2), "ok.wav", metadata)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let artist_id = answer["artist_id"].as_str().expect("the artist's id");
    let (status, listing) = origin
        .get(
            &format!("/v1/artists/{artist_id}/tracks?limit=50"),
            Some(&artist),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    assert_eq!(
        listing["items"].as_array().map(Vec::len),
        Some(1),
        "{listing}"
    );
    // Refresh tokens rotate: the second use fails.
    let (_, tokens) = origin
        .post(
            "/v1/sessions",
            None,
            json!({"username": "listener2", "password": "correct horse battery"}),
        )
        .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = origin
        .post(
            "/v1/sessions/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(renewed["access_token"], tokens["access_token"]);
    let (status, _) = origin
        .post(
            "/v1/sessions/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    origin.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_routes_describe_and_count_the_api() {
    let origin = start().await;
    let health: Value = origin
        .http
        .get(format!("{}/healthz", origin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let spec: Value = origin
        .http
        .get(format!("{}/v1/openapi.json", origin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/healthz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/accounts",
        "/v1/sessions",
        "/v1/sessions/refresh",
        "/v1/me",
        "/v1/tracks",
        "/v1/tracks/{id}",
        "/v1/tracks/{id}/play",
        "/v1/artists/{id}/tracks",
        "/v1/albums/{id}",
        "/v1/chunks/{id}",
        "/v1/network",
        "/v1/nodes/token",
        "/v1/search",
        "/v1/playlists/{id}/tracks",
        "/v1/me/tracks",
        "/v1/events",
        "/v1/trending",
        "/v1/royalties",
        "/v1/recommendations",
        "/v1/tracks/{id}/radio",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "openapi.json lacks {path}"
        );
    }
    assert!(spec["components"]["schemas"].get("ErrorBody").is_some());

    let artist = origin
        .account("metrics_artist", "SE", "artist", "free")
        .await;
    let (status, _) = origin
        .upload(
            &artist,
            synth::wav(9, 1.0, 44_100, 2),
            "m.wav",
            json!({"title": "M", "artist": "A"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = origin
        .upload(
            &artist,
            b"noise".to_vec(),
            "m.wav",
            json!({"title": "M", "artist": "A"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = origin
        .http
        .get(format!("{}/metrics", origin.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "chorus_http_requests_total{route=\"/v1/accounts\",status=\"201\"} 1",
        "chorus_http_request_duration_seconds_count{route=\"/v1/tracks\"} 2",
        "chorus_ingest_jobs_total{result=\"ok\"} 1",
        "chorus_ingest_jobs_total{result=\"rejected\"} 1",
        "chorus_catalog_tracks 1",
        "chorus_chunk_bytes_served_total{transport=\"http\"} 0",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    origin.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_info_and_super_node_role_tokens() {
    let origin = start().await;
    let network: Value = origin
        .http
        .get(format!("{}/v1/network", origin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        network["origin"]["node_id"],
        origin.running.node_id.to_hex().as_str()
    );
    assert_eq!(
        network["origin"]["quic"],
        origin.running.quic_addr.to_string().as_str()
    );
    assert!(network["tracker"].is_null());

    // Super-node accounts cannot be self-created; listeners get no role token.
    let body =
        json!({"username": "sneaky", "password": "correct horse battery", "role": "super_node"});
    let (status, answer) = origin.post("/v1/accounts", None, body).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_allowed")
    );
    let listener = origin.account("plain", "SE", "listener", "free").await;
    let node = Identity::from_secret_bytes(&[0x77; 32]);
    let (status, answer) = origin
        .post(
            "/v1/nodes/token",
            Some(&listener),
            json!({"node_id": node.node_id().to_hex()}),
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_super_node")
    );

    // The operator's super-node account gets a role token bound to the node, in its region.
    let account = origin::accounts::new_account(
        "isp",
        "correct horse battery",
        "DE",
        origin::store::Role::SuperNode,
        origin::store::Tier::Premium,
    )
    .unwrap();
    assert!(
        origin
            .running
            .store()
            .accounts()
            .create_account(&account)
            .await
            .unwrap()
    );
    let (status, tokens) = origin
        .post(
            "/v1/sessions",
            None,
            json!({"username": "isp", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let access = tokens["access_token"].as_str().unwrap();
    let (status, answer) = origin
        .post("/v1/nodes/token", Some(access), json!({"node_id": "zz"}))
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_node_id")
    );
    let (status, grant) = origin
        .post(
            "/v1/nodes/token",
            Some(access),
            json!({"node_id": node.node_id().to_hex()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    assert_eq!(grant["region"], "DE");
    let license =
        LicenseToken::from_bytes(&hex::decode(grant["license"].as_str().unwrap()).unwrap())
            .unwrap();
    let now = protocol::UnixMillis(origin::now_ms());
    let claims = license
        .verify(&origin.running.node_id, &node.node_id(), now)
        .unwrap();
    assert_eq!(claims.scope, protocol::LicenseScope::SuperNode);
    assert_eq!(claims.region.as_str(), "DE");
    assert!(claims.markets.is_empty());
    origin.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liked_songs_and_followed_artists() {
    let origin = start().await;
    let artist = origin.account("lib_artist", "SE", "artist", "free").await;
    let listener = origin
        .account("lib_listener", "SE", "listener", "free")
        .await;
    let other = origin.account("lib_other", "SE", "listener", "free").await;
    let mut tracks = Vec::new();
    for seed in 0..3u64 {
        let metadata = json!({"title": format!("Song {seed}"), "artist": "Lib Artist"});
        let (status, track) = origin
            .upload(&artist, synth::wav(seed, 1.0, 22_050, 1), "s.wav", metadata)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{track}");
        tracks.push(track["id"].as_str().unwrap().to_string());
    }
    let artist_id = origin
        .http
        .get(format!("{}/v1/tracks/{}", origin.base, tracks[0]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["artist_id"]
        .as_str()
        .unwrap()
        .to_string();
    let call = |method: reqwest::Method, path: String, token: String| {
        let request = origin
            .http
            .request(method, format!("{}{path}", origin.base))
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;

    // Like three songs; liking again changes nothing.
    let mut first_times = Vec::new();
    for track in &tracks {
        let (status, answer) = call(
            Method::PUT,
            format!("/v1/me/tracks/{track}"),
            listener.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        first_times.push(answer["added_at_ms"].as_u64().unwrap());
    }
    let (_, again) = call(
        Method::PUT,
        format!("/v1/me/tracks/{}", tracks[0]),
        listener.clone(),
    )
    .await;
    assert_eq!(again["added_at_ms"].as_u64(), Some(first_times[0]));
    // Most recent first (the store's own test checks the order with set times), paged,
    // with the track's metadata.
    let (status, page) = call(
        Method::GET,
        "/v1/me/tracks?limit=2".into(),
        listener.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3);
    let (_, rest) = call(
        Method::GET,
        "/v1/me/tracks?limit=2&offset=2".into(),
        listener.clone(),
    )
    .await;
    let items: Vec<Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .cloned()
        .collect();
    let times: Vec<u64> = items
        .iter()
        .map(|item| item["added_at_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{times:?}");
    let mut ids: Vec<String> = items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = tracks.clone();
    expected.sort();
    assert_eq!(ids, expected);
    let song = items
        .iter()
        .find(|item| item["id"] == tracks[2].as_str())
        .unwrap();
    assert_eq!(song["track"]["title"], "Song 2");
    // Another account's library is its own.
    let (_, theirs) = call(Method::GET, "/v1/me/tracks".into(), other.clone()).await;
    assert_eq!(theirs["total"], 0);
    // Unlike; unliking again is not an error.
    let (status, answer) = call(
        Method::DELETE,
        format!("/v1/me/tracks/{}", tracks[1]),
        listener.clone(),
    )
    .await;
    assert_eq!(
        (status, answer["removed"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (_, answer) = call(
        Method::DELETE,
        format!("/v1/me/tracks/{}", tracks[1]),
        listener.clone(),
    )
    .await;
    assert_eq!(answer["removed"].as_bool(), Some(false));
    let (_, page) = call(Method::GET, "/v1/me/tracks".into(), listener.clone()).await;
    assert_eq!(page["total"], 2);

    // Bad input: unknown and malformed ids, no token; counts unaffected.
    let unknown = "0".repeat(32);
    let (status, answer) = call(
        Method::PUT,
        format!("/v1/me/tracks/{unknown}"),
        listener.clone(),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, answer) = call(Method::PUT, "/v1/me/tracks/nope".into(), listener.clone()).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );
    let (status, _) = call(
        Method::PUT,
        format!("/v1/me/tracks/{}", tracks[1]),
        "bogus".into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, page) = call(Method::GET, "/v1/me/tracks".into(), listener.clone()).await;
    assert_eq!(page["total"], 2);

    // Follow the artist (not a listener account); list shows the artist's name.
    let (status, answer) = call(
        Method::PUT,
        format!("/v1/me/following/artists/{artist_id}"),
        listener.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, follows) = call(
        Method::GET,
        "/v1/me/following/artists".into(),
        listener.clone(),
    )
    .await;
    assert_eq!(follows["total"], 1);
    assert_eq!(follows["items"][0]["name"], "Lib Artist");
    let (status, answer) = call(
        Method::PUT,
        format!("/v1/me/following/artists/{unknown}"),
        listener.clone(),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, answer) = call(
        Method::DELETE,
        format!("/v1/me/following/artists/{artist_id}"),
        listener.clone(),
    )
    .await;
    assert_eq!(
        (status, answer["removed"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (_, follows) = call(Method::GET, "/v1/me/following/artists".into(), listener).await;
    assert_eq!(follows["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_edit_safely_from_two_devices() {
    use reqwest::Method;
    // This test is about concurrency, not limits: let every edit through.
    let origin = start_with(|config| config.rate_limits.playlist_write.burst = 10_000).await;
    let artist = origin.account("pl_artist", "SE", "artist", "free").await;
    let owner = origin.account("pl_owner", "SE", "listener", "free").await;
    let friend = origin.account("pl_friend", "SE", "listener", "free").await;
    let stranger = origin
        .account("pl_stranger", "SE", "listener", "free")
        .await;
    let mut tracks = Vec::new();
    for seed in 0..4u64 {
        let metadata = json!({"title": format!("Tune {seed}"), "artist": "PL"});
        let (status, track) = origin
            .upload(
                &artist,
                synth::wav(seed + 20, 1.0, 22_050, 1),
                "t.wav",
                metadata,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{track}");
        tracks.push(track["id"].as_str().unwrap().to_string());
    }
    let call = |method: Method, path: String, token: &str, body: Option<Value>| {
        let mut request = origin
            .http
            .request(method, format!("{}{path}", origin.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let (status, created) = call(
        Method::POST,
        "/v1/playlists".into(),
        &owner,
        Some(json!({"name": "  Road trip ", "public": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let tracks_path = format!("/v1/playlists/{id}/tracks");
    let (status, added) = call(
        Method::POST,
        tracks_path.clone(),
        &owner,
        Some(json!({"track_ids": [tracks[0], tracks[1], tracks[2]]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["total"], 3);
    assert_ne!(added["snapshot_id"], created["snapshot_id"]);
    // Insert at a position.
    let (_, added) = call(
        Method::POST,
        tracks_path.clone(),
        &owner,
        Some(json!({"track_ids": [tracks[3]], "position": 1})),
    )
    .await;
    let order = |playlist: &Value| -> Vec<String> {
        playlist["tracks"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, read) = call(Method::GET, format!("/v1/playlists/{id}"), &owner, None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["name"], "Road trip");
    assert_eq!(
        order(&read),
        vec![
            tracks[0].clone(),
            tracks[3].clone(),
            tracks[1].clone(),
            tracks[2].clone()
        ]
    );
    assert_eq!(
        read["snapshot_id"], added["snapshot_id"],
        "reads see the account's own writes"
    );
    assert_eq!(read["tracks"]["items"][1]["track"]["title"], "Tune 3");
    // Paged.
    let (_, page) = call(
        Method::GET,
        format!("/v1/playlists/{id}?limit=2&offset=2"),
        &owner,
        None,
    )
    .await;
    assert_eq!(order(&page), vec![tracks[1].clone(), tracks[2].clone()]);
    assert_eq!(page["tracks"]["total"], 4);

    // Reorder with the current snapshot; a stale one is refused and changes nothing.
    let snapshot = read["snapshot_id"].as_str().unwrap().to_string();
    let (status, moved) = call(Method::PUT, tracks_path.clone(), &owner, Some(json!({"range_start": 2, "insert_before": 0, "range_length": 2, "snapshot_id": snapshot}))).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, stale) = call(
        Method::PUT,
        tracks_path.clone(),
        &owner,
        Some(json!({"range_start": 0, "insert_before": 3, "snapshot_id": snapshot})),
    )
    .await;
    assert_eq!(
        (status, error_code(&stale)),
        (StatusCode::CONFLICT, "stale_snapshot")
    );
    let (_, read) = call(Method::GET, format!("/v1/playlists/{id}"), &owner, None).await;
    assert_eq!(
        order(&read),
        vec![
            tracks[1].clone(),
            tracks[2].clone(),
            tracks[0].clone(),
            tracks[3].clone()
        ]
    );
    assert_eq!(read["snapshot_id"], moved["snapshot_id"]);
    // Out-of-bounds ranges and positions.
    for body in [
        json!({"range_start": 3, "insert_before": 0, "range_length": 2}),
        json!({"range_start": 0, "insert_before": 5}),
        json!({"range_start": 0, "insert_before": 1, "range_length": 0}),
    ] {
        let (status, answer) = call(Method::PUT, tracks_path.clone(), &owner, Some(body)).await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::CONFLICT, "bad_range")
        );
    }
    let (status, answer) = call(
        Method::POST,
        tracks_path.clone(),
        &owner,
        Some(json!({"track_ids": [tracks[0]], "position": 9})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "bad_position")
    );
    let (status, answer) = call(
        Method::DELETE,
        tracks_path.clone(),
        &owner,
        Some(json!({"positions": [4]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "bad_position")
    );
    // A track the catalog does not have: 409 naming which one (404 is for the playlist).
    let unknown = "0".repeat(32);
    let (status, answer) = call(
        Method::POST,
        tracks_path.clone(),
        &owner,
        Some(json!({"track_ids": [tracks[0], unknown]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer), &answer["error"]["index"]),
        (StatusCode::CONFLICT, "unknown_track", &json!(1))
    );

    // Private: a stranger cannot see it (404, existence not revealed) nor edit it.
    let (status, _) = call(Method::GET, format!("/v1/playlists/{id}"), &stranger, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        Method::POST,
        tracks_path.clone(),
        &stranger,
        Some(json!({"track_ids": [tracks[0]]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Public: visible, still not editable by others (403).
    let (status, _) = call(
        Method::PUT,
        format!("/v1/playlists/{id}"),
        &owner,
        Some(json!({"public": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(Method::GET, format!("/v1/playlists/{id}"), &stranger, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = call(
        Method::POST,
        tracks_path.clone(),
        &stranger,
        Some(json!({"track_ids": [tracks[0]]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_editor")
    );
    let (status, answer) = call(
        Method::PUT,
        format!("/v1/playlists/{id}"),
        &stranger,
        Some(json!({"name": "mine now"})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_owner")
    );

    // Collaborative: the listed friend may edit; it is in the friend's list too.
    let (status, answer) = call(
        Method::PUT,
        format!("/v1/playlists/{id}"),
        &owner,
        Some(json!({"collaborative": true, "collaborators": ["pl_friend"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = call(
        Method::PUT,
        format!("/v1/playlists/{id}"),
        &owner,
        Some(json!({"collaborators": ["nobody_here"]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "unknown_user")
    );
    let (_, mine) = call(Method::GET, "/v1/me/playlists".into(), &friend, None).await;
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["items"][0]["owned"], false);

    // Two devices (owner and friend) adding at once: every acknowledged add is there.
    let mut devices = Vec::new();
    for (token, track) in [
        (owner.clone(), tracks[0].clone()),
        (friend.clone(), tracks[1].clone()),
    ] {
        let (http, url) = (origin.http.clone(), format!("{}{tracks_path}", origin.base));
        devices.push(tokio::spawn(async move {
            let mut acknowledged = 0;
            for _ in 0..15 {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"track_ids": [track]}))
                    .send()
                    .await
                    .unwrap();
                if response.status() == StatusCode::CREATED {
                    acknowledged += 1;
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = 0;
    for device in devices {
        acknowledged += device.await.unwrap();
    }
    assert_eq!(acknowledged, 30);
    let (_, read) = call(Method::GET, format!("/v1/playlists/{id}"), &owner, None).await;
    assert_eq!(read["tracks"]["total"], 4 + 30);

    // Remove by id (every occurrence) and by position.
    let (status, removed) = call(
        Method::DELETE,
        tracks_path.clone(),
        &owner,
        Some(json!({"track_ids": [tracks[0]]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["removed"], 16);
    let (_, removed) = call(
        Method::DELETE,
        tracks_path.clone(),
        &friend,
        Some(json!({"positions": [0, 1]})),
    )
    .await;
    assert_eq!(removed["removed"], 2);
    let (_, read) = call(Method::GET, format!("/v1/playlists/{id}"), &owner, None).await;
    assert_eq!(read["tracks"]["total"], 34 - 16 - 2);

    // Up to 10,000 tracks, and not one more.
    let (_, big) = call(
        Method::POST,
        "/v1/playlists".into(),
        &owner,
        Some(json!({"name": "Everything"})),
    )
    .await;
    let big_path = format!("/v1/playlists/{}/tracks", big["id"].as_str().unwrap());
    let hundred: Vec<String> = (0..100).map(|i| tracks[i % 4].clone()).collect();
    for _ in 0..100 {
        let (status, answer) = call(
            Method::POST,
            big_path.clone(),
            &owner,
            Some(json!({"track_ids": hundred})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (status, answer) = call(
        Method::POST,
        big_path.clone(),
        &owner,
        Some(json!({"track_ids": [tracks[0]]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "playlist_full")
    );
    // Bad bodies: empty name, too many ids at once.
    let (status, answer) = call(
        Method::POST,
        "/v1/playlists".into(),
        &owner,
        Some(json!({"name": "   "})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );
    let many: Vec<String> = (0..101).map(|_| tracks[0].clone()).collect();
    let (status, answer) = call(
        Method::POST,
        tracks_path.clone(),
        &owner,
        Some(json!({"track_ids": many})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_track_ids")
    );
    let (_, mine) = call(Method::GET, "/v1/me/playlists".into(), &owner, None).await;
    assert_eq!(mine["total"], 2);
}

fn now_ms() -> u64 {
    origin::now_ms()
}

/// The events of one play of `track`: started `ago_ms` before now, listened `listened_ms`.
fn play(play_id: &str, track: &str, ago_ms: u64, listened_ms: u64, last: &str) -> Vec<Value> {
    let start = now_ms() - ago_ms;
    vec![
        json!({"id": format!("{play_id}-s"), "play_id": play_id, "type": "play_start", "track_id": track, "position_ms": 0, "at": start}),
        json!({"id": format!("{play_id}-e"), "play_id": play_id, "type": last, "track_id": track, "position_ms": listened_ms, "at": start + listened_ms}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_events_feed_trending_search_recommendations_and_royalties() {
    // Many users from one address: limits are the other test's business.
    let origin = start_with(|config| {
        config.recommendations_refresh_s = 1;
        config.rate_limits.unauthenticated.burst = 10_000;
    })
    .await;
    let artist = origin.account("ev_artist", "SE", "artist", "free").await;
    let mut ids = Vec::new();
    for (seed, title, genre) in [
        (40u64, "Midnight Echo", "Rock"),
        (41, "Midnight Eclipse", "Rock"),
        (42, "Jazz Dawn", "Jazz"),
        (43, "Quiet Room", "Jazz"),
    ] {
        let metadata = json!({"title": title, "artist": "Evening Band", "genre": genre});
        let (status, track) = origin
            .upload(&artist, synth::wav(seed, 1.0, 22_050, 1), "e.wav", metadata)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{track}");
        ids.push(track["id"].as_str().unwrap().to_string());
    }
    let (echo, eclipse, dawn, quiet) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let one = origin.account("ev_one", "SE", "listener", "free").await;
    let two = origin.account("ev_two", "SE", "listener", "free").await;
    let three = origin.account("ev_three", "US", "listener", "free").await;

    // Which "midnight" track search ranks first before anyone listens.
    let (_, before) = origin.get("/v1/search?q=midnight&type=track", None).await;
    let second = before["items"][1]["id"].as_str().unwrap().to_string();
    // The other one ranked first.
    let other = if second == *echo { eclipse } else { echo };
    // One: 60 s of the second-ranked track; sending the batch again changes nothing.
    let batch = Value::from(play("one-a", &second, 120_000, 60_000, "skip"));
    let (status, answer) = origin.post("/v1/events", Some(&one), batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 2, "duplicates": 0, "skipped": 0, "streams": 1})
    );
    let (_, again) = origin.post("/v1/events", Some(&one), batch).await;
    assert_eq!(
        again,
        json!({"accepted": 0, "duplicates": 2, "skipped": 0, "streams": 0})
    );
    // 29 s and a skip is not a stream; a seek to 0:40 two seconds in is not either.
    let mut short = play("one-b", &second, 100_000, 29_999, "skip");
    short.extend(play("one-c", &second, 50_000, 2_000, "progress"));
    short[3]["position_ms"] = json!(40_000);
    let (_, answer) = origin
        .post("/v1/events", Some(&one), Value::from(short))
        .await;
    assert_eq!(answer["streams"], 0, "{answer}");
    // Then Jazz Dawn, right after in the same session.
    let (_, answer) = origin
        .post(
            "/v1/events",
            Some(&one),
            Value::from(play("one-d", dawn, 50_000, 45_000, "progress")),
        )
        .await;
    assert_eq!(answer["streams"], 1);
    // Two: the same two in a row, offline events arriving late (a week ago).
    let mut offline = play("two-a", &second, 7 * 86_400_000, 200_000, "complete");
    offline.extend(play(
        "two-b",
        dawn,
        7 * 86_400_000 - 210_000,
        100_000,
        "complete",
    ));
    let (_, answer) = origin
        .post("/v1/events", Some(&two), Value::from(offline))
        .await;
    assert_eq!(answer["streams"], 2);
    // Three, in the US: the other midnight track.
    let (_, answer) = origin
        .post(
            "/v1/events",
            Some(&three),
            Value::from(play("three-a", other, 60_000, 31_000, "progress")),
        )
        .await;
    assert_eq!(answer["streams"], 1);

    // Bad batches are refused whole, naming the event; counts do not move.
    let good = play("bad-1", quiet, 60_000, 40_000, "progress");
    let mut cases: Vec<(Value, StatusCode, &str)> = Vec::new();
    let mut unknown = good.clone();
    unknown[1]["track_id"] = json!("0".repeat(32));
    cases.push((Value::from(unknown), StatusCode::NOT_FOUND, "unknown_track"));
    let mut bad_id = good.clone();
    bad_id[0]["id"] = json!("has spaces");
    cases.push((
        Value::from(bad_id),
        StatusCode::BAD_REQUEST,
        "invalid_event_id",
    ));
    let mut other_track = good.clone();
    other_track[1]["play_id"] = json!("one-a");
    other_track[1]["id"] = json!("fresh-id");
    cases.push((
        Value::from(other_track),
        StatusCode::CONFLICT,
        "play_track_mismatch",
    ));
    cases.push((json!([]), StatusCode::BAD_REQUEST, "no_events"));
    let many: Vec<Value> = (0..501)
        .map(|i| {
            let mut event = good[1].clone();
            event["id"] = json!(format!("many-{i}"));
            event
        })
        .collect();
    cases.push((
        Value::from(many),
        StatusCode::BAD_REQUEST,
        "too_many_events",
    ));
    cases.push((
        json!({"not": "a list"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_json",
    ));
    for (body, status, code) in cases {
        let (got, answer) = origin.post("/v1/events", Some(&one), body).await;
        assert_eq!((got, error_code(&answer)), (status, code), "{answer}");
    }
    // The refused event is named by index, as a field.
    let mut second_bad = good.clone();
    second_bad[1]["id"] = json!("has spaces");
    let (_, answer) = origin
        .post("/v1/events", Some(&one), Value::from(second_bad))
        .await;
    assert_eq!(answer["error"]["index"], 1, "{answer}");
    // Events outside the window ids are kept for are skipped and counted, not recorded.
    let mut stale = play("stale-1", quiet, 60_000, 40_000, "progress");
    stale[0]["at"] = json!(now_ms() + 3_600_000);
    stale[1]["at"] = json!(now_ms() - 31 * 86_400_000);
    let (status, answer) = origin
        .post("/v1/events", Some(&one), Value::from(stale))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 0, "duplicates": 0, "skipped": 2, "streams": 0})
    );
    let (status, _) = origin
        .post("/v1/events", None, Value::from(good.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The refused batches left no trace: their ids are still new.
    let (_, answer) = origin
        .post("/v1/events", Some(&one), Value::from(good))
        .await;
    assert_eq!(
        answer,
        json!({"accepted": 2, "duplicates": 0, "skipped": 0, "streams": 1})
    );

    // Trending: per region, per genre, the world.
    let (status, se) = origin.get("/v1/trending?region=SE", None).await;
    assert_eq!(status, StatusCode::OK, "{se}");
    let se_ids: Vec<&str> = se["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["track"]["id"].as_str().unwrap())
        .collect();
    // Two streams each, one a week old: the fresher stream of Jazz Dawn puts it first.
    assert_eq!(se_ids[..2], [dawn.as_str(), second.as_str()], "{se}");
    assert_eq!(se["items"][1]["streams"], 2);
    let fresh = se["items"][0]["score"].as_f64().unwrap();
    assert!(
        fresh > 1.0 && fresh < 1.1,
        "a week-old stream weighs 1/128: {se}"
    );
    assert!(!se_ids.contains(&other.as_str()));
    let (_, us) = origin.get("/v1/trending?region=US", None).await;
    assert_eq!(us["items"][0]["track"]["id"].as_str(), Some(other.as_str()));
    let (_, jazz) = origin.get("/v1/trending?genre=jazz", None).await;
    let jazz_ids: Vec<&str> = jazz["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["track"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(jazz_ids[0], dawn.as_str(), "{jazz}");
    assert!(!jazz_ids.contains(&second.as_str()));
    let (status, answer) = origin.get("/v1/trending?region=Sweden", None).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_region")
    );

    // Search: the played track now ranks first among equals (popularity follows within
    // seconds).
    let mut ranked_first = String::new();
    for _ in 0..50 {
        let (_, hits) = origin.get("/v1/search?q=midnight&type=track", None).await;
        ranked_first = hits["items"][0]["id"].as_str().unwrap().to_string();
        if ranked_first == second {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(ranked_first, second, "was {other} first before any play");

    // Public playlists are searchable; private ones are not.
    let (status, created) = origin
        .post(
            "/v1/playlists",
            Some(&two),
            json!({"name": "Late Night Drive", "description": "for the road"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let playlist = created["id"].as_str().unwrap().to_string();
    let (_, hits) = origin
        .get("/v1/search?q=late%20nigt&type=playlist", None)
        .await;
    assert_eq!(
        hits["items"][0]["id"].as_str(),
        Some(playlist.as_str()),
        "{hits}"
    );
    assert_eq!(hits["items"][0]["artist"], "ev_two");
    let hide = origin
        .http
        .put(format!("{}/v1/playlists/{playlist}", origin.base))
        .bearer_auth(&two)
        .json(&json!({"public": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(hide.status(), StatusCode::OK);
    let (_, hits) = origin
        .get("/v1/search?q=late%20night&type=playlist", None)
        .await;
    assert_eq!(hits["total"], 0, "{hits}");

    // Recommendations: listeners of the played midnight track also played Jazz Dawn. The
    // model is rebuilt in the background (every second here).
    let path = format!("/v1/recommendations?seed_tracks={second}");
    let mut picks = Value::Null;
    for _ in 0..100 {
        let (status, answer) = origin.get(&path, Some(&three)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        picks = answer;
        if picks["items"][0]["reason"]["type"] == "co_listening" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        picks["items"][0]["track"]["id"].as_str(),
        Some(dawn.as_str()),
        "{picks}"
    );
    assert_eq!(picks["items"][0]["reason"]["type"], "co_listening");
    assert_eq!(
        picks["items"][0]["reason"]["seed_track"].as_str(),
        Some(second.as_str())
    );
    assert!(
        picks["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["track"]["id"] != json!(second))
    );
    // Without seeds: their own listening.
    let (_, mine) = origin.get("/v1/recommendations", Some(&one)).await;
    let seeds = mine["seeds"]["tracks"].as_array().unwrap();
    assert!(
        seeds.contains(&json!(dawn)) && seeds.contains(&json!(second)),
        "{mine}"
    );
    // A brand-new listener still gets something, with a reason.
    let new = origin.account("ev_new", "SE", "listener", "free").await;
    let (_, fresh) = origin.get("/v1/recommendations?limit=3", Some(&new)).await;
    let items = fresh["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.len() <= 3, "{fresh}");
    assert!(items.iter().all(|item| item["reason"]["text"].is_string()));
    // Radio.
    let (status, radio) = origin
        .get(&format!("/v1/tracks/{second}/radio"), Some(&one))
        .await;
    assert_eq!(status, StatusCode::OK, "{radio}");
    assert!(!radio["items"].as_array().unwrap().is_empty());
    // Bad seeds.
    for (path, status, code) in [
        (
            "/v1/recommendations?seed_tracks=xyz".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            format!("/v1/recommendations?seed_tracks={}", "0".repeat(32)),
            StatusCode::NOT_FOUND,
            "unknown_seed",
        ),
        (
            format!(
                "/v1/recommendations?seed_tracks={echo},{eclipse},{dawn},{quiet},{echo},{dawn}"
            ),
            StatusCode::BAD_REQUEST,
            "too_many_seeds",
        ),
        (
            format!("/v1/tracks/{}/radio", "0".repeat(32)),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (got, answer) = origin.get(&path, Some(&one)).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{path}: {answer}"
        );
    }

    // Royalties: admins only; this month's streams, shares summing to one.
    let (status, answer) = origin.get("/v1/royalties?month=2026-01", Some(&one)).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "admin_only")
    );
    let admin = origin.admin("ev_admin").await;
    for month in ["2026-13", "last", ""] {
        let (status, answer) = origin
            .get(&format!("/v1/royalties?month={month}"), Some(&admin))
            .await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::BAD_REQUEST, "invalid_month"),
            "{month}"
        );
    }
    let mut total = 0;
    let mut months = std::collections::BTreeSet::new();
    for days_ago in [0u64, 8] {
        let secs = (now_ms() - days_ago * 86_400_000) / 1000;
        // Civil month of a Unix time (UTC).
        let days = (secs / 86_400) as i64;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        months.insert(format!("{year:04}-{month:02}"));
    }
    for month in &months {
        let (status, report) = origin
            .get(&format!("/v1/royalties?month={month}"), Some(&admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        total += report["counted"].as_u64().unwrap();
        let shares: f64 = report["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["share"].as_f64().unwrap())
            .sum();
        if report["counted"].as_u64().unwrap() > 0 {
            assert!((shares - 1.0).abs() < 1e-9, "{report}");
            assert_eq!(report["artists"][0]["name"], "Evening Band");
        }
    }
    // one: 2 + the good batch 1, two: 2, three: 1.
    assert_eq!(total, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    use origin::ratelimit::Rate;
    let origin = start_with(|config| {
        config.rate_limits.search = Rate {
            per_minute: 6,
            burst: 3,
        };
        config.rate_limits.unauthenticated = Rate {
            per_minute: 6,
            burst: 6,
        };
    })
    .await;
    // Sign-up and two log-ins (the listener's and the operator's who sets its tier) spend
    // three of the address's six unauthenticated requests.
    let token = origin.account("rl_user", "SE", "listener", "free").await;
    for _ in 0..3 {
        let (status, _) = origin.get("/v1/search?q=anything", Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, answer, headers) = origin
        .get_with_headers("/v1/search?q=anything", Some(&token))
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // One token every ten seconds.
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    // Other classes of the same account are not affected.
    let (status, _) = origin.get("/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    // Without a token, per address: three more, then 429.
    for _ in 0..3 {
        let (status, _) = origin.get("/v1/trending", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, headers) = origin.get_with_headers("/v1/trending", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    // Chunks, health and metrics are never limited; the refusals are counted.
    let (status, _) = origin.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = origin
        .http
        .get(format!("{}/metrics", origin.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("chorus_rate_limited_total{limit=\"search\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("chorus_rate_limited_total{limit=\"unauthenticated\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_origin_serves_the_published_recommendations_at_once() {
    // Rebuilt within 2 s of a change: the upload is in a published model soon.
    let mut origin = start_with(|config| config.recommendations_refresh_s = 2).await;
    let artist = origin.account("model_artist", "SE", "artist", "free").await;
    let metadata = json!({"title": "Kept Model", "artist": "Restarters"});
    let (status, track) = origin
        .upload(&artist, synth::wav(7, 1.0, 22_050, 1), "k.wav", metadata)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    const TRACKS: &str = "chorus_recommendation_model_tracks";
    // The age is shown once a model is published: with one track, the upload's is.
    const AGE: &str = "chorus_recommendation_model_age_seconds";
    const BUILT: &str = "chorus_recommendation_models_total{how=\"built\"}";
    const LOADED: &str = "chorus_recommendation_models_total{how=\"loaded\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while origin.metric(TRACKS).await != Some(1.0) || origin.metric(AGE).await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no model with the upload published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Started again with a long refresh, the model published before the stop is young
    // enough: it is served, and nothing is built.
    origin.config.recommendations_refresh_s = 3_600;
    let origin = origin.restart_after(async {}).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while origin.metric(LOADED).await != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the published model was not loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(origin.metric(TRACKS).await, Some(1.0));
    assert_eq!(origin.metric(BUILT).await, Some(0.0));
}

/// `ffmpeg` writes `seconds` of a tone as `name` (its extension picks the format) with `tags`
/// and, if given, a `width` x `height` PNG embedded as the front cover.
fn tagged_file_with_cover(
    seconds: u32,
    name: &str,
    tags: &[(&str, &str)],
    cover: Option<(u32, u32)>,
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut command = std::process::Command::new("ffmpeg");
    command.args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"]);
    command.arg(format!("sine=frequency=330:duration={seconds}"));
    if let Some((width, height)) = cover {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
        });
        let png = dir.path().join("cover.png");
        picture.save(&png).unwrap();
        command.arg("-i").arg(&png);
        command.args([
            "-map",
            "0:a",
            "-map",
            "1:v",
            "-disposition:v",
            "attached_pic",
        ]);
        if name.ends_with(".mp3") {
            command.args(["-c:v", "mjpeg", "-id3v2_version", "3"]);
        } else {
            command.args(["-c:v", "png"]);
        }
    }
    for (key, value) in tags {
        command.arg("-metadata").arg(format!("{key}={value}"));
    }
    let status = command
        .arg(&path)
        .status()
        .expect("ffmpeg runs (scripts/setup installs it)");
    assert!(status.success(), "ffmpeg wrote {name}");
    std::fs::read(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_read_from_the_files_tags() {
    let origin = start().await;
    let artist = origin
        .account("tagged_artist", "SE", "artist", "free")
        .await;
    // Three tracks of one album, uploaded out of order with no metadata part at all.
    let album_tags = [
        ("artist", "Harbour Band"),
        ("album", "Harbour Lights"),
        ("album_artist", "Various Harbours"),
        ("date", "2019-04-01"),
        ("genre", "Ambient"),
    ];
    let mut ids = Vec::new();
    for (title, disc, number) in [
        ("Third", "1", "3"),
        ("Encore", "2", "1"),
        ("First", "1", "1"),
    ] {
        let mut tags = album_tags.to_vec();
        tags.extend([("title", title), ("disc", disc), ("track", number)]);
        if title == "First" {
            tags.extend([
                (
                    "LYRICS",
                    "[ar:Harbour Band]\n[00:01.50]Lights on the water\n[00:00.20]Here we go",
                ),
                ("ISRC", "GB-AYE-00-00351"),
                (
                    "MUSICBRAINZ_TRACKID",
                    "5B11F4CE-A62D-471E-81FC-A69A8278C7DA",
                ),
            ]);
        }
        // The second track in album order carries the cover.
        let cover = (title == "Third").then_some((700, 500));
        let file = tagged_file_with_cover(2, &format!("{title}.flac"), &tags, cover);
        let (status, track) = origin.upload_parts(&artist, file, "x.flac", None).await;
        assert_eq!(status, StatusCode::CREATED, "{track}");
        assert_eq!(track["title"], title);
        assert_eq!(track["artist"], "Harbour Band");
        assert_eq!(track["album"], "Harbour Lights");
        assert_eq!(track["album_artist"], "Various Harbours");
        assert_eq!(track["year"], 2019);
        assert_eq!(track["genre"], "Ambient");
        ids.push(track);
    }
    let first = &ids[2];
    assert_eq!(first["track_number"], 1);
    assert_eq!(first["disc_number"], 1);
    assert_eq!(first["isrc"], "GBAYE0000351");
    assert_eq!(
        first["musicbrainz"]["recording_id"],
        "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
    );
    assert_eq!(first["lyrics"], "synced");
    assert_eq!(ids[0]["lyrics"], "none");
    let album_id = first["album_id"].as_str().unwrap();
    assert!(ids.iter().all(|track| track["album_id"] == album_id));
    let (status, album) = origin.get(&format!("/v1/albums/{album_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{album}");
    assert_eq!(album["artist"], "Various Harbours");
    assert_eq!(album["year"], 2019);
    let order: Vec<&str> = album["tracks"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|track| track["title"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["First", "Third", "Encore"], "disc, then number");

    // Cover art: the album shows the first cover in album order, in every size up to the
    // picture's own; each size is an immutable JPEG of that size.
    assert!(first["artwork"].is_null());
    let sizes = album["artwork"]["sizes"].as_array().unwrap().clone();
    assert_eq!(album["artwork"], ids[0]["artwork"]);
    let edges: Vec<u64> = sizes
        .iter()
        .map(|size| size["size"].as_u64().unwrap())
        .collect();
    assert_eq!(edges, [128, 300, 600, 700]);
    let url = sizes[1]["url"].as_str().unwrap();
    let response = origin
        .http
        .get(format!("{}{url}", origin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let etag = response.headers()["etag"].clone();
    let picture = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((picture.width(), picture.height()), (300, 214));
    let again = origin
        .http
        .get(format!("{}{url}", origin.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // The album's artist uploads a cover over the files' own; another artist may not; what
    // is not a picture is refused; removing it brings the files' cover back.
    let put_picture = |path: String, token: String, body: Vec<u8>| {
        let (http, base) = (origin.http.clone(), origin.base.clone());
        async move {
            let response = http
                .put(format!("{base}{path}"))
                .bearer_auth(token)
                .header("content-type", "image/png")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let mut cover = Vec::new();
    image::RgbImage::from_pixel(2000, 2000, image::Rgb([200, 10, 10]))
        .write_to(
            &mut std::io::Cursor::new(&mut cover),
            image::ImageFormat::Png,
        )
        .unwrap();
    let album_image = format!("/v1/albums/{album_id}/image");
    let stranger = origin.account("other_artist", "SE", "artist", "free").await;
    let (status, answer) = put_picture(album_image.clone(), stranger.clone(), cover.clone()).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_owner")
    );
    let (status, answer) = put_picture(
        album_image.clone(),
        artist.clone(),
        b"GIF89a broken".to_vec(),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_picture")
    );
    let (status, uploaded) = put_picture(album_image.clone(), artist.clone(), cover).await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    let edges: Vec<u64> = uploaded["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|size| size["size"].as_u64().unwrap())
        .collect();
    assert_eq!(edges, [128, 300, 600, 1200]);
    let (_, album) = origin.get(&format!("/v1/albums/{album_id}"), None).await;
    assert_eq!(album["artwork"], uploaded);
    let status = origin
        .http
        .delete(format!("{}{album_image}", origin.base))
        .bearer_auth(&artist)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, album) = origin.get(&format!("/v1/albums/{album_id}"), None).await;
    assert_eq!(album["artwork"], ids[0]["artwork"]);
    let artist_id = first["artist_id"].as_str().unwrap();
    let mut portrait = Vec::new();
    image::RgbImage::from_pixel(400, 300, image::Rgb([10, 10, 200]))
        .write_to(
            &mut std::io::Cursor::new(&mut portrait),
            image::ImageFormat::Png,
        )
        .unwrap();
    let (status, set) = put_picture(
        format!("/v1/artists/{artist_id}/image"),
        artist.clone(),
        portrait,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (_, shown) = origin.get(&format!("/v1/artists/{artist_id}"), None).await;
    assert_eq!(shown["image"], set);

    // Ids that are not images: an audio chunk's id, a malformed one.
    let chunk_url = format!("/v1/images/{}", "0".repeat(64));
    let (status, _) = origin.get(&chunk_url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = origin.get("/v1/images/nothex", None).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );

    // Lyrics: synced lines in time order; a track without lyrics is 404.
    let first_id = first["id"].as_str().unwrap();
    let (status, lyrics) = origin
        .get(&format!("/v1/tracks/{first_id}/lyrics"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{lyrics}");
    assert_eq!(lyrics["synced"], true);
    assert_eq!(lyrics["lines"][0]["start_ms"], 200);
    assert_eq!(lyrics["lines"][0]["text"], "Here we go");
    assert_eq!(lyrics["lines"][1]["text"], "Lights on the water");
    let third_id = ids[0]["id"].as_str().unwrap();
    let (status, answer) = origin
        .get(&format!("/v1/tracks/{third_id}/lyrics"), None)
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // MP3 (ID3v2): the tags are read there too; the metadata part overrides them, and the
    // same album title in another year is another album.
    let file = tagged_file_with_cover(
        2,
        "song.mp3",
        &[
            ("title", "Id3 Title"),
            ("artist", "Harbour Band"),
            ("album", "Harbour Lights"),
            ("track", "4/9"),
            ("date", "2021"),
        ],
        Some((100, 100)),
    );
    let (status, track) = origin
        .upload_parts(
            &artist,
            file,
            "song.mp3",
            Some(json!({"title": "Given Title", "lyrics": "Plain words\nSecond line"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    assert_eq!(track["title"], "Given Title");
    assert_eq!(track["track_number"], 4);
    assert_eq!(track["year"], 2021);
    assert_eq!(track["lyrics"], "plain");
    assert_ne!(track["album_id"], album_id);
    assert_eq!(
        track["artwork"]["sizes"][0]["size"], 100,
        "not upscaled: {track}"
    );
    let chunk = track["renditions"][0]["rendition_id"].as_str().unwrap();
    let (status, _) = origin.get(&format!("/v1/images/{chunk}"), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a rendition id is not an image"
    );

    // No tags and no metadata: the file's name and the account's name.
    let (status, track) = origin
        .upload_parts(
            &artist,
            synth::wav(3, 1.0, 44_100, 2),
            "Quiet Morning.wav",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{track}");
    assert_eq!(track["title"], "Quiet Morning");
    assert_eq!(track["artist"], "tagged_artist");
    assert!(track["album_id"].is_null());

    // A deleted track's lyrics are no longer found.
    let status = origin
        .http
        .delete(format!("{}/v1/tracks/{first_id}", origin.base))
        .bearer_auth(&artist)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, found) = origin
        .get("/v1/search?q=lights%20water&type=lyrics", None)
        .await;
    assert_eq!(found["total"], 0, "{found}");

    // Metadata in the wrong shape is refused before any work.
    for bad in [
        json!({"track_number": 0}),
        json!({"year": 10000}),
        json!({"isrc": "not an isrc"}),
        json!({"lyrics": "x".repeat(40 * 1024)}),
    ] {
        let (status, answer) = origin
            .upload_parts(&artist, synth::wav(3, 1.0, 44_100, 2), "a.wav", Some(bad))
            .await;
        assert_eq!(status.as_u16() / 100, 4, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_state_follows_the_listener_and_refuses_stale_writes() {
    let origin = start().await;
    let listener = origin.account("roaming", "SE", "listener", "free").await;
    let put = |body: Value| {
        let (http, base, token) = (origin.http.clone(), origin.base.clone(), listener.clone());
        async move {
            let response = http
                .put(format!("{base}/v1/me/player"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, empty) = origin.get("/v1/me/player", Some(&listener)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["version"], 0);
    assert_eq!(empty["queue"], json!([]));
    let queue = json!(["a".repeat(32), "b".repeat(32), "c".repeat(32)]);
    // The phone saves its place; the laptop, which read version 0 too, is refused.
    let (status, saved) = put(
        json!({"queue": queue, "index": 1, "position_ms": 61_500, "device": "phone", "version": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["version"], 1);
    let (status, answer) =
        put(json!({"queue": [], "index": 0, "position_ms": 0, "device": "laptop", "version": 0}))
            .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::CONFLICT, "stale_version")
    );
    // The laptop reads, and picks up where the phone stopped.
    let (_, read) = origin.get("/v1/me/player", Some(&listener)).await;
    assert_eq!(read, saved);
    assert_eq!(
        (
            read["index"].clone(),
            read["position_ms"].clone(),
            read["device"].clone()
        ),
        (json!(1), json!(61_500), json!("phone"))
    );
    let (status, moved) = put(
        json!({"queue": queue, "index": 2, "position_ms": 0, "device": "laptop", "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["version"], 2);
    // Out of bounds: clear errors, nothing changes.
    for bad in [
        json!({"queue": queue, "index": 3, "position_ms": 0, "device": "x", "version": 2}),
        json!({"queue": [], "index": 1, "position_ms": 0, "device": "x", "version": 2}),
        json!({"queue": ["nothex"], "index": 0, "position_ms": 0, "device": "x", "version": 2}),
        json!({"queue": [], "index": 0, "position_ms": 0, "device": " ", "version": 2}),
        json!({"queue": [], "index": 0, "position_ms": 100_000_000, "device": "x", "version": 2}),
    ] {
        let (status, answer) = put(bad).await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::BAD_REQUEST, "invalid_player"),
            "{answer}"
        );
    }
    let (status, answer) = put(json!({"queue": [], "version": 2})).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json")
    );
    let (_, read) = origin.get("/v1/me/player", Some(&listener)).await;
    assert_eq!(read, moved);
    let (status, _) = origin.get("/v1/me/player", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_passwords_and_api_keys_log_apps_in_and_revoke_alone() {
    let origin = start().await;
    let owner = origin.account("appowner", "SE", "artist", "free").await;
    let other = origin.account("appother", "SE", "listener", "free").await;
    let (status, made) = origin
        .post(
            "/v1/me/app-passwords",
            Some(&owner),
            json!({"name": "Symfonium"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["kind"], "app_password");
    let password = made["password"].as_str().unwrap().to_string();
    assert!(made.get("api_key").is_none());
    let (status, keyed) = origin
        .post(
            "/v1/me/app-passwords",
            Some(&owner),
            json!({"name": "web", "kind": "api_key"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{keyed}");
    let api_key = keyed["api_key"].as_str().unwrap().to_string();
    let (_, listed) = origin.get("/v1/me/app-passwords", Some(&owner)).await;
    let mut names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    // Oldest first; two made in the same millisecond may come either way.
    names.sort();
    assert_eq!(names, ["Symfonium", "web"]);
    assert!(
        !listed.to_string().contains(&password),
        "never listed again"
    );
    let (_, theirs) = origin.get("/v1/me/app-passwords", Some(&other)).await;
    assert_eq!(theirs["items"], json!([]));

    // Every form logs in as the owner, with the listener's rights.
    let salt = "c19b2d";
    let token = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(format!("{password}{salt}")))
    };
    let forms = [
        json!({"username": "appowner", "password": password}),
        json!({"username": "appowner", "password": format!("enc:{}", hex::encode(&password))}),
        json!({"username": "appowner", "token": token, "salt": salt}),
        json!({"api_key": api_key}),
    ];
    let mut tokens = Vec::new();
    for form in &forms {
        let (status, session) = origin.post("/v1/sessions/app", None, form.clone()).await;
        assert_eq!(status, StatusCode::OK, "{form}: {session}");
        assert_eq!(session["account"]["username"], "appowner");
        assert_eq!(session["account"]["role"], "listener");
        tokens.push(session["access_token"].as_str().unwrap().to_string());
    }
    // Logging in again within the period gives the same token (nothing new is stored).
    let (_, again) = origin
        .post("/v1/sessions/app", None, forms[2].clone())
        .await;
    assert_eq!(again["access_token"], tokens[0].as_str());
    let (status, me) = origin.get("/v1/me", Some(&tokens[0])).await;
    assert_eq!(
        (status, me["role"].clone()),
        (StatusCode::OK, json!("listener"))
    );
    // An app's token only listens: the artist's own tracks are not its to delete.
    let deleted = origin
        .http
        .delete(format!("{}/v1/tracks/{}", origin.base, "0".repeat(32)))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::FORBIDDEN);
    // An app's token cannot manage credentials.
    let (status, answer) = origin.get("/v1/me/app-passwords", Some(&tokens[0])).await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "not_allowed")
    );

    // Wrong secrets, the account password, another user's name, mixed forms.
    for (form, expected) in [
        (json!({"username": "appowner", "password": "wrong"}), 401),
        (
            json!({"username": "appowner", "password": "password123"}),
            401,
        ),
        (json!({"username": "appother", "password": password}), 401),
        (json!({"username": "nobody", "password": password}), 401),
        (
            json!({"username": "appowner", "token": "00".repeat(16), "salt": salt}),
            401,
        ),
        (json!({"api_key": "not a key"}), 401),
        (
            json!({"username": "appowner", "token": token, "salt": "ab"}),
            400,
        ),
        (
            json!({"username": "appowner", "token": "xyz", "salt": salt}),
            400,
        ),
        (json!({"username": "appowner", "password": "enc:zz"}), 400),
        (json!({"username": "appowner", "api_key": api_key}), 422),
        (json!({"username": "appowner"}), 422),
        (json!({}), 422),
    ] {
        let (status, answer) = origin.post("/v1/sessions/app", None, form.clone()).await;
        assert_eq!(status.as_u16(), expected, "{form}: {answer}");
    }
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "a\u{7}"}),
    ] {
        let (status, answer) = origin.post("/v1/me/app-passwords", Some(&owner), bad).await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::BAD_REQUEST, "invalid_name")
        );
    }

    // Revoking the password ends its sessions and log-ins; the API key's stay.
    let id = made["id"].as_str().unwrap();
    let revoke = |token: String, id: String| {
        let (http, base) = (origin.http.clone(), origin.base.clone());
        async move {
            http.delete(format!("{base}/v1/me/app-passwords/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        revoke(other.clone(), id.to_string()).await,
        StatusCode::NOT_FOUND,
        "another account cannot revoke it"
    );
    assert_eq!(
        revoke(tokens[3].clone(), id.to_string()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        revoke(owner.clone(), id.to_string()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        revoke(owner.clone(), "zz".into()).await,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = origin.get("/v1/me", Some(&tokens[0])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = origin
        .post("/v1/sessions/app", None, forms[0].clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = origin.get("/v1/me", Some(&tokens[3])).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = origin.get("/v1/me/app-passwords", Some(&owner)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}
