//! Golden byte vectors: the wire format of every message, pinned in files.
//!
//! A failure here means the bytes on the wire changed: that breaks every deployed node. If the
//! change is intended, bump the protocol version (ALPN) and re-bless with
//! `CHORUS_BLESS=1 cargo test -p protocol --test golden`.

mod common;

use std::path::PathBuf;

use protocol::codec::{self, Validate};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check_golden<T>(name: &str, value: &T)
where
    T: bincode::Encode + bincode::Decode<()> + Validate + PartialEq + std::fmt::Debug,
{
    let mut frame = Vec::new();
    codec::encode_frame(value, &mut frame).unwrap();
    let path = golden_dir().join(format!("{name}.hex"));
    let text = hex_lines(&frame);
    if std::env::var_os("CHORUS_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {}; bless it", path.display()));
    assert_eq!(stored, text, "wire bytes of {name} changed");
    // And the stored bytes decode back to the same value.
    let bytes = hex::decode(stored.split_whitespace().collect::<String>()).unwrap();
    let body = &bytes[codec::FRAME_HEADER_BYTES..];
    assert_eq!(
        &codec::decode::<T>(body).unwrap(),
        value,
        "{name} decodes differently"
    );
}

/// 32 bytes of hex per line, so diffs of golden files are readable.
fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(32)
        .map(|line| hex::encode(line) + "\n")
        .collect()
}

#[test]
fn every_request_matches_its_golden_bytes() {
    for (name, request) in common::requests() {
        check_golden(name, &request);
    }
}

#[test]
fn every_response_matches_its_golden_bytes() {
    for (name, response) in common::responses() {
        check_golden(name, &response);
    }
}

#[test]
fn token_and_manifest_match_their_golden_bytes() {
    check_golden("license_token", &common::license());
    check_golden("signed_manifest", &common::manifest());
}

#[test]
fn every_golden_file_is_checked() {
    let mut expected: Vec<String> = common::requests()
        .into_iter()
        .map(|(name, _)| name.to_string())
        .chain(
            common::responses()
                .into_iter()
                .map(|(name, _)| name.to_string()),
        )
        .chain(["license_token".to_string(), "signed_manifest".to_string()])
        .collect();
    expected.sort();
    let mut found: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".hex")
                .to_string()
        })
        .collect();
    found.sort();
    assert_eq!(found, expected, "golden files and samples disagree");
}
