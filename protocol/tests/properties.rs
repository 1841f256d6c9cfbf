//! Property tests: round trips of every message, and no input — random or a mangled valid
//! frame — makes a decoder panic.

mod common;

use std::net::SocketAddr;

use proptest::prelude::*;
use protocol::codec::{self, FrameDecoder};
use protocol::wire::*;
use protocol::{LicenseToken, NodeId, Region, RenditionId, SignedManifest, UnixMillis};

fn rendition() -> impl Strategy<Value = RenditionId> {
    any::<[u8; 32]>().prop_map(RenditionId)
}

fn region() -> impl Strategy<Value = Region> {
    (b'A'..=b'Z', b'A'..=b'Z').prop_map(|(a, b)| Region::new([a, b]).unwrap())
}

fn addrs() -> impl Strategy<Value = Vec<SocketAddr>> {
    // Flow info and scope ids are local to a host and not carried on the wire.
    let addr =
        (any::<std::net::IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port));
    prop::collection::vec(addr, 0..=NODE_ADDRS_MAX)
}

fn token() -> impl Strategy<Value = LicenseToken> {
    (
        prop::collection::vec(any::<u8>(), 0..300),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(claims, a, b)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&a);
            signature[32..].copy_from_slice(&b);
            LicenseToken { claims, signature }
        })
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![
        Just(Priority::Playing),
        Just(Priority::Prefetch),
        Just(Priority::OfflineSync)
    ]
}

fn role() -> impl Strategy<Value = NodeRole> {
    prop_oneof![
        Just(NodeRole::Client),
        Just(NodeRole::SuperNode),
        Just(NodeRole::Origin)
    ]
}

/// Up to [`ANNOUNCE_PARTIAL_MAX`] partial holdings, as an announce or a refresh carries.
fn partials() -> impl Strategy<Value = Vec<Partial>> {
    prop::collection::vec(
        (rendition(), any::<u32>(), any::<u32>()).prop_map(|(rendition, held, per_min)| Partial {
            rendition,
            held,
            per_min,
        }),
        0..=ANNOUNCE_PARTIAL_MAX,
    )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            rendition(),
            0u32..1_000_000,
            1..=RANGE_CHUNKS_MAX,
            priority(),
            token()
        )
            .prop_map(
                |(rendition, first, count, priority, license)| Request::ChunkRange(
                    ChunkRangeRequest {
                        rendition,
                        first,
                        count,
                        priority,
                        license
                    }
                )
            ),
        (rendition(), token()).prop_map(|(rendition, license)| Request::Manifest(
            ManifestRequest { rendition, license }
        )),
        (
            region(),
            role(),
            addrs(),
            prop::collection::vec(rendition(), 0..20),
            any::<u32>(),
            token(),
            prop::collection::vec(token(), 0..=ANNOUNCE_PROOFS_MAX),
            partials()
        )
            .prop_map(
                |(
                    region,
                    role,
                    addrs,
                    renditions,
                    upload_spare_kbps,
                    credential,
                    proofs,
                    partial,
                )| {
                    Request::Announce(Announce {
                        partial,
                        region,
                        role,
                        addrs,
                        renditions,
                        upload_spare_kbps,
                        credential,
                        proofs,
                    })
                }
            ),
        (rendition(), 1..=PEER_LIST_MAX as u16, token()).prop_map(|(rendition, want, license)| {
            Request::PeerQuery(PeerQuery {
                rendition,
                want,
                license,
            })
        }),
        any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
        (
            any::<[u8; 16]>(),
            region(),
            role(),
            addrs(),
            partials(),
            any::<u32>(),
            token()
        )
            .prop_map(
                |(set, region, role, addrs, partial, upload_spare_kbps, credential)| {
                    Request::Refresh(Refresh {
                        set,
                        region,
                        role,
                        addrs,
                        partial,
                        upload_spare_kbps,
                        credential,
                    })
                }
            ),
        (1..=POPULAR_LIST_MAX as u16, token())
            .prop_map(|(want, credential)| { Request::Popular(PopularQuery { want, credential }) }),
        (rendition(), rendition(), 0..4u8, any::<u32>(), token()).prop_map(
            |(peer, rendition, reason, kbps, license)| {
                Request::Report(PeerReport {
                    peer: NodeId(rendition_bytes(&peer)),
                    rendition,
                    reason: [
                        ReportReason::Missing,
                        ReportReason::BadChunk,
                        ReportReason::Unreachable,
                        ReportReason::Delivered { kbps },
                    ][reason as usize],
                    license,
                })
            }
        ),
    ]
}

fn peer() -> impl Strategy<Value = PeerInfo> {
    (
        any::<[u8; 32]>(),
        addrs(),
        region(),
        role(),
        any::<u32>(),
        prop::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(
            |(node, addrs, region, role, upload_spare_kbps, holding)| PeerInfo {
                holding: holding.map(|(held, per_min)| Holding { held, per_min }),
                node: NodeId(node),
                addrs,
                region,
                role,
                upload_spare_kbps,
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::LicenseForged),
        Just(ErrorCode::LicenseExpired),
        Just(ErrorCode::LicenseWrongNode),
        Just(ErrorCode::LicenseNotCovered),
        Just(ErrorCode::NotInRegion),
        Just(ErrorCode::NotFound),
        Just(ErrorCode::Overloaded),
        Just(ErrorCode::Internal),
        Just(ErrorCode::SetUnknown),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u32>(), prop::collection::vec(any::<u8>(), 16..2000))
            .prop_map(|(index, data)| Response::Chunk { index, data }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(index, held)| Response::ChunkMissing { index, held }),
        (
            prop::collection::vec(any::<u8>(), 0..500),
            any::<[u8; 32]>()
        )
            .prop_map(|(body, half)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&half);
                Response::Manifest(SignedManifest { body, signature })
            }),
        (any::<u32>(), prop::collection::vec(rendition(), 0..20))
            .prop_map(|(ttl_ms, unproven)| Response::AnnounceAck { ttl_ms, unproven }),
        (
            rendition(),
            prop::collection::vec(peer(), 0..=PEER_LIST_MAX)
        )
            .prop_map(|(rendition, peers)| Response::PeerList(PeerList { rendition, peers })),
        any::<u64>().prop_map(|nonce| Response::Pong { nonce }),
        (prop::collection::vec((rendition(), any::<u32>()), 0..40)).prop_map(|entries| {
            Response::Popular(PopularList {
                renditions: entries
                    .into_iter()
                    .map(|(rendition, score)| PopularEntry { rendition, score })
                    .collect(),
            })
        }),
        Just(Response::Reported),
        (error_code(), ".{0,80}")
            .prop_map(|(code, message)| Response::Error(WireError::new(code, message))),
    ]
}

fn rendition_bytes(rendition: &RenditionId) -> [u8; 32] {
    *rendition.as_bytes()
}

/// Everything a node decodes from the network must survive `bytes` without panicking.
fn decode_everything(bytes: &[u8]) {
    let _ = codec::decode::<Request>(bytes);
    let _ = codec::decode::<Response>(bytes);
    let _ = FrameDecoder::new().push(bytes);
    let _ = split_chunk_frame(bytes);
    if let Ok(token) = LicenseToken::from_bytes(bytes) {
        let origin = common::origin().node_id();
        let _ = token.verify(
            &origin,
            &common::client().node_id(),
            UnixMillis(1_700_000_000_000),
        );
    }
    if let Ok(manifest) = codec::decode::<SignedManifest>(bytes) {
        let _ = manifest.verify(&common::origin().node_id());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(request in request()) {
        let mut frame = Vec::new();
        codec::encode_frame(&request, &mut frame).unwrap();
        let frames = FrameDecoder::new().push(&frame).unwrap();
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(codec::decode::<Request>(&frames[0]).unwrap(), request);
    }

    #[test]
    fn responses_round_trip(response in response()) {
        let bytes = codec::encode(&response).unwrap();
        prop_assert_eq!(codec::decode::<Response>(&bytes).unwrap(), response);
    }

    #[test]
    fn the_chunk_fast_path_agrees_with_the_codec(response in response(), noise in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut body = codec::encode(&response).unwrap();
        for bytes in [body.clone(), noise.clone(), { body.truncate(body.len().min(noise.len())); body }] {
            if let Some((index, offset)) = split_chunk_frame(&bytes) {
                let decoded = codec::decode::<Response>(&bytes).unwrap();
                prop_assert_eq!(decoded, Response::Chunk { index, data: bytes[offset..].to_vec() });
            }
        }
        if let Response::Chunk { index, data } = &response {
            let body = codec::encode(&response).unwrap();
            let (found, offset) = split_chunk_frame(&body).unwrap();
            prop_assert_eq!((found, &body[offset..]), (*index, &data[..]));
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mangled_valid_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut samples: Vec<Vec<u8>> = common::requests().iter().map(|(_, r)| codec::encode(r).unwrap()).collect();
        samples.extend(common::responses().iter().map(|(_, r)| codec::encode(r).unwrap()));
        samples.push(common::license().to_bytes().unwrap());
        samples.push(codec::encode(&common::manifest()).unwrap());
        let mut bytes = pick.get(&samples).clone();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= value;
        }
        decode_everything(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        decode_everything(&bytes);
    }

    #[test]
    fn ogg_timing_is_the_same_however_the_file_is_cut_and_never_panics(
        pages in prop::collection::vec((any::<u64>(), 0usize..700), 1..30),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        chunk_bytes in 1u32..3_000,
        piece in 1usize..500,
    ) {
        // A Vorbis identification page, then pages of random granules and lengths.
        let mut ident = b"\x01vorbis".to_vec();
        ident.extend_from_slice(&[0, 0, 0, 0, 2]);
        ident.extend_from_slice(&44_100u32.to_le_bytes());
        ident.extend_from_slice(&[0; 14]);
        let mut file = ogg_page(0, &ident);
        for (granule, len) in pages {
            file.extend(ogg_page(granule, &vec![7; len]));
        }
        for (at, value) in flips {
            let at = at.index(file.len());
            file[at] ^= value;
        }
        file.truncate(cut.index(file.len() + 1));
        let whole = protocol::ogg::chunk_ends_ms(&file, chunk_bytes, protocol::Codec::Vorbis);
        let mut timer = protocol::ogg::ChunkTimer::new(protocol::Codec::Vorbis, chunk_bytes).unwrap();
        let pieces = file
            .chunks(piece)
            .try_for_each(|bytes| timer.push(bytes))
            .and_then(|()| timer.finish());
        prop_assert_eq!(&whole, &pieces);
        if let Ok(ends) = whole {
            prop_assert_eq!(ends.len(), file.len().div_ceil(chunk_bytes as usize));
            prop_assert!(ends.windows(2).all(|pair| pair[0] <= pair[1]));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn an_ogg_cut_starts_at_the_last_page_before_the_offset_and_never_panics(
        pages in prop::collection::vec((1u64..5_000, 1usize..900, any::<bool>()), 1..40),
        ms in 0u64..40_000,
        on_a_page in any::<Option<prop::sample::Index>>(),
        from in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        piece in 1usize..3_000,
    ) {
        use protocol::ogg::seek::{Cutter, Found, Headers, Scan};
        // Vorbis headers on two pages, then audio pages whose granules grow by the given
        // steps; a page marked `true` leaves its packet open into the next page.
        let mut ident = b"\x01vorbis".to_vec();
        ident.extend_from_slice(&[0, 0, 0, 0, 2]);
        ident.extend_from_slice(&1_000u32.to_le_bytes());
        ident.extend_from_slice(&[0; 14]);
        let mut file = sealed_page(0x02, 0, 0, &[(&ident, false)]);
        file.extend(sealed_page(0, 0, 1, &[(b"\x03vorbis", false), (b"\x05vorbis", false)]));
        let headers_end = file.len();
        let (mut granule, mut continued) = (0u64, false);
        let mut page_ends = Vec::new();
        for (sequence, (step, len, open)) in pages.iter().enumerate() {
            let flags = u8::from(continued);
            let body = vec![(sequence % 251) as u8; *len];
            let (granule_field, packets): (u64, Vec<(&[u8], bool)>) = if *open {
                // A closed packet, then one left open (whole 255-byte segments).
                (granule + step, vec![(&body[..], false), (&[9u8; 255][..], true)])
            } else {
                (granule + step, vec![(&body[..], false)])
            };
            granule = granule_field;
            file.extend(sealed_page(flags, granule, sequence as u32 + 2, &packets));
            page_ends.push((file.len() as u64, granule));
            continued = *open;
        }
        // Sometimes exactly where a page ends (1,000 Hz: a granule is a millisecond).
        let ms = on_a_page.map_or(ms, |pick| page_ends[pick.index(page_ends.len())].1);
        let clean = flips.is_empty();
        for (at, value) in flips {
            let at = at.index(file.len());
            file[at] ^= value;
        }
        let mut headers = Headers::new(protocol::Codec::Vorbis);
        let whole = file.chunks(piece).map(|bytes| headers.push(bytes)).find(|done| !matches!(done, Ok(false)));
        let Some(Ok(true)) = whole else {
            prop_assert!(!clean, "clean headers read");
            return Ok(());
        };
        let target = headers.granule_at(ms);
        let from = from.index(file.len());
        let mut scan = Scan::new(&headers, target, from as u64);
        let found = file[from..].chunks(piece).find_map(|bytes| scan.push(bytes));
        let Some(found) = found else {
            // The end came first: the offset is past the last page (or the bytes are broken).
            prop_assert!(!clean || page_ends.last().is_none_or(|&(_, last)| last <= target) || from > headers_end);
            return Ok(());
        };
        let mut out = headers.bytes().to_vec();
        let at = match found {
            Found::Cut { at, base } => {
                if clean {
                    // The cut follows the last page ending at or before the offset.
                    let before = page_ends.iter().rev().find(|&&(_, granule)| granule <= target);
                    prop_assert_eq!(base, before.map(|&(_, granule)| granule));
                    prop_assert_eq!(at, before.map_or(headers_end as u64, |&(end, _)| end));
                }
                at as usize
            }
            Found::Earlier => {
                // From the headers' end on, clean bytes always reach a page ending at or
                // before the offset; a broken page there can hide it.
                prop_assert!(!clean || from > headers_end);
                return Ok(());
            }
        };
        prop_assert!(at <= file.len());
        let mut cutter = Cutter::new(&headers, found);
        let mut failed = false;
        let mut settled_removed = None;
        for bytes in file[at..].chunks(piece) {
            failed |= cutter.push(bytes, &mut out).is_err();
            if cutter.settled() && settled_removed.is_none() {
                settled_removed = Some(cutter.removed());
            }
        }
        if clean {
            prop_assert!(!failed);
            // Once settled, nothing more shrinks: the length announced then is the length.
            let removed = settled_removed.unwrap_or(cutter.removed());
            prop_assert_eq!(removed, cutter.removed());
            prop_assert_eq!(out.len() as u64, (headers_end + file.len() - at) as u64 - removed);
            prop_assert!(cutter.finish().is_ok());
            // What was written reads back as whole pages, unchanged by a second pass.
            let mut again = Vec::new();
            let mut check = Cutter::new(&headers, Found::Cut { at: 0, base: None });
            check.push(&out[headers_end..], &mut again).unwrap();
            prop_assert!(check.finish().is_ok());
            prop_assert_eq!(&again[..], &out[headers_end..]);
        }
    }
}

/// A checksummed Ogg page with `flags`, `granule` and `sequence` holding `packets`, each
/// closed or left open into the next page (open ones must be whole 255-byte segments).
fn sealed_page(flags: u8, granule: u64, sequence: u32, packets: &[(&[u8], bool)]) -> Vec<u8> {
    let mut lacing = Vec::new();
    let mut body = Vec::new();
    for (packet, open) in packets {
        lacing.extend(std::iter::repeat_n(255u8, packet.len() / 255));
        if !open {
            lacing.push((packet.len() % 255) as u8);
        }
        body.extend_from_slice(packet);
    }
    let mut page = b"OggS\0".to_vec();
    page.push(flags);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&1u32.to_le_bytes());
    page.extend_from_slice(&sequence.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(&body);
    let sum = protocol::ogg::seek::checksum(&page);
    page[22..26].copy_from_slice(&sum.to_le_bytes());
    page
}

/// One Ogg page holding `body` as one packet.
fn ogg_page(granule: u64, body: &[u8]) -> Vec<u8> {
    let mut lacing = vec![255u8; body.len() / 255];
    lacing.push((body.len() % 255) as u8);
    let mut page = b"OggS\0\0".to_vec();
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&[0; 12]);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(body);
    page
}

#[test]
fn truncated_and_trailing_bytes_are_typed_errors() {
    for (name, request) in common::requests() {
        let bytes = codec::encode(&request).unwrap();
        for len in 0..bytes.len() {
            let error = codec::decode::<Request>(&bytes[..len]).unwrap_err();
            assert!(
                matches!(
                    error,
                    codec::CodecError::Truncated
                        | codec::CodecError::Malformed(_)
                        | codec::CodecError::Invalid(_)
                ),
                "{name} cut at {len}: {error:?}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            codec::decode::<Request>(&long),
            Err(codec::CodecError::TrailingBytes(1))
        );
    }
}

#[test]
fn oversized_and_over_limit_messages_are_refused() {
    let too_big = vec![0u8; codec::FRAME_BYTES_MAX + 1];
    assert!(matches!(
        codec::decode::<Request>(&too_big),
        Err(codec::CodecError::TooLarge { .. })
    ));
    let chunk = Response::Chunk {
        index: 0,
        data: vec![0; CHUNK_PAYLOAD_BYTES_MAX + 1],
    };
    assert!(matches!(
        codec::encode(&chunk),
        Err(codec::CodecError::Invalid(_))
    ));
    let mut long_list = PeerList {
        rendition: RenditionId([0; 32]),
        peers: vec![common::peer(); PEER_LIST_MAX + 1],
    };
    assert!(codec::encode(&Response::PeerList(long_list.clone())).is_err());
    long_list.peers.truncate(PEER_LIST_MAX);
    assert!(codec::encode(&Response::PeerList(long_list)).is_ok());
    // A range of zero chunks, or one that overflows u32, is refused on both sides.
    let license = common::license();
    for (first, count) in [(0, 0), (u32::MAX, 2), (0, RANGE_CHUNKS_MAX + 1)] {
        let request = Request::ChunkRange(ChunkRangeRequest {
            rendition: RenditionId([0; 32]),
            first,
            count,
            priority: Priority::Playing,
            license: license.clone(),
        });
        assert!(codec::encode(&request).is_err(), "{first}+{count}");
    }
}

#[test]
fn a_tiny_frame_claiming_a_huge_vector_is_refused() {
    // Response::Chunk with a declared 1 GiB payload in a 12-byte body.
    let mut body = vec![0u8, 0u8, 252];
    body.extend_from_slice(&(1u32 << 30).to_le_bytes());
    body.extend_from_slice(&[0; 5]);
    assert!(codec::decode::<Response>(&body).is_err());
}
