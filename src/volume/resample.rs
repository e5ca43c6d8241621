//! Nearest-neighbour resampling between grids through their affines: labels produced on another
//! grid (another orientation, flipped axes, other spacing) brought onto a volume's own grid.

use super::{Grid, Volume};

/// Inverse of an affine (3x3 linear part + translation). None when singular.
pub fn invert_affine(a: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let m = |r: usize, c: usize| a[r][c];
    let det = m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
        + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let mut inv = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            // Cofactor transpose (adjugate) over the determinant.
            let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
            let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
            inv[r][c] = (m(r1, c1) * m(r2, c2) - m(r1, c2) * m(r2, c1)) / det;
        }
    }
    for r in 0..3 {
        inv[r][3] = -(0..3).map(|c| inv[r][c] * a[c][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    Some(inv)
}

fn compose(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = [[0.0; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            out[r][c] = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// `source` sampled at the voxel centres of `target`'s grid; voxels that fall outside `source`
/// get `outside`. Returns data on `target.grid` (x-fastest).
pub fn resample_nearest(source: &Volume, target: &Volume, outside: f32) -> Vec<f32> {
    resample_data(&source.data, source.grid, &source.affine, target.grid, &target.affine, outside)
}

pub fn resample_data(
    data: &[f32],
    grid: Grid,
    affine: &[[f64; 4]; 4],
    target_grid: Grid,
    target_affine: &[[f64; 4]; 4],
    outside: f32,
) -> Vec<f32> {
    let Some(inv) = invert_affine(affine) else { return vec![outside; target_grid.len()] };
    let m = compose(&inv, target_affine);
    let [tx, ty, tz] = target_grid.dims;
    let [sx, sy, sz] = grid.dims;
    let mut out = Vec::with_capacity(target_grid.len());
    for k in 0..tz {
        for j in 0..ty {
            for i in 0..tx {
                let p = [i as f64, j as f64, k as f64];
                let src = |r: usize| (m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3] + 0.5).floor();
                let (a, b, c) = (src(0), src(1), src(2));
                let inside = a >= 0.0 && b >= 0.0 && c >= 0.0 && a < sx as f64 && b < sy as f64 && c < sz as f64;
                out.push(if inside { data[grid.index([a as usize, b as usize, c as usize])] } else { outside });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(dims: [usize; 3], affine: [[f64; 4]; 4]) -> Volume {
        let n = dims.iter().product();
        Volume::synthetic((0..n).map(|v| v as f32).collect(), dims, [1.0; 3], affine)
    }

    const ID: [[f64; 4]; 4] = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];

    #[test]
    fn inverse_of_an_affine() {
        let a = [[0.0, -2.0, 0.0, 10.0], [0.5, 0.0, 0.0, -3.0], [0.0, 0.0, 3.0, 7.0], [0.0, 0.0, 0.0, 1.0]];
        let p = compose(&invert_affine(&a).unwrap(), &a);
        for r in 0..4 {
            for c in 0..4 {
                assert!((p[r][c] - ID[r][c]).abs() < 1e-12);
            }
        }
        assert!(invert_affine(&[[0.0; 4]; 4]).is_none());
    }

    #[test]
    fn flipped_rows_map_exactly() {
        // The same 4x3x2 block stored with j running the other way (as dcm2niix writes DICOM).
        let src =
            vol([4, 3, 2], [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]);
        let dst = vol([4, 3, 2], ID);
        let out = resample_nearest(&src, &dst, -1.0);
        for k in 0..2 {
            for j in 0..3 {
                for i in 0..4 {
                    assert_eq!(out[dst.grid.index([i, j, k])], src.data[src.grid.index([i, 2 - j, k])]);
                }
            }
        }
    }

    #[test]
    fn coarser_target_and_outside_voxels() {
        let src = vol([4, 4, 1], ID);
        // Target voxels 2 mm apart starting at -2 mm: the first column falls outside.
        let dst =
            vol([3, 2, 1], [[2.0, 0.0, 0.0, -2.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]);
        let out = resample_nearest(&src, &dst, -1.0);
        assert_eq!(out, vec![-1.0, 0.0, 2.0, -1.0, 8.0, 10.0]);
    }
}
