//! Slices to model input and model masks back to slices.
//!
//! Forward: HU clipped to the RadSAM window [-500, 1000] and scaled to [0, 1]; longest side
//! resized (bilinear) to the encoder size; three channels; the model's own normalisation; zero
//! padding at the bottom and right. Inverse: low-resolution logits upsampled to the padded input,
//! cropped to the valid region, upsampled to the slice size, thresholded at 0.
//! Every step is one ATen op, so the PyTorch reference (scripts/parity_reference.py) reproduces
//! it exactly.

use crate::model::{InputNormalization, SAM_PIXEL_MEAN, SAM_PIXEL_STD};
use tch::{Kind, Tensor};

pub const HU_MIN: f64 = -500.0;
pub const HU_MAX: f64 = 1000.0;

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
    /// SAM's `ResizeLongestSide.get_preprocess_shape`.
    pub fn new(h: i64, w: i64, target: i64) -> Self {
        let scale = target as f64 / h.max(w) as f64;
        let round = |v: i64| (v as f64 * scale + 0.5) as i64;
        Self { h, w, scaled_h: round(h), scaled_w: round(w), target }
    }

    /// Slice pixel coordinates (x, y) to the model input frame.
    pub fn to_input(&self, x: f64, y: f64) -> (f64, f64) {
        (x * self.scaled_w as f64 / self.w as f64, y * self.scaled_h as f64 / self.h as f64)
    }
}

/// (B, H, W) HU slices -> (B, 3, S, S) model input.
pub fn slices_to_input(hu: &Tensor, target: i64, normalization: InputNormalization) -> (Tensor, SliceGeometry) {
    let (_, h, w) = hu.size3().expect("slices are (B, H, W)");
    let geo = SliceGeometry::new(h, w, target);
    let x = ((hu.to_kind(Kind::Float).clamp(HU_MIN, HU_MAX) - HU_MIN) / (HU_MAX - HU_MIN)).unsqueeze(1);
    let x = x.upsample_bilinear2d([geo.scaled_h, geo.scaled_w], false, None, None);
    let x = x.expand([-1, 3, -1, -1], false);
    let x = match normalization {
        InputNormalization::UnitRange => x.contiguous(),
        InputNormalization::SamPixel => {
            let mean = Tensor::from_slice(&SAM_PIXEL_MEAN).to_kind(Kind::Float).to_device(hu.device()).view([1, 3, 1, 1]);
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
