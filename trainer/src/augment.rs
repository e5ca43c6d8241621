//! Image augmentation for training (paper section 3.3): a random affine transform (translation,
//! rotation, shear, zoom) applied to a slice and its labels alike, Gaussian noise, and a random HU
//! window. With a frozen encoder these are baked into a few cached views of each slice.

use radsam::model::{HuWindow, RADSAM_WINDOW};
use radsam::rng::SplitMix64;
use tch::{Kind, Tensor};

/// Ranges of the random view; `none()` leaves a slice as it is.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augmentation {
    pub max_rotation_deg: f64,
    pub max_shear: f64,
    /// Magnification: the zoom is drawn in 1 - max_zoom_out ..= 1 + max_zoom (below 1 the anatomy
    /// shrinks, as in a scan with a wider field of view or a smaller patient).
    pub max_zoom: f64,
    #[serde(default = "default_zoom_out")]
    pub max_zoom_out: f64,
    /// Fraction of the slice size.
    pub max_translation: f64,
    /// Upper bound of the noise standard deviation (HU).
    pub max_noise_hu: f64,
    /// The window's ends move by up to this much (HU), independently, for the RadSAM window's
    /// 1500 HU width; proportionally less for a narrower model window.
    pub max_window_shift_hu: f64,
    /// The model's input window (`ModelConfig::window`), which the random window is mapped onto.
    #[serde(default = "default_window")]
    pub window: HuWindow,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self {
            max_rotation_deg: 15.0,
            max_shear: 0.1,
            max_zoom: 0.15,
            max_zoom_out: default_zoom_out(),
            max_translation: 0.08,
            max_noise_hu: 20.0,
            max_window_shift_hu: 150.0,
            window: RADSAM_WINDOW,
        }
    }
}

fn default_zoom_out() -> f64 {
    0.15
}

fn default_window() -> HuWindow {
    RADSAM_WINDOW
}

/// Air: what enters the slice from outside its field of view.
const AIR_HU: f64 = -1024.0;

/// One random view of a slice: `hu` is (H, W) in HU, each of `labels` (H, W) class ids. Returns the
/// transformed HU slice and label planes (nearest neighbour, so ids stay ids).
pub fn random_view(hu: &Tensor, labels: &[Tensor], aug: &Augmentation, rng: &mut SplitMix64) -> (Tensor, Vec<Tensor>) {
    let (h, w) = hu.size2().expect("(H, W) slice");
    let theta = random_theta(h, w, aug, rng);
    let grid = Tensor::affine_grid_generator(&theta, [1, 1, h, w], false);
    // grid_sampler: interpolation 0 bilinear / 1 nearest, padding 0 zeros; shift so zeros mean air.
    let moved = (hu - AIR_HU).view([1, 1, h, w]).grid_sampler(&grid, 0, 0, false).view([h, w]) + AIR_HU;
    let labels = labels
        .iter()
        .map(|l| {
            l.to_kind(Kind::Float)
                .view([1, 1, h, w])
                .grid_sampler(&grid, 1, 0, false)
                .view([h, w])
                .round()
                .to_kind(l.kind())
        })
        .collect();
    // Random window: [lo, hi] of the scan is stretched onto the model's fixed window.
    let (w_lo, w_hi) = (aug.window.lo, aug.window.hi);
    let shift = aug.max_window_shift_hu * (w_hi - w_lo) / (RADSAM_WINDOW.hi - RADSAM_WINDOW.lo);
    let lo = w_lo + rng.range(-shift, shift);
    let hi = w_hi + rng.range(-shift, shift);
    let windowed = (moved - lo) * ((w_hi - w_lo) / (hi - lo)) + w_lo;
    let sigma = rng.range(0.0, aug.max_noise_hu);
    // libtorch's generator is global: seed it from the view's own stream, so a view is a function
    // of its seed alone.
    tch::manual_seed((rng.next_u64() >> 1) as i64);
    let noise = Tensor::randn([h, w], (Kind::Float, hu.device()));
    (windowed + noise * sigma, labels)
}

/// The sampling matrix (1, 2, 3) in normalised coordinates for a transform drawn in pixel space
/// (so rotations stay rotations on non-square slices).
fn random_theta(h: i64, w: i64, aug: &Augmentation, rng: &mut SplitMix64) -> Tensor {
    let a = rng.range(-aug.max_rotation_deg, aug.max_rotation_deg).to_radians();
    let zoom = 1.0 + rng.range(-aug.max_zoom_out, aug.max_zoom);
    let shear = rng.range(-aug.max_shear, aug.max_shear);
    let (tx, ty) =
        (rng.range(-aug.max_translation, aug.max_translation), rng.range(-aug.max_translation, aug.max_translation));
    // Output pixel -> input pixel (about the centre): rotation * shear / zoom.
    let (c, s) = (a.cos(), a.sin());
    let m = [[c / zoom, (c * shear - s) / zoom], [s / zoom, (s * shear + c) / zoom]];
    // Normalised coordinates: x_n = x_p / (W/2), y_n = y_p / (H/2).
    let (sx, sy) = (w as f64 / 2.0, h as f64 / 2.0);
    let t = [[m[0][0], m[0][1] * sy / sx, 2.0 * tx], [m[1][0] * sx / sy, m[1][1], 2.0 * ty]];
    Tensor::from_slice(&[
        t[0][0] as f32,
        t[0][1] as f32,
        t[0][2] as f32,
        t[1][0] as f32,
        t[1][1] as f32,
        t[1][2] as f32,
    ])
    .view([1, 2, 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ranges_keep_the_slice() {
        let none = Augmentation {
            max_rotation_deg: 0.0,
            max_shear: 0.0,
            max_zoom: 0.0,
            max_zoom_out: 0.0,
            max_translation: 0.0,
            max_noise_hu: 0.0,
            max_window_shift_hu: 0.0,
            window: RADSAM_WINDOW,
        };
        let hu = Tensor::arange(12 * 10, (Kind::Float, tch::Device::Cpu)).view([12, 10]) * 10.0 - 500.0;
        let lab = Tensor::arange(12 * 10, (Kind::Int, tch::Device::Cpu)).view([12, 10]).remainder(3);
        let (out, labs) = random_view(&hu, &[lab.shallow_clone()], &none, &mut SplitMix64(3));
        assert!((out - &hu).abs().max().double_value(&[]) < 1e-3);
        assert_eq!(labs[0], lab);
    }

    #[test]
    fn zoom_out_shrinks_the_anatomy_and_zoom_in_enlarges_it() {
        // A labelled 20x20 square (400 pixels) in the middle of a 64x64 slice.
        let mut lab = vec![0i32; 64 * 64];
        for y in 22..42 {
            for x in 22..42 {
                lab[y * 64 + x] = 1;
            }
        }
        let l = Tensor::from_slice(&lab).view([64, 64]);
        let hu = Tensor::zeros([64, 64], (Kind::Float, tch::Device::Cpu));
        let only_zoom = |zoom_in: f64, zoom_out: f64| Augmentation {
            max_rotation_deg: 0.0,
            max_shear: 0.0,
            max_zoom: zoom_in,
            max_zoom_out: zoom_out,
            max_translation: 0.0,
            max_noise_hu: 0.0,
            max_window_shift_hu: 0.0,
            window: RADSAM_WINDOW,
        };
        let area = |aug: &Augmentation, seed: u64| {
            random_view(&hu, &[l.shallow_clone()], aug, &mut SplitMix64(seed)).1[0].sum(Kind::Int64).int64_value(&[])
        };
        let shrunk: Vec<i64> = (0..20).map(|s| area(&only_zoom(0.0, 0.3), s)).collect();
        let grown: Vec<i64> = (0..20).map(|s| area(&only_zoom(0.15, 0.0), s)).collect();
        // A zoom within 0.7..1: the area scales by zoom^2, so 196..400 pixels (up to the rim's rounding).
        assert!(shrunk.iter().all(|&a| (180..=420).contains(&a)), "{shrunk:?}");
        assert!(
            shrunk.iter().filter(|&&a| a < 300).count() >= 5,
            "a zoom-out range of 0.3 reaches below 0.87: {shrunk:?}"
        );
        assert!(grown.iter().all(|&a| a >= 380), "{grown:?}");
        assert!(grown.iter().any(|&a| a > 450), "{grown:?}");
    }

    #[test]
    fn labels_move_with_the_image() {
        // A bright square labelled 1: after a random view, the label still covers the bright voxels.
        let mut img = vec![-800f32; 64 * 80];
        let mut lab = vec![0i32; 64 * 80];
        for y in 20..40 {
            for x in 30..50 {
                img[y * 80 + x] = 400.0;
                lab[y * 80 + x] = 1;
            }
        }
        let hu = Tensor::from_slice(&img).view([64, 80]);
        let l = Tensor::from_slice(&lab).view([64, 80]);
        let aug = Augmentation { max_noise_hu: 0.0, max_window_shift_hu: 0.0, ..Default::default() };
        for seed in 0..5 {
            let (out, labs) = random_view(&hu, &[l.shallow_clone()], &aug, &mut SplitMix64(seed));
            let inside = out.masked_select(&labs[0].eq(1));
            assert!(inside.numel() > 200, "the square survives the view");
            // Nearest labels vs bilinear image: all but the rim agree.
            let bright = inside.gt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
            assert!(bright > 0.8, "seed {seed}: {bright} of the labelled voxels are bright");
            assert_eq!(labs[0].kind(), Kind::Int);
        }
    }

    #[test]
    fn window_shift_maps_the_random_window_onto_the_fixed_one() {
        for window in [RADSAM_WINDOW, HuWindow { lo: -160.0, hi: 240.0 }] {
            let aug = Augmentation {
                max_rotation_deg: 0.0,
                max_shear: 0.0,
                max_zoom: 0.0,
                max_zoom_out: 0.0,
                max_translation: 0.0,
                max_noise_hu: 0.0,
                max_window_shift_hu: 150.0,
                window,
            };
            let mid = (window.lo + window.hi) as f32 / 2.0;
            let hu = Tensor::from_slice(&[window.lo as f32, window.hi as f32, mid, mid]).view([2, 2]);
            let (out, _) = random_view(&hu, &[], &aug, &mut SplitMix64(9));
            let v: Vec<f32> = Vec::try_from(out.flatten(0, -1)).unwrap();
            assert!(v[0] != window.lo as f32 || v[1] != window.hi as f32, "the window moved");
            assert!(v[0] < v[2] && v[2] < v[1], "order kept");
            // The ends move by at most a tenth of the window's width (150 HU of RadSAM's 1500).
            let reach = 0.1 * (window.hi - window.lo) as f32 * 1.6;
            assert!(
                (v[0] - window.lo as f32).abs() < reach && (v[1] - window.hi as f32).abs() < reach,
                "{v:?} for {window}"
            );
        }
    }
}
