//! Starting an Ogg stream part-way through: what a player asks for with Subsonic's
//! `timeOffset`.
//!
//! A player seeking to 95 s wants a valid Ogg stream whose time 0 is (about) 95 s into the
//! song, without the bytes before it. Three steps, each fed bytes as they arrive, none keeping
//! more than one page beyond what it was given:
//!
//! 1. [`Headers`] reads the codec headers from the start of the file: the pages up to the one
//!    completing the last header packet (three for Vorbis, two for Opus), with the granule
//!    rate and pre-skip.
//! 2. [`Scan`] reads from a byte before the offset, finds a page boundary (the capture
//!    pattern *and* a matching checksum, so audio bytes that happen to spell `OggS` are not
//!    taken for a page) and walks the pages to the last one ending at or before the offset.
//!    The cut is right after it.
//! 3. [`Cutter`] rewrites every page from the cut: a piece of a packet begun before the cut is
//!    dropped (a decoder cannot use it), sequence numbers follow the headers', granule
//!    positions start over at the cut and checksums are recomputed.
//!
//! The headers then the cut pages are the stream. Its time 0 is the end of the page before the
//! cut: at most one page (a fraction of a second) before the offset asked for, and the first
//! packet's worth later where a packet straddled the cut.

use super::{CAPTURE, HEADER, OggError, ident};
use crate::content::Codec;

/// The largest Ogg page: header, 255 lacing values and 255 segments of 255 bytes.
pub const PAGE_BYTES_MAX: usize = HEADER + 255 + 255 * 255;
/// The most header bytes read before giving up (a Vorbis comment can carry a picture).
pub const HEADERS_BYTES_MAX: usize = 1 << 20;
/// A granule position of all ones: no packet completes on the page.
const NO_GRANULE: u64 = u64::MAX;
/// Page flag: the first packet continues one begun on the page before.
const CONTINUED: u8 = 0x01;
/// Page flag: first page of a logical stream.
const BEGIN: u8 = 0x02;

/// Ogg's CRC-32 (polynomial 0x04c11db7, MSB first, initial value 0, no final xor).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The checksum of bytes (a page whose checksum field reads zero).
fn crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |crc, &byte| {
        (crc << 8) ^ CRC_TABLE[(((crc >> 24) as u8) ^ byte) as usize]
    })
}

/// The checksum an Ogg page carries in bytes 22..26: Ogg's CRC-32 of the page with those bytes
/// read as zero. `page` must be at least a page header long (27 bytes); shorter gives 0.
pub fn checksum(page: &[u8]) -> u32 {
    if page.len() < HEADER {
        return 0;
    }
    let zeros = [0u8; 4];
    let crc = page[..22].iter().chain(&zeros).chain(&page[26..]);
    crc.fold(0u32, |crc, &byte| {
        (crc << 8) ^ CRC_TABLE[(((crc >> 24) as u8) ^ byte) as usize]
    })
}

/// A whole page, checked: its fields read from the bytes.
#[derive(Debug, Clone, Copy)]
struct Page<'a>(&'a [u8]);

impl<'a> Page<'a> {
    fn flags(self) -> u8 {
        self.0[5]
    }
    fn granule(self) -> u64 {
        u64::from_le_bytes(self.0[6..14].try_into().unwrap_or([0xff; 8]))
    }
    fn serial(self) -> u32 {
        u32::from_le_bytes(self.0[14..18].try_into().unwrap_or([0; 4]))
    }
    fn sequence(self) -> u32 {
        u32::from_le_bytes(self.0[18..22].try_into().unwrap_or([0; 4]))
    }
    fn lacing(self) -> &'a [u8] {
        &self.0[HEADER..HEADER + usize::from(self.0[26])]
    }
    fn body(self) -> &'a [u8] {
        &self.0[HEADER + usize::from(self.0[26])..]
    }
    /// Packets that end on this page.
    fn packets_ending(self) -> usize {
        self.lacing().iter().filter(|&&lace| lace < 255).count()
    }
}

/// What is at the start of `buf`.
enum At<'a> {
    /// A whole page with a matching checksum.
    Page(Page<'a>),
    /// The start of what may be a page: more bytes are needed to tell.
    Partial,
    /// Not a page.
    Not,
}

fn page_at(buf: &[u8]) -> At<'_> {
    let capture = buf.len().min(4);
    if buf[..capture] != CAPTURE[..capture] {
        return At::Not;
    }
    if buf.len() < HEADER {
        return At::Partial;
    }
    if buf[4] != 0 {
        return At::Not;
    }
    let segments = usize::from(buf[26]);
    if buf.len() < HEADER + segments {
        return At::Partial;
    }
    let body: usize = buf[HEADER..HEADER + segments]
        .iter()
        .map(|&lace| usize::from(lace))
        .sum();
    let len = HEADER + segments + body;
    if buf.len() < len {
        return At::Partial;
    }
    let page = &buf[..len];
    let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
    if checksum(page) != stored {
        return At::Not;
    }
    At::Page(Page(page))
}

/// The codec headers at the start of an Ogg stream, read from its first bytes.
#[derive(Debug, Clone)]
pub struct Headers {
    codec: Codec,
    /// The header pages, verbatim, once complete; what was pushed before that.
    bytes: Vec<u8>,
    /// Header packets still to complete.
    packets_left: usize,
    /// Bytes of `bytes` read as whole pages.
    read: usize,
    serial: u32,
    next_sequence: u32,
    /// Where the header pages end in the file (its first audio page), once complete.
    end: Option<u64>,
    /// Granule rate and pre-skip.
    timing: (u64, u64),
}

impl Headers {
    /// Headers of a `codec` stream, to be read with [`Headers::push`].
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            bytes: Vec::new(),
            packets_left: match codec {
                Codec::Vorbis => 3,
                Codec::Opus => 2,
            },
            read: 0,
            serial: 0,
            next_sequence: 0,
            end: None,
            timing: (1, 0),
        }
    }

    /// The next bytes from the start of the file; `true` once the headers are whole (bytes
    /// past them are ignored).
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, OggError> {
        if self.end.is_some() {
            return Ok(true);
        }
        self.bytes.extend_from_slice(bytes);
        loop {
            let read = self.read;
            let rest = &self.bytes[read..];
            let page = match page_at(rest) {
                At::Page(page) => page,
                At::Partial if self.bytes.len() <= HEADERS_BYTES_MAX => return Ok(false),
                At::Partial => return Err(OggError::HeadersTooLarge),
                At::Not => return Err(OggError::NotOgg(read as u64)),
            };
            if read == 0 {
                if page.flags() & BEGIN == 0 {
                    return Err(OggError::NotOgg(0));
                }
                self.serial = page.serial();
                self.timing = ident(page.body(), self.codec)?;
            } else if page.serial() != self.serial {
                return Err(OggError::Multiplexed(read as u64));
            }
            let ending = page.packets_ending();
            if ending > self.packets_left {
                // Audio sharing a page with the last header: not allowed by either codec's
                // mapping (Vorbis I §A.2, RFC 7845 §3).
                return Err(OggError::HeadersShareAPage(read as u64));
            }
            self.packets_left -= ending;
            self.next_sequence = page.sequence().wrapping_add(1);
            let read = read + page.0.len();
            self.read = read;
            if self.packets_left == 0 {
                self.bytes.truncate(read);
                self.end = Some(read as u64);
                return Ok(true);
            }
            if read > HEADERS_BYTES_MAX {
                return Err(OggError::HeadersTooLarge);
            }
        }
    }

    /// The header pages, verbatim: the start of every cut stream. Empty until complete.
    pub fn bytes(&self) -> &[u8] {
        if self.end.is_some() { &self.bytes } else { &[] }
    }

    /// Where the first audio page starts in the file, once the headers are whole.
    pub fn end(&self) -> Option<u64> {
        self.end
    }

    /// The granule position of the sample `ms` milliseconds into the audio.
    pub fn granule_at(&self, ms: u64) -> u64 {
        let (rate, pre_skip) = self.timing;
        let samples = u128::from(ms) * u128::from(rate) / 1000;
        u64::try_from(samples)
            .unwrap_or(u64::MAX)
            .saturating_add(pre_skip)
    }
}

/// Where a cut stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Cut at byte `at` of the file (a page boundary); the page ending there has granule
    /// position `base` (`None`: the cut is at the first audio page, nothing is skipped).
    Cut {
        /// File offset of the first page of the cut stream.
        at: u64,
        /// Granule position of the page before it.
        base: Option<u64>,
    },
    /// The scan started too late: the first page it found already ends past the offset.
    /// Scan again from an earlier byte.
    Earlier,
}

/// Finds the cut for one offset, reading the file from some byte before it.
#[derive(Debug, Clone)]
pub struct Scan {
    serial: u32,
    headers_end: u64,
    target: u64,
    /// File offset of `buf[0]`.
    pos: u64,
    buf: Vec<u8>,
    /// The last page found ending at or before the target: where it ends, its granule.
    base: Option<(u64, u64)>,
}

impl Scan {
    /// A scan for the granule position `target` (see [`Headers::granule_at`]) of the stream
    /// whose `headers` were read, over the file from byte `from` on.
    pub fn new(headers: &Headers, target: u64, from: u64) -> Self {
        Self {
            serial: headers.serial,
            headers_end: headers.end.unwrap_or(0),
            target,
            pos: from,
            buf: Vec::new(),
            base: None,
        }
    }

    /// The next bytes of the file; the cut once it is known. Bytes that are not pages are
    /// skipped (the scan may start mid-page).
    pub fn push(&mut self, bytes: &[u8]) -> Option<Found> {
        self.buf.extend_from_slice(bytes);
        let mut read = 0;
        let found = loop {
            let rest = &self.buf[read..];
            let Some(next) = rest.windows(4).position(|four| four == CAPTURE) else {
                // Keep a tail that may be the start of a capture pattern.
                read = self.buf.len() - rest.len().min(3);
                break None;
            };
            read += next;
            let page = match page_at(&self.buf[read..]) {
                At::Page(page) => page,
                At::Partial => break None,
                At::Not => {
                    read += 1;
                    continue;
                }
            };
            let start = self.pos + read as u64;
            let end = start + page.0.len() as u64;
            let granule = page.granule();
            read += page.0.len();
            if page.serial() != self.serial || start < self.headers_end || granule == NO_GRANULE {
                continue;
            }
            if granule <= self.target {
                self.base = Some((end, granule));
                continue;
            }
            break Some(match self.base {
                Some((at, base)) => Found::Cut {
                    at,
                    base: Some(base),
                },
                None if start == self.headers_end => Found::Cut {
                    at: start,
                    base: None,
                },
                None => Found::Earlier,
            });
        };
        self.buf.drain(..read);
        self.pos += read as u64;
        found
    }
}

/// Rewrites the pages of a file from a cut on into the rest of a cut stream.
#[derive(Debug, Clone)]
pub struct Cutter {
    serial: u32,
    next_sequence: u32,
    /// Granule position of the page before the cut, and the pre-skip to keep.
    shift: Option<(u64, u64)>,
    /// Still dropping the piece of a packet begun before the cut.
    fragment: bool,
    /// File offset of `buf[0]`.
    pos: u64,
    buf: Vec<u8>,
    /// Bytes of the file's pages not written (dropped pieces of a packet, their lacing).
    removed: u64,
}

impl Cutter {
    /// A cutter for the stream whose `headers` were read, from the cut `found` (a
    /// [`Found::Cut`]; [`Found::Earlier`] cuts nothing away).
    pub fn new(headers: &Headers, found: Found) -> Self {
        let (at, base) = match found {
            Found::Cut { at, base } => (at, base),
            Found::Earlier => (headers.end.unwrap_or(0), None),
        };
        Self {
            serial: headers.serial,
            next_sequence: headers.next_sequence,
            shift: base.map(|base| (base, headers.timing.1)),
            fragment: base.is_some(),
            pos: at,
            buf: Vec::new(),
            removed: 0,
        }
    }

    /// The next bytes of the file after the cut: the rewritten pages completed by them are
    /// appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), OggError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(bytes);
        let mut read = 0;
        let result = loop {
            let page = match page_at(&buf[read..]) {
                At::Page(page) => page,
                At::Partial => break Ok(()),
                At::Not => break Err(OggError::NotOgg(self.pos + read as u64)),
            };
            read += page.0.len();
            if page.serial() == self.serial {
                let before = out.len();
                self.rewrite(page, out);
                self.removed += (page.0.len() - (out.len() - before)) as u64;
            } else {
                // Another logical stream (a chained link, say) passes as it is.
                out.extend_from_slice(page.0);
            }
        };
        buf.drain(..read);
        self.buf = buf;
        self.pos += read as u64;
        result
    }

    /// Whether every page from here on is written at its own size: the piece of a packet
    /// begun before the cut is behind. From then on the cut stream's length is known: the
    /// headers, plus the file from the cut, less [`Cutter::removed`].
    pub fn settled(&self) -> bool {
        !self.fragment
    }

    /// Bytes of the file's pages read so far and not written.
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// Checks that the file ended on a page boundary.
    pub fn finish(self) -> Result<(), OggError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(OggError::Truncated(self.pos))
        }
    }

    fn rewrite(&mut self, page: Page<'_>, out: &mut Vec<u8>) {
        let lacing = page.lacing();
        let mut skip = 0;
        if self.fragment && page.flags() & CONTINUED != 0 {
            match lacing.iter().position(|&lace| lace < 255) {
                Some(last) => skip = last + 1,
                // The whole page is the middle of that packet.
                None => return,
            }
        }
        self.fragment = false;
        if skip == lacing.len() {
            return;
        }
        let skip_bytes: usize = lacing[..skip].iter().map(|&lace| usize::from(lace)).sum();
        let mut flags = page.flags() & !BEGIN;
        if skip > 0 {
            flags &= !CONTINUED;
        }
        let granule = match (page.granule(), self.shift) {
            (NO_GRANULE, _) | (_, None) => page.granule(),
            (granule, Some((base, pre_skip))) => {
                granule.saturating_sub(base).saturating_add(pre_skip)
            }
        };
        let start = out.len();
        out.extend_from_slice(CAPTURE);
        out.push(0);
        out.push(flags);
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.next_sequence.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push((lacing.len() - skip) as u8);
        out.extend_from_slice(&lacing[skip..]);
        out.extend_from_slice(&page.body()[skip_bytes..]);
        let sum = crc(&out[start..]);
        out[start + 22..start + 26].copy_from_slice(&sum.to_le_bytes());
        self.next_sequence = self.next_sequence.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page with the given flags, granule and sequence holding `packets` (the last one
    /// left open when `open`), checksummed.
    fn page(flags: u8, granule: u64, sequence: u32, packets: &[&[u8]], open: bool) -> Vec<u8> {
        let mut lacing = Vec::new();
        let mut body = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            lacing.extend(std::iter::repeat_n(255u8, packet.len() / 255));
            if !(open && i + 1 == packets.len()) {
                lacing.push((packet.len() % 255) as u8);
            }
            body.extend_from_slice(packet);
        }
        let mut page = b"OggS\0".to_vec();
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&7u32.to_le_bytes());
        page.extend_from_slice(&sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(&body);
        let sum = crc(&page);
        page[22..26].copy_from_slice(&sum.to_le_bytes());
        page
    }

    fn opus_head(pre_skip: u16) -> Vec<u8> {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2]);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&[0; 7]);
        head
    }

    /// An Opus file: headers on two pages, then page `i` (1-based) ending at granule
    /// `312 + 960 * i` with one 100-byte packet each, except that the packet ending on page 5
    /// begins on page 4 (which holds one whole packet and the start of the next).
    fn opus_file() -> (Vec<u8>, usize) {
        let mut file = page(BEGIN, 0, 0, &[&opus_head(312)], false);
        file.extend(page(0, 0, 1, &[b"OpusTags-and-more"], false));
        let headers = file.len();
        for i in 1..=8u32 {
            let granule = 312 + 960 * u64::from(i);
            let fill = vec![i as u8; 100];
            let piece = match i {
                4 => page(0, granule, i + 1, &[&fill, &[44; 255]], true),
                5 => page(CONTINUED, granule, i + 1, &[&[55; 30], &fill], false),
                _ => page(0, granule, i + 1, &[&fill], false),
            };
            file.extend(piece);
        }
        (file, headers)
    }

    fn pages(stream: &[u8]) -> Vec<Page<'_>> {
        let mut read = 0;
        let mut out = Vec::new();
        while read < stream.len() {
            let At::Page(page) = page_at(&stream[read..]) else {
                panic!("no page at {read}");
            };
            read += page.0.len();
            out.push(page);
        }
        out
    }

    #[test]
    fn the_checksum_table_is_the_polynomial_msb_first() {
        assert_eq!(CRC_TABLE[1], 0x04c1_1db7);
        assert_eq!(CRC_TABLE[128], 0x690c_e0ee);
        assert_eq!(crc(&[]), 0);
        assert_eq!(pages(&opus_file().0).len(), 10, "every test page checks");
    }

    #[test]
    fn headers_are_the_pages_up_to_the_last_header_packet() {
        let (file, headers_len) = opus_file();
        let mut headers = Headers::new(Codec::Opus);
        // Byte by byte: never more than asked, done exactly at the end of the headers.
        let mut done_at = None;
        for (i, byte) in file.iter().enumerate() {
            if headers.push(&[*byte]).unwrap() && done_at.is_none() {
                done_at = Some(i + 1);
            }
        }
        assert_eq!(done_at, Some(headers_len));
        assert_eq!(headers.bytes(), &file[..headers_len]);
        assert_eq!(headers.end(), Some(headers_len as u64));
        assert_eq!(headers.granule_at(1000), 312 + 48_000);
        assert!(matches!(
            Headers::new(Codec::Vorbis).push(&file),
            Err(OggError::NoIdentHeader(Codec::Vorbis))
        ));
        assert!(matches!(
            Headers::new(Codec::Opus).push(b"RIFF....WAVE"),
            Err(OggError::NotOgg(0))
        ));
    }

    fn cut(file: &[u8], ms: u64, from: u64, piece: usize) -> (Found, Vec<u8>) {
        let mut headers = Headers::new(Codec::Opus);
        assert!(headers.push(file).unwrap());
        let mut scan = Scan::new(&headers, headers.granule_at(ms), from);
        let found = file[from as usize..]
            .chunks(piece)
            .find_map(|bytes| scan.push(bytes))
            .expect("a cut");
        let Found::Cut { at, .. } = found else {
            return (found, Vec::new());
        };
        let mut out = headers.bytes().to_vec();
        let mut cutter = Cutter::new(&headers, found);
        for bytes in file[at as usize..].chunks(piece) {
            cutter.push(bytes, &mut out).unwrap();
        }
        cutter.finish().unwrap();
        (found, out)
    }

    #[test]
    fn a_cut_restarts_granules_and_sequence_and_drops_a_straddling_packet() {
        let (file, headers_len) = opus_file();
        let at_page = |n: usize| -> u64 {
            pages(&file)[..n + 1]
                .iter()
                .map(|page| page.0.len() as u64)
                .sum()
        };
        // 70 ms is sample 3,360: page 3 ends at 312 + 2,880, page 4 past it.
        for piece in [1, 7, 100, 4096] {
            for from in [0, headers_len as u64, headers_len as u64 + 3] {
                let (found, out) = cut(&file, 70, from, piece);
                assert_eq!(
                    found,
                    Found::Cut {
                        at: at_page(4),
                        base: Some(312 + 2880)
                    }
                );
                let out_pages = pages(&out);
                assert_eq!(out_pages.len(), 2 + 5);
                for (i, page) in out_pages.iter().enumerate() {
                    assert_eq!(page.sequence(), i as u32);
                }
                // Page 4 now ends at one packet past the cut, with the pre-skip kept.
                assert_eq!(out_pages[2].granule(), 312 + 960);
                assert_eq!(out_pages.last().unwrap().granule(), 312 + 5 * 960);
            }
        }
        // 90 ms: the cut is after page 4, whose last packet goes on into page 5: that piece
        // is dropped and page 5 starts with its own packet.
        let (found, out) = cut(&file, 90, headers_len as u64 + 1, 50);
        assert_eq!(
            found,
            Found::Cut {
                at: at_page(5),
                base: Some(312 + 4 * 960)
            }
        );
        let first = pages(&out)[2];
        assert_eq!(first.flags() & CONTINUED, 0);
        assert_eq!(first.body(), &[5u8; 100][..]);
        assert_eq!(first.granule(), 312 + 960);
    }

    #[test]
    fn offsets_before_the_first_page_end_cut_nothing_and_late_scans_say_so() {
        let (file, headers_len) = opus_file();
        let (found, out) = cut(&file, 5, 0, 333);
        assert_eq!(
            found,
            Found::Cut {
                at: headers_len as u64,
                base: None
            }
        );
        assert_eq!(out, file, "nothing skipped, nothing rewritten");
        // A scan starting after the page it needs cannot find the cut.
        let late = pages(&file)[..7]
            .iter()
            .map(|page| page.0.len() as u64)
            .sum::<u64>();
        assert_eq!(cut(&file, 70, late, 64).0, Found::Earlier);
    }

    #[test]
    fn garbage_and_false_capture_patterns_are_skipped_by_the_scan_and_refused_by_the_cutter() {
        let (file, headers_len) = opus_file();
        let mut headers = Headers::new(Codec::Opus);
        headers.push(&file).unwrap();
        let mut noisy = b"xxOggSOggS\0\0\0garbage".to_vec();
        noisy.extend_from_slice(&file[headers_len..]);
        let mut scan = Scan::new(&headers, headers.granule_at(70), 0);
        let found = scan.push(&noisy);
        assert!(matches!(found, Some(Found::Cut { .. })));
        let mut cutter = Cutter::new(&headers, found.unwrap());
        let mut out = Vec::new();
        assert!(matches!(
            cutter.push(b"not a page", &mut out),
            Err(OggError::NotOgg(_))
        ));
        let mut cutter = Cutter::new(&headers, found.unwrap());
        cutter
            .push(&file[headers_len..headers_len + 10], &mut out)
            .unwrap();
        assert!(matches!(cutter.finish(), Err(OggError::Truncated(_))));
        // A page whose checksum does not match is not a page.
        let mut bad = file.clone();
        bad[headers_len + 40] ^= 1;
        assert!(matches!(page_at(&bad[headers_len..]), At::Not));
    }
}
