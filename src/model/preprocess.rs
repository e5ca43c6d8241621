//! The model's input transform (as segment-anything's `Sam.preprocess`): slices to model input,
//! and model masks back to slices. It belongs to the model: its window, size and normalisation
//! are part of the model's definition (`ModelConfig`).
//!
//! Forward: HU clipped to the model's window (`ModelConfig::window`, by default the RadSAM window
//! [-500, 1000]) and scaled to [0, 1]; longest side
//! resized (bilinear) to the encoder size; three channels; the model's own normalisation; zero
//! padding at the bottom and right. Inverse: low-resolution logits upsampled to the padded input,
//! cropped to the valid region, upsampled to the slice size, thresholded at 0.
//! Every step is one ATen op, so the PyTorch reference (scripts/parity_reference.py) reproduces
//! it exactly.

use super::{HuWindow, InputNormalization, ModelConfig, SAM_PIXEL_MEAN, SAM_PIXEL_STD};
use tch::{Kind, Tensor};

/// The geometry of one resize: slice (h, w) to valid region (scaled_h, scaled_w) inside a square
/// input of side `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceGeometry {
    pub h: i64,
    pub w: i64,
    pub scaled_h: i64,
    pub scaled_w: i64,
    pub target: i64,
}

impl SliceGeometry {
    /// SAM's `ResizeLongestSide.get_preprocess_shape`, except that a scaled side is never under 1
    /// pixel (a very thin slice would otherwise resize to nothing and libtorch would panic; the
    /// readers refuse such slices anyway, see volume/files.rs).
    pub fn new(h: i64, w: i64, target: i64) -> Self {
        let scale = target as f64 / h.max(w) as f64;
        let round = |v: i64| ((v as f64 * scale + 0.5) as i64).max(1);
        Self { h, w, scaled_h: round(h), scaled_w: round(w), target }
    }

    /// Slice pixel coordinates (x, y) to the model input frame.
    pub fn to_input(&self, x: f64, y: f64) -> (f64, f64) {
        (x * self.scaled_w as f64 / self.w as f64, y * self.scaled_h as f64 / self.h as f64)
    }
}

/// (B, H, W) HU slices -> (B, 3, S, S) input of the model `config` describes (its window, size
/// and normalisation).
pub fn slices_to_input(hu: &Tensor, config: &ModelConfig) -> (Tensor, SliceGeometry) {
    let (target, normalization, window) = (config.image_size, config.normalization, config.window);
    let (_, h, w) = hu.size3().expect("slices are (B, H, W)");
    let geo = SliceGeometry::new(h, w, target);
    let hu = hu.to_kind(Kind::Float);
    let windowed = |w: HuWindow| (hu.clamp(w.lo, w.hi) - w.lo) / (w.hi - w.lo);
    let x = match window.as_grey() {
        // One window: computed once and shared by the three channels.
        Some(w) => windowed(w)
            .unsqueeze(1)
            .upsample_bilinear2d([geo.scaled_h, geo.scaled_w], false, None, None)
            .expand([-1, 3, -1, -1], false),
        None => Tensor::stack(&window.channels.map(windowed), 1).upsample_bilinear2d(
            [geo.scaled_h, geo.scaled_w],
            false,
            None,
            None,
        ),
    };
    let x = match normalization {
        InputNormalization::UnitRange => x.contiguous(),
        InputNormalization::SamPixel => {
            let mean =
                Tensor::from_slice(&SAM_PIXEL_MEAN).to_kind(Kind::Float).to_device(hu.device()).view([1, 3, 1, 1]);
            let std = Tensor::from_slice(&SAM_PIXEL_STD).to_kind(Kind::Float).to_device(hu.device()).view([1, 3, 1, 1]);
            (x * 255.0 - mean) / std
        }
    };
    let x = x.constant_pad_nd([0, target - geo.scaled_w, 0, target - geo.scaled_h]);
    (x, geo)
}

/// A binary slice mask (B, H, W) -> (B, 1, M, M) binary mask prompt on the low-resolution grid of
/// side `mask_size` (which covers the padded input).
pub fn mask_to_prompt(mask: &Tensor, geo: &SliceGeometry, mask_size: i64) -> Tensor {
    let f = mask_size as f64 / geo.target as f64;
    let (mh, mw) = (((geo.scaled_h as f64) * f).round() as i64, ((geo.scaled_w as f64) * f).round() as i64);
    let m = mask.to_kind(Kind::Float).unsqueeze(1).upsample_bilinear2d([mh, mw], false, None, None);
    m.gt(0.5).to_kind(Kind::Float).constant_pad_nd([0, mask_size - mw, 0, mask_size - mh])
}

/// (B, K, M, M) low-resolution logits -> (B, K, H, W) logits on the slice grid.
pub fn logits_to_slice(low_res: &Tensor, geo: &SliceGeometry) -> Tensor {
    let x = low_res.upsample_bilinear2d([geo.target, geo.target], false, None, None);
    let x = x.narrow(2, 0, geo.scaled_h).narrow(3, 0, geo.scaled_w);
    x.upsample_bilinear2d([geo.h, geo.w], false, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_sams_rounding() {
        // ResizeLongestSide: round(dim * target / longest) with +0.5 truncation.
        let g = SliceGeometry::new(101, 122, 1024);
        assert_eq!((g.scaled_h, g.scaled_w), (848, 1024));
        let g = SliceGeometry::new(512, 512, 256);
        assert_eq!((g.scaled_h, g.scaled_w), (256, 256));
        let g = SliceGeometry::new(300, 100, 256);
        assert_eq!((g.scaled_h, g.scaled_w), (256, 85));
        assert_eq!(g.to_input(100.0, 300.0), (85.0, 256.0));
    }

    #[test]
    fn window_clips_and_scales_hu() {
        let hu = Tensor::from_slice(&[-1000.0f32, -500.0, 250.0, 1000.0, 3000.0]).view([1, 1, 5]);
        let mut config = ModelConfig::by_name("lite_medsam").unwrap();
        config.image_size = 5;
        assert_eq!(config.normalization, InputNormalization::UnitRange);
        let (x, _) = slices_to_input(&hu, &config);
        // 1x5 -> 1x5 (longest side already 5): values survive the resize unchanged.
        let row: Vec<f32> = Vec::try_from(x.get(0).get(0).get(0)).unwrap();
        assert_eq!(row, vec![0.0, 0.0, 0.5, 1.0, 1.0]);
        assert_eq!(x.size(), vec![1, 3, 5, 5]);
        // Padding rows are zero.
        assert_eq!(x.get(0).get(0).narrow(0, 1, 4).abs().sum(Kind::Float).double_value(&[]), 0.0);
        // Another window: MedSAM's soft-tissue window [-160, 240].
        config.window = crate::model::InputWindow::grey(HuWindow { lo: -160.0, hi: 240.0 });
        let soft = config.window;
        let hu = Tensor::from_slice(&[-1000.0f32, -160.0, 40.0, 240.0, 3000.0]).view([1, 1, 5]);
        let row: Vec<f32> = Vec::try_from(slices_to_input(&hu, &config).0.get(0).get(0).get(0)).unwrap();
        assert_eq!(row, vec![0.0, 0.0, 0.5, 1.0, 1.0]);
        // Three windows: each channel its own, the soft-tissue channel as the grey one above.
        config.window = crate::model::InputWindow::parse("-160,240/-500,1000/-1000,0").unwrap();
        let x = slices_to_input(&hu, &config).0;
        let channel = |c: i64| -> Vec<f32> { Vec::try_from(x.get(0).get(c).get(0)).unwrap() };
        let grey = slices_to_input(&hu, &ModelConfig { window: soft, ..config.clone() }).0;
        assert_eq!(channel(0), Vec::<f32>::try_from(grey.get(0).get(0).get(0)).unwrap());
        assert_eq!(channel(1), vec![0.0, 340.0 / 1500.0, 540.0 / 1500.0, 740.0 / 1500.0, 1.0]);
        assert_eq!(channel(2), vec![0.0, 0.84, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn mask_round_trip_lands_on_the_same_voxels() {
        // A rectangle on a 101x122 slice, taken to the 256 prompt grid and back as logits.
        let mut m = vec![0f32; 101 * 122];
        for y in 30..70 {
            for x in 40..100 {
                m[y * 122 + x] = 1.0;
            }
        }
        let mask = Tensor::from_slice(&m).view([1, 101, 122]);
        let geo = SliceGeometry::new(101, 122, 1024);
        let prompt = mask_to_prompt(&mask, &geo, 256);
        assert_eq!(prompt.size(), vec![1, 1, 256, 256]);
        let logits = (prompt * 2.0 - 1.0) * 10.0;
        let back = logits_to_slice(&logits, &geo).gt(0.0).to_kind(Kind::Float).view([1, 101, 122]);
        let inter = (&back * &mask).sum(Kind::Float).double_value(&[]);
        let dice = 2.0 * inter / (back.sum(Kind::Float).double_value(&[]) + mask.sum(Kind::Float).double_value(&[]));
        assert!(dice > 0.98, "round trip Dice {dice}");
    }
}
