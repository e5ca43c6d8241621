//! Means with 95% confidence intervals, as the paper reports them: mean ± half-width of the
//! Student-t interval over independent cases (objects).

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// The t quantile for `df` degrees of freedom; beyond 30, interpolated in 1/df towards the normal
/// 1.960 (exact to 3 decimals).
fn t975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df - 1],
        _ => 1.960 + (2.042 - 1.960) * 30.0 / df as f64,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    pub mean: f64,
    /// Half-width of the 95% interval; NaN with fewer than 2 values.
    pub half_width: f64,
    pub n: usize,
}

pub fn mean_ci(values: &[f64]) -> MeanCi {
    let n = values.len();
    if n == 0 {
        return MeanCi { mean: f64::NAN, half_width: f64::NAN, n };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MeanCi { mean, half_width: f64::NAN, n };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    MeanCi { mean, half_width: t975(n - 1) * (var / n as f64).sqrt(), n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_known_sample() {
        // 2, 4, 6, 8: mean 5, sd sqrt(20/3), se sqrt(20/3)/2, t(3) 3.182 -> half-width 4.108.
        let m = mean_ci(&[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(m.mean, 5.0);
        assert!((m.half_width - 3.182 * (20.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert!((m.half_width - 4.108).abs() < 1e-3);
        assert!(mean_ci(&[3.0]).half_width.is_nan());
        assert!(mean_ci(&[]).mean.is_nan());
        // Large samples approach the normal quantile.
        assert!((t975(1000) - 1.962).abs() < 2e-3 && (t975(120) - 1.980).abs() < 2e-3);
    }
}
