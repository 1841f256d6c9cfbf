//! Chunk timing from Ogg granule positions.
//!
//! A rendition is cut into chunks of equal bytes, and Vorbis and Opus are variable-rate: a
//! loud passage packs fewer milliseconds into a chunk than a quiet one. What a player needs to
//! know is how far playback reaches once chunks `0..=i` are held. In an Ogg stream that is the
//! granule position of the last page that ends inside those bytes: a page's granule position
//! counts the samples of every packet that completes on it. [`chunk_ends_ms`] reads it from
//! the encoded file at publication, and the manifest carries it
//! ([`crate::ManifestBody::chunk_end_ms`]), so a player's playout model and the simulator run
//! on each chunk's true duration instead of an even spread.

use crate::content::Codec;

pub mod seek;

/// Ogg's page capture pattern.
const CAPTURE: &[u8; 4] = b"OggS";
/// Bytes of a page header before its segment table.
const HEADER: usize = 27;
/// The granule rate of Ogg Opus, whatever the input rate was (RFC 7845 §4).
const OPUS_GRANULE_HZ: u64 = 48_000;

/// Why an encoded file's chunk timing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OggError {
    /// No Ogg page starts where one must.
    #[error("no Ogg page at byte {0}")]
    NotOgg(u64),
    /// A page runs past the end of the file.
    #[error("Ogg page at byte {0} runs past the end of the file")]
    Truncated(u64),
    /// The first packet is not the codec's identification header.
    #[error("the first Ogg packet is not a {0:?} identification header")]
    NoIdentHeader(Codec),
    /// The identification header gives a sample rate of 0.
    #[error("the identification header gives a sample rate of 0")]
    ZeroRate,
    /// Zero chunk size.
    #[error("chunk size 0")]
    ZeroChunk,
    /// The codec headers run past [`seek::HEADERS_BYTES_MAX`].
    #[error("the codec headers are larger than {} bytes", seek::HEADERS_BYTES_MAX)]
    HeadersTooLarge,
    /// A page of another logical stream among the headers.
    #[error("a second logical stream at byte {0}: multiplexed Ogg is not served")]
    Multiplexed(u64),
    /// The page at this byte completes the last header packet and audio packets too.
    #[error("the Ogg page at byte {0} mixes codec headers and audio")]
    HeadersShareAPage(u64),
}

/// How far playback reaches, in milliseconds from the start of the audio, once chunks `0..=i`
/// of `file` are held, for each chunk `i` of `chunk_bytes` bytes (the last may be shorter).
/// Non-decreasing; a chunk inside one long page reaches no further than the one before.
pub fn chunk_ends_ms(file: &[u8], chunk_bytes: u32, codec: Codec) -> Result<Vec<u32>, OggError> {
    let mut timer = ChunkTimer::new(codec, chunk_bytes)?;
    timer.push(file)?;
    timer.finish()
}

/// [`chunk_ends_ms`] over a file read piece by piece (a spooled rendition): it keeps one page
/// header, never the file.
#[derive(Debug)]
pub struct ChunkTimer {
    codec: Codec,
    chunk_bytes: u64,
    /// Where the page being read starts.
    page_start: u64,
    /// Its header and segment table, as far as read.
    head: Vec<u8>,
    /// Body bytes of it still to come (once `head` is complete).
    body_left: Option<u64>,
    /// The start of the first page's body: the identification header.
    ident: Vec<u8>,
    /// Granule rate and samples to skip, once the identification header was read.
    timing: Option<(u64, u64)>,
    reached_ms: u32,
    ends: Vec<u32>,
}

/// Bytes of the identification header that say the rate (Vorbis needs 16, Opus 12).
const IDENT_BYTES: usize = 16;

impl ChunkTimer {
    /// A timer for a `codec` stream cut into chunks of `chunk_bytes`.
    pub fn new(codec: Codec, chunk_bytes: u32) -> Result<Self, OggError> {
        if chunk_bytes == 0 {
            return Err(OggError::ZeroChunk);
        }
        Ok(Self {
            codec,
            chunk_bytes: u64::from(chunk_bytes),
            page_start: 0,
            head: Vec::with_capacity(HEADER + 255),
            body_left: None,
            ident: Vec::new(),
            timing: None,
            reached_ms: 0,
            ends: Vec::new(),
        })
    }

    /// The next bytes of the file.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), OggError> {
        while !bytes.is_empty() {
            match self.body_left {
                None => {
                    let want = if self.head.len() < HEADER {
                        HEADER
                    } else {
                        HEADER + usize::from(self.head[26])
                    };
                    let take = (want - self.head.len()).min(bytes.len());
                    self.head.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.head.len() >= 4 && &self.head[..4] != CAPTURE {
                        return Err(OggError::NotOgg(self.page_start));
                    }
                    if self.head.len() >= HEADER
                        && self.head.len() == HEADER + usize::from(self.head[26])
                    {
                        let body: u64 = self.head[HEADER..]
                            .iter()
                            .map(|&lace| u64::from(lace))
                            .sum();
                        self.body_left = Some(body);
                        if body == 0 {
                            self.end_page()?;
                        }
                    }
                }
                Some(left) => {
                    let take = left.min(bytes.len() as u64) as usize;
                    if self.page_start == 0 && self.ident.len() < IDENT_BYTES {
                        let keep = (IDENT_BYTES - self.ident.len()).min(take);
                        self.ident.extend_from_slice(&bytes[..keep]);
                    }
                    bytes = &bytes[take..];
                    self.body_left = Some(left - take as u64);
                    if left == take as u64 {
                        self.end_page()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A page was read whole: chunks that end before it reach what the pages before it
    /// reached; then its granule position counts.
    fn end_page(&mut self) -> Result<(), OggError> {
        self.body_left = None;
        let body: u64 = self.head[HEADER..]
            .iter()
            .map(|&lace| u64::from(lace))
            .sum();
        let len = self.head.len() as u64 + body;
        let granule = u64::from_le_bytes(self.head[6..14].try_into().expect("8 bytes"));
        if self.timing.is_none() {
            self.timing = Some(ident(&self.ident, self.codec)?);
        }
        let end = self.page_start + len;
        while (self.ends.len() as u64 + 1) * self.chunk_bytes < end {
            self.ends.push(self.reached_ms);
        }
        // u64::MAX: no packet completes on this page.
        if granule != u64::MAX
            && let Some((rate, skip)) = self.timing
        {
            let samples = granule.saturating_sub(skip);
            let ms =
                u32::try_from(u128::from(samples) * 1000 / u128::from(rate)).unwrap_or(u32::MAX);
            // Chained streams start their granules over: reach never goes back.
            self.reached_ms = self.reached_ms.max(ms);
        }
        self.page_start = end;
        self.head.clear();
        Ok(())
    }

    /// The chunk ends, once the whole file was pushed.
    pub fn finish(mut self) -> Result<Vec<u32>, OggError> {
        if !self.head.is_empty() {
            return Err(OggError::Truncated(self.page_start));
        }
        let chunks = self.page_start.div_ceil(self.chunk_bytes);
        while (self.ends.len() as u64) < chunks {
            self.ends.push(self.reached_ms);
        }
        Ok(self.ends)
    }
}

/// The granule rate and pre-skip from the first packet of the stream.
fn ident(packet: &[u8], codec: Codec) -> Result<(u64, u64), OggError> {
    match codec {
        // Vorbis I §4.2.2: type 1, "vorbis", version u32, channels u8, rate u32.
        Codec::Vorbis => {
            if packet.len() < 16 || &packet[..7] != b"\x01vorbis" {
                return Err(OggError::NoIdentHeader(codec));
            }
            let rate = u32::from_le_bytes(packet[12..16].try_into().expect("4 bytes"));
            if rate == 0 {
                return Err(OggError::ZeroRate);
            }
            Ok((u64::from(rate), 0))
        }
        // RFC 7845 §5.1: "OpusHead", version u8, channels u8, pre-skip u16.
        Codec::Opus => {
            if packet.len() < 12 || &packet[..8] != b"OpusHead" {
                return Err(OggError::NoIdentHeader(codec));
            }
            let skip = u16::from_le_bytes(packet[10..12].try_into().expect("2 bytes"));
            Ok((OPUS_GRANULE_HZ, u64::from(skip)))
        }
    }
}

/// How many chunks from the first a player needs to play `ms` of audio without waiting:
/// through the first chunk whose end reaches `ms` (all of them when none does). 0 for 0 ms.
pub fn chunks_reaching(chunk_end_ms: &[u32], ms: u32) -> u32 {
    if ms == 0 {
        return 0;
    }
    let short = chunk_end_ms.partition_point(|&end| end < ms);
    (short + 1).min(chunk_end_ms.len()) as u32
}

/// Chunk ends for a stream whose timing is not known (not Ogg, or synthetic test data):
/// `duration_ms` spread evenly over `chunks`, the model used before manifests carried timing.
pub fn even_ends_ms(duration_ms: u64, chunks: usize) -> Vec<u32> {
    let chunks_u64 = chunks.max(1) as u64;
    (1..=chunks as u64)
        .map(|i| u32::try_from(duration_ms.saturating_mul(i) / chunks_u64).unwrap_or(u32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One Ogg page holding `body` as a single packet (lacing values of 255 and a remainder).
    fn page(granule: u64, body: &[u8]) -> Vec<u8> {
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

    fn vorbis_ident(rate: u32) -> Vec<u8> {
        let mut packet = b"\x01vorbis".to_vec();
        packet.extend_from_slice(&0u32.to_le_bytes());
        packet.push(2);
        packet.extend_from_slice(&rate.to_le_bytes());
        packet.extend_from_slice(&[0; 14]);
        packet
    }

    #[test]
    fn ends_follow_the_granules_of_pages_completed_in_each_chunk() {
        let mut file = page(0, &vorbis_ident(1000));
        let header = file.len();
        // Pages of 1,000 bytes each: 100 samples (100 ms), then 300 (quiet, more per byte).
        let body = vec![9u8; 1000 - 27 - 4];
        file.extend(page(100, &body));
        file.extend(page(400, &body));
        file.extend(page(500, &body));
        assert_eq!(file.len(), header + 3000);
        let chunk = (header + 1000) as u32;
        let ends = chunk_ends_ms(&file, chunk, Codec::Vorbis).unwrap();
        // Chunk 0 ends exactly where the first audio page does; chunk 1 holds the second page
        // whole; chunk 2 (shorter) the rest.
        assert_eq!(ends, vec![100, 400, 500]);
        // Smaller chunks: one that ends inside a page reaches only what is complete before it.
        let ends = chunk_ends_ms(&file, 500, Codec::Vorbis).unwrap();
        assert_eq!(ends.len(), file.len().div_ceil(500));
        assert!(ends.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(*ends.last().unwrap(), 500);
        assert_eq!(
            ends[0], 0,
            "the first 500 bytes hold headers and part of a page"
        );
    }

    #[test]
    fn opus_subtracts_the_pre_skip_at_48_khz() {
        let mut head = b"OpusHead".to_vec();
        head.push(1);
        head.push(2);
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&[0; 7]);
        let mut file = page(0, &head);
        file.extend(page(312 + 48_000, &[1; 100]));
        let ends = chunk_ends_ms(&file, 16 * 1024, Codec::Opus).unwrap();
        assert_eq!(ends, vec![1000]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(
            chunk_ends_ms(b"not ogg at all, certainly", 16, Codec::Vorbis),
            Err(OggError::NotOgg(0))
        );
        let mut file = page(0, &vorbis_ident(44_100));
        file.truncate(file.len() - 1);
        assert_eq!(
            chunk_ends_ms(&file, 16, Codec::Vorbis),
            Err(OggError::Truncated(0))
        );
        let file = page(0, b"\x01vorbis-short");
        assert_eq!(
            chunk_ends_ms(&file, 16, Codec::Vorbis),
            Err(OggError::NoIdentHeader(Codec::Vorbis))
        );
        assert_eq!(
            chunk_ends_ms(&page(0, &vorbis_ident(0)), 16, Codec::Vorbis),
            Err(OggError::ZeroRate)
        );
        assert_eq!(
            chunk_ends_ms(&[], 0, Codec::Vorbis),
            Err(OggError::ZeroChunk)
        );
        assert_eq!(chunk_ends_ms(&[], 16, Codec::Vorbis), Ok(vec![]));
    }

    #[test]
    fn pieces_of_any_size_give_the_same_ends() {
        let mut file = page(0, &vorbis_ident(44_100));
        for granule in 1..40u64 {
            file.extend(page(
                granule * 1_000,
                &vec![granule as u8; 300 + granule as usize * 37],
            ));
        }
        let whole = chunk_ends_ms(&file, 2_048, Codec::Vorbis).unwrap();
        for piece in [1, 7, 26, 27, 28, 1_000, 4_096] {
            let mut timer = ChunkTimer::new(Codec::Vorbis, 2_048).unwrap();
            for bytes in file.chunks(piece) {
                timer.push(bytes).unwrap();
            }
            assert_eq!(timer.finish().unwrap(), whole, "pieces of {piece}");
        }
        assert_eq!(whole.len(), file.len().div_ceil(2_048));
        assert_eq!(*whole.last().unwrap(), 39_000 * 1000 / 44_100);
    }

    #[test]
    fn chunks_reaching_counts_through_the_first_that_gets_there() {
        let ends = [400, 1_200, 2_000];
        assert_eq!(chunks_reaching(&ends, 0), 0);
        assert_eq!(chunks_reaching(&ends, 1), 1);
        assert_eq!(chunks_reaching(&ends, 400), 1);
        assert_eq!(chunks_reaching(&ends, 1_000), 2);
        assert_eq!(chunks_reaching(&ends, 9_999), 3);
        assert_eq!(chunks_reaching(&[], 1_000), 0);
    }

    #[test]
    fn even_ends_spread_the_duration() {
        assert_eq!(even_ends_ms(1000, 4), vec![250, 500, 750, 1000]);
        assert_eq!(even_ends_ms(1000, 0), Vec::<u32>::new());
    }
}
