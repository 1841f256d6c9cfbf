//! A tiny deterministic synthesizer: distinct little pieces of music as WAV files, for tests,
//! benchmarks and sample catalogs. Each seed gives a different key, tempo and melody.

/// Renders `seconds` of a seeded melody (plucked notes over a bass drone) as 16-bit PCM WAV.
pub fn wav(seed: u64, seconds: f64, sample_rate: u32, channels: u16) -> Vec<u8> {
    let frames = (seconds * f64::from(sample_rate)) as usize;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: deterministic and dependency-free.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let root = 110.0 * 2f64.powf((next() % 12) as f64 / 12.0);
    let beat_s = 0.25 + (next() % 4) as f64 * 0.05;
    let scale = [0, 2, 4, 5, 7, 9, 11, 12];
    let notes: Vec<f64> = (0..64)
        .map(|_| root * 2f64.powf((scale[(next() % 8) as usize] + 12) as f64 / 12.0))
        .collect();

    let mut pcm = Vec::with_capacity(frames * usize::from(channels) * 2);
    for frame in 0..frames {
        let t = frame as f64 / f64::from(sample_rate);
        let beat = (t / beat_s) as usize;
        let since = t - beat as f64 * beat_s;
        let note = notes[beat % notes.len()];
        let pluck = (-since * 6.0).exp() * (2.0 * std::f64::consts::PI * note * t).sin();
        let drone = 0.3 * (2.0 * std::f64::consts::PI * root * 0.5 * t).sin();
        let fade = (t.min(seconds - t) * 20.0).clamp(0.0, 1.0);
        let sample = 0.45 * (pluck + drone) * fade;
        for channel in 0..channels {
            // A little stereo movement so channels differ.
            let pan = 1.0 - 0.2 * f64::from(channel % 2) * (t * 0.5).sin().abs();
            let value = (sample * pan * f64::from(i16::MAX)) as i16;
            pcm.extend_from_slice(&value.to_le_bytes());
        }
    }
    wav_container(&pcm, sample_rate, channels)
}

fn wav_container(pcm: &[u8], sample_rate: u32, channels: u16) -> Vec<u8> {
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ_and_sizes_add_up() {
        let a = super::wav(1, 0.5, 8000, 2);
        let b = super::wav(2, 0.5, 8000, 2);
        assert_eq!(a.len(), 44 + 4000 * 2 * 2);
        assert_ne!(a, b);
        assert_eq!(a, super::wav(1, 0.5, 8000, 2));
    }
}
