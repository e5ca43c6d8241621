//! Simulated correction clicks, two ways:
//! - `Uniform` (the paper, section 4.2): a voxel drawn uniformly from the 3D error region;
//! - `LargestErrorCentre` (the CVPR 2025 interactive 3D segmentation challenge): the centre of the
//!   largest connected error component, i.e. its voxel farthest (Euclidean, in mm) from the
//!   component's outside. Missed voxels give a positive click, wrongly included ones a negative.
//!   Ties, common when the error is a slab a slice or two thick (every voxel is then equally near
//!   the slices outside it), go to the voxel farthest from the outside within its own slice.
//!
//! Components are 6-connected in 3D and taken separately for missed and for wrongly included
//! voxels, which never mix in one click.

use crate::prompt::{simulate_click, Click};
use crate::rng::SplitMix64;
use crate::volume::Grid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickMode {
    Uniform,
    /// The CVPR 2025 challenge's click.
    #[serde(rename = "cvpr25")]
    LargestErrorCentre,
}

impl ClickMode {
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Self::Uniform),
            "cvpr25" | "largest-error-centre" => Some(Self::LargestErrorCentre),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::LargestErrorCentre => "cvpr25",
        }
    }
}

/// The next correction click on `prediction` against `truth` within slices `lo..=hi`; None when
/// there is no error left. `spacing` (mm along i, j, k) weighs distances for the centre.
pub fn next_click(
    mode: ClickMode,
    prediction: &[u8],
    truth: &[u8],
    grid: &Grid,
    spacing: [f64; 3],
    range: (usize, usize),
    rng: &mut SplitMix64,
) -> Option<Click> {
    match mode {
        ClickMode::Uniform => simulate_click(prediction, truth, grid, range, rng),
        ClickMode::LargestErrorCentre => largest_error_centre(prediction, truth, grid, spacing, range),
    }
}

/// The CVPR 2025 click: see the module docs.
fn largest_error_centre(
    prediction: &[u8],
    truth: &[u8],
    grid: &Grid,
    spacing: [f64; 3],
    (lo, hi): (usize, usize),
) -> Option<Click> {
    let in_range = |ijk: [usize; 3]| (lo..=hi).contains(&ijk[grid.slice_axis]);
    // 1: missed (positive), 2: wrongly included (negative), 0: right or out of range.
    let kind: Vec<u8> = (0..grid.len())
        .map(|idx| {
            let (p, t) = (prediction[idx] != 0, truth[idx] != 0);
            if p == t || !in_range(unravel(grid, idx)) {
                0
            } else if t {
                1
            } else {
                2
            }
        })
        .collect();
    let component = largest_component(&kind, grid)?;
    let positive = kind[component[0]] == 1;
    let ijk = deepest_voxel(&component, grid, spacing);
    let (ca, ra) = grid.plane_axes();
    Some(Click { slice: ijk[grid.slice_axis], x: ijk[ca] as f64, y: ijk[ra] as f64, positive })
}

fn unravel(grid: &Grid, idx: usize) -> [usize; 3] {
    let [nx, ny, _] = grid.dims;
    [idx % nx, (idx / nx) % ny, idx / (nx * ny)]
}

/// The voxels of the largest 6-connected component of equal non-zero `kind` (first found among
/// equals, in index order).
fn largest_component(kind: &[u8], grid: &Grid) -> Option<Vec<usize>> {
    let [nx, ny, nz] = grid.dims;
    let mut seen = vec![false; kind.len()];
    let mut best: Option<Vec<usize>> = None;
    let mut stack = Vec::new();
    for start in 0..kind.len() {
        if kind[start] == 0 || seen[start] {
            continue;
        }
        let k = kind[start];
        let mut members = Vec::new();
        seen[start] = true;
        stack.push(start);
        while let Some(idx) = stack.pop() {
            members.push(idx);
            let [i, j, l] = unravel(grid, idx);
            let neighbours = [
                (i > 0).then(|| idx - 1),
                (i + 1 < nx).then(|| idx + 1),
                (j > 0).then(|| idx - nx),
                (j + 1 < ny).then(|| idx + nx),
                (l > 0).then(|| idx - nx * ny),
                (l + 1 < nz).then(|| idx + nx * ny),
            ];
            for n in neighbours.into_iter().flatten() {
                if !seen[n] && kind[n] == k {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        if best.as_ref().is_none_or(|b| members.len() > b.len()) {
            best = Some(members);
        }
    }
    best.map(|mut b| {
        b.sort_unstable();
        b
    })
}

/// The component's voxel with the largest Euclidean distance (mm) to the nearest voxel outside it
/// (the volume's border counts as outside); among equals, the one with the largest such distance
/// within its slice, then the first in index order.
fn deepest_voxel(component: &[usize], grid: &Grid, spacing: [f64; 3]) -> [usize; 3] {
    // Work on the component's bounding box grown by one voxel, so that its outside is present.
    let voxels: Vec<[usize; 3]> = component.iter().map(|&idx| unravel(grid, idx)).collect();
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for v in &voxels {
        for a in 0..3 {
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a]);
        }
    }
    let dims: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a] + 3);
    let at = |v: [usize; 3]| (v[0] - lo[0] + 1) + dims[0] * ((v[1] - lo[1] + 1) + dims[1] * (v[2] - lo[2] + 1));
    let mut inside = vec![0.0f64; dims.iter().product()];
    for &v in &voxels {
        inside[at(v)] = f64::INFINITY;
    }
    let transform = |axes: &[usize]| {
        let mut d2 = inside.clone();
        for &axis in axes {
            squared_distance_along(&mut d2, dims, axis, spacing[axis]);
        }
        d2
    };
    let in_3d = transform(&[0, 1, 2]);
    let (ca, ra) = grid.plane_axes();
    let in_plane = transform(&[ca, ra]);
    let key = |v: &[usize; 3]| (in_3d[at(*v)], in_plane[at(*v)]);
    *voxels
        .iter()
        .max_by(|a, b| {
            let ((a3, ap), (b3, bp)) = (key(a), key(b));
            a3.total_cmp(&b3).then(ap.total_cmp(&bp)).then(grid.index(**b).cmp(&grid.index(**a)))
        })
        .expect("components are not empty")
}

/// One pass of the separable exact Euclidean distance transform (Felzenszwalb & Huttenlocher):
/// replaces every line along `axis` by the lower envelope of parabolas rooted at its values.
fn squared_distance_along(d2: &mut [f64], dims: [usize; 3], axis: usize, step: f64) {
    let stride = [1, dims[0], dims[0] * dims[1]][axis];
    let n = dims[axis];
    let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    let mut line = vec![0.0; n];
    let mut out = vec![0.0; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0.0f64; n + 1];
    for a in 0..dims[others[0]] {
        for b in 0..dims[others[1]] {
            let mut base = [0usize; 3];
            base[others[0]] = a;
            base[others[1]] = b;
            let start = base[0] + dims[0] * (base[1] + dims[1] * base[2]);
            for (q, l) in line.iter_mut().enumerate() {
                *l = d2[start + q * stride];
            }
            lower_envelope(&line, step, &mut v, &mut z, &mut out);
            for (q, o) in out.iter().enumerate() {
                d2[start + q * stride] = *o;
            }
        }
    }
}

fn lower_envelope(f: &[f64], step: f64, v: &mut [usize], z: &mut [f64], out: &mut [f64]) {
    let n = f.len();
    let pos = |q: usize| q as f64 * step;
    // Only finite samples root a parabola; a line with none stays infinite.
    let mut k: isize = -1;
    for q in 0..n {
        if !f[q].is_finite() {
            continue;
        }
        loop {
            if k < 0 {
                k = 0;
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            }
            let p = v[k as usize];
            let s = ((f[q] + pos(q) * pos(q)) - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            if s <= z[k as usize] {
                k -= 1;
                continue;
            }
            k += 1;
            v[k as usize] = q;
            z[k as usize] = s;
            z[k as usize + 1] = f64::INFINITY;
            break;
        }
    }
    if k < 0 {
        out.iter_mut().for_each(|o| *o = f64::INFINITY);
        return;
    }
    let mut j = 0usize;
    for (q, o) in out.iter_mut().enumerate() {
        while z[j + 1] < pos(q) {
            j += 1;
        }
        let d = pos(q) - pos(v[j]);
        *o = d * d + f[v[j]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 9x9x3 grid (slices along k); truth: a 7x7 block on slice 1; prediction misses it all but
    /// a 1-voxel corner, and wrongly includes a 2x2 patch on slice 0.
    #[test]
    fn the_centre_click_lands_in_the_middle_of_the_largest_error() {
        let grid = Grid::new([9, 9, 3], 2);
        let mut truth = vec![0u8; grid.len()];
        for j in 1..8 {
            for i in 1..8 {
                truth[grid.index([i, j, 1])] = 1;
            }
        }
        let mut prediction = vec![0u8; grid.len()];
        prediction[grid.index([1, 1, 1])] = 1;
        for (i, j) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            prediction[grid.index([i, j, 0])] = 1;
        }
        let mut rng = SplitMix64(1);
        let c =
            next_click(ClickMode::LargestErrorCentre, &prediction, &truth, &grid, [1.0, 1.0, 1.0], (0, 2), &mut rng)
                .unwrap();
        assert_eq!((c.slice, c.x, c.y, c.positive), (1, 4.0, 4.0, true), "centre of the 7x7 missed block");
        // Within slice 0 only, the largest error is the wrongly included patch: a negative click in it.
        let c =
            next_click(ClickMode::LargestErrorCentre, &prediction, &truth, &grid, [1.0, 1.0, 1.0], (0, 0), &mut rng)
                .unwrap();
        assert_eq!(c.slice, 0);
        assert!(!c.positive && c.x <= 1.0 && c.y <= 1.0, "{c:?}");
        assert!(next_click(ClickMode::LargestErrorCentre, &truth, &truth, &grid, [1.0; 3], (0, 2), &mut rng).is_none());
    }

    #[test]
    fn distances_are_exact_and_weighted_by_spacing() {
        let centre_of = |dims: [usize; 3], lo: [usize; 3], hi: [usize; 3], spacing: [f64; 3]| {
            let grid = Grid::new(dims, 2);
            let mut c = Vec::new();
            for k in lo[2]..=hi[2] {
                for j in lo[1]..=hi[1] {
                    for i in lo[0]..=hi[0] {
                        c.push(grid.index([i, j, k]));
                    }
                }
            }
            c.sort();
            deepest_voxel(&c, &grid, spacing)
        };
        assert_eq!(centre_of([7, 7, 7], [1; 3], [5; 3], [1.0; 3]), [3, 3, 3], "a cube's centre");
        // 3 voxels of 3 mm across i, 9 voxels of 1 mm along j, one slice (k ignored: 100 mm):
        // the middle voxel is 6 mm from the outside across i and 5 mm along j; its neighbours
        // along j are nearer. In voxel units every voxel of the middle column ties at 2 voxels.
        assert_eq!(centre_of([5, 11, 3], [1, 1, 1], [3, 9, 1], [3.0, 1.0, 100.0]), [2, 5, 1]);
        assert_eq!(
            centre_of([5, 11, 3], [1, 1, 1], [3, 9, 1], [1.0, 1.0, 100.0]),
            [2, 2, 1],
            "ties: first in index order"
        );
        let mut line = vec![f64::INFINITY; 5];
        line[0] = 0.0;
        let (mut v, mut z, mut out) = (vec![0; 5], vec![0.0; 6], vec![0.0; 5]);
        lower_envelope(&line, 2.0, &mut v, &mut z, &mut out);
        assert_eq!(out, vec![0.0, 4.0, 16.0, 36.0, 64.0], "squared distance in mm with 2 mm steps");
    }
}
