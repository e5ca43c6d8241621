//! QA images: one CT slice in a soft-tissue window with mask outlines and the prompt drawn on top,
//! written as PNG. The slice is scaled up by a whole factor (nearest neighbour) and the lines and
//! markers are drawn at the output resolution, so they stay one pixel thin and crisp.

use crate::prompt::SlicePrompt;
use crate::volume::Volume;
use image::{ImageFormat, Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// Soft-tissue window: level and width in HU.
const WINDOW: (f32, f32) = (40.0, 400.0);
/// The shorter side of the output is at least this many pixels.
const MIN_SIDE: usize = 512;
const BOX_COLOR: [u8; 3] = [255, 255, 0];
const POSITIVE_COLOR: [u8; 3] = [0, 255, 0];
const NEGATIVE_COLOR: [u8; 3] = [255, 0, 0];
/// Ring around markers, so they stand out on any background.
const RING_COLOR: [u8; 3] = [0, 0, 0];
/// Marker disc radius in output pixels.
const MARKER_RADIUS: i64 = 4;

/// A mask to outline: row-major (rows, cols) of the slice, non-zero inside.
pub struct OverlayMask<'a> {
    pub plane: &'a [u8],
    pub color: [u8; 3],
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("slice {slice} is out of range: the volume has {slices} slices")]
    SliceOutOfRange { slice: usize, slices: usize },
    #[error("mask plane has {found} pixels, the slice {expected}")]
    PlaneSize { found: usize, expected: usize },
    #[error("cannot write {path}: {reason}")]
    Unwritable { path: PathBuf, reason: String },
}

/// Writes slice `slice` of `volume` as a PNG at `path` with the outlines of `masks` and the points
/// and box of `prompt` (a mask prompt is shown by passing it in `masks`).
pub fn render_slice(
    volume: &Volume,
    slice: usize,
    masks: &[OverlayMask],
    prompt: Option<&SlicePrompt>,
    path: &Path,
) -> Result<(), OverlayError> {
    let slices = volume.num_slices();
    if slice >= slices {
        return Err(OverlayError::SliceOutOfRange { slice, slices });
    }
    let (rows, cols) = volume.grid.plane_shape();
    if let Some(m) = masks.iter().find(|m| m.plane.len() != rows * cols) {
        return Err(OverlayError::PlaneSize { found: m.plane.len(), expected: rows * cols });
    }
    let scale = MIN_SIDE.div_ceil(rows.min(cols).max(1));
    let hu = volume.grid.extract(&volume.data, slice);
    let mut img = RgbImage::from_fn((cols * scale) as u32, (rows * scale) as u32, |x, y| {
        let v = window(hu[y as usize / scale * cols + x as usize / scale]);
        Rgb([v, v, v])
    });
    for mask in masks {
        draw_outline(&mut img, mask, cols, scale);
    }
    if let Some(prompt) = prompt {
        draw_prompt(&mut img, prompt, scale);
    }
    save_atomically(&img, path)
}

/// Grey level of `hu` in the soft-tissue window.
fn window(hu: f32) -> u8 {
    let (level, width) = WINDOW;
    ((hu - (level - width / 2.0)) / width * 255.0).clamp(0.0, 255.0).round() as u8
}

/// Colours the output pixels inside the scaled-up mask that have a 4-neighbour outside it (or
/// off the image): a one-pixel line just inside the mask's edge.
fn draw_outline(img: &mut RgbImage, mask: &OverlayMask, cols: usize, scale: usize) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let inside = |x: i64, y: i64| {
        x >= 0 && y >= 0 && x < w && y < h && mask.plane[y as usize / scale * cols + x as usize / scale] != 0
    };
    for y in 0..h {
        for x in 0..w {
            if inside(x, y) && [(1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|&(dx, dy)| !inside(x + dx, y + dy)) {
                img.put_pixel(x as u32, y as u32, Rgb(mask.color));
            }
        }
    }
}

/// Output pixel at the centre of slice pixel coordinate `v` (saturating for wild values).
fn to_output(v: f64, scale: usize) -> i64 {
    ((v + 0.5) * scale as f64).floor() as i64
}

fn draw_prompt(img: &mut RgbImage, prompt: &SlicePrompt, scale: usize) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    if let Some(b) = prompt.bbox {
        let (x0, y0, x1, y1) =
            (to_output(b.x0, scale), to_output(b.y0, scale), to_output(b.x1, scale), to_output(b.y1, scale));
        // Loops clipped to the image: a box far outside it must not cost time.
        for x in x0.max(0)..=x1.min(w - 1) {
            put(img, x, y0, BOX_COLOR);
            put(img, x, y1, BOX_COLOR);
        }
        for y in y0.max(0)..=y1.min(h - 1) {
            put(img, x0, y, BOX_COLOR);
            put(img, x1, y, BOX_COLOR);
        }
    }
    for p in &prompt.points {
        let (cx, cy) = (to_output(p.x, scale), to_output(p.y, scale));
        let color = if p.positive { POSITIVE_COLOR } else { NEGATIVE_COLOR };
        let r = MARKER_RADIUS;
        for dy in -r - 1..=r + 1 {
            for dx in -r - 1..=r + 1 {
                let d2 = dx * dx + dy * dy;
                if d2 <= r * r {
                    put(img, cx + dx, cy + dy, color);
                } else if d2 <= (r + 1) * (r + 1) {
                    put(img, cx + dx, cy + dy, RING_COLOR);
                }
            }
        }
    }
}

/// Sets a pixel; coordinates off the image are skipped.
fn put(img: &mut RgbImage, x: i64, y: i64, color: [u8; 3]) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, Rgb(color));
    }
}

/// Writes to a temporary name beside `path`, then renames: never a half-written file at `path`.
fn save_atomically(img: &RgbImage, path: &Path) -> Result<(), OverlayError> {
    let unwritable = |reason: String| OverlayError::Unwritable { path: path.to_path_buf(), reason };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| unwritable("no file name".into()))?;
    let tmp = path.with_file_name(format!(".{name}.{}.partial.png", std::process::id()));
    let result = img.save_with_format(&tmp, ImageFormat::Png).map_err(|e| unwritable(e.to_string()));
    let result = result.and_then(|_| std::fs::rename(&tmp, path).map_err(|e| unwritable(e.to_string())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{bounding_box, interior_point, Point};
    use crate::volume::phantom::{generate, PhantomConfig};

    const LIVER_COLOR: [u8; 3] = [0, 128, 255];

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("radsam-overlay-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn draws_window_outline_box_and_points() {
        let phantom = generate(&PhantomConfig::default(), 3);
        let volume = &phantom.volume;
        let (rows, cols) = volume.grid.plane_shape();
        let liver_on =
            |s| -> Vec<u8> { volume.grid.extract(&phantom.labels, s).iter().map(|&l| u8::from(l == 1)).collect() };
        let slice = (0..volume.num_slices()).max_by_key(|&s| liver_on(s).iter().filter(|&&v| v != 0).count()).unwrap();
        let liver = liver_on(slice);
        let bbox = bounding_box(&liver, cols).unwrap();
        let centre = interior_point(&liver, cols).unwrap();
        let air = Point { x: 2.0, y: 2.0, positive: false };
        let prompt = SlicePrompt { points: vec![centre, air], bbox: Some(bbox), mask: None };
        let dir = temp_dir("draw");
        let path = dir.join("liver.png");
        render_slice(volume, slice, &[OverlayMask { plane: &liver, color: LIVER_COLOR }], Some(&prompt), &path)
            .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        std::fs::remove_dir_all(&dir).unwrap();

        let scale = 4; // 128 x 128 up to 512
        assert_eq!(img.dimensions(), ((cols * scale) as u32, (rows * scale) as u32));
        let at = |x: usize, y: usize| img.get_pixel(x as u32, y as u32).0;
        // Slice pixel (x, y) maps to output pixels x * scale .. (x + 1) * scale; its centre is + scale / 2.
        let (cx, cy) = (centre.x as usize, centre.y as usize);
        assert_eq!(at(cx * scale + scale / 2, cy * scale + scale / 2), POSITIVE_COLOR);
        assert_eq!(at(2 * scale + scale / 2, 2 * scale + scale / 2), NEGATIVE_COLOR);
        assert_eq!(at(0, img.height() as usize - 1), [0, 0, 0], "air is black in the window");
        // The outline runs along the inner edge of the liver's first pixel on the centre row.
        let first = (0..cols).find(|&x| liver[cy * cols + x] != 0).unwrap();
        assert_eq!(at(first * scale, cy * scale + scale / 2), LIVER_COLOR);
        assert_ne!(at(first * scale + 1, cy * scale + scale / 2), LIVER_COLOR, "outline one pixel thin");
        // Deep inside the liver, away from the marker: grey.
        let deep = (0..rows * cols)
            .find(|&i| {
                let (x, y) = (i % cols, i / cols);
                let far = x.abs_diff(cx) > 3 || y.abs_diff(cy) > 3;
                far && x >= 2
                    && y >= 2
                    && x + 2 < cols
                    && y + 2 < rows
                    && (y - 2..=y + 2).all(|yy| (x - 2..=x + 2).all(|xx| liver[yy * cols + xx] != 0))
            })
            .unwrap();
        let [r, g, b] = at(deep % cols * scale + scale / 2, deep / cols * scale + scale / 2);
        assert!(r == g && g == b, "interior pixel is grey, got {:?}", [r, g, b]);
        // The box's top edge, midway.
        let mid = ((bbox.x0 + bbox.x1) / 2.0).floor() as usize;
        assert_eq!(at(mid * scale + scale / 2, bbox.y0 as usize * scale + scale / 2), BOX_COLOR);
    }

    #[test]
    fn refuses_bad_slice_plane_and_path() {
        let identity = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        let volume = Volume::synthetic(vec![0.0; 8 * 6 * 3], [8, 6, 3], [1.0; 3], identity);
        let dir = temp_dir("refuse");
        let path = dir.join("slice.png");
        let err = render_slice(&volume, 3, &[], None, &path).unwrap_err();
        assert!(matches!(err, OverlayError::SliceOutOfRange { slice: 3, slices: 3 }), "{err}");
        let short = vec![1u8; 47];
        let err =
            render_slice(&volume, 0, &[OverlayMask { plane: &short, color: LIVER_COLOR }], None, &path).unwrap_err();
        assert!(matches!(err, OverlayError::PlaneSize { found: 47, expected: 48 }), "{err}");
        let err = render_slice(&volume, 0, &[], None, &dir.join("missing").join("slice.png")).unwrap_err();
        assert!(matches!(err, OverlayError::Unwritable { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing written, no partial file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
