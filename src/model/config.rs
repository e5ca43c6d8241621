//! The registry of model configurations: which encoder, at which input size, with which input
//! normalisation. One place to add a family member.

use super::tiny_vit::TinyVitConfig;
use super::vit::VitConfig;

#[derive(Debug, Clone, PartialEq)]
pub enum EncoderConfig {
    TinyVit(TinyVitConfig),
    Vit(VitConfig),
}

/// How a slice windowed to [0, 1] is turned into the encoder's input. Kept per model, because
/// each was trained with its own convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum InputNormalization {
    /// Fed as is, in [0, 1] (LiteMedSAM, MedSAM, RadSAM).
    UnitRange,
    /// Scaled to [0, 255], then SAM's ImageNet pixel mean and std (SAM, MobileSAM).
    SamPixel,
}

/// The HU window a model's encoder sees: HU clipped to [lo, hi] and scaled to [0, 1]. Part of a
/// model's definition, as its normalisation: an encoder reads best the contrast it was trained on,
/// and a decoder trained on top of a frozen encoder learned the embeddings of one window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HuWindow {
    pub lo: f64,
    pub hi: f64,
}

/// The RadSAM paper's window, the default of every configuration.
pub const RADSAM_WINDOW: HuWindow = HuWindow { lo: -500.0, hi: 1000.0 };

impl HuWindow {
    /// `LO,HI` (e.g. `-160,240`): finite, LO < HI.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}`: expected LO,HI in HU with LO < HI, e.g. -160,240");
        let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
        let (lo, hi): (f64, f64) = (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(bad());
        }
        Ok(Self { lo, hi })
    }
}

impl std::fmt::Display for HuWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.lo, self.hi)
    }
}

pub const SAM_PIXEL_MEAN: [f64; 3] = [123.675, 116.28, 103.53];
pub const SAM_PIXEL_STD: [f64; 3] = [58.395, 57.12, 57.375];

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub encoder: EncoderConfig,
    /// Side of the square encoder input (1024 or 256).
    pub image_size: i64,
    pub normalization: InputNormalization,
    /// The HU window of the encoder's input (RADSAM_WINDOW unless the weights file names another).
    pub window: HuWindow,
}

/// Names accepted by [`ModelConfig::by_name`].
pub const MODEL_NAMES: &[&str] =
    &["radsam", "lite_medsam", "mobile_sam", "sam_vit_b", "sam_vit_l", "sam_vit_h", "medsam_vit_b"];

impl ModelConfig {
    pub fn by_name(name: &str) -> Option<Self> {
        let tiny = |img_size, patch_stride4, classifier_head| {
            EncoderConfig::TinyVit(TinyVitConfig {
                img_size,
                embed_dims: [64, 128, 160, 320],
                depths: [2, 2, 6, 2],
                num_heads: [2, 4, 5, 10],
                window_sizes: [7, 7, 14, 7],
                patch_stride4,
                classifier_head,
            })
        };
        let (encoder, image_size, normalization) = match name {
            // RadSAM as trained by this project (trainer/): LiteMedSAM's architecture, fine-tuned.
            "lite_medsam" | "radsam" => (tiny(256, false, false), 256, InputNormalization::UnitRange),
            "mobile_sam" => (tiny(1024, true, true), 1024, InputNormalization::SamPixel),
            "sam_vit_b" => (EncoderConfig::Vit(VitConfig::vit_b()), 1024, InputNormalization::SamPixel),
            "sam_vit_l" => (EncoderConfig::Vit(VitConfig::vit_l()), 1024, InputNormalization::SamPixel),
            "sam_vit_h" => (EncoderConfig::Vit(VitConfig::vit_h()), 1024, InputNormalization::SamPixel),
            "medsam_vit_b" => (EncoderConfig::Vit(VitConfig::vit_b()), 1024, InputNormalization::UnitRange),
            _ => return None,
        };
        Some(Self { name: name.to_string(), encoder, image_size, normalization, window: RADSAM_WINDOW })
    }

    /// Side of the image embedding grid (64 for every shipped configuration).
    pub fn embedding_size(&self) -> i64 {
        match &self.encoder {
            EncoderConfig::TinyVit(c) => c.embedding_size(),
            EncoderConfig::Vit(c) => c.embedding_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_print_back() {
        let w = HuWindow::parse("-160,240").unwrap();
        assert_eq!(w, HuWindow { lo: -160.0, hi: 240.0 });
        assert_eq!(HuWindow::parse(&w.to_string()).unwrap(), w);
        for bad in ["240,-160", "5,5", "-160", "a,b", "NaN,1", "-inf,0"] {
            assert!(HuWindow::parse(bad).is_err(), "{bad}");
        }
    }
}
