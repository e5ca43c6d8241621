//! What is measured of binary masks: Dice overlap, voxel counts, volumes in millilitres, and the
//! 4-connected components of a slice's mask.

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

/// 4-connected components of the pixels of a `cols`-wide plane of `len` pixels where `on` holds:
/// each pixel's component (usize::MAX off the foreground), numbered in the order of their first
/// pixel in index order, and each component's size in pixels.
pub fn components4(len: usize, cols: usize, on: impl Fn(usize) -> bool) -> (Vec<usize>, Vec<usize>) {
    let rows = if cols == 0 { 0 } else { len / cols };
    let mut label = vec![usize::MAX; len];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..len {
        if !on(start) || label[start] != usize::MAX {
            continue;
        }
        let id = sizes.len();
        label[start] = id;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (r, c) = (i / cols, i % cols);
            let neighbours = [
                (r > 0).then(|| i - cols),
                (r + 1 < rows).then(|| i + cols),
                (c > 0).then(|| i - 1),
                (c + 1 < cols).then(|| i + 1),
            ];
            for n in neighbours.into_iter().flatten() {
                if on(n) && label[n] == usize::MAX {
                    label[n] = id;
                    stack.push(n);
                }
            }
        }
        sizes.push(size);
    }
    (label, sizes)
}

#[cfg(test)]
mod tests {
    use super::{components4, dice, volume_ml, voxel_count};

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

    #[test]
    fn components_are_4_connected_and_numbered_by_their_first_pixel() {
        // 4 x 4: a diagonal neighbour is another component.
        let plane = [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0];
        let (label, sizes) = components4(plane.len(), 4, |i| plane[i] != 0);
        let m = usize::MAX;
        assert_eq!(label, vec![0, 0, m, m, m, m, 1, m, m, m, 1, m, 2, m, m, m]);
        assert_eq!(sizes, vec![2, 2, 1]);
    }
}
