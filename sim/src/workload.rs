//! The workload model's distributions: Zipf popularity, Weibull times, the diurnal curve.
//! All draws take the caller's seeded RNG.

use rand::Rng;

/// Zipf(α) over ranks `0..n` (rank 0 most popular), sampled in constant time and memory by
/// rejection-inversion (`rand_distr::Zipf`), so a catalog of millions costs nothing to set up.
#[derive(Debug, Clone, Copy)]
pub struct Zipf {
    n: u32,
    inner: Option<rand_distr::Zipf<f64>>,
}

impl Zipf {
    /// Zipf over `n ≥ 1` ranks with exponent `alpha ≥ 0` (0 is uniform).
    pub fn new(n: u32, alpha: f64) -> Self {
        let n = n.max(1);
        Self {
            n,
            inner: rand_distr::Zipf::new(u64::from(n), alpha).ok(),
        }
    }

    /// Ranks.
    pub fn len(&self) -> u32 {
        self.n
    }

    /// Always false (a Zipf has at least one rank).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A rank.
    pub fn sample(&self, rng: &mut impl Rng) -> u32 {
        match &self.inner {
            Some(zipf) => ((rng.sample(zipf) as u64).clamp(1, u64::from(self.n)) - 1) as u32,
            None => rng.gen_range(0..self.n),
        }
    }
}

/// Share of Zipf(`alpha`) mass over `n` ranks on the top `ranks` ranks (a sum over ranks;
/// for checks and documentation).
pub fn zipf_head_share(n: u32, alpha: f64, ranks: u32) -> f64 {
    let weight = |rank: u32| 1.0 / f64::from(rank).powf(alpha);
    let head: f64 = (1..=ranks.min(n)).map(weight).sum();
    let total: f64 = (1..=n).map(weight).sum();
    head / total
}

/// A Weibull draw with `shape` k and the given mean.
pub fn weibull(rng: &mut impl Rng, shape: f64, mean: f64) -> f64 {
    let scale = mean / gamma(1.0 + 1.0 / shape);
    let u: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    scale * (-u.ln()).powf(1.0 / shape)
}

/// The Gamma function (Lanczos approximation, g = 7), for Weibull means.
pub fn gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x))
    } else {
        let x = x - 1.0;
        let mut sum = COEFFICIENTS[0];
        for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
            sum += c / (x + i as f64);
        }
        let t = x + 7.5;
        (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * sum
    }
}

/// Relative session rate at `now_ms` in a region `utc_offset_h` from UTC: a cosine over the
/// day, peaking at `peak_hour` local time, between `1 - amplitude` and `1 + amplitude`.
pub fn diurnal(now_ms: u64, utc_offset_h: f64, amplitude: f64, peak_hour: f64) -> f64 {
    let hour = (now_ms as f64 / 3_600_000.0 + utc_offset_h).rem_euclid(24.0);
    1.0 + amplitude * (2.0 * std::f64::consts::PI * (hour - peak_hour) / 24.0).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_one_puts_most_plays_on_a_few_tracks() {
        let zipf = Zipf::new(100_000, 1.0);
        // "12% of tracks get 88% of plays" at α ≈ 1 (here 84%, for 10^5 tracks).
        let head = zipf_head_share(100_000, 1.0, 12_000);
        assert!((0.8..0.9).contains(&head), "{head}");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let draws = 100_000;
        let top = (0..draws)
            .filter(|_| zipf.sample(&mut rng) < 12_000)
            .count() as f64
            / draws as f64;
        assert!((top - head).abs() < 0.01, "{top} vs {head}");
        assert_eq!(Zipf::new(1, 1.0).sample(&mut rng), 0);
    }

    #[test]
    fn weibull_has_its_mean() {
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-9);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for shape in [0.7, 1.0, 2.0] {
            let n = 200_000;
            let mean = (0..n).map(|_| weibull(&mut rng, shape, 100.0)).sum::<f64>() / n as f64;
            assert!((mean - 100.0).abs() < 2.0, "shape {shape}: {mean}");
        }
    }

    #[test]
    fn diurnal_peaks_at_the_local_hour() {
        let peak = diurnal(19 * 3_600_000, 1.0, 0.5, 20.0);
        let trough = diurnal(7 * 3_600_000, 1.0, 0.5, 20.0);
        assert!((peak - 1.5).abs() < 1e-9 && (trough - 0.5).abs() < 1e-9);
    }
}
