//! Deterministic sample values shared by the protocol's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope, LicenseToken};
use protocol::manifest::SignedManifest;
use protocol::wire::*;
use protocol::{AccountId, Identity, NodeId, RenditionId, UnixMillis};

pub fn origin() -> Identity {
    Identity::from_secret_bytes(&[0x11; 32])
}

pub fn client() -> Identity {
    Identity::from_secret_bytes(&[0x22; 32])
}

pub fn manifest() -> SignedManifest {
    let audio: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let rendition = testkit::RenditionSpec::new(0x33)
        .key([0x44; 32])
        .plaintext(audio)
        .chunk_bytes(2048)
        .timing(160_000, 44_100, 250)
        .seal(&origin())
        .unwrap();
    rendition.manifest.signed().clone()
}

pub fn license() -> LicenseToken {
    let origin = origin();
    let claims = LicenseClaims {
        version: LICENSE_VERSION,
        issuer: origin.node_id(),
        account: AccountId([0x55; 16]),
        node: client().node_id(),
        region: "SE".parse().unwrap(),
        scope: LicenseScope::Play {
            renditions: vec![manifest().rendition_id()],
        },
        markets: vec!["SE".parse().unwrap(), "NO".parse().unwrap()],
        issued_at: UnixMillis(1_700_000_000_000),
        expires_at: UnixMillis(1_700_000_000_000 + 3_600_000),
        offline: false,
    };
    LicenseToken::issue(&origin, &claims).unwrap()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

pub fn peer() -> PeerInfo {
    PeerInfo {
        holding: Some(Holding {
            held: 40,
            per_min: 600,
        }),
        node: NodeId([0x66; 32]),
        addrs: vec![addr("192.0.2.7:4433"), addr("[2001:db8::7]:4433")],
        region: "DE".parse().unwrap(),
        role: NodeRole::SuperNode,
        upload_spare_kbps: 50_000,
    }
}

/// One sample of every request variant, named for its golden file.
pub fn requests() -> Vec<(&'static str, Request)> {
    let rendition = manifest().rendition_id();
    vec![
        (
            "request_chunk_range",
            Request::ChunkRange(ChunkRangeRequest {
                rendition,
                first: 3,
                count: 16,
                priority: Priority::Playing,
                license: license(),
            }),
        ),
        (
            "request_manifest",
            Request::Manifest(ManifestRequest {
                rendition,
                license: license(),
            }),
        ),
        (
            "request_announce",
            Request::Announce(Announce {
                partial: vec![Partial {
                    rendition: RenditionId([0x78; 32]),
                    held: 12,
                    per_min: 480,
                }],
                region: "SE".parse().unwrap(),
                role: NodeRole::Client,
                addrs: vec![addr("198.51.100.2:9000")],
                renditions: vec![rendition, RenditionId([0x77; 32])],
                upload_spare_kbps: 2_000,
                credential: license(),
                proofs: vec![license()],
            }),
        ),
        (
            "request_refresh",
            Request::Refresh(Refresh {
                set: announce_set(
                    [rendition, RenditionId([0x77; 32])].iter(),
                    [RenditionId([0x78; 32])].iter(),
                ),
                region: "SE".parse().unwrap(),
                role: NodeRole::Client,
                addrs: vec![addr("198.51.100.2:9000")],
                partial: vec![Partial {
                    rendition: RenditionId([0x78; 32]),
                    held: 20,
                    per_min: 480,
                }],
                upload_spare_kbps: 1_000,
                credential: license(),
            }),
        ),
        (
            "request_peer_query",
            Request::PeerQuery(PeerQuery {
                rendition,
                want: 10,
                license: license(),
            }),
        ),
        ("request_ping", Request::Ping { nonce: 0xDEAD_BEEF }),
        (
            "request_popular",
            Request::Popular(PopularQuery {
                want: 100,
                credential: license(),
            }),
        ),
        (
            "request_report",
            Request::Report(PeerReport {
                peer: NodeId([0x66; 32]),
                rendition,
                reason: ReportReason::BadChunk,
                license: license(),
            }),
        ),
        (
            "request_report_delivered",
            Request::Report(PeerReport {
                peer: NodeId([0x66; 32]),
                rendition,
                reason: ReportReason::Delivered { kbps: 3_500 },
                license: license(),
            }),
        ),
    ]
}

/// One sample of every response variant (and every error code), named for its golden file.
pub fn responses() -> Vec<(&'static str, Response)> {
    let rendition = manifest().rendition_id();
    let mut out = vec![
        (
            "response_chunk",
            Response::Chunk {
                index: 300,
                data: vec![0xC5; 64],
            },
        ),
        (
            "response_chunk_missing",
            Response::ChunkMissing { index: 9, held: 4 },
        ),
        ("response_manifest", Response::Manifest(manifest())),
        (
            "response_announce_ack",
            Response::AnnounceAck {
                ttl_ms: 90_000,
                unproven: vec![RenditionId([0x77; 32])],
            },
        ),
        (
            "response_peer_list",
            Response::PeerList(PeerList {
                rendition,
                peers: vec![peer()],
            }),
        ),
        ("response_pong", Response::Pong { nonce: 0xDEAD_BEEF }),
        (
            "response_popular",
            Response::Popular(PopularList {
                renditions: vec![PopularEntry {
                    rendition,
                    score: 4_200,
                }],
            }),
        ),
        ("response_reported", Response::Reported),
    ];
    let codes = [
        ("response_error_bad_request", ErrorCode::BadRequest),
        ("response_error_license_forged", ErrorCode::LicenseForged),
        ("response_error_license_expired", ErrorCode::LicenseExpired),
        (
            "response_error_license_wrong_node",
            ErrorCode::LicenseWrongNode,
        ),
        (
            "response_error_license_not_covered",
            ErrorCode::LicenseNotCovered,
        ),
        ("response_error_not_in_region", ErrorCode::NotInRegion),
        ("response_error_not_found", ErrorCode::NotFound),
        ("response_error_overloaded", ErrorCode::Overloaded),
        ("response_error_internal", ErrorCode::Internal),
    ];
    for (name, code) in codes {
        out.push((name, Response::Error(WireError::new(code, code.as_str()))));
    }
    out
}
