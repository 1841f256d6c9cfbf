//! A stream that starts part-way through a track, for Subsonic's `timeOffset`: the codec
//! headers, then the Ogg pages from the last one ending at or before the offset, rewritten so
//! the stream's time 0 is there ([`protocol::ogg::seek`]). Only the chunks holding the headers
//! and those from the offset on are fetched; the rest of the track is never asked for.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use protocol::ogg::seek::{Cutter, Found, Headers, PAGE_BYTES_MAX, Scan};

use super::{Gateway, STEP_CHUNKS, Sources};
use api::client::Grant;

/// Chunks fetched per step while looking for the cut.
const SCAN_STEP: u32 = 2;

/// The stream of `grant`'s rendition from `offset_ms` on (`offset_ms` > 0), or why not: the
/// offset is past the end, or the file is not an Ogg stream that can be cut.
pub(super) async fn offset_response(
    gateway: Arc<Gateway>,
    grant: Grant,
    sources: Sources,
    offset_ms: u64,
) -> anyhow::Result<Response> {
    let body = grant.manifest.body();
    let reach_ms = body
        .chunk_end_ms
        .last()
        .map_or(body.duration_ms, |&end| u64::from(end));
    if offset_ms >= reach_ms {
        anyhow::bail!(
            "the offset {:.1} s is past the end of the song ({:.1} s)",
            offset_ms as f64 / 1000.0,
            reach_ms as f64 / 1000.0
        );
    }
    let chunks = body.chunks.len() as u32;
    let chunk_bytes = u64::from(body.chunk_bytes);

    // The codec headers, from the first chunk on (the grant brought it).
    let mut headers = Headers::new(body.codec);
    let mut next = 0;
    loop {
        anyhow::ensure!(next < chunks, "the song ends inside its codec headers");
        let pieces = gateway
            .plaintext(&grant, &sources, next, next + 1, false)
            .await?;
        next += 1;
        let piece = pieces.first().map(|piece| &piece[..]).unwrap_or_default();
        if headers.push(piece).context("reading the codec headers")? {
            break;
        }
    }

    // The cut: scan from the chunk before the first that reaches past the offset; a page
    // longer than that chunk means starting earlier (a page spans at most 64 KiB).
    let target = headers.granule_at(offset_ms);
    let reaching = body
        .chunk_end_ms
        .partition_point(|&end| u64::from(end) <= offset_ms) as u32;
    let back = (PAGE_BYTES_MAX as u64).div_ceil(chunk_bytes) as u32;
    let mut from = reaching.saturating_sub(1);
    let found = 'search: loop {
        let mut scan = Scan::new(&headers, target, u64::from(from) * chunk_bytes);
        let mut index = from;
        while index < chunks {
            let stop = (index + SCAN_STEP).min(chunks);
            let pieces = gateway
                .plaintext(&grant, &sources, index, stop, false)
                .await?;
            for piece in &pieces {
                match scan.push(piece) {
                    Some(Found::Earlier) if from > 0 => {
                        from = from.saturating_sub(back);
                        continue 'search;
                    }
                    Some(found @ Found::Cut { .. }) => break 'search found,
                    Some(Found::Earlier) | None => {}
                }
            }
            index = stop;
        }
        anyhow::bail!("no Ogg page of the song reaches {offset_ms} ms");
    };
    let Found::Cut { at, .. } = found else {
        anyhow::bail!("no Ogg page of the song reaches {offset_ms} ms");
    };

    // The first pages after the cut (the scan cached their chunks), until the piece of a
    // packet begun before the cut is dropped: from there the length is known.
    let mut cutter = Cutter::new(&headers, found);
    let mut head = headers.bytes().to_vec();
    let mut next = (at / chunk_bytes) as u32;
    let mut skip = (at % chunk_bytes) as usize;
    while !cutter.settled() && next < chunks {
        let pieces = gateway
            .plaintext(&grant, &sources, next, next + 1, false)
            .await?;
        let piece = pieces.first().map(|piece| &piece[..]).unwrap_or_default();
        cutter
            .push(&piece[skip.min(piece.len())..], &mut head)
            .context("cutting the Ogg pages")?;
        skip = 0;
        next += 1;
    }
    let length = (headers.bytes().len() as u64 + body.plaintext_bytes)
        .saturating_sub(at)
        .saturating_sub(cutter.removed());
    let state = Cut {
        gateway,
        grant,
        sources,
        next,
        started: false,
        skip,
        cutter: Some(cutter),
        head: Some(Bytes::from(head)),
        chunks,
    };
    let stream = futures_util::stream::unfold(state, Cut::step);
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    // A cut stream is made on the fly: its length is known, ranges are not served.
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// Where a cut stream's body is.
struct Cut {
    gateway: Arc<Gateway>,
    grant: Grant,
    sources: Sources,
    /// The next chunk to read.
    next: u32,
    /// Whether a step of chunks was read.
    started: bool,
    /// Bytes of that chunk before the cut.
    skip: usize,
    /// `None` once the body ended.
    cutter: Option<Cutter>,
    /// The header pages and the first cut pages, until sent.
    head: Option<Bytes>,
    chunks: u32,
}

impl Cut {
    /// The next piece of the body: the headers, then the pages completed by each step of
    /// chunks (the first step one chunk, so the first audio leaves without waiting for more).
    async fn step(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        if let Some(head) = self.head.take() {
            return Some((Ok(head), self));
        }
        let mut cutter = self.cutter.take()?;
        if self.next >= self.chunks {
            return match cutter.finish() {
                Ok(()) => None,
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), self)),
            };
        }
        let later = self.started;
        let step = if later { STEP_CHUNKS } else { 1 };
        self.started = true;
        let stop = (self.next + step).min(self.chunks);
        let pieces = match self
            .gateway
            .plaintext(&self.grant, &self.sources, self.next, stop, later)
            .await
        {
            Ok(pieces) => pieces,
            Err(failure) => {
                tracing::warn!(error = %failure, "gateway could not fetch chunks");
                return Some((Err(std::io::Error::other(failure.to_string())), self));
            }
        };
        let mut out = Vec::new();
        for piece in &pieces {
            let from = std::mem::take(&mut self.skip).min(piece.len());
            if let Err(error) = cutter.push(&piece[from..], &mut out) {
                return Some((Err(std::io::Error::other(error.to_string())), self));
            }
        }
        self.next = stop;
        self.cutter = Some(cutter);
        Some((Ok(Bytes::from(out)), self))
    }
}
