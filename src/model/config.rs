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

/// The encoder's input: each of its three channels (R, G, B) the slice under one HU window. One
/// window in all three is the grey image every shipped encoder was trained on; three windows (soft
/// tissue, RadSAM's, lung) let a frozen encoder see the spinal cord, vessels, bone and lung at
/// once, where any single window hides some of them (bench/results/window_mix.md), though it reads
/// some organs worse than the soft-tissue window (bench/results/base_windows/).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputWindow {
    pub channels: [HuWindow; 3],
}

impl InputWindow {
    pub const fn grey(window: HuWindow) -> Self {
        Self { channels: [window; 3] }
    }

    /// The same window in every channel.
    pub fn as_grey(&self) -> Option<HuWindow> {
        let [r, g, b] = self.channels;
        (r == g && g == b).then_some(r)
    }

    /// The channel with the narrowest window: the one a shift of HU changes most.
    pub fn narrowest(&self) -> HuWindow {
        let width = |w: &HuWindow| w.hi - w.lo;
        *self.channels.iter().min_by(|a, b| width(a).total_cmp(&width(b))).expect("three channels")
    }

    /// `LO,HI` (grey) or `LO,HI/LO,HI/LO,HI` (R, G, B), e.g. `-160,240/-500,1000/-1350,150`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [one] => Ok(Self::grey(HuWindow::parse(one)?)),
            [r, g, b] => Ok(Self { channels: [HuWindow::parse(r)?, HuWindow::parse(g)?, HuWindow::parse(b)?] }),
            _ => Err(format!("`{text}`: expected LO,HI or three windows LO,HI/LO,HI/LO,HI (R, G, B)")),
        }
    }
}

impl std::fmt::Display for InputWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_grey() {
            Some(w) => write!(f, "{w}"),
            None => write!(f, "{}/{}/{}", self.channels[0], self.channels[1], self.channels[2]),
        }
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
    /// The HU windows of the encoder's input (RADSAM_WINDOW, grey, unless the weights file names
    /// others).
    pub window: InputWindow,
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
        Some(Self {
            name: name.to_string(),
            encoder,
            image_size,
            normalization,
            window: InputWindow::grey(RADSAM_WINDOW),
        })
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

    #[test]
    fn input_windows_are_grey_or_three_channels() {
        let grey = InputWindow::parse("-500,1000").unwrap();
        assert_eq!(grey, InputWindow::grey(RADSAM_WINDOW));
        assert_eq!(grey.to_string(), "-500,1000");
        let rgb = InputWindow::parse("-160,240/-500,1000/-450,1350").unwrap();
        assert_eq!(rgb.as_grey(), None);
        assert_eq!(rgb.channels[2], HuWindow { lo: -450.0, hi: 1350.0 });
        assert_eq!(InputWindow::parse(&rgb.to_string()).unwrap(), rgb);
        assert_eq!(rgb.narrowest(), HuWindow { lo: -160.0, hi: 240.0 });
        for bad in ["-160,240/-500,1000", "1,2/3,4/5,6/7,8", "-160,240/x/1,2", ""] {
            assert!(InputWindow::parse(bad).is_err(), "{bad}");
        }
    }
}
