//! The benchmark's PNG plots, drawn directly (no plotting stack, no system fonts): Dice against
//! clicks as line charts, one panel per prompting level, and per-class Dice as horizontal bars.
//! Text uses the public-domain 8x8 bitmap font of `font8x8`, scaled by whole factors.

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};
use std::path::Path;

/// Distinct colours for series (models), readable on white.
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];

pub struct Series {
    pub label: String,
    pub color: [u8; 3],
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Self { img: RgbImage::from_pixel(w, h, Rgb(WHITE)) }
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.put(x, y, c);
            }
        }
    }

    /// A line `width` pixels thick; dashed lines draw 8 pixels, skip 5.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3], width: i64, dashed: bool) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=steps {
            if dashed && i % 13 >= 8 {
                continue;
            }
            let t = i as f64 / steps as f64;
            let (x, y) = ((x0 + t * (x1 - x0)).round() as i64, (y0 + t * (y1 - y0)).round() as i64);
            self.fill(x - width / 2, y - width / 2, x + (width - 1) / 2, y + (width - 1) / 2, c);
        }
    }

    /// Text with its top-left corner at (x, y); characters outside the font draw as '?'.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) {
        for (n, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let (px, py) = (x + (n as i64 * 8 + col) * scale, y + row as i64 * scale);
                        self.fill(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }

    fn save(&self, path: &Path) -> Result<(), image::ImageError> {
        self.img.save_with_format(path, image::ImageFormat::Png)
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 8 * scale
}

/// Dice (0..100) against a count on x (0..=x_max), one panel per `panels`, legend on the right.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    x_max: f64,
    panels: &[Panel],
) -> Result<(), image::ImageError> {
    let (pw, ph) = (520i64, 380i64);
    let labels: Vec<&Series> = panels.first().map(|p| p.series.iter().collect()).unwrap_or_default();
    let legend_w = labels.iter().map(|s| text_width(&s.label, 1) + 50).max().unwrap_or(0);
    let (left, top) = (70i64, 60i64);
    let w = left + panels.len() as i64 * (pw + 40) + legend_w + 20;
    let h = top + ph + 70;
    let mut cv = Canvas::new(w as u32, h as u32);
    cv.text(left, 16, title, BLACK, 2);
    for (pi, panel) in panels.iter().enumerate() {
        let x0 = left + pi as i64 * (pw + 40);
        let (y0, y1) = (top + ph, top);
        let px = |x: f64| x0 as f64 + x / x_max.max(1.0) * pw as f64;
        let py = |y: f64| y0 as f64 - y / 100.0 * ph as f64;
        for v in (0..=100).step_by(20) {
            let y = py(v as f64);
            cv.line((x0 as f64, y), ((x0 + pw) as f64, y), GRID, 1, false);
            let t = v.to_string();
            cv.text(x0 - 8 - text_width(&t, 1), y as i64 - 4, &t, BLACK, 1);
        }
        let step = if x_max <= 10.0 { 1 } else { 5 };
        for v in (0..=x_max as usize).step_by(step) {
            let x = px(v as f64);
            cv.line((x, y0 as f64), (x, y0 as f64 + 5.0), BLACK, 1, false);
            let t = v.to_string();
            cv.text(x as i64 - text_width(&t, 1) / 2, y0 + 10, &t, BLACK, 1);
        }
        cv.line((x0 as f64, y0 as f64), ((x0 + pw) as f64, y0 as f64), BLACK, 1, false);
        cv.line((x0 as f64, y0 as f64), (x0 as f64, y1 as f64), BLACK, 1, false);
        cv.text(x0 + (pw - text_width(&panel.title, 1)) / 2, top - 16, &panel.title, BLACK, 1);
        cv.text(x0 + (pw - text_width(x_label, 1)) / 2, y0 + 30, x_label, BLACK, 1);
        if pi == 0 {
            cv.text(8, top - 16, "Dice %", BLACK, 1);
        }
        for s in &panel.series {
            for pair in s.points.windows(2) {
                cv.line((px(pair[0].0), py(pair[0].1)), (px(pair[1].0), py(pair[1].1)), s.color, 2, s.dashed);
            }
            for &(x, y) in &s.points {
                let (cx, cy) = (px(x).round() as i64, py(y).round() as i64);
                cv.fill(cx - 2, cy - 2, cx + 2, cy + 2, s.color);
            }
        }
    }
    let lx = left + panels.len() as i64 * (pw + 40);
    for (i, s) in labels.iter().enumerate() {
        let y = top + 10 + i as i64 * 20;
        cv.line((lx as f64, y as f64), ((lx + 36) as f64, y as f64), s.color, 2, s.dashed);
        cv.text(lx + 44, y - 4, &s.label, BLACK, 1);
    }
    cv.save(path)
}

/// Horizontal bars: one row per category, one bar per group (model), Dice 0..100.
pub fn bar_chart(
    path: &Path,
    title: &str,
    categories: &[String],
    groups: &[(String, [u8; 3])],
    values: &[Vec<Option<f64>>],
) -> Result<(), image::ImageError> {
    let bar_h = 9i64;
    let row_h = bar_h * groups.len().max(1) as i64 + 8;
    let label_w = categories.iter().map(|c| text_width(c, 1)).max().unwrap_or(0) + 16;
    let (top, plot_w) = (70i64, 500i64);
    let legend_h = groups.len() as i64 * 16;
    let w = label_w + plot_w + 80;
    let h = top + row_h * categories.len() as i64 + 40 + legend_h;
    let mut cv = Canvas::new(w as u32, h as u32);
    cv.text(10, 16, title, BLACK, 2);
    let x0 = label_w;
    let px = |v: f64| x0 as f64 + v / 100.0 * plot_w as f64;
    let bottom = top + row_h * categories.len() as i64;
    for v in (0..=100).step_by(20) {
        let x = px(v as f64);
        cv.line((x, top as f64), (x, bottom as f64), GRID, 1, false);
        let t = v.to_string();
        cv.text(x as i64 - text_width(&t, 1) / 2, bottom + 6, &t, BLACK, 1);
    }
    cv.text(x0 + plot_w - text_width("Dice %", 1), top - 14, "Dice %", BLACK, 1);
    for (ci, cat) in categories.iter().enumerate() {
        let y = top + ci as i64 * row_h + 4;
        cv.text(x0 - 8 - text_width(cat, 1), y + row_h / 2 - 8, cat, BLACK, 1);
        for (gi, (_, color)) in groups.iter().enumerate() {
            if let Some(v) = values.get(ci).and_then(|r| r.get(gi)).copied().flatten() {
                let yb = y + gi as i64 * bar_h;
                cv.fill(x0, yb, px(v.clamp(0.0, 100.0)).round() as i64, yb + bar_h - 2, *color);
            }
        }
    }
    cv.line((x0 as f64, top as f64), (x0 as f64, bottom as f64), BLACK, 1, false);
    for (gi, (label, color)) in groups.iter().enumerate() {
        let y = bottom + 26 + gi as i64 * 16;
        cv.fill(x0, y, x0 + 20, y + 8, *color);
        cv.text(x0 + 28, y, label, BLACK, 1);
    }
    cv.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_data() {
        let dir = std::env::temp_dir().join(format!("radsam-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let red = PALETTE[1];
        let panel = Panel {
            title: "volume-level".into(),
            series: vec![Series {
                label: "m".into(),
                color: red,
                dashed: false,
                points: vec![(0.0, 50.0), (2.0, 100.0)],
            }],
        };
        let path = dir.join("lines.png");
        line_chart(&path, "t", "clicks", 2.0, &[panel]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // The series' colour is drawn, at the first point (x 0 -> left edge 70, Dice 50 -> mid-height).
        assert_eq!(img.get_pixel(70, 60 + 190).0, red);
        let path = dir.join("bars.png");
        bar_chart(&path, "t", &["liver".into()], &[("m".into(), red)], &[vec![Some(50.0)]]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let reds = img.pixels().filter(|p| p.0 == red).count();
        // One bar: 50% of 500 px, 8 px high, its first column under the axis line; plus the
        // legend swatch 21 x 9.
        assert_eq!(reds, 250 * 8 + 21 * 9);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
