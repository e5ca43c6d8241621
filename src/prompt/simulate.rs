//! Random prompts from a ground-truth slice mask, as RadSAM trains (paper section 3.3):
//! - a point inside the mask, at least 2 pixels away from its contour;
//! - a box around the mask with each side moved outward by a random -5..+20 pixels;
//! - a noisy mask: the mask rotated, scaled and translated about its centroid, then eroded or
//!   dilated, given to the model as a binary mask.
//!
//! Pixel space: the paper's pixels are those of ~512-pixel-wide CT slices. Distances here are
//! given in that space and scaled by `slice width / 512`, so a coarse 128-pixel slice gets a
//! quarter of the jitter in its own pixels and the same jitter in millimetres.

use super::{bounding_box, depth, BoxPrompt, Point};
use crate::rng::SplitMix64;

/// The width of the slices the paper's pixel distances refer to.
pub const REFERENCE_WIDTH: f64 = 512.0;

/// Ranges of the noisy-mask transforms (rotation in degrees, scale factor, translation and
/// erosion/dilation radius in reference pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskNoise {
    pub max_rotation_deg: f64,
    pub max_scale_change: f64,
    pub max_translation: f64,
    pub max_morphology: f64,
}

impl Default for MaskNoise {
    fn default() -> Self {
        Self { max_rotation_deg: 15.0, max_scale_change: 0.15, max_translation: 10.0, max_morphology: 6.0 }
    }
}

fn scale_of(w: usize) -> f64 {
    w as f64 / REFERENCE_WIDTH
}

/// A random point inside the mask, avoiding the 2 pixels along its contour (depth > 2); on objects
/// too thin for that, a random pixel among the deepest. None when the mask is empty.
pub fn random_point(mask: &[u8], w: usize, rng: &mut SplitMix64) -> Option<Point> {
    let d = depth(mask, w);
    let deepest = *d.iter().max()?;
    if deepest == 0 {
        return None;
    }
    let floor = if deepest > 2 { 3 } else { deepest };
    let candidates: Vec<usize> = d.iter().enumerate().filter(|(_, &v)| v >= floor).map(|(i, _)| i).collect();
    let i = candidates[rng.below(candidates.len())];
    Some(Point { x: (i % w) as f64, y: (i / w) as f64, positive: true })
}

/// The mask's box with each side moved outward by a random -5..+20 reference pixels, clamped to
/// the slice and kept at least one pixel wide. None when the mask is empty.
pub fn jittered_box(mask: &[u8], w: usize, rng: &mut SplitMix64) -> Option<BoxPrompt> {
    let h = mask.len() / w;
    let b = bounding_box(mask, w)?;
    let s = scale_of(w);
    let mut jitter = || rng.range(-5.0, 20.0) * s;
    let (x0, y0, x1, y1) = (b.x0 - jitter(), b.y0 - jitter(), b.x1 + jitter(), b.y1 + jitter());
    let (maxx, maxy) = ((w - 1) as f64, (h - 1) as f64);
    let (x0, x1) = (x0.clamp(0.0, maxx), x1.clamp(0.0, maxx));
    let (y0, y1) = (y0.clamp(0.0, maxy), y1.clamp(0.0, maxy));
    // Shrinking may cross the sides of a thin object: keep a box of positive area.
    let (x0, x1) = if x1 - x0 >= 1.0 { (x0, x1) } else { (b.x0.min(maxx - 1.0).max(0.0), (b.x0 + 1.0).min(maxx)) };
    let (y0, y1) = if y1 - y0 >= 1.0 { (y0, y1) } else { (b.y0.min(maxy - 1.0).max(0.0), (b.y0 + 1.0).min(maxy)) };
    Some(BoxPrompt { x0, y0, x1, y1 })
}

/// Erodes (radius < 0) or dilates (radius > 0) a mask with a square structuring element of side
/// 2|radius| + 1: a minimum (erosion) or maximum (dilation) filter, separable into rows and
/// columns, with the window clipped at the slice border.
fn morphology(mask: &[u8], w: usize, radius: i64) -> Vec<u8> {
    if radius == 0 {
        return mask.to_vec();
    }
    let h = mask.len() / w;
    let r = radius.unsigned_abs() as usize;
    let pick = |a: u8, b: u8| if radius > 0 { a.max(b) } else { a.min(b) };
    let mut rows = vec![0u8; mask.len()];
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (x.saturating_sub(r), (x + r).min(w - 1));
            rows[y * w + x] = (a..=b).map(|i| mask[y * w + i]).reduce(pick).unwrap();
        }
    }
    let mut out = vec![0u8; mask.len()];
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (y.saturating_sub(r), (y + r).min(h - 1));
            out[y * w + x] = (a..=b).map(|j| rows[j * w + x]).reduce(pick).unwrap();
        }
    }
    out
}

/// A noisy version of the mask: rotated, scaled and translated about its centroid (nearest
/// neighbour), then eroded or dilated. May come out empty for tiny objects and strong erosion.
pub fn noisy_mask(mask: &[u8], w: usize, noise: &MaskNoise, rng: &mut SplitMix64) -> Vec<u8> {
    let h = mask.len() / w;
    let (mut cx, mut cy, mut n) = (0.0, 0.0, 0.0);
    for (i, _) in mask.iter().enumerate().filter(|(_, &v)| v != 0) {
        cx += (i % w) as f64;
        cy += (i / w) as f64;
        n += 1.0;
    }
    if n == 0.0 {
        return mask.to_vec();
    }
    let (cx, cy) = (cx / n, cy / n);
    let s = scale_of(w);
    let angle = rng.range(-noise.max_rotation_deg, noise.max_rotation_deg).to_radians();
    let zoom = 1.0 + rng.range(-noise.max_scale_change, noise.max_scale_change);
    let (tx, ty) = (rng.range(-1.0, 1.0) * noise.max_translation * s, rng.range(-1.0, 1.0) * noise.max_translation * s);
    let radius = (rng.range(-1.0, 1.0) * noise.max_morphology * s).round() as i64;
    // Inverse mapping: each output pixel samples the source where the transform sends it from.
    let (sin, cos) = angle.sin_cos();
    let mut moved = vec![0u8; mask.len()];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = ((x as f64 - cx - tx) / zoom, (y as f64 - cy - ty) / zoom);
            let (sx, sy) = (cos * dx + sin * dy + cx, -sin * dx + cos * dy + cy);
            let (sx, sy) = (sx.round(), sy.round());
            if sx >= 0.0 && sy >= 0.0 && sx < w as f64 && sy < h as f64 {
                moved[y * w + x] = mask[sy as usize * w + sx as usize];
            }
        }
    }
    morphology(&moved, w, radius)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask_stats::dice;

    fn disc(w: usize, h: usize, cx: f64, cy: f64, r: f64) -> Vec<u8> {
        (0..w * h)
            .map(|i| ((((i % w) as f64 - cx).powi(2) + ((i / w) as f64 - cy).powi(2)).sqrt() <= r) as u8)
            .collect()
    }

    #[test]
    fn points_avoid_the_contour() {
        let (w, h) = (64, 48);
        let m = disc(w, h, 30.0, 20.0, 10.0);
        let d = depth(&m, w);
        let mut rng = SplitMix64(5);
        for _ in 0..200 {
            let p = random_point(&m, w, &mut rng).unwrap();
            assert!(d[p.y as usize * w + p.x as usize] >= 3, "{p:?} is within 2 pixels of the contour");
        }
        // A one-pixel-wide line still gets a point, on the line.
        let mut line = vec![0u8; w * h];
        (10..40).for_each(|x| line[20 * w + x] = 1);
        let p = random_point(&line, w, &mut rng).unwrap();
        assert_eq!(line[p.y as usize * w + p.x as usize], 1);
        assert!(random_point(&vec![0; w * h], w, &mut rng).is_none());
    }

    #[test]
    fn box_jitter_stays_within_the_papers_range_scaled_to_the_slice() {
        let (w, h) = (128, 128); // a quarter of the reference width: jitter -1.25..+5 px
        let m = disc(w, h, 64.0, 64.0, 20.0);
        let b = bounding_box(&m, w).unwrap();
        let mut rng = SplitMix64(9);
        let mut grew = false;
        for _ in 0..500 {
            let j = jittered_box(&m, w, &mut rng).unwrap();
            for (moved, side) in [(b.x0 - j.x0, "x0"), (b.y0 - j.y0, "y0"), (j.x1 - b.x1, "x1"), (j.y1 - b.y1, "y1")] {
                assert!((-1.25 - 1e-9..=5.0 + 1e-9).contains(&moved), "{side} moved {moved}");
                grew |= moved > 4.0;
            }
        }
        assert!(grew, "the outward range is used");
        // At the slice border the box is clamped and keeps a positive area.
        let corner = disc(w, h, 0.0, 0.0, 2.0);
        let mut rng = SplitMix64(1);
        for _ in 0..100 {
            let j = jittered_box(&corner, w, &mut rng).unwrap();
            assert!(j.x0 >= 0.0 && j.y0 >= 0.0 && j.x1 - j.x0 >= 1.0 && j.y1 - j.y0 >= 1.0, "{j:?}");
        }
    }

    #[test]
    fn noisy_masks_are_close_but_not_equal_and_reproducible() {
        let (w, h) = (512, 512);
        let m = disc(w, h, 250.0, 260.0, 60.0);
        let mut rng = SplitMix64(11);
        let mut dices = Vec::new();
        for _ in 0..20 {
            let n = noisy_mask(&m, w, &MaskNoise::default(), &mut rng);
            dices.push(dice(&n, &m));
        }
        let (lo, hi) = dices.iter().fold((1.0f64, 0.0f64), |(a, b), &d| (a.min(d), b.max(d)));
        // Imperfect but recognisable: what a previous slice's prediction looks like.
        assert!(lo > 0.5 && hi < 0.999, "noisy masks Dice range {lo:.3}..{hi:.3}");
        let again = noisy_mask(&m, w, &MaskNoise::default(), &mut SplitMix64(11));
        assert_eq!(again, noisy_mask(&m, w, &MaskNoise::default(), &mut SplitMix64(11)), "same seed, same mask");
        // No noise at all: the mask itself.
        let none =
            MaskNoise { max_rotation_deg: 0.0, max_scale_change: 0.0, max_translation: 0.0, max_morphology: 0.0 };
        assert_eq!(noisy_mask(&m, w, &none, &mut rng), m);
    }

    #[test]
    fn erosion_and_dilation_by_a_radius() {
        let w = 20;
        let m = disc(w, 20, 10.0, 10.0, 5.0);
        let count = |v: &[u8]| v.iter().filter(|&&x| x != 0).count();
        let eroded = morphology(&m, w, -2);
        let dilated = morphology(&m, w, 2);
        assert!(count(&eroded) < count(&m) && count(&m) < count(&dilated));
        assert!(eroded.iter().zip(&m).all(|(&e, &o)| e <= o), "erosion stays inside");
        assert!(m.iter().zip(&dilated).all(|(&o, &d)| o <= d), "dilation contains the mask");
        assert_eq!(morphology(&m, w, 0), m);
        // Square element of side 5: the dilated disc reaches exactly 2 pixels further.
        assert_eq!(bounding_box(&dilated, w), Some(BoxPrompt { x0: 3.0, y0: 3.0, x1: 17.0, y1: 17.0 }));
        assert_eq!(dilated[0], 0, "nothing appears at the slice border");
    }
}
