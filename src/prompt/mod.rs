//! Prompts on one slice, in slice pixel coordinates of the input volume (x = column, y = row;
//! see volume/grid.rs), and their validation; deterministic prompts derived from a reference
//! mask and simulated correction clicks for checks and benchmarks. Random training prompts
//! (paper section 3.3) are in simulate.rs.

pub mod simulate;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    /// true: inside the object (positive click); false: outside (negative click).
    pub positive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoxPrompt {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

/// A correction click on the 3D mask: a point on one slice, positive (add) or negative (remove).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Click {
    pub slice: usize,
    pub x: f64,
    pub y: f64,
    pub positive: bool,
}

impl Click {
    pub fn point(&self) -> Point {
        Point { x: self.x, y: self.y, positive: self.positive }
    }
}

/// The prompt of one slice: any of points, a box, a binary mask (row-major, slice-sized).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlicePrompt {
    pub points: Vec<Point>,
    pub bbox: Option<BoxPrompt>,
    pub mask: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptError {
    #[error("point ({x}, {y}) lies outside the {w}x{h} slice")]
    PointOutside { x: f64, y: f64, w: usize, h: usize },
    #[error("box ({x0}, {y0}, {x1}, {y1}) must have x0 < x1 and y0 < y1 and lie within the {w}x{h} slice")]
    BadBox { x0: f64, y0: f64, x1: f64, y1: f64, w: usize, h: usize },
    #[error("mask prompt has {found} pixels, the slice {expected}")]
    MaskSize { found: usize, expected: usize },
    #[error("empty prompt: give at least a point, a box or a mask")]
    Empty,
    #[error("the slice has no pixels")]
    EmptySlice,
}

impl SlicePrompt {
    /// Checks the prompt against a slice of `w` columns and `h` rows.
    pub fn validate(&self, w: usize, h: usize) -> Result<(), PromptError> {
        if w == 0 || h == 0 {
            return Err(PromptError::EmptySlice);
        }
        if self.points.is_empty() && self.bbox.is_none() && self.mask.is_none() {
            return Err(PromptError::Empty);
        }
        let inside = |x: f64, y: f64| {
            x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64
        };
        for p in &self.points {
            if !inside(p.x, p.y) {
                return Err(PromptError::PointOutside { x: p.x, y: p.y, w, h });
            }
        }
        if let Some(b) = self.bbox {
            if !(inside(b.x0, b.y0) && inside(b.x1, b.y1) && b.x0 < b.x1 && b.y0 < b.y1) {
                return Err(PromptError::BadBox { x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1, w, h });
            }
        }
        if let Some(m) = &self.mask {
            if m.len() != w * h {
                return Err(PromptError::MaskSize { found: m.len(), expected: w * h });
            }
        }
        Ok(())
    }
}

/// Tight box around the non-zero pixels of a row-major `w`-wide mask; None when empty.
pub fn bounding_box(mask: &[u8], w: usize) -> Option<BoxPrompt> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in mask.iter().enumerate().filter(|(_, &v)| v != 0) {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    (x0 != usize::MAX).then(|| BoxPrompt { x0: x0 as f64, y0: y0 as f64, x1: x1 as f64, y1: y1 as f64 })
}

/// Chessboard distance of every object pixel to the background (outside the slice counting as
/// background): 1 on the contour, 0 outside the object. Two passes, no allocation but the result.
pub(crate) fn depth(mask: &[u8], w: usize) -> Vec<u32> {
    let h = mask.len() / w;
    let mut d = vec![0u32; mask.len()];
    // Distance of neighbour (x + dx, y + dy); 0 outside the slice.
    let at = |d: &[u32], x: usize, y: usize, dx: isize, dy: isize| -> u32 {
        let (nx, ny) = (x as isize + dx, y as isize + dy);
        if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
            0
        } else {
            d[ny as usize * w + nx as usize]
        }
    };
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] != 0 {
                let m =
                    [(-1, 0), (-1, -1), (0, -1), (1, -1)].iter().map(|&(dx, dy)| at(&d, x, y, dx, dy)).min().unwrap();
                d[y * w + x] = m + 1;
            }
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            if mask[y * w + x] != 0 {
                let m = [(1, 0), (1, 1), (0, 1), (-1, 1)].iter().map(|&(dx, dy)| at(&d, x, y, dx, dy)).min().unwrap();
                d[y * w + x] = d[y * w + x].min(m + 1);
            }
        }
    }
    d
}

/// A deterministic point inside a mask: the object pixel deepest inside it (chessboard distance
/// to the background), first in row-major order among equals. None when the mask is empty.
pub fn interior_point(mask: &[u8], w: usize) -> Option<Point> {
    let d = depth(mask, w);
    let best = d.iter().enumerate().max_by_key(|(i, &v)| (v, std::cmp::Reverse(*i)))?;
    (*best.1 > 0).then(|| Point { x: (best.0 % w) as f64, y: (best.0 / w) as f64, positive: true })
}

/// A simulated correction click, as the paper evaluates editing: a voxel drawn uniformly from the
/// error region of `prediction` against `truth` (both on `grid`, 0/1) within slices `lo..=hi`;
/// positive when the voxel was missed, negative when it was wrongly included. None when there is
/// no error left.
pub fn simulate_click(
    prediction: &[u8],
    truth: &[u8],
    grid: &crate::volume::Grid,
    (lo, hi): (usize, usize),
    rng: &mut crate::rng::SplitMix64,
) -> Option<Click> {
    let (rows, cols) = grid.plane_shape();
    let mut errors = Vec::new();
    for s in lo..=hi {
        let (p, t) = (grid.extract(prediction, s), grid.extract(truth, s));
        for (i, (&a, &b)) in p.iter().zip(&t).enumerate() {
            if (a != 0) != (b != 0) {
                errors.push((s, i, b != 0));
            }
        }
    }
    if errors.is_empty() {
        return None;
    }
    let (slice, i, missed) = errors[rng.below(errors.len())];
    debug_assert!(i < rows * cols);
    Some(Click { slice, x: (i % cols) as f64, y: (i / cols) as f64, positive: missed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clicks_land_in_the_error_region_with_the_right_sign() {
        let grid = crate::volume::Grid::new([4, 3, 2], 2);
        // Slice 0: a 2x2 object in the top-left corner; slice 1: empty.
        let mut truth = vec![1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0];
        truth.extend(vec![0u8; 12]);
        let mut prediction = truth.clone();
        prediction[0] = 0; // missed voxel (x 0, y 0, slice 0)
        prediction[12 + 11] = 1; // wrong voxel (x 3, y 2, slice 1)
        let mut rng = crate::rng::SplitMix64(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let c = simulate_click(&prediction, &truth, &grid, (0, 1), &mut rng).unwrap();
            seen.insert((c.slice, c.x as usize, c.y as usize, c.positive));
        }
        assert_eq!(seen, [(0, 0, 0, true), (1, 3, 2, false)].into_iter().collect());
        assert!(simulate_click(&truth, &truth, &grid, (0, 1), &mut rng).is_none());
        assert_eq!(
            simulate_click(&prediction, &truth, &grid, (1, 1), &mut rng).map(|c| c.slice),
            Some(1),
            "only within the range"
        );
    }

    #[test]
    fn box_and_interior_point_of_a_rectangle() {
        let (w, h) = (10, 8);
        let mut m = vec![0u8; w * h];
        for y in 2..7 {
            for x in 1..8 {
                m[y * w + x] = 1;
            }
        }
        assert_eq!(bounding_box(&m, w), Some(BoxPrompt { x0: 1.0, y0: 2.0, x1: 7.0, y1: 6.0 }));
        let p = interior_point(&m, w).unwrap();
        assert_eq!((p.x, p.y), (3.0, 4.0), "first pixel at the maximal depth, centre row");
        assert!(bounding_box(&vec![0u8; w * h], w).is_none());
        assert!(interior_point(&vec![0u8; w * h], w).is_none());
    }

    #[test]
    fn validation_refuses_bad_prompts() {
        let ok = SlicePrompt { points: vec![Point { x: 3.0, y: 4.0, positive: true }], ..Default::default() };
        assert!(ok.validate(10, 10).is_ok());
        assert_eq!(SlicePrompt::default().validate(10, 10), Err(PromptError::Empty));
        let outside = SlicePrompt { points: vec![Point { x: 10.0, y: 4.0, positive: true }], ..Default::default() };
        assert!(matches!(outside.validate(10, 10), Err(PromptError::PointOutside { .. })));
        let flat = SlicePrompt { bbox: Some(BoxPrompt { x0: 2.0, y0: 3.0, x1: 2.0, y1: 8.0 }), ..Default::default() };
        assert!(matches!(flat.validate(10, 10), Err(PromptError::BadBox { .. })));
        let nan = SlicePrompt { points: vec![Point { x: f64::NAN, y: 1.0, positive: false }], ..Default::default() };
        assert!(nan.validate(10, 10).is_err());
        let mask = SlicePrompt { mask: Some(vec![0; 5]), ..Default::default() };
        assert!(matches!(mask.validate(10, 10), Err(PromptError::MaskSize { .. })));
    }
}
