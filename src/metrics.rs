//! Segmentation metrics.

/// Dice coefficient of two binary masks of equal length. Both empty: 1 (perfect agreement on
/// absence).
pub fn dice(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "masks of different sizes");
    let (mut inter, mut sa, mut sb) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x != 0, y != 0);
        inter += (x && y) as u64;
        sa += x as u64;
        sb += y as u64;
    }
    if sa + sb == 0 { 1.0 } else { 2.0 * inter as f64 / (sa + sb) as f64 }
}

#[cfg(test)]
mod tests {
    use super::dice;

    #[test]
    fn dice_values() {
        assert_eq!(dice(&[1, 1, 0, 0], &[1, 1, 0, 0]), 1.0);
        assert_eq!(dice(&[1, 1, 0, 0], &[0, 0, 1, 1]), 0.0);
        assert!((dice(&[1, 1, 1, 0], &[1, 0, 0, 0]) - 0.5).abs() < 1e-12);
        assert_eq!(dice(&[0, 0], &[0, 0]), 1.0);
        assert_eq!(dice(&[0, 2], &[0, 1]), 1.0, "any non-zero value is foreground");
    }
}
