//! Ingest: any common audio file in, three Ogg Vorbis renditions and a loudness measurement out.
//!
//! One streaming pass, so memory stays bounded by the encoded output rather than the decoded
//! PCM: symphonia decodes packet by packet (FLAC, WAV, AIFF, MP3, Ogg Vorbis, AAC/ALAC in MP4,
//! CAF, MKV), and Ogg Opus goes through the pure-Rust `opus-rs` decoder; more than two channels are folded to stereo; sample rates other than 44.1 and
//! 48 kHz are resampled to 44.1 kHz (rubato, FFT); EBU R128 integrated loudness and sample peak
//! are measured (ebur128) on what is encoded, and the tempo ([`crate::features`]); three libvorbis encoders (aoTuV, built from
//! bundled C sources by `vorbis_rs`) produce the low / normal / high ladder in VBR mode.
//!
//! A decoder error anywhere in the file fails the whole ingest: a track is either complete or
//! not ingested.

use std::io::Cursor;
use std::num::{NonZeroU8, NonZeroU32};

use protocol::{Codec, Quality};
use rubato::{FftFixedInOut, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoder, VorbisEncoderBuilder};

/// The encoding ladder: quality, nominal bitrate, and the Vorbis VBR quality that gives that
/// bitrate on typical 44.1 kHz stereo music (libvorbis q2 ≈ 96, q5 ≈ 160, q9 ≈ 320 kbps).
/// VBR rather than ABR: it works for every channel count and sample rate, and simple material
/// costs fewer bits instead of padding to a target.
pub const LADDER: [(Quality, u32, f32); 3] = [
    (Quality::Low, 96_000, 0.2),
    (Quality::Normal, 160_000, 0.5),
    (Quality::High, 320_000, 0.9),
];
/// Quality settings the second pass tries for each rung, when the first pass's sizes are not
/// strictly increasing (each rung's own setting from [`LADDER`] is reused from the first pass).
pub const LADDER_CANDIDATES: [&[f32]; 3] = [&[0.1, 0.0, -0.1], &[0.4, 0.6, 0.3, 0.7], &[1.0, 0.8]];
/// Loudness every track is normalised to on playback (the level Spotify uses).
pub const TARGET_LOUDNESS_LUFS: f64 = -14.0;
/// Highest sample peak normalisation may push a track to.
pub const PEAK_CEILING_DBFS: f64 = -1.0;
/// Frames handed to the encoders and resampler at a time.
const BLOCK_FRAMES: usize = 4096;

/// Bounds on one ingest.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Longest accepted input, in milliseconds of audio.
    pub duration_ms_max: u64,
    /// Where encoded renditions are written as they grow (anonymous temporary files, gone
    /// when dropped), so an ingest holds no encoded ladder in memory. `None`: in memory.
    pub spool_dir: Option<std::path::PathBuf>,
}

impl Default for IngestLimits {
    fn default() -> Self {
        // Two hours: at 320 kbps well under a manifest's 512 MiB.
        Self {
            duration_ms_max: 2 * 3600 * 1000,
            spool_dir: None,
        }
    }
}

/// An encoded rendition's bytes: in memory, or in an anonymous temporary file.
#[derive(Debug, Clone)]
pub enum EncodedFile {
    /// Held in memory.
    Memory(Vec<u8>),
    /// Written to an unlinked temporary file of `len` bytes.
    Spooled {
        /// The file, read by position (never by a shared cursor).
        file: std::sync::Arc<std::fs::File>,
        /// Its length.
        len: u64,
    },
}

impl EncodedFile {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Memory(bytes) => bytes.len() as u64,
            Self::Spooled { len, .. } => *len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads piece `index` of `size` bytes (the last may be shorter) into `buffer`, replacing
    /// its contents; false past the end.
    pub fn read_piece(
        &self,
        index: u64,
        size: usize,
        buffer: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let start = index.saturating_mul(size as u64);
        if start >= self.len() {
            return Ok(false);
        }
        let take = (self.len() - start).min(size as u64) as usize;
        buffer.clear();
        match self {
            Self::Memory(bytes) => {
                buffer.extend_from_slice(&bytes[start as usize..start as usize + take]);
            }
            Self::Spooled { file, .. } => {
                use std::os::unix::fs::FileExt;
                buffer.resize(take, 0);
                file.read_exact_at(buffer, start)?;
            }
        }
        Ok(true)
    }

    /// All of it, in memory.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Memory(bytes) => Ok(bytes.clone()),
            Self::Spooled { .. } => {
                let mut all = Vec::with_capacity(self.len() as usize);
                let mut piece = Vec::new();
                let mut index = 0;
                while self.read_piece(index, 1 << 20, &mut piece)? {
                    all.extend_from_slice(&piece);
                    index += 1;
                }
                Ok(all)
            }
        }
    }
}

/// Where an encoder writes: memory, or a temporary file through a buffer.
enum Sink {
    Memory(Vec<u8>),
    File {
        writer: std::io::BufWriter<std::fs::File>,
        len: u64,
    },
}

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Memory(memory) => memory.write(bytes),
            Self::File { writer, len } => {
                let written = writer.write(bytes)?;
                *len += written as u64;
                Ok(written)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::File { writer, .. } => writer.flush(),
        }
    }
}

impl Sink {
    fn new(spool_dir: Option<&std::path::Path>) -> Result<Self, IngestError> {
        match spool_dir {
            None => Ok(Self::Memory(Vec::new())),
            Some(dir) => {
                let file = tempfile::tempfile_in(dir).map_err(|error| {
                    IngestError::Encode(format!(
                        "spooling a rendition in {}: {error}",
                        dir.display()
                    ))
                })?;
                Ok(Self::File {
                    writer: std::io::BufWriter::with_capacity(64 * 1024, file),
                    len: 0,
                })
            }
        }
    }

    fn finish(self) -> Result<EncodedFile, IngestError> {
        match self {
            Self::Memory(bytes) => Ok(EncodedFile::Memory(bytes)),
            Self::File { writer, len } => {
                let file = writer.into_inner().map_err(|error| {
                    IngestError::Encode(format!("spooling a rendition: {}", error.error()))
                })?;
                Ok(EncodedFile::Spooled {
                    file: std::sync::Arc::new(file),
                    len,
                })
            }
        }
    }
}

/// Why a file could not be ingested. Each has a stable API code ([`IngestError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The bytes are not a container or stream format we recognise.
    #[error("not a recognised audio file: {0}")]
    NotAudio(String),
    /// The file holds no audio track.
    #[error("the file contains no audio track")]
    NoAudioTrack,
    /// The audio codec is recognised but not supported.
    #[error("unsupported audio codec: {0}")]
    UnsupportedCodec(String),
    /// The audio could not be decoded at some point.
    #[error("decoding failed at {at_ms} ms: {message}")]
    Decode {
        /// Position reached before the failure.
        at_ms: u64,
        /// What the decoder said.
        message: String,
    },
    /// The file decodes to no audio at all.
    #[error("the file contains no audio samples")]
    Empty,
    /// The audio is longer than allowed.
    #[error("the audio is longer than the {max_ms} ms limit")]
    TooLong {
        /// The limit.
        max_ms: u64,
    },
    /// Sample rate or channel layout outside what can be encoded.
    #[error("unsupported audio format: {0}")]
    Format(String),
    /// The encoder failed (a bug or resource problem, not the input's fault).
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl IngestError {
    /// Stable snake_case code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::NotAudio(_) | IngestError::NoAudioTrack => "not_audio",
            IngestError::UnsupportedCodec(_) => "unsupported_codec",
            IngestError::Decode { .. } => "decode_failed",
            IngestError::Empty => "empty_audio",
            IngestError::TooLong { .. } => "audio_too_long",
            IngestError::Format(_) => "unsupported_format",
            IngestError::Encode(_) => "encode_failed",
        }
    }

    /// True when the input is at fault (a 4xx), false for our own failures (a 5xx).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, IngestError::Encode(_))
    }
}

/// One encoded rendition: a complete Ogg Vorbis file.
#[derive(Debug, Clone)]
pub struct EncodedRendition {
    /// Its quality tier.
    pub quality: Quality,
    /// Its codec.
    pub codec: Codec,
    /// Target average bitrate.
    pub bitrate_bps: u32,
    /// The libvorbis VBR quality it was encoded at (the ladder's own, or a neighbour the
    /// ordering check chose).
    pub vbr_quality: f32,
    /// The encoded file.
    pub file: EncodedFile,
}

/// The result of transcoding one input.
#[derive(Debug, Clone)]
pub struct Transcoded {
    /// Duration of the encoded audio.
    pub duration_ms: u64,
    /// Sample rate of the renditions.
    pub sample_rate_hz: u32,
    /// Channels of the renditions (1 or 2).
    pub channels: u8,
    /// EBU R128 integrated loudness of the track.
    pub loudness_lufs: f64,
    /// Tempo ([`crate::features::TempoMeter`]), if the audio has a clear pulse.
    pub tempo_bpm: Option<f32>,
    /// Highest sample peak, in dBFS.
    pub peak_dbfs: f64,
    /// Gain a player applies to reach [`TARGET_LOUDNESS_LUFS`] without the peak exceeding
    /// [`PEAK_CEILING_DBFS`].
    pub gain_db: f64,
    /// Sample rate of the input.
    pub source_sample_rate_hz: u32,
    /// The renditions, lowest quality first.
    pub renditions: Vec<EncodedRendition>,
}

/// Transcodes `input` into the rendition ladder. `extension` (e.g. "flac") helps format
/// detection; `stream_serial` seeds the Ogg stream serials so output is reproducible.
pub fn transcode(
    input: Vec<u8>,
    extension: Option<&str>,
    stream_serial: i32,
    limits: &IngestLimits,
) -> Result<Transcoded, IngestError> {
    let input: std::sync::Arc<[u8]> = input.into();
    transcode_from(
        &mut || Ok(Box::new(Cursor::new(input.clone()))),
        extension,
        stream_serial,
        limits,
    )
}

/// Opens the input from its start: [`transcode_from`] reads it once, or twice when the
/// ladder needs its ordering repaired.
pub type OpenSource<'a> =
    dyn FnMut() -> std::io::Result<Box<dyn symphonia::core::io::MediaSource>> + 'a;

/// One encoder of a pass: which rung of [`LADDER`] it is for, and its VBR quality.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    rung: usize,
    vbr_quality: f32,
}

/// [`transcode`] reading from any seekable source (an upload spooled to a file, so the
/// input is never held in memory whole).
pub fn transcode_from(
    open: &mut OpenSource<'_>,
    extension: Option<&str>,
    stream_serial: i32,
    limits: &IngestLimits,
) -> Result<Transcoded, IngestError> {
    let opened = |open: &mut OpenSource<'_>| {
        open().map_err(|error| IngestError::Encode(format!("reading the input: {error}")))
    };
    let ladder: Vec<Encoding> = LADDER
        .iter()
        .enumerate()
        .map(|(rung, &(_, _, vbr_quality))| Encoding { rung, vbr_quality })
        .collect();
    let mut transcoded = transcode_pass(opened(open)?, extension, stream_serial, limits, &ladder)?;
    if sizes_increase(&transcoded.renditions) {
        return Ok(transcoded);
    }
    let neighbours: Vec<Encoding> = LADDER_CANDIDATES
        .iter()
        .enumerate()
        .flat_map(|(rung, qualities)| {
            qualities
                .iter()
                .map(move |&vbr_quality| Encoding { rung, vbr_quality })
        })
        .collect();
    let second = transcode_pass(opened(open)?, extension, stream_serial, limits, &neighbours)?;
    let first = std::mem::take(&mut transcoded.renditions);
    let mut candidates = first.clone();
    candidates.extend(second.renditions);
    transcoded.renditions = match ordered_ladder(candidates) {
        Some(ladder) => ladder,
        None => {
            // No input tried has come here; the track is still better published with the
            // ladder's own settings than refused.
            let sizes: Vec<u64> = first.iter().map(|rendition| rendition.file.len()).collect();
            tracing::warn!(
                ?sizes,
                "no ordered ladder among the candidates; keeping the first"
            );
            first
        }
    };
    Ok(transcoded)
}

/// Whether each rendition is strictly larger than the one below it.
fn sizes_increase(renditions: &[EncodedRendition]) -> bool {
    renditions
        .windows(2)
        .all(|pair| pair[0].file.len() < pair[1].file.len())
}

/// Picks one candidate per rung of [`LADDER`] so that sizes strictly increase, nearest the
/// ladder's own qualities (least total distance; among equals, the first found, which prefers
/// each rung's own setting). `None` if no choice is ordered.
fn ordered_ladder(candidates: Vec<EncodedRendition>) -> Option<Vec<EncodedRendition>> {
    let rungs: Vec<Vec<usize>> = LADDER
        .iter()
        .map(|&(quality, _, _)| {
            (0..candidates.len())
                .filter(|&index| candidates[index].quality == quality)
                .collect()
        })
        .collect();
    fn search(
        candidates: &[EncodedRendition],
        rungs: &[Vec<usize>],
        chosen: &mut Vec<usize>,
        best: &mut Option<(f32, Vec<usize>)>,
    ) {
        let rung = chosen.len();
        if rung == rungs.len() {
            let distance: f32 = chosen
                .iter()
                .enumerate()
                .map(|(rung, &index)| (candidates[index].vbr_quality - LADDER[rung].2).abs())
                .sum();
            if best
                .as_ref()
                .is_none_or(|(least, _)| distance < *least - 1e-6)
            {
                *best = Some((distance, chosen.clone()));
            }
            return;
        }
        for &index in &rungs[rung] {
            let above_previous = chosen
                .last()
                .is_none_or(|&below| candidates[below].file.len() < candidates[index].file.len());
            if above_previous {
                chosen.push(index);
                search(candidates, rungs, chosen, best);
                chosen.pop();
            }
        }
    }
    let mut best = None;
    search(&candidates, &rungs, &mut Vec::new(), &mut best);
    let (_, chosen) = best?;
    let mut slots: Vec<Option<EncodedRendition>> = candidates.into_iter().map(Some).collect();
    chosen.iter().map(|&index| slots[index].take()).collect()
}

/// One decode of the source through encoders `encodings`.
fn transcode_pass(
    input: Box<dyn symphonia::core::io::MediaSource>,
    extension: Option<&str>,
    stream_serial: i32,
    limits: &IngestLimits,
    encodings: &[Encoding],
) -> Result<Transcoded, IngestError> {
    let source = MediaSourceStream::new(input, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(extension) = extension {
        hint.with_extension(extension);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|error| IngestError::NotAudio(error.to_string()))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(IngestError::NoAudioTrack)?;
    let track_id = track.id;
    // The container's own length, where it states one (FLAC STREAMINFO, WAV data size, MP3
    // Xing/Info, MP4, Ogg granules): a decoder that skips a damaged stretch must not pass
    // unnoticed.
    let mut declared_frames = track.codec_params.n_frames;
    // symphonia demuxes Ogg Opus but has no Opus decoder: a pure-Rust one decodes it.
    let mut opus = if track.codec_params.codec == CODEC_TYPE_OPUS {
        let state = OpusState::new(&track.codec_params)?;
        // Ogg granule positions count the encoder's pre-skip, which is not audio.
        declared_frames = declared_frames.map(|frames| frames.saturating_sub(state.skip as u64));
        Some(state)
    } else {
        None
    };
    let mut decoder = match opus {
        Some(_) => None,
        None => Some(
            symphonia::default::get_codecs()
                .make(&track.codec_params, &DecoderOptions::default())
                .map_err(|error| IngestError::UnsupportedCodec(error.to_string()))?,
        ),
    };

    let mut pipeline: Option<Pipeline> = None;
    let mut samples: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match next_packet(format.as_mut()) {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(error) => return Err(decode_error(&pipeline, error)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let Some(decoder) = decoder.as_mut() else {
            let opus = opus.as_mut().expect("no symphonia decoder means Opus");
            let channels = opus.channels;
            let frames = opus
                .decode(&packet.data)
                .map_err(|message| IngestError::Decode {
                    at_ms: pipeline.as_ref().map_or(0, Pipeline::position_ms),
                    message,
                })?;
            if frames.is_empty() {
                continue;
            }
            let pipeline = match &mut pipeline {
                Some(pipeline) => pipeline,
                None => pipeline.insert(Pipeline::new(
                    48_000,
                    channels,
                    stream_serial,
                    limits,
                    encodings,
                )?),
            };
            pipeline.push_interleaved(frames)?;
            continue;
        };
        let decoded = decoder
            .decode(&packet)
            .map_err(|error| decode_error(&pipeline, error))?;
        let spec = *decoded.spec();
        if decoded.frames() == 0 {
            continue;
        }
        let pipeline = match &mut pipeline {
            Some(pipeline) => pipeline,
            None => pipeline.insert(Pipeline::new(
                spec.rate,
                spec.channels.count(),
                stream_serial,
                limits,
                encodings,
            )?),
        };
        if spec.rate != pipeline.source_rate || spec.channels.count() != pipeline.source_channels {
            return Err(IngestError::Format(
                "sample rate or channels change mid-stream".into(),
            ));
        }
        let buffer = match &mut samples {
            Some(buffer) if buffer.capacity() >= decoded.capacity() * spec.channels.count() => {
                buffer
            }
            _ => samples.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        pipeline.push_interleaved(buffer.samples())?;
    }
    let pipeline = pipeline.ok_or(IngestError::Empty)?;
    if let Some(declared) = declared_frames {
        // Encoder delay and padding differ by format: allow 50 ms and 0.5%.
        let tolerance = u64::from(pipeline.source_rate) / 20 + declared / 200;
        if pipeline.source_frames + tolerance < declared {
            let rate = u64::from(pipeline.source_rate);
            return Err(IngestError::Decode {
                at_ms: pipeline.source_frames * 1000 / rate,
                message: format!(
                    "the stream is damaged or truncated: decoded {} ms of the {} ms the file declares",
                    pipeline.source_frames * 1000 / rate,
                    declared * 1000 / rate
                ),
            });
        }
    }
    pipeline.finish()
}

/// The next packet, or `None` at the end of the stream (end of data, or a new chained stream,
/// which ingest does not follow).
fn next_packet(
    format: &mut dyn symphonia::core::formats::FormatReader,
) -> Result<Option<symphonia::core::formats::Packet>, SymphoniaError> {
    match format.next_packet() {
        Ok(packet) => Ok(Some(packet)),
        Err(SymphoniaError::IoError(error))
            if error.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(None)
        }
        Err(SymphoniaError::ResetRequired) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Longest Opus packet: 120 ms at 48 kHz.
const OPUS_FRAME_FRAMES_MAX: usize = 5760;

/// Decoding state of an Ogg Opus stream (always 48 kHz; mono or stereo).
struct OpusState {
    decoder: opus_rs::OpusDecoder,
    channels: usize,
    /// Leading decoded frames still to drop (the encoder's pre-skip).
    skip: usize,
    pcm: Vec<f32>,
}

impl OpusState {
    fn new(params: &symphonia::core::codecs::CodecParameters) -> Result<Self, IngestError> {
        let channels = params.channels.map_or(0, |channels| channels.count());
        if !(1..=2).contains(&channels) {
            return Err(IngestError::Format(format!(
                "Opus with {channels} channels (mono and stereo are supported)"
            )));
        }
        let decoder = opus_rs::OpusDecoder::new(48_000, channels)
            .map_err(|error| IngestError::Format(error.to_string()))?;
        Ok(Self {
            decoder,
            channels,
            skip: params.delay.unwrap_or(0) as usize,
            pcm: vec![0.0; OPUS_FRAME_FRAMES_MAX * channels],
        })
    }

    /// Decodes one packet; returns its interleaved frames after the pre-skip.
    fn decode(&mut self, packet: &[u8]) -> Result<&[f32], String> {
        // A third-party decoder must not take the process down on a hostile packet: a panic
        // inside it fails this ingest like any decode error (the stream is abandoned).
        let (decoder, pcm) = (&mut self.decoder, &mut self.pcm);
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode(packet, OPUS_FRAME_FRAMES_MAX, pcm)
        }))
        .map_err(|_| "the Opus decoder failed on a malformed packet".to_string())?;
        let frames = decoded.map_err(str::to_string)?.min(OPUS_FRAME_FRAMES_MAX);
        let skipped = self.skip.min(frames);
        self.skip -= skipped;
        Ok(&self.pcm[skipped * self.channels..frames * self.channels])
    }
}

/// Decodes a whole file and counts its frames: `(frames, sample rate)`. For checking
/// renditions (tests, players) and as the decode-only baseline of `chorus bench ingest`.
pub fn decoded_frames(file: &[u8]) -> Result<(u64, u32), IngestError> {
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(file.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let mut format = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|error| IngestError::NotAudio(error.to_string()))?
        .format;
    let track = format
        .default_track()
        .ok_or(IngestError::NoAudioTrack)?
        .clone();
    let rate = track
        .codec_params
        .sample_rate
        .ok_or_else(|| IngestError::Format("no sample rate".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|error| IngestError::UnsupportedCodec(error.to_string()))?;
    let mut frames = 0;
    loop {
        let packet = match next_packet(format.as_mut()) {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(error) => {
                return Err(IngestError::Decode {
                    at_ms: frames * 1000 / u64::from(rate),
                    message: error.to_string(),
                });
            }
        };
        let decoded = decoder
            .decode(&packet)
            .map_err(|error| IngestError::Decode {
                at_ms: frames * 1000 / u64::from(rate),
                message: error.to_string(),
            })?;
        frames += decoded.frames() as u64;
    }
    Ok((frames, rate))
}

fn decode_error(pipeline: &Option<Pipeline>, error: SymphoniaError) -> IngestError {
    let at_ms = pipeline.as_ref().map_or(0, Pipeline::position_ms);
    IngestError::Decode {
        at_ms,
        message: error.to_string(),
    }
}

/// Everything after the decoder: fold, resample, measure, encode.
struct Pipeline {
    source_rate: u32,
    source_channels: usize,
    output_rate: u32,
    output_channels: usize,
    /// Output-rate frames not yet passed to the resampler (or encoders, without one).
    pending: Vec<Vec<f32>>,
    resampler: Option<Resampling>,
    meter: ebur128::EbuR128,
    tempo: crate::features::TempoMeter,
    encoders: Vec<(Encoding, VorbisEncoder<Sink>)>,
    frames_encoded: u64,
    frames_max: u64,
    /// Frames received from the decoder, at the source rate.
    source_frames: u64,
}

struct Resampling {
    resampler: FftFixedInOut<f32>,
    /// Output frames still to drop at the start (the resampler's delay).
    delay_remaining: usize,
    frames_in: u64,
}

impl Pipeline {
    fn new(
        rate: u32,
        channels: usize,
        stream_serial: i32,
        limits: &IngestLimits,
        encodings: &[Encoding],
    ) -> Result<Self, IngestError> {
        if !(8_000..=384_000).contains(&rate) {
            return Err(IngestError::Format(format!("sample rate {rate} Hz")));
        }
        if channels == 0 || channels > 32 {
            return Err(IngestError::Format(format!("{channels} channels")));
        }
        let output_channels = channels.min(2);
        let output_rate = if rate == 44_100 || rate == 48_000 {
            rate
        } else {
            44_100
        };
        let resampler = if output_rate == rate {
            None
        } else {
            let resampler =
                FftFixedInOut::new(rate as usize, output_rate as usize, 1024, output_channels)
                    .map_err(|error| IngestError::Format(error.to_string()))?;
            Some(Resampling {
                delay_remaining: resampler.output_delay(),
                resampler,
                frames_in: 0,
            })
        };
        let meter = ebur128::EbuR128::new(
            output_channels as u32,
            output_rate,
            ebur128::Mode::I | ebur128::Mode::SAMPLE_PEAK,
        )
        .map_err(|error| IngestError::Encode(error.to_string()))?;
        let mut encoders = Vec::with_capacity(encodings.len());
        for &encoding in encodings {
            let encoder = VorbisEncoderBuilder::new_with_serial(
                NonZeroU32::new(output_rate).expect("checked above"),
                NonZeroU8::new(output_channels as u8).expect("one or two channels"),
                Sink::new(limits.spool_dir.as_deref())?,
                stream_serial.wrapping_add(encoding.rung as i32),
            )
            .bitrate_management_strategy(VorbisBitrateManagementStrategy::QualityVbr {
                target_quality: encoding.vbr_quality,
            })
            .build()
            .map_err(|error| IngestError::Encode(error.to_string()))?;
            encoders.push((encoding, encoder));
        }
        Ok(Self {
            source_rate: rate,
            source_channels: channels,
            output_rate,
            output_channels,
            pending: vec![Vec::new(); output_channels],
            resampler,
            meter,
            tempo: crate::features::TempoMeter::new(output_rate),
            encoders,
            frames_encoded: 0,
            source_frames: 0,
            frames_max: limits
                .duration_ms_max
                .saturating_mul(u64::from(output_rate))
                / 1000,
        })
    }

    fn position_ms(&self) -> u64 {
        self.frames_encoded * 1000 / u64::from(self.output_rate)
    }

    /// Folds interleaved source frames into the output channel layout and moves them on.
    fn push_interleaved(&mut self, interleaved: &[f32]) -> Result<(), IngestError> {
        let channels = self.source_channels;
        self.source_frames += (interleaved.len() / channels) as u64;
        for frame in interleaved.chunks_exact(channels) {
            match (channels, self.output_channels) {
                (1, _) => self.pending[0].push(frame[0]),
                (2, _) => {
                    self.pending[0].push(frame[0]);
                    self.pending[1].push(frame[1]);
                }
                _ => {
                    let (left, right) = fold_to_stereo(frame);
                    self.pending[0].push(left);
                    self.pending[1].push(right);
                }
            }
        }
        self.drain(false)
    }

    /// Passes whole blocks on; with `flush`, everything left.
    fn drain(&mut self, flush: bool) -> Result<(), IngestError> {
        match &mut self.resampler {
            None => {
                while self.pending[0].len() >= BLOCK_FRAMES
                    || (flush && !self.pending[0].is_empty())
                {
                    let take = self.pending[0].len().min(BLOCK_FRAMES);
                    let block: Vec<Vec<f32>> = self
                        .pending
                        .iter_mut()
                        .map(|channel| channel.drain(..take).collect())
                        .collect();
                    self.encode(&block)?;
                }
            }
            Some(_) => {
                loop {
                    let resampling = self.resampler.as_mut().expect("matched Some");
                    let need = resampling.resampler.input_frames_next();
                    let have = self.pending[0].len();
                    if have < need && !(flush && have > 0) {
                        break;
                    }
                    let take = have.min(need);
                    let block: Vec<Vec<f32>> = self
                        .pending
                        .iter_mut()
                        .map(|channel| channel.drain(..take).collect())
                        .collect();
                    resampling.frames_in += take as u64;
                    let output = if take == need {
                        resampling.resampler.process(&block, None)
                    } else {
                        resampling.resampler.process_partial(Some(&block), None)
                    }
                    .map_err(|error| IngestError::Encode(error.to_string()))?;
                    self.emit_resampled(output)?;
                }
                if flush {
                    // Push out what the resampler still holds, then stop at the exact length.
                    let resampling = self.resampler.as_mut().expect("matched Some");
                    let output = resampling
                        .resampler
                        .process_partial(None::<&[Vec<f32>]>, None)
                        .map_err(|error| IngestError::Encode(error.to_string()))?;
                    self.emit_resampled(output)?;
                }
            }
        }
        Ok(())
    }

    /// Drops the resampler's leading delay and anything past the exact output length.
    fn emit_resampled(&mut self, mut output: Vec<Vec<f32>>) -> Result<(), IngestError> {
        let resampling = self
            .resampler
            .as_mut()
            .expect("only called while resampling");
        let skip = resampling.delay_remaining.min(output[0].len());
        resampling.delay_remaining -= skip;
        let expected_total =
            resampling.frames_in * u64::from(self.output_rate) / u64::from(self.source_rate);
        let room = expected_total.saturating_sub(self.frames_encoded) as usize;
        for channel in &mut output {
            channel.drain(..skip);
            channel.truncate(room);
        }
        if output[0].is_empty() {
            return Ok(());
        }
        self.encode(&output)
    }

    fn encode(&mut self, block: &[Vec<f32>]) -> Result<(), IngestError> {
        let frames = block[0].len() as u64;
        if self.frames_encoded + frames > self.frames_max {
            let max_ms = self.frames_max * 1000 / u64::from(self.output_rate);
            return Err(IngestError::TooLong { max_ms });
        }
        let planes: Vec<&[f32]> = block.iter().map(Vec::as_slice).collect();
        self.meter
            .add_frames_planar_f32(&planes)
            .map_err(|error| IngestError::Encode(error.to_string()))?;
        self.tempo.push(&planes);
        for (_, encoder) in &mut self.encoders {
            encoder
                .encode_audio_block(&planes)
                .map_err(|error| IngestError::Encode(error.to_string()))?;
        }
        self.frames_encoded += frames;
        Ok(())
    }

    fn finish(mut self) -> Result<Transcoded, IngestError> {
        self.drain(true)?;
        if self.frames_encoded == 0 {
            return Err(IngestError::Empty);
        }
        let loudness_lufs = self.meter.loudness_global().unwrap_or(f64::NEG_INFINITY);
        let mut peak = 0.0f64;
        for channel in 0..self.output_channels as u32 {
            peak = peak.max(self.meter.sample_peak(channel).unwrap_or(0.0));
        }
        let peak_dbfs = if peak > 0.0 {
            20.0 * peak.log10()
        } else {
            f64::NEG_INFINITY
        };
        let gain_db = normalisation_gain_db(loudness_lufs, peak_dbfs);
        let mut renditions = Vec::with_capacity(self.encoders.len());
        for (encoding, encoder) in self.encoders {
            let file = encoder
                .finish()
                .map_err(|error| IngestError::Encode(error.to_string()))?
                .finish()?;
            let (quality, bitrate_bps, _) = LADDER[encoding.rung];
            renditions.push(EncodedRendition {
                quality,
                codec: Codec::Vorbis,
                bitrate_bps,
                vbr_quality: encoding.vbr_quality,
                file,
            });
        }
        Ok(Transcoded {
            duration_ms: self.frames_encoded * 1000 / u64::from(self.output_rate),
            sample_rate_hz: self.output_rate,
            channels: self.output_channels as u8,
            loudness_lufs,
            tempo_bpm: self.tempo.finish(),
            peak_dbfs,
            gain_db,
            source_sample_rate_hz: self.source_rate,
            renditions,
        })
    }
}

/// Folds a frame of three or more channels (WAVE order: FL FR FC LFE BL BR ...) to stereo.
fn fold_to_stereo(frame: &[f32]) -> (f32, f32) {
    const SIDE: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let at = |index: usize| frame.get(index).copied().unwrap_or(0.0);
    if frame.len() >= 6 {
        // ITU-R BS.775 downmix without the LFE, scaled so a full-scale input cannot clip.
        let scale = 1.0 / (1.0 + 2.0 * SIDE);
        let left = at(0) + SIDE * at(2) + SIDE * at(4);
        let right = at(1) + SIDE * at(2) + SIDE * at(5);
        (left * scale, right * scale)
    } else {
        // Odd channels left, even channels right, averaged.
        let (mut left, mut right, mut lefts, mut rights) = (0.0, 0.0, 0.0f32, 0.0f32);
        for (index, sample) in frame.iter().enumerate() {
            if index % 2 == 0 {
                left += sample;
                lefts += 1.0;
            } else {
                right += sample;
                rights += 1.0;
            }
        }
        (left / lefts.max(1.0), right / rights.max(1.0))
    }
}

/// Gain to reach the target loudness, limited so the peak stays under the ceiling. Silence
/// (no measurable loudness) gets no gain.
pub fn normalisation_gain_db(loudness_lufs: f64, peak_dbfs: f64) -> f64 {
    if !loudness_lufs.is_finite() {
        return 0.0;
    }
    let wanted = TARGET_LOUDNESS_LUFS - loudness_lufs;
    if peak_dbfs.is_finite() {
        wanted.min(PEAK_CEILING_DBFS - peak_dbfs)
    } else {
        wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(quality: Quality, vbr_quality: f32, bytes: usize) -> EncodedRendition {
        EncodedRendition {
            quality,
            codec: Codec::Vorbis,
            bitrate_bps: 0,
            vbr_quality,
            file: EncodedFile::Memory(vec![0; bytes]),
        }
    }

    fn chosen(ladder: Option<Vec<EncodedRendition>>) -> Option<Vec<(f32, u64)>> {
        ladder.map(|ladder| {
            ladder
                .iter()
                .map(|rendition| (rendition.vbr_quality, rendition.file.len()))
                .collect()
        })
    }

    #[test]
    fn the_ladder_keeps_its_own_settings_when_they_are_ordered() {
        let candidates = vec![
            candidate(Quality::Low, 0.2, 100),
            candidate(Quality::Normal, 0.5, 200),
            candidate(Quality::High, 0.9, 300),
            candidate(Quality::Low, 0.1, 90),
            candidate(Quality::Normal, 0.4, 150),
        ];
        assert_eq!(
            chosen(ordered_ladder(candidates)),
            Some(vec![(0.2, 100), (0.5, 200), (0.9, 300)])
        );
    }

    #[test]
    fn an_inverted_ladder_takes_the_nearest_ordered_neighbours() {
        // The measured 440 Hz tone: q0.2 208 KB, q0.5 82 KB.
        let candidates = vec![
            candidate(Quality::Low, 0.2, 208),
            candidate(Quality::Normal, 0.5, 82),
            candidate(Quality::High, 0.9, 259),
            candidate(Quality::Low, 0.1, 194),
            candidate(Quality::Low, 0.0, 149),
            candidate(Quality::Low, -0.1, 90),
            candidate(Quality::Normal, 0.4, 67),
            candidate(Quality::Normal, 0.6, 107),
            candidate(Quality::Normal, 0.3, 108),
            candidate(Quality::Normal, 0.7, 140),
            candidate(Quality::High, 1.0, 300),
            candidate(Quality::High, 0.8, 230),
        ];
        assert_eq!(
            chosen(ordered_ladder(candidates)),
            Some(vec![(-0.1, 90), (0.6, 107), (0.9, 259)])
        );
    }

    #[test]
    fn no_ordered_choice_is_none() {
        let candidates = vec![
            candidate(Quality::Low, 0.2, 100),
            candidate(Quality::Normal, 0.5, 100),
            candidate(Quality::High, 0.9, 100),
        ];
        assert_eq!(chosen(ordered_ladder(candidates)), None);
    }

    #[test]
    fn gain_is_limited_by_the_peak() {
        assert_eq!(normalisation_gain_db(-20.0, -10.0), 6.0);
        assert_eq!(normalisation_gain_db(-20.0, -3.0), 2.0);
        assert_eq!(normalisation_gain_db(-8.0, -0.5), -6.0);
        assert_eq!(
            normalisation_gain_db(f64::NEG_INFINITY, f64::NEG_INFINITY),
            0.0
        );
    }

    #[test]
    fn folding_keeps_full_scale_in_range() {
        let (left, right) = fold_to_stereo(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert!(left <= 1.0 && right <= 1.0 && left > 0.9);
        assert_eq!(fold_to_stereo(&[0.5, -0.5, 0.5]), (0.5, -0.5));
    }

    #[test]
    fn garbage_is_not_audio() {
        let error = transcode(
            b"definitely not audio".to_vec(),
            None,
            1,
            &IngestLimits::default(),
        )
        .unwrap_err();
        assert_eq!(error.code(), "not_audio");
        let error = transcode(Vec::new(), Some("wav"), 1, &IngestLimits::default()).unwrap_err();
        assert_eq!(error.code(), "not_audio");
    }
}
