//! Seeded randomness for the simulator: one [`SimRng`] per run, so a run is a pure function
//! of its inputs and seed.
//!
//! Where to start: [`SimRng::new`]; the samplers (`exponential`, `gamma`, `weibull`,
//! `lognormal_mean_cv`) are the distributions the workloads need (ServeGen fits Weibull and
//! Gamma inter-arrival times per client; token lengths default to a log-normal).

/// A seeded generator (wyrand via `fastrand`) plus the samplers the simulator needs.
#[derive(Debug, Clone)]
pub struct SimRng {
    rng: fastrand::Rng,
}

impl SimRng {
    /// A generator whose whole sequence is fixed by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Uniform on `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.rng.f64()
    }

    /// Uniform on `(0, 1]`: safe under `ln`.
    fn open_uniform(&mut self) -> f64 {
        1.0 - self.rng.f64()
    }

    /// Standard normal (Box–Muller; one of the pair is dropped, which keeps the stream
    /// simple and deterministic).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.open_uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_uniform().ln()
    }

    /// Gamma with `shape` k > 0 and `scale` θ (mean kθ). Marsaglia–Tsang (2000); for k < 1
    /// the boost `Gamma(k+1)·U^{1/k}`.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = self.open_uniform();
            return self.gamma(shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.open_uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }

    /// Weibull with `shape` k > 0 and `scale` λ (inverse CDF).
    pub fn weibull(&mut self, shape: f64, scale: f64) -> f64 {
        scale * (-self.open_uniform().ln()).powf(1.0 / shape)
    }

    /// Log-normal with the given mean and coefficient of variation.
    pub fn lognormal_mean_cv(&mut self, mean: f64, cv: f64) -> f64 {
        let sigma2 = (1.0 + cv * cv).ln();
        let mu = mean.ln() - sigma2 / 2.0;
        (mu + sigma2.sqrt() * self.normal()).exp()
    }
}

/// `ln Γ(x)` for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15). Needed to turn a
/// Weibull shape into the scale that gives a wanted mean.
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
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
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (std::f64::consts::TAU).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        (m, v.sqrt() / m)
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(0.1) - 9.513_507_698_668_732f64.ln()).abs() < 1e-10);
    }

    #[test]
    fn samplers_have_the_moments_they_promise() {
        let mut r = SimRng::new(7);
        let n = 200_000;
        let g: Vec<f64> = (0..n).map(|_| r.gamma(0.5, 2.0)).collect();
        let (m, cv) = mean_cv(&g);
        assert!(
            (m - 1.0).abs() < 0.02 && (cv - 2f64.sqrt()).abs() < 0.03,
            "{m} {cv}"
        );
        let g: Vec<f64> = (0..n).map(|_| r.gamma(3.0, 1.0)).collect();
        let (m, cv) = mean_cv(&g);
        assert!(
            (m - 3.0).abs() < 0.03 && (cv - 1.0 / 3f64.sqrt()).abs() < 0.01,
            "{m} {cv}"
        );
        // Weibull k = 2, λ = 1: mean Γ(1.5) = √π/2.
        let w: Vec<f64> = (0..n).map(|_| r.weibull(2.0, 1.0)).collect();
        let (m, _) = mean_cv(&w);
        assert!((m - std::f64::consts::PI.sqrt() / 2.0).abs() < 0.01, "{m}");
        let l: Vec<f64> = (0..n).map(|_| r.lognormal_mean_cv(100.0, 0.5)).collect();
        let (m, cv) = mean_cv(&l);
        assert!(
            (m - 100.0).abs() < 1.0 && (cv - 0.5).abs() < 0.02,
            "{m} {cv}"
        );
    }

    #[test]
    fn a_seed_fixes_the_stream() {
        let a: Vec<f64> = {
            let mut r = SimRng::new(42);
            (0..10).map(|_| r.gamma(0.7, 1.0)).collect()
        };
        let mut r = SimRng::new(42);
        let b: Vec<f64> = (0..10).map(|_| r.gamma(0.7, 1.0)).collect();
        assert_eq!(a, b);
        assert_ne!(a, {
            let mut r = SimRng::new(43);
            (0..10).map(|_| r.gamma(0.7, 1.0)).collect::<Vec<_>>()
        });
    }
}
