//! Ingest of real recordings in every accepted format. WAV comes from the built-in synth; the
//! other formats are encoded from it with ffmpeg (installed by `scripts/setup`). The renditions
//! are checked by decoding them back (symphonia) and, where present, with ffprobe.

use std::path::Path;
use std::process::Command;

use origin::ingest::{self, IngestLimits, Transcoded};
use origin::synth;
use protocol::Quality;

const SECONDS: f64 = 3.0;

fn have(tool: &str) -> bool {
    let present = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success());
    // In CI the tools are installed by scripts/setup; a missing tool there is a failure, not a skip.
    assert!(
        present || std::env::var_os("CI").is_none(),
        "{tool} is required in CI (scripts/setup installs it)"
    );
    present
}

fn encode_with_ffmpeg(wav: &[u8], extension: &str, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let output = dir.path().join(format!("out.{extension}"));
    std::fs::write(&input, wav).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&input)
        .args(args)
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg failed for {extension}");
    std::fs::read(output).unwrap()
}

/// Decodes an encoded rendition back to frames.
fn decoded_frames(file: &[u8]) -> u64 {
    ingest::decoded_frames(file).unwrap().0
}

fn check(transcoded: &Transcoded, expected_rate: u32, expected_channels: u8) {
    assert_eq!(transcoded.sample_rate_hz, expected_rate);
    assert_eq!(transcoded.channels, expected_channels);
    let expected_ms = (SECONDS * 1000.0) as i64;
    // Lossy source formats add encoder padding; 100 ms covers every codec here.
    assert!(
        (transcoded.duration_ms as i64 - expected_ms).abs() <= 100,
        "duration {} ms",
        transcoded.duration_ms
    );
    assert!(transcoded.loudness_lufs.is_finite() && transcoded.loudness_lufs < 0.0);
    assert!(transcoded.gain_db.is_finite());
    let qualities: Vec<Quality> = transcoded.renditions.iter().map(|r| r.quality).collect();
    assert_eq!(
        qualities,
        vec![Quality::Low, Quality::Normal, Quality::High]
    );
    let sizes: Vec<u64> = transcoded.renditions.iter().map(|r| r.file.len()).collect();
    assert!(
        sizes[0] < sizes[1] && sizes[1] < sizes[2],
        "ladder sizes {sizes:?}"
    );
    for rendition in &transcoded.renditions {
        let frames = decoded_frames(&rendition.file.to_vec().unwrap());
        let ms = frames * 1000 / u64::from(expected_rate);
        assert!(
            (ms as i64 - transcoded.duration_ms as i64).abs() <= 50,
            "{:?} decodes to {ms} ms",
            rendition.quality
        );
    }
    if have("ffprobe") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("high.ogg");
        std::fs::write(&path, transcoded.renditions[2].file.to_vec().unwrap()).unwrap();
        assert_eq!(ffprobe_codec(&path), "vorbis");
    }
}

fn ffprobe_codec(path: &Path) -> String {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Pure tones (ffmpeg's `sine` source, 16-bit): libvorbis's VBR sizes are not monotonic in
/// the quality setting on these (a 440 Hz mono tone costs 208 KB at q0.2 and 82 KB at q0.5
/// for 40 s), so ingest checks the ladder and re-encodes; every ladder comes out ordered.
#[test]
fn pure_tones_give_ordered_ladders() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (source, channels) in [
        ("sine=frequency=440:duration=20:sample_rate=44100", "1"),
        ("sine=frequency=3000:duration=20:sample_rate=48000", "2"),
        ("sine=frequency=8000:duration=20:sample_rate=32000", "2"),
        ("anullsrc=r=44100:cl=stereo:d=5", "2"),
    ] {
        let path = dir.path().join("tone.wav");
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", source])
            .args(["-ac", channels])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg {source}");
        let transcoded = ingest::transcode(
            std::fs::read(&path).unwrap(),
            Some("wav"),
            7,
            &IngestLimits::default(),
        )
        .unwrap();
        let ladder: Vec<(Quality, u64, f32)> = transcoded
            .renditions
            .iter()
            .map(|r| (r.quality, r.file.len(), r.vbr_quality))
            .collect();
        assert_eq!(
            ladder.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![Quality::Low, Quality::Normal, Quality::High],
            "{source}"
        );
        assert!(
            ladder[0].1 < ladder[1].1 && ladder[1].1 < ladder[2].1,
            "{source}: {ladder:?}"
        );
        for rendition in &transcoded.renditions {
            let frames = decoded_frames(&rendition.file.to_vec().unwrap());
            let ms = frames * 1000 / u64::from(transcoded.sample_rate_hz);
            assert!((ms as i64 - transcoded.duration_ms as i64).abs() <= 50);
        }
    }
}

#[test]
fn wav_at_44k_stereo() {
    let wav = synth::wav(1, SECONDS, 44_100, 2);
    check(
        &ingest::transcode(wav, Some("wav"), 7, &IngestLimits::default()).unwrap(),
        44_100,
        2,
    );
}

#[test]
fn wav_at_96k_is_resampled() {
    let wav = synth::wav(2, SECONDS, 96_000, 2);
    let transcoded = ingest::transcode(wav, Some("wav"), 7, &IngestLimits::default()).unwrap();
    assert_eq!(transcoded.source_sample_rate_hz, 96_000);
    check(&transcoded, 44_100, 2);
}

#[test]
fn mono_22k_and_six_channel_48k() {
    let mono = synth::wav(3, SECONDS, 22_050, 1);
    check(
        &ingest::transcode(mono, Some("wav"), 7, &IngestLimits::default()).unwrap(),
        44_100,
        1,
    );
    let surround = synth::wav(4, SECONDS, 48_000, 6);
    check(
        &ingest::transcode(surround, Some("wav"), 7, &IngestLimits::default()).unwrap(),
        48_000,
        2,
    );
}

#[test]
fn flac_mp3_aac_and_ogg_vorbis() {
    if !have("ffmpeg") {
        eprintln!("ffmpeg not installed: run scripts/setup; skipping the ffmpeg-made formats");
        return;
    }
    let wav = synth::wav(5, SECONDS, 44_100, 2);
    let cases: [(&str, &[&str]); 4] = [
        ("flac", &["-c:a", "flac"]),
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "192k"]),
        ("m4a", &["-c:a", "aac", "-b:a", "192k"]),
        ("ogg", &["-c:a", "libvorbis", "-q:a", "5"]),
    ];
    for (extension, args) in cases {
        let file = encode_with_ffmpeg(&wav, extension, args);
        // Detection must not depend on the extension hint.
        let transcoded = ingest::transcode(file, None, 7, &IngestLimits::default())
            .unwrap_or_else(|error| panic!("{extension}: {error}"));
        check(&transcoded, 44_100, 2);
    }
}

#[test]
fn ogg_opus_mono_and_stereo() {
    if !have("ffmpeg") {
        return;
    }
    for channels in [2u16, 1] {
        let wav = synth::wav(6, SECONDS, 48_000, channels);
        let opus = encode_with_ffmpeg(&wav, "opus", &["-c:a", "libopus", "-b:a", "96k"]);
        let transcoded = ingest::transcode(opus, None, 7, &IngestLimits::default())
            .unwrap_or_else(|error| panic!("opus {channels} ch: {error}"));
        check(&transcoded, 48_000, channels as u8);
    }
}

#[test]
fn bad_input_is_refused_with_stable_codes() {
    let limits = IngestLimits::default();
    let wav = synth::wav(7, SECONDS, 44_100, 2);
    // Truncated mid-file: the container promises more data than there is.
    let truncated = wav[..wav.len() / 2].to_vec();
    let error = ingest::transcode(truncated, Some("wav"), 7, &limits).unwrap_err();
    assert_eq!(error.code(), "decode_failed", "{error}");
    // Header only: no samples.
    let error = ingest::transcode(wav[..44].to_vec(), Some("wav"), 7, &limits).unwrap_err();
    assert!(
        matches!(error.code(), "empty_audio" | "not_audio"),
        "{error}"
    );
    // Over the duration cap.
    let short = IngestLimits {
        duration_ms_max: 1000,
        ..IngestLimits::default()
    };
    let error = ingest::transcode(wav.clone(), Some("wav"), 7, &short).unwrap_err();
    assert_eq!(error.code(), "audio_too_long");
    // Text that merely claims to be WAV.
    let error = ingest::transcode(
        b"RIFF\x10\0\0\0WAVEjunkjunk".to_vec(),
        Some("wav"),
        7,
        &limits,
    )
    .unwrap_err();
    assert!(error.is_input_error());
}

#[test]
fn a_decoder_error_mid_file_fails_the_whole_ingest() {
    if !have("ffmpeg") {
        return;
    }
    let wav = synth::wav(8, SECONDS, 44_100, 2);
    for (extension, args) in [
        ("flac", &["-c:a", "flac"][..]),
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "192k"][..]),
    ] {
        let mut file = encode_with_ffmpeg(&wav, extension, args);
        // Scramble a stretch in the middle of the stream.
        let middle = file.len() / 2;
        for (offset, byte) in file[middle..middle + 2000].iter_mut().enumerate() {
            *byte ^= 0x5A ^ (offset as u8);
        }
        let error = ingest::transcode(file, None, 7, &IngestLimits::default())
            .err()
            .unwrap_or_else(|| panic!("{extension}: a damaged file was ingested"));
        assert_eq!(error.code(), "decode_failed", "{extension}: {error}");
    }
}

#[test]
fn renditions_spooled_to_files_match_renditions_in_memory() {
    let wav = origin::synth::wav(3, 4.0, 44_100, 2);
    let in_memory =
        ingest::transcode(wav.clone(), Some("wav"), 7, &IngestLimits::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spooled_limits = IngestLimits {
        spool_dir: Some(dir.path().to_path_buf()),
        ..IngestLimits::default()
    };
    let spooled = ingest::transcode(wav, Some("wav"), 7, &spooled_limits).unwrap();
    for (memory, file) in in_memory.renditions.iter().zip(&spooled.renditions) {
        assert!(matches!(file.file, ingest::EncodedFile::Spooled { .. }));
        assert_eq!(memory.file.len(), file.file.len());
        assert_eq!(memory.file.to_vec().unwrap(), file.file.to_vec().unwrap());
        // Read a piece at a time, as sealing does: the pieces make up the whole file.
        let (mut pieces, mut piece, mut index) = (Vec::new(), Vec::new(), 0);
        while file.file.read_piece(index, 1000, &mut piece).unwrap() {
            pieces.extend_from_slice(&piece);
            index += 1;
        }
        assert_eq!(pieces, memory.file.to_vec().unwrap());
    }
    // The spool files are unlinked: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
