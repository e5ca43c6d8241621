//! What is measured of binary masks: Dice overlap, voxel counts, volumes in millilitres.

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
    if sa + sb == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (sa + sb) as f64
    }
}

/// Foreground voxels of a mask.
pub fn voxel_count(mask: &[u8]) -> u64 {
    mask.iter().filter(|&&v| v != 0).count() as u64
}

/// Volume of a mask in millilitres, from the voxel spacing in mm. Every foreground voxel counts,
/// including voxels on the border of the volume.
pub fn volume_ml(mask: &[u8], spacing: [f64; 3]) -> f64 {
    voxel_count(mask) as f64 * spacing.iter().product::<f64>() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::{dice, volume_ml, voxel_count};

    #[test]
    fn volumes_in_ml_count_border_voxels() {
        // 2 x 2 x 2 volume, every voxel set (all on the border), 5 x 5 x 10 mm voxels = 0.25 mL each.
        assert_eq!(voxel_count(&[1; 8]), 8);
        assert!((volume_ml(&[1; 8], [5.0, 5.0, 10.0]) - 2.0).abs() < 1e-12);
        assert_eq!(volume_ml(&[0; 8], [1.0; 3]), 0.0);
    }

    #[test]
    fn dice_values() {
        assert_eq!(dice(&[1, 1, 0, 0], &[1, 1, 0, 0]), 1.0);
        assert_eq!(dice(&[1, 1, 0, 0], &[0, 0, 1, 1]), 0.0);
        assert!((dice(&[1, 1, 1, 0], &[1, 0, 0, 0]) - 0.5).abs() < 1e-12);
        assert_eq!(dice(&[0, 0], &[0, 0]), 1.0);
        assert_eq!(dice(&[0, 2], &[0, 1]), 1.0, "any non-zero value is foreground");
    }
}
