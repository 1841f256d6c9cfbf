//! Decoding the decrypted stream to PCM as it arrives (symphonia), with the track's loudness
//! gain applied, and writing it as WAV.
//!
//! The decoder runs on its own thread and reads from a channel of in-order plaintext pieces
//! ([`StreamDecoder::push`]); it blocks for more input instead of seeing an early end of file,
//! so it decodes while the rest of the track is still being fetched.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Instant;

use bytes::Bytes;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Ogg's page capture pattern.
const OGG_CAPTURE: &[u8; 4] = b"OggS";

/// The length of the stream headers at the start of an Ogg file: every page up to the first
/// one that carries audio (a granule position other than 0). A decoder fed these, then
/// pages from anywhere later in the file, plays from there (seeking in a stream). `None`
/// when `start` holds no complete header (not Ogg, or too short).
pub fn ogg_header_len(start: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let page = start.get(at..)?;
        if page.len() < 27 || &page[..4] != OGG_CAPTURE {
            return None;
        }
        let granule = u64::from_le_bytes(page[6..14].try_into().ok()?);
        if granule != 0 && granule != u64::MAX {
            return (at > 0).then_some(at);
        }
        let segments = usize::from(page[26]);
        let table = page.get(27..27 + segments)?;
        let body: usize = table.iter().map(|&lace| usize::from(lace)).sum();
        at += 27 + segments + body;
    }
}

/// Where the first Ogg page starts in `bytes` (a piece from the middle of a file).
pub fn ogg_page_start(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(5)
        .position(|window| &window[..4] == OGG_CAPTURE && window[4] == 0)
}

/// Pieces buffered between the network and the decoder (each one chunk, 16 KiB).
pub const DECODE_QUEUE_MAX: usize = 256;

/// A `Read` over a channel of byte pieces; ends when the sender is dropped.
struct ChannelReader {
    // A mutex only to make the reader `Sync`, as symphonia's media sources must be; one
    // thread reads.
    pieces: std::sync::Mutex<mpsc::Receiver<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let next = self
                .pieces
                .get_mut()
                .unwrap_or_else(|poison| poison.into_inner())
                .recv();
            match next {
                Ok(piece) => self.current = piece,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// What the decoder produced.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeSummary {
    /// Frames (samples per channel) decoded.
    pub frames: u64,
    /// Sample rate.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// When the first PCM came out.
    pub first_pcm: Option<Instant>,
    /// Samples clipped by the gain.
    pub clipped: u64,
}

impl DecodeSummary {
    /// Decoded duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            0
        } else {
            self.frames * 1000 / u64::from(self.sample_rate)
        }
    }
}

/// Receives PCM as it is decoded: interleaved i16 samples.
pub trait PcmSink: Send + 'static {
    /// The stream's format, once known, before any samples.
    fn format(&mut self, sample_rate: u32, channels: u16) -> std::io::Result<()>;
    /// Interleaved samples.
    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()>;
    /// The end of the stream.
    fn finish(&mut self) -> std::io::Result<()>;
}

impl PcmSink for Box<dyn PcmSink> {
    fn format(&mut self, sample_rate: u32, channels: u16) -> std::io::Result<()> {
        (**self).format(sample_rate, channels)
    }
    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        (**self).samples(samples)
    }
    fn finish(&mut self) -> std::io::Result<()> {
        (**self).finish()
    }
}

/// A running decoder thread.
#[derive(Debug)]
pub struct StreamDecoder {
    input: Option<mpsc::SyncSender<Bytes>>,
    thread: std::thread::JoinHandle<Result<DecodeSummary, String>>,
}

impl StreamDecoder {
    /// Starts decoding into `sink`, scaling by `gain_db` (the track's loudness gain). Fails
    /// only when the OS cannot start a thread.
    pub fn start(sink: impl PcmSink, gain_db: f64) -> std::io::Result<Self> {
        let (input, pieces) = mpsc::sync_channel(DECODE_QUEUE_MAX);
        let thread = std::thread::Builder::new()
            .name("decoder".into())
            .spawn(move || decode(pieces, sink, gain_db))?;
        Ok(Self {
            input: Some(input),
            thread,
        })
    }

    /// Hands the next in-order piece of the encoded stream to the decoder. Blocks while the
    /// decoder is [`DECODE_QUEUE_MAX`] pieces behind. False when the decoder has stopped.
    pub fn push(&self, piece: Bytes) -> bool {
        self.input
            .as_ref()
            .is_some_and(|input| input.send(piece).is_ok())
    }

    /// Ends the input and waits for the decoder.
    pub fn finish(mut self) -> Result<DecodeSummary, String> {
        self.input = None;
        self.thread
            .join()
            .map_err(|_| "the decoder thread panicked".to_string())?
    }
}

fn decode(
    pieces: mpsc::Receiver<Bytes>,
    sink: impl PcmSink,
    gain_db: f64,
) -> Result<DecodeSummary, String> {
    let reader = ChannelReader {
        pieces: std::sync::Mutex::new(pieces),
        current: Bytes::new(),
    };
    decode_reader(reader, sink, gain_db)
}

/// Decodes the encoded stream `reader` yields into `sink` on the calling thread, scaled by
/// `gain_db`: what [`StreamDecoder`] runs on its thread (benchmarks call it directly).
pub fn decode_reader(
    reader: impl Read + Send + Sync + 'static,
    mut sink: impl PcmSink,
    gain_db: f64,
) -> Result<DecodeSummary, String> {
    let source = MediaSourceStream::new(
        Box::new(ReadOnlySource::new(reader)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    hint.with_extension("ogg");
    let mut format = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|error| format!("not a playable stream: {error}"))?
        .format;
    let track = format.default_track().ok_or("no audio track")?.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|error| format!("unsupported codec: {error}"))?;
    let scale = 10f64.powf(gain_db / 20.0) as f32;
    let mut summary = DecodeSummary::default();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut out: Vec<i16> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(error))
                if error.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(error) => return Err(format!("reading the stream: {error}")),
        };
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(error)) => {
                // A damaged packet is skipped (the chunk passed its hash, so this is the
                // encoder's doing); the stream goes on.
                tracing::warn!(error, "skipping an undecodable packet");
                continue;
            }
            Err(error) => return Err(format!("decoding: {error}")),
        };
        let spec = *decoded.spec();
        if summary.sample_rate == 0 {
            summary.sample_rate = spec.rate;
            summary.channels = spec.channels.count() as u16;
            sink.format(summary.sample_rate, summary.channels)
                .map_err(|error| format!("output: {error}"))?;
        }
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let samples =
            buffer.get_or_insert_with(|| SampleBuffer::new(decoded.capacity() as u64, spec));
        if samples.capacity() < frames * spec.channels.count() {
            *samples = SampleBuffer::new(decoded.capacity() as u64, spec);
        }
        samples.copy_interleaved_ref(decoded);
        out.clear();
        for sample in samples.samples() {
            let scaled = sample * scale;
            if !(-1.0..=1.0).contains(&scaled) {
                summary.clipped += 1;
            }
            out.push((scaled.clamp(-1.0, 1.0) * 32767.0) as i16);
        }
        if summary.first_pcm.is_none() {
            summary.first_pcm = Some(Instant::now());
        }
        sink.samples(&out)
            .map_err(|error| format!("output: {error}"))?;
        summary.frames += frames as u64;
    }
    sink.finish().map_err(|error| format!("output: {error}"))?;
    Ok(summary)
}

/// Writes PCM as a 16-bit WAV file or stream. Seekable outputs get their header's lengths
/// fixed at the end; a pipe gets "unknown length" (0xFFFFFFFF), which players accept.
#[derive(Debug)]
pub struct WavSink<W: Write + Send + 'static> {
    out: W,
    seek: Option<fn(&mut W, u32) -> std::io::Result<()>>,
    data_bytes: u64,
}

impl WavSink<std::io::BufWriter<std::fs::File>> {
    /// A WAV file at `path`.
    pub fn file(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self {
            out: std::io::BufWriter::new(std::fs::File::create(path)?),
            seek: Some(|out, data_bytes| {
                use std::io::Seek;
                out.flush()?;
                let file = out.get_mut();
                file.seek(std::io::SeekFrom::Start(4))?;
                file.write_all(&(36 + data_bytes).to_le_bytes())?;
                file.seek(std::io::SeekFrom::Start(40))?;
                file.write_all(&data_bytes.to_le_bytes())?;
                file.sync_all()
            }),
            data_bytes: 0,
        })
    }
}

impl<W: Write + Send + 'static> WavSink<W> {
    /// A WAV stream on `out` (e.g. stdout) with an unknown length.
    pub fn stream(out: W) -> Self {
        Self {
            out,
            seek: None,
            data_bytes: 0,
        }
    }
}

impl<W: Write + Send + 'static> PcmSink for WavSink<W> {
    fn format(&mut self, sample_rate: u32, channels: u16) -> std::io::Result<()> {
        let block = channels * 2;
        let mut header = Vec::with_capacity(44);
        header.extend_from_slice(b"RIFF");
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        header.extend_from_slice(b"WAVEfmt ");
        header.extend_from_slice(&16u32.to_le_bytes());
        header.extend_from_slice(&1u16.to_le_bytes());
        header.extend_from_slice(&channels.to_le_bytes());
        header.extend_from_slice(&sample_rate.to_le_bytes());
        header.extend_from_slice(&(sample_rate * u32::from(block)).to_le_bytes());
        header.extend_from_slice(&block.to_le_bytes());
        header.extend_from_slice(&16u16.to_le_bytes());
        header.extend_from_slice(b"data");
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        self.out.write_all(&header)
    }

    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for sample in samples {
            bytes.extend_from_slice(&sample.to_le_bytes());
        }
        self.data_bytes += bytes.len() as u64;
        self.out.write_all(&bytes)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if let Some(fix) = self.seek {
            let data = u32::try_from(self.data_bytes).unwrap_or(u32::MAX - 36);
            fix(&mut self.out, data)?;
        }
        Ok(())
    }
}

/// Interleaved `samples` with `from` channels as `to` channels: mono is copied to every
/// channel, more channels than the output has are dropped, missing ones are silent.
#[cfg_attr(not(feature = "sound"), allow(dead_code))]
pub(crate) fn map_channels(samples: &[f32], from: u16, to: u16) -> Vec<f32> {
    let (from, to) = (usize::from(from.max(1)), usize::from(to.max(1)));
    if from == to {
        return samples.to_vec();
    }
    let mut out = Vec::with_capacity(samples.len() / from * to);
    for frame in samples.chunks_exact(from) {
        for channel in 0..to {
            out.push(match (from, frame.get(channel)) {
                (1, _) => frame[0],
                (_, Some(&sample)) => sample,
                (_, None) => 0.0,
            });
        }
    }
    out
}

/// Linear-interpolation resampling of interleaved `samples` from `from` Hz to `to` Hz.
/// `position` carries the fractional read position from one call to the next, so a stream
/// resampled piece by piece has no drift.
#[cfg_attr(not(feature = "sound"), allow(dead_code))]
pub(crate) fn resample_linear(
    samples: &[f32],
    channels: u16,
    from: u32,
    to: u32,
    position: &mut f64,
) -> Vec<f32> {
    let channels = usize::from(channels.max(1));
    let frames = samples.len() / channels;
    if frames == 0 || from == 0 || to == 0 {
        return Vec::new();
    }
    let step = f64::from(from) / f64::from(to);
    let mut out = Vec::with_capacity(((frames as f64 / step) as usize + 1) * channels);
    let mut at = *position;
    while at < frames as f64 {
        let i = at as usize;
        let frac = (at - i as f64) as f32;
        let j = (i + 1).min(frames - 1);
        for channel in 0..channels {
            let (a, b) = (
                samples[i * channels + channel],
                samples[j * channels + channel],
            );
            out.push(a + (b - a) * frac);
        }
        at += step;
    }
    *position = at - frames as f64;
    out
}

/// One output for several tracks in a row (a queue): the format goes out once, and each
/// track's PCM follows the previous one's. Tracks all come at the ingest rate (44.1 kHz); a
/// mono track in a stereo output is spread over both channels and a stereo one in a mono
/// output is mixed down. Clone it for each track's decoder; [`Continuous::close`] ends it.
#[derive(Debug)]
pub struct Continuous<S: PcmSink> {
    state: std::sync::Arc<std::sync::Mutex<ContinuousState<S>>>,
}

#[derive(Debug)]
struct ContinuousState<S> {
    sink: S,
    /// (sample rate, channels) of the output, once the first track said.
    output: Option<(u32, u16)>,
    /// Channels of the track being decoded.
    track_channels: u16,
    mixed: Vec<i16>,
}

impl<S: PcmSink> Clone for Continuous<S> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<S: PcmSink> Continuous<S> {
    /// Wraps `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            state: std::sync::Arc::new(std::sync::Mutex::new(ContinuousState {
                sink,
                output: None,
                track_channels: 0,
                mixed: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ContinuousState<S>> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Ends the output (after the last track).
    pub fn close(&self) -> std::io::Result<()> {
        self.lock().sink.finish()
    }
}

impl<S: PcmSink> PcmSink for Continuous<S> {
    fn format(&mut self, sample_rate: u32, channels: u16) -> std::io::Result<()> {
        let mut state = self.lock();
        match state.output {
            None => {
                state.sink.format(sample_rate, channels)?;
                state.output = Some((sample_rate, channels));
            }
            Some((rate, out_channels)) => {
                if rate != sample_rate {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a track at {sample_rate} Hz follows one at {rate} Hz"),
                    ));
                }
                if channels != out_channels && !(channels <= 2 && out_channels <= 2) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a {channels}-channel track in a {out_channels}-channel output"),
                    ));
                }
            }
        }
        state.track_channels = channels;
        Ok(())
    }

    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        let mut state = self.lock();
        let state = &mut *state;
        let out_channels = state.output.map_or(0, |(_, channels)| channels);
        match (state.track_channels, out_channels) {
            (1, 2) => {
                state.mixed.clear();
                state
                    .mixed
                    .extend(samples.iter().flat_map(|&sample| [sample, sample]));
                state.sink.samples(&state.mixed)
            }
            (2, 1) => {
                state.mixed.clear();
                state.mixed.extend(
                    samples
                        .chunks_exact(2)
                        .map(|pair| ((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16),
                );
                state.sink.samples(&state.mixed)
            }
            _ => state.sink.samples(samples),
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        // One track ended; the output goes on until `close`.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_map_and_rates_convert_without_drift() {
        assert_eq!(map_channels(&[0.5, -0.5], 1, 2), [0.5, 0.5, -0.5, -0.5]);
        assert_eq!(map_channels(&[0.1, 0.2, 0.3, 0.4], 2, 1), [0.1, 0.3]);
        assert_eq!(map_channels(&[0.1, 0.2], 2, 3), [0.1, 0.2, 0.0]);
        // 44.1 kHz → 48 kHz in pieces of odd sizes: as many frames as one piece would give.
        let input: Vec<f32> = (0..44_100).map(|i| (i as f32 / 100.0).sin()).collect();
        let mut position = 0.0;
        let mut out = Vec::new();
        for piece in input.chunks(1_234) {
            out.extend(resample_linear(piece, 1, 44_100, 48_000, &mut position));
        }
        assert!((out.len() as i64 - 48_000).abs() <= 2, "{}", out.len());
        // Interpolated values stay between their neighbours.
        assert!(out.iter().all(|sample| sample.abs() <= 1.0));
        assert!(resample_linear(&[], 2, 44_100, 48_000, &mut 0.0).is_empty());
    }

    #[test]
    fn ogg_headers_and_page_starts_are_found() {
        // Two header pages (granule 0) then an audio page (granule 1000).
        fn page(granule: u64, body: &[u8]) -> Vec<u8> {
            let mut page = b"OggS\0\0".to_vec();
            page.extend_from_slice(&granule.to_le_bytes());
            page.extend_from_slice(&[0; 12]);
            page.push(1);
            page.push(body.len() as u8);
            page.extend_from_slice(body);
            page
        }
        let mut file = page(0, b"id");
        file.extend(page(0, b"setup"));
        let header = file.len();
        file.extend(page(1000, b"audio"));
        assert_eq!(ogg_header_len(&file), Some(header));
        assert_eq!(ogg_header_len(&file[..header]), None, "no audio page yet");
        assert_eq!(ogg_header_len(b"RIFF...."), None);
        assert_eq!(ogg_page_start(&file[3..]), Some(page(0, b"id").len() - 3));
        assert_eq!(ogg_page_start(b"no pages here"), None);
    }
}
