//! Audio features measured at ingest for content-based recommendations: tempo (beats per
//! minute) from the autocorrelation of an onset-strength envelope. Loudness comes from the
//! EBU R128 meter in [`crate::ingest`].
//!
//! The envelope has one value per 10 ms hop: the rise in log energy from the previous hop
//! (half-wave rectified), so drum hits and note onsets stand out and sustained sound does not.
//! Its autocorrelation peaks at the beat period; lags for 60–200 BPM are searched, weighted
//! towards 120 BPM (a log-Gaussian prior, one octave wide) so a beat is not mistaken for its
//! half or double. Only the first [`TEMPO_SECONDS_MAX`] seconds are analysed.

/// Seconds of audio the tempo is measured on.
pub const TEMPO_SECONDS_MAX: usize = 240;
/// Slowest tempo reported.
pub const BPM_MIN: f32 = 60.0;
/// Fastest tempo reported.
pub const BPM_MAX: f32 = 200.0;
const HOPS_PER_SECOND: usize = 100;

/// Measures tempo from blocks of planar samples.
#[derive(Debug, Clone)]
pub struct TempoMeter {
    hop: usize,
    /// Samples of the current hop summed over channels, squared.
    energy: f64,
    filled: usize,
    previous_log: Option<f64>,
    onsets: Vec<f32>,
}

impl TempoMeter {
    /// A meter for audio at `sample_rate_hz`.
    pub fn new(sample_rate_hz: u32) -> Self {
        Self {
            hop: (sample_rate_hz as usize / HOPS_PER_SECOND).max(1),
            energy: 0.0,
            filled: 0,
            previous_log: None,
            onsets: Vec::new(),
        }
    }

    /// Adds a block of planar samples (one slice per channel, equal lengths).
    pub fn push(&mut self, planes: &[&[f32]]) {
        let Some(first) = planes.first() else {
            return;
        };
        if self.onsets.len() >= TEMPO_SECONDS_MAX * HOPS_PER_SECOND {
            return;
        }
        for at in 0..first.len() {
            let mono: f32 = planes.iter().map(|plane| plane[at]).sum::<f32>();
            self.energy += f64::from(mono * mono);
            self.filled += 1;
            if self.filled == self.hop {
                let log = (self.energy / self.hop as f64 + 1e-10).ln();
                let rise = self
                    .previous_log
                    .map_or(0.0, |previous| (log - previous).max(0.0));
                self.onsets.push(rise as f32);
                self.previous_log = Some(log);
                self.energy = 0.0;
                self.filled = 0;
            }
        }
    }

    /// The tempo, or `None` for audio too short or without a pulse (silence, a steady tone).
    pub fn finish(&self) -> Option<f32> {
        let onsets = &self.onsets;
        let min_lag = (60.0 * HOPS_PER_SECOND as f32 / BPM_MAX).floor() as usize;
        let max_lag = (60.0 * HOPS_PER_SECOND as f32 / BPM_MIN).ceil() as usize;
        if onsets.len() < max_lag * 4 {
            return None;
        }
        let mean = onsets.iter().sum::<f32>() / onsets.len() as f32;
        let centred: Vec<f32> = onsets.iter().map(|value| value - mean).collect();
        let energy: f32 = centred.iter().map(|value| value * value).sum();
        // Onsets must be audible: a steady tone's ripple rises by thousandths per hop.
        if energy <= 1e-6 || mean < 0.01 {
            return None;
        }
        let correlation = |lag: usize| -> f32 {
            centred[lag..]
                .iter()
                .zip(&centred)
                .map(|(a, b)| a * b)
                .sum::<f32>()
                / energy
        };
        let raw: Vec<f32> = (0..=max_lag + 1)
            .map(|lag| {
                if lag < min_lag.saturating_sub(1) {
                    0.0
                } else {
                    correlation(lag)
                }
            })
            .collect();
        let mut best: Option<(usize, f32)> = None;
        for (lag, correlation) in raw.iter().enumerate().take(max_lag + 1).skip(min_lag) {
            let bpm = 60.0 * HOPS_PER_SECOND as f32 / lag as f32;
            let octaves = (bpm / 120.0).log2();
            let weight = (-0.5 * octaves * octaves).exp();
            let score = correlation * weight;
            if best.is_none_or(|(_, top)| score > top) {
                best = Some((lag, score));
            }
        }
        let (mut lag, score) = best?;
        // A pulse correlates clearly; noise and steady tones do not.
        if raw[lag] < 0.1 || score <= 0.0 {
            return None;
        }
        // The prior can pick half the tempo when the beat is far from 120: if half the lag
        // correlates nearly as well, the beat is there.
        let half = [lag / 2, lag.div_ceil(2)]
            .into_iter()
            .filter(|&half| half >= min_lag)
            .max_by(|a, b| raw[*a].total_cmp(&raw[*b]));
        if let Some(half) = half
            && raw[half] > 0.6 * raw[lag]
        {
            lag = half;
        }
        // Parabolic interpolation between neighbouring lags for a finer period.
        let (left, centre, right) = (raw[lag - 1], raw[lag], raw[lag + 1]);
        let curve = left - 2.0 * centre + right;
        let shift = if curve.abs() > 1e-9 {
            (0.5 * (left - right) / curve).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        let bpm = 60.0 * HOPS_PER_SECOND as f32 / (lag as f32 + shift);
        Some((bpm * 10.0).round() / 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of drum-like hits at `bpm` (a decaying noise burst every beat) over a quiet
    /// tone, at 44.1 kHz.
    fn beats(bpm: f32, seconds: f32) -> Vec<f32> {
        let rate = 44_100.0;
        let period = (rate * 60.0 / bpm) as usize;
        let mut noise = 0x2545_f491_u32;
        (0..(rate * seconds) as usize)
            .map(|at| {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                let since = at % period;
                let hit =
                    (-(since as f32) / 1500.0).exp() * ((noise as f32 / u32::MAX as f32) - 0.5);
                let tone = 0.05 * (at as f32 * 2.0 * std::f32::consts::PI * 220.0 / rate).sin();
                hit + tone
            })
            .collect()
    }

    fn measure(samples: &[f32]) -> Option<f32> {
        let mut meter = TempoMeter::new(44_100);
        for block in samples.chunks(4096) {
            meter.push(&[block, block]);
        }
        meter.finish()
    }

    #[test]
    fn finds_the_beat() {
        for bpm in [72.0, 96.0, 120.0, 128.0, 174.0] {
            let found = measure(&beats(bpm, 20.0)).expect("a pulse");
            assert!(
                (found - bpm).abs() / bpm < 0.03,
                "{bpm} BPM measured as {found}"
            );
        }
    }

    #[test]
    fn no_pulse_no_tempo() {
        let tone: Vec<f32> = (0..44_100 * 10)
            .map(|at| 0.3 * (at as f32 * 0.05).sin())
            .collect();
        assert_eq!(measure(&tone), None);
        assert_eq!(measure(&vec![0.0; 44_100 * 10]), None);
        assert_eq!(measure(&beats(120.0, 1.0)), None, "too short");
    }
}
