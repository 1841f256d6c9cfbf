//! The origin's chunks over HTTP(S), through the grant's signed chunk URLs: the path a CDN
//! edge caches (`deploy/nginx/cdn.conf`). With a [`ChunkEdge`] in the play options, whatever
//! the scheduler asks of the origin comes this way instead of over the origin's QUIC
//! endpoint; peers and super-nodes are asked over QUIC as before.
//!
//! Every chunk is read up to the length its manifest gives (a longer body is refused before
//! it is all read) and checked against its content address, so an edge, a proxy or the
//! network can withhold chunks but not change them.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use protocol::Manifest;
use std::time::Duration;

/// How long one chunk request may take, connecting included.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

/// Chunk requests in flight at once for one range.
pub const IN_FLIGHT: usize = 4;

/// Where the origin's chunks are fetched over HTTP(S).
#[derive(Debug, Clone)]
pub struct ChunkEdge {
    http: reqwest::Client,
    via: Option<String>,
}

/// Why a chunk could not be had from the edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// No connection, a timeout, or a server error (the edge or every origin behind it is
    /// down).
    #[error("the chunk edge is unreachable: {0}")]
    Unreachable(String),
    /// The URL was refused (expired or bad signature, out of market) or the chunk is gone.
    #[error("the chunk edge refused {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The body was not the chunk: wrong length or hash.
    #[error("the chunk edge sent a bad chunk {0}")]
    BadChunk(u32),
    /// The grant holds no chunk URL template, or the index is past the manifest's end.
    #[error("no chunk URL for chunk {0}")]
    NoUrl(u32),
}

impl ChunkEdge {
    /// Fetches chunk URLs as the grant gives them, with `http` (which must trust the edge's
    /// certificate).
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, via: None }
    }

    /// Sends every chunk request to `base` (`https://HOST:PORT`) instead of the scheme, host
    /// and port the chunk URLs name: a nearby edge of the same CDN, as geo-DNS would pick
    /// (the devnet uses it to put each region's listeners behind their own emulated link).
    /// The path and the signed query are kept.
    pub fn via(mut self, base: impl Into<String>) -> Self {
        self.via = Some(base.into().trim_end_matches('/').to_string());
        self
    }

    /// The URL of chunk `index` of `manifest` under the grant's `template`.
    pub fn url(
        &self,
        template: &str,
        manifest: &Manifest,
        index: u32,
    ) -> Result<String, EdgeError> {
        let id = manifest.chunk_id(index).ok_or(EdgeError::NoUrl(index))?;
        if !template.contains("{chunk_id}") {
            return Err(EdgeError::NoUrl(index));
        }
        let url = template.replace("{chunk_id}", &id.to_hex());
        Ok(match &self.via {
            Some(base) => match url.find("://").map(|at| at + 3) {
                Some(after_scheme) => {
                    let path_at = url[after_scheme..]
                        .find('/')
                        .map_or(url.len(), |at| after_scheme + at);
                    format!("{base}{}", &url[path_at..])
                }
                None => return Err(EdgeError::NoUrl(index)),
            },
            None => url,
        })
    }

    /// Fetches chunk `index`, verified against `manifest`.
    pub async fn fetch_one(
        &self,
        template: &str,
        manifest: &Manifest,
        index: u32,
    ) -> Result<Bytes, EdgeError> {
        let url = self.url(template, manifest, index)?;
        let (Some(id), Some(expected)) = (
            manifest.chunk_id(index).copied(),
            manifest.body().chunk_ciphertext_len(index),
        ) else {
            return Err(EdgeError::NoUrl(index));
        };
        let unreachable = |error: reqwest::Error| EdgeError::Unreachable(error.to_string());
        let mut response = self
            .http
            .get(&url)
            .timeout(CHUNK_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(EdgeError::Unreachable(format!("status {status}")));
        }
        if !status.is_success() {
            let mut body = String::new();
            if let Ok(Some(piece)) = response.chunk().await {
                body = String::from_utf8_lossy(&piece[..piece.len().min(200)]).into_owned();
            }
            return Err(EdgeError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        let expected = expected as usize;
        if response
            .content_length()
            .is_some_and(|length| length != expected as u64)
        {
            return Err(EdgeError::BadChunk(index));
        }
        let mut data = BytesMut::with_capacity(expected);
        while let Some(piece) = response.chunk().await.map_err(unreachable)? {
            if data.len() + piece.len() > expected {
                return Err(EdgeError::BadChunk(index));
            }
            data.extend_from_slice(&piece);
        }
        protocol::content::verify_chunk(&id, &data).map_err(|_| EdgeError::BadChunk(index))?;
        Ok(data.freeze())
    }

    /// Chunks `first .. first + count` (cut at the manifest's end), [`IN_FLIGHT`] requests
    /// at a time, in order; the caller stops at the first error.
    pub fn range<'a>(
        &'a self,
        template: &'a str,
        manifest: &'a Manifest,
        first: u32,
        count: u32,
    ) -> impl futures_util::Stream<Item = Result<(u32, Bytes), EdgeError>> + Send + 'a {
        let end = first.saturating_add(count).min(manifest.chunk_count());
        futures_util::stream::iter(first..end)
            .map(move |index| async move {
                self.fetch_one(template, manifest, index)
                    .await
                    .map(|data| (index, data))
            })
            .buffered(IN_FLIGHT)
    }

    /// [`ChunkEdge::range`], collected; the first error ends it.
    pub async fn fetch_range(
        &self,
        template: &str,
        manifest: &Manifest,
        first: u32,
        count: u32,
    ) -> Result<Vec<(u32, Bytes)>, EdgeError> {
        let mut chunks = std::pin::pin!(self.range(template, manifest, first, count));
        let mut found = Vec::new();
        while let Some(chunk) = chunks.next().await {
            found.push(chunk?);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::content::{ChunkCipher, ContentKey, SealLabel};
    use protocol::{ChunkId, Identity, ManifestBody, SignedManifest};

    /// A signed manifest over three sealed chunks, and the chunks.
    fn rendition() -> (Manifest, Vec<Bytes>) {
        let origin = Identity::from_secret_bytes(&[7; 32]);
        let cipher = ChunkCipher::new(
            &ContentKey([3; 32]),
            SealLabel {
                track: protocol::TrackId([1; 16]),
                quality: protocol::Quality::Normal,
            },
        );
        let chunk_bytes = protocol::content::CHUNK_BYTES_DEFAULT;
        let plaintext = vec![5u8; chunk_bytes as usize * 2 + 100];
        let (ids, sealed) =
            protocol::content::seal_rendition(&cipher, &plaintext, chunk_bytes).expect("sealed");
        let body = ManifestBody {
            version: protocol::manifest::MANIFEST_VERSION,
            origin: origin.node_id(),
            track: protocol::TrackId([1; 16]),
            quality: protocol::Quality::Normal,
            codec: protocol::Codec::Vorbis,
            bitrate_bps: 96_000,
            sample_rate_hz: 44_100,
            channels: 2,
            duration_ms: 3_000,
            chunk_bytes,
            plaintext_bytes: plaintext.len() as u64,
            chunk_end_ms: protocol::ogg::even_ends_ms(3_000, ids.len()),
            chunks: ids,
        };
        let signed = SignedManifest::sign(&origin, &body).expect("signed");
        let manifest = signed.verify(&origin.node_id()).expect("a valid manifest");
        (manifest, sealed.into_iter().map(Bytes::from).collect())
    }

    #[test]
    fn urls_follow_the_template_and_can_go_via_another_edge() {
        let (manifest, _) = rendition();
        let id = manifest.chunk_id(1).expect("chunk 1").to_hex();
        let template = "https://edge.example:8443/v1/chunks/{chunk_id}?r=1&sig=abc";
        let edge = ChunkEdge::new(reqwest::Client::new());
        assert_eq!(
            edge.url(template, &manifest, 1).expect("a url"),
            format!("https://edge.example:8443/v1/chunks/{id}?r=1&sig=abc")
        );
        let near = edge.clone().via("https://127.0.0.1:9000/");
        assert_eq!(
            near.url(template, &manifest, 1).expect("a url"),
            format!("https://127.0.0.1:9000/v1/chunks/{id}?r=1&sig=abc")
        );
        assert!(matches!(
            edge.url(template, &manifest, 99),
            Err(EdgeError::NoUrl(99))
        ));
        assert!(matches!(
            edge.url("", &manifest, 0),
            Err(EdgeError::NoUrl(0))
        ));
    }

    /// A real HTTP server that answers chunk `i` as `behaviour(i)` says.
    async fn serve(
        chunks: Vec<Bytes>,
        ids: Vec<ChunkId>,
        behaviour: fn(usize) -> &'static str,
    ) -> String {
        use axum::extract::Path;
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let app = axum::Router::new().route(
            "/v1/chunks/{id}",
            axum::routing::get(move |Path(id): Path<String>| async move {
                let Some(index) = ids.iter().position(|known| known.to_hex() == id) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                match behaviour(index) {
                    "ok" => chunks[index].clone().into_response(),
                    "flipped" => {
                        let mut bad = chunks[index].to_vec();
                        bad[0] ^= 1;
                        bad.into_response()
                    }
                    "long" => {
                        let mut long = chunks[index].to_vec();
                        long.extend_from_slice(&[0; 4096]);
                        long.into_response()
                    }
                    "gone" => StatusCode::FORBIDDEN.into_response(),
                    _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1/chunks/{{chunk_id}}?sig=x")
    }

    #[tokio::test]
    async fn chunks_are_verified_and_bad_answers_are_told_apart() {
        let (manifest, chunks) = rendition();
        let ids = manifest.body().chunks.clone();
        let edge = ChunkEdge::new(reqwest::Client::new());

        let good = serve(chunks.clone(), ids.clone(), |_| "ok").await;
        let got = edge
            .fetch_range(&good, &manifest, 0, 10)
            .await
            .expect("every chunk");
        assert_eq!(got.len(), 3);
        for (index, data) in &got {
            assert_eq!(data, &chunks[*index as usize]);
        }

        let bad = serve(chunks.clone(), ids.clone(), |index| match index {
            0 => "flipped",
            1 => "long",
            2 => "gone",
            _ => "down",
        })
        .await;
        assert!(matches!(
            edge.fetch_one(&bad, &manifest, 0).await,
            Err(EdgeError::BadChunk(0))
        ));
        assert!(matches!(
            edge.fetch_one(&bad, &manifest, 1).await,
            Err(EdgeError::BadChunk(1))
        ));
        assert!(matches!(
            edge.fetch_one(&bad, &manifest, 2).await,
            Err(EdgeError::Refused { status: 403, .. })
        ));
        let down = serve(chunks.clone(), ids.clone(), |_| "down").await;
        assert!(matches!(
            edge.fetch_one(&down, &manifest, 0).await,
            Err(EdgeError::Unreachable(_))
        ));
        // A range hands out what came before the first failure, then the failure.
        let mixed = serve(
            chunks,
            ids,
            |index| {
                if index == 1 { "flipped" } else { "ok" }
            },
        )
        .await;
        let items: Vec<_> = edge.range(&mixed, &manifest, 0, 3).collect().await;
        assert!(matches!(items[0], Ok((0, _))));
        assert!(matches!(items[1], Err(EdgeError::BadChunk(1))));
    }
}
