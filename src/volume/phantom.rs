//! A synthetic abdominal CT with its organ labels, for tests and benchmarks that need anatomy-like
//! input without patient data: air, an elliptical body with subcutaneous fat around soft tissue,
//! liver, spleen, kidneys in perirenal fat, the aorta in front of a vertebral body, bowel gas, and a
//! hypodense lesion in the liver (a metastasis-like blob: small, round, low contrast).
//! Organs are smoothly deformed blobs that start and end inside the scan, so they have top and
//! bottom slices for 3D propagation. Sizes and positions vary with the seed; the same seed gives
//! the same phantom on every run and machine (own PRNG, HU rounded to integers).
//!
//! The anatomy is laid out in millimetres on a 320 x 320 x 240 mm field of view centred on the
//! grid and mapped onto whatever grid is asked for, so every grid shows the whole abdomen; the
//! default config is that field of view at 1:1.

use super::Volume;
use crate::rng::SplitMix64;
use std::f64::consts::TAU;

const LIVER: u8 = 1;
const SPLEEN: u8 = 2;
const KIDNEY_LEFT: u8 = 3;
const KIDNEY_RIGHT: u8 = 4;
const AORTA: u8 = 5;
const VERTEBRA: u8 = 6;
const LIVER_LESION: u8 = 7;
const CLASSES: [(u8, &str); 7] = [
    (LIVER, "liver"),
    (SPLEEN, "spleen"),
    (KIDNEY_LEFT, "kidney_left"),
    (KIDNEY_RIGHT, "kidney_right"),
    (AORTA, "aorta"),
    (VERTEBRA, "vertebra"),
    (LIVER_LESION, "liver_lesion"),
];

const AIR_HU: f64 = -1000.0;
const GAS_HU: f64 = -900.0;
const FAT_HU: f64 = -100.0;
const SOFT_TISSUE_HU: f64 = 40.0;
/// The lowest value CT scanners store.
const MIN_HU: f64 = -1024.0;

/// Field of view (mm along i, j, k) the anatomy is laid out on.
const LAYOUT_FOV: [f64; 3] = [320.0, 320.0, 240.0];
/// Organs keep within this distance (mm) of the centre slice, clear of the first and last slices.
const Z_LIMIT: f64 = 0.9 * LAYOUT_FOV[2] / 2.0;
/// Abdominal wall muscle between the subcutaneous fat and the organs (mm).
const WALL_MM: f64 = 8.0;

#[derive(Debug, Clone, PartialEq)]
pub struct PhantomConfig {
    /// Voxel counts along i (patient right to left), j (anterior to posterior), k (inferior to superior).
    pub dims: [usize; 3],
    /// Voxel size in mm along i, j, k.
    pub spacing: [f64; 3],
    /// Standard deviation of the Gaussian noise added to every voxel (HU).
    pub noise_hu: f32,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self { dims: [128, 128, 48], spacing: [2.5, 2.5, 5.0], noise_hu: 15.0 }
    }
}

#[derive(Debug, Clone)]
pub struct Phantom {
    /// An axial CT (slice axis 2) in HU.
    pub volume: Volume,
    /// Class of each voxel, on the volume's grid (x-fastest); 0 is background.
    pub labels: Vec<u8>,
    /// (label, name) of every class.
    pub classes: Vec<(u8, &'static str)>,
}

/// The phantom of `seed` on `config`'s grid.
pub fn generate(config: &PhantomConfig, seed: u64) -> Phantom {
    let mut rng = SplitMix64(seed);
    // Anatomy first, noise after: the anatomy of a seed does not depend on the grid or the noise.
    let mut anatomy = Anatomy::sample(&mut rng);
    anatomy.sample_lesion(&mut SplitMix64(seed ^ LESION_STREAM));
    let [nx, ny, nz] = config.dims;
    let mut data = Vec::with_capacity(nx * ny * nz);
    let mut labels = Vec::with_capacity(nx * ny * nz);
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = [layout_mm(i, nx, 0), layout_mm(j, ny, 1), layout_mm(k, nz, 2)];
                let (mut hu, label) = anatomy.tissue(p);
                // Tissue has texture; air and gas are uniform.
                if hu > GAS_HU {
                    hu += anatomy.texture(p);
                }
                hu += f64::from(config.noise_hu) * rng.normal();
                // Integer HU, as scanners store them; rounding also absorbs last-bit differences
                // between platforms' sin, cos and log.
                data.push(hu.round().max(MIN_HU) as f32);
                labels.push(label);
            }
        }
    }
    let volume = Volume::synthetic(data, config.dims, config.spacing, affine(config));
    Phantom { volume, labels, classes: CLASSES.to_vec() }
}

/// Position (mm from the centre, layout field of view) of voxel index `index` of `n` along `axis`.
fn layout_mm(index: usize, n: usize, axis: usize) -> f64 {
    (index as f64 - (n as f64 - 1.0) / 2.0) * LAYOUT_FOV[axis] / n as f64
}

/// Voxels stored as DICOM stores an axial scan (i to the patient's left, j posterior, k superior),
/// centred on the scanner origin.
fn affine(config: &PhantomConfig) -> [[f64; 4]; 4] {
    let [sx, sy, sz] = config.spacing;
    let half = |a: usize| (config.dims[a] as f64 - 1.0) / 2.0;
    [[-sx, 0.0, 0.0, sx * half(0)], [0.0, -sy, 0.0, sy * half(1)], [0.0, 0.0, sz, -sz * half(2)], [0.0, 0.0, 0.0, 1.0]]
}

/// A blob's nominal geometry, before the seed varies it (see [`Shape`]).
struct Blob {
    /// Centre in layout mm.
    centre: [f64; 3],
    /// Semi-axes in mm: in-plane along the tilted axes, then along z.
    semi: [f64; 3],
    /// Exponent of the profile along z.
    ends: f64,
    /// In-plane rotation (radians).
    tilt: f64,
    /// Shift of the centre in i and j per mm along z.
    drift: [f64; 2],
    /// Bound on the amplitude of the outline's harmonics.
    lobe: f64,
}

/// Tubes (aorta, spine): constant cross-section, rounded ends.
const TUBE: f64 = 8.0;
/// Ellipsoidal organs.
const ELLIPSOID: f64 = 2.0;

/// An organ's nominal anatomy.
struct Nominal {
    label: u8,
    blob: Blob,
    hu: f64,
    /// A shell of other density (renal cortex, cortical bone): thickness in mm and HU.
    rim: Option<(f64, f64)>,
    /// Fat around the organ (mm), which separates it from its neighbours.
    halo_mm: f64,
}

/// Layout mm: i (u) runs to the patient's left, so the liver (patient's right) has negative u and
/// sits on the image's left; j (v) runs posterior; k (z) superior. In priority order: where
/// shapes (or halos) overlap, the first one wins.
const ORGANS: [Nominal; 6] = [
    Nominal {
        label: VERTEBRA,
        blob: Blob {
            centre: [0.0, 45.0, 0.0],
            semi: [21.0, 17.0, 102.0],
            ends: TUBE,
            tilt: 0.0,
            drift: [0.0, 0.0],
            lobe: 0.03,
        },
        hu: 250.0,
        rim: Some((3.0, 700.0)),
        halo_mm: 0.0,
    },
    Nominal {
        label: AORTA,
        blob: Blob {
            centre: [10.0, 15.0, 0.0],
            semi: [11.0, 11.0, 95.0],
            ends: TUBE,
            tilt: 0.0,
            drift: [0.0, 0.0],
            lobe: 0.03,
        },
        hu: 180.0,
        rim: None,
        halo_mm: 2.0,
    },
    // Kidneys: lower poles lateral, hila facing anteromedially, the right one lower.
    Nominal {
        label: KIDNEY_LEFT,
        blob: Blob {
            centre: [68.0, 48.0, -10.0],
            semi: [26.0, 32.0, 55.0],
            ends: ELLIPSOID,
            tilt: -0.5,
            drift: [-0.2, 0.0],
            lobe: 0.12,
        },
        hu: 22.0,
        rim: Some((6.0, 42.0)),
        halo_mm: 7.0,
    },
    Nominal {
        label: KIDNEY_RIGHT,
        blob: Blob {
            centre: [-68.0, 48.0, -25.0],
            semi: [26.0, 32.0, 55.0],
            ends: ELLIPSOID,
            tilt: 0.5,
            drift: [0.2, 0.0],
            lobe: 0.12,
        },
        hu: 22.0,
        rim: Some((6.0, 42.0)),
        halo_mm: 7.0,
    },
    Nominal {
        label: SPLEEN,
        blob: Blob {
            centre: [78.0, 30.0, 35.0],
            semi: [30.0, 50.0, 48.0],
            ends: ELLIPSOID,
            tilt: -0.6,
            drift: [0.0, 0.0],
            lobe: 0.15,
        },
        hu: 50.0,
        rim: None,
        halo_mm: 3.0,
    },
    Nominal {
        label: LIVER,
        blob: Blob {
            centre: [-58.0, -5.0, 20.0],
            semi: [74.0, 72.0, 78.0],
            ends: ELLIPSOID,
            tilt: 0.2,
            drift: [0.0, 0.0],
            lobe: 0.2,
        },
        hu: 60.0,
        rim: None,
        halo_mm: 0.0,
    },
];

/// The liver lesion: hypodense against the liver's 60 HU (as a metastasis in the portal venous
/// phase), no fat around it. Its geometry is drawn inside the liver (`Anatomy::sample_lesion`).
const LESION: Nominal = Nominal {
    label: LIVER_LESION,
    // Unused: the lesion's shape is drawn relative to the liver's.
    blob: Blob { centre: [0.0; 3], semi: [0.0; 3], ends: ELLIPSOID, tilt: 0.0, drift: [0.0, 0.0], lobe: 0.0 },
    hu: 25.0,
    rim: None,
    halo_mm: 0.0,
};
/// The lesion's in-plane semi-axes (mm) are drawn from this range, its semi-axis along z a little
/// longer (at 5 mm slices it spans 5 to 10 slices).
const LESION_SEMI_MM: (f64, f64) = (10.0, 18.0);
/// Seeds the lesion's own random stream (from the phantom's seed), so that adding it left every
/// other voxel of a seed's phantom as it was.
const LESION_STREAM: u64 = 0x1e51_0a11_ce5e_ed00;

/// A smooth blob: an ellipse in the axial plane whose size follows a super-ellipse profile along z
/// (exponent 2: an ellipsoid; larger: a tube with rounded ends). Its centre drifts and its outline
/// undulates with angular harmonics that twist along z, so the cross-section changes from slice to
/// slice.
struct Shape {
    centre: [f64; 3],
    semi: [f64; 3],
    ends: f64,
    /// In-plane rotation as (cos, sin).
    tilt: (f64, f64),
    drift: [f64; 2],
    lobes: Vec<Lobe>,
}

/// The outline's radius is scaled by 1 + amp cos(order angle + phase + twist z).
struct Lobe {
    order: f64,
    amp: f64,
    phase: f64,
    /// Radians per mm along z.
    twist: f64,
}

impl Shape {
    /// `blob` varied by the seed in size, position, tilt, drift and outline, kept clear of the
    /// first and last slices.
    fn sample(rng: &mut SplitMix64, blob: &Blob) -> Self {
        let semi_z = rng.vary(blob.semi[2], 0.1).min(Z_LIMIT);
        let centre_z = (blob.centre[2] + rng.range(-8.0, 8.0)).clamp(semi_z - Z_LIMIT, Z_LIMIT - semi_z);
        let tilt = blob.tilt + rng.range(-0.15, 0.15);
        let lobes = (1..=3)
            .map(|order| Lobe {
                order: order as f64,
                amp: rng.range(0.0, blob.lobe) / order as f64,
                phase: rng.range(0.0, TAU),
                twist: rng.range(-0.02, 0.02),
            })
            .collect();
        Shape {
            centre: [blob.centre[0] + rng.range(-6.0, 6.0), blob.centre[1] + rng.range(-6.0, 6.0), centre_z],
            semi: [rng.vary(blob.semi[0], 0.1), rng.vary(blob.semi[1], 0.1), semi_z],
            ends: blob.ends,
            tilt: (tilt.cos(), tilt.sin()),
            drift: [blob.drift[0] + rng.range(-0.05, 0.05), blob.drift[1] + rng.range(-0.05, 0.05)],
            lobes,
        }
    }

    /// In-plane distance (mm) from `p` to the outline along the ray from the centre: positive
    /// inside, negative outside, minus infinity beyond the ends.
    fn depth(&self, p: [f64; 3]) -> f64 {
        let dz = p[2] - self.centre[2];
        let t = (dz / self.semi[2]).abs();
        if t >= 1.0 {
            return f64::NEG_INFINITY;
        }
        let taper = (1.0 - t.powf(self.ends)).powf(1.0 / self.ends);
        let du = p[0] - self.centre[0] - self.drift[0] * dz;
        let dv = p[1] - self.centre[1] - self.drift[1] * dz;
        let (cos, sin) = self.tilt;
        let x = (du * cos + dv * sin) / self.semi[0];
        let y = (dv * cos - du * sin) / self.semi[1];
        let rho = x.hypot(y) / taper;
        if rho == 0.0 {
            return f64::INFINITY;
        }
        let angle = y.atan2(x);
        let outline =
            1.0 + self.lobes.iter().map(|l| l.amp * (l.order * angle + l.phase + l.twist * dz).cos()).sum::<f64>();
        du.hypot(dv) * (outline / rho - 1.0)
    }
}

struct Organ {
    nominal: &'static Nominal,
    shape: Shape,
}

/// One low-frequency plane wave of the tissue texture.
struct Wave {
    /// Radians per mm along i, j, k.
    k: [f64; 3],
    phase: f64,
    amp: f64,
}

struct Anatomy {
    /// The skin.
    body: Shape,
    /// Subcutaneous fat thickness (mm).
    fat_mm: f64,
    /// In the priority order of [`ORGANS`], the lesion just before the liver that holds it.
    organs: Vec<Organ>,
    gas: Vec<Shape>,
    texture: Vec<Wave>,
}

impl Anatomy {
    fn sample(rng: &mut SplitMix64) -> Self {
        let body = Shape {
            centre: [0.0, 0.0, 0.0],
            // Infinite along z: the body runs through the whole scan.
            semi: [rng.vary(140.0, 0.06), rng.vary(102.0, 0.06), f64::INFINITY],
            ends: ELLIPSOID,
            tilt: (1.0, 0.0),
            drift: [0.0, 0.0],
            lobes: (2..=3)
                .map(|order| Lobe {
                    order: order as f64,
                    amp: rng.range(0.0, 0.03),
                    phase: rng.range(0.0, TAU),
                    twist: rng.range(-0.01, 0.01),
                })
                .collect(),
        };
        let fat_mm = rng.range(10.0, 22.0);
        let organs = ORGANS.iter().map(|nominal| Organ { nominal, shape: Shape::sample(rng, &nominal.blob) }).collect();
        // Bowel gas anterior, below the liver.
        let pockets = 3 + rng.next_u64() % 3;
        let gas = (0..pockets)
            .map(|_| {
                let centre = [rng.range(-40.0, 70.0), rng.range(-70.0, -20.0), rng.range(-90.0, 30.0)];
                let semi = [rng.range(6.0, 14.0), rng.range(6.0, 14.0), rng.range(8.0, 18.0)];
                Shape::sample(rng, &Blob { centre, semi, ends: ELLIPSOID, tilt: 0.0, drift: [0.0, 0.0], lobe: 0.1 })
            })
            .collect();
        let texture = (0..6)
            .map(|_| {
                let direction = [rng.normal(), rng.normal(), rng.normal()];
                let norm = direction.iter().map(|d| d * d).sum::<f64>().sqrt();
                let wavenumber = TAU / rng.range(40.0, 120.0);
                Wave { k: direction.map(|d| d / norm * wavenumber), phase: rng.range(0.0, TAU), amp: 2.5 }
            })
            .collect();
        Anatomy { body, fat_mm, organs, gas, texture }
    }

    /// Places the lesion inside the liver: a centre drawn over the liver's inner half, kept where
    /// the liver (not a neighbour or its fat) surrounds the lesion's outline, bumps included, with
    /// 3 mm to spare, and inserted before the liver so that it wins where they overlap.
    fn sample_lesion(&mut self, rng: &mut SplitMix64) {
        let liver_at = self.organs.iter().position(|o| o.nominal.label == LIVER).expect("the phantom has a liver");
        let liver = &self.organs[liver_at].shape;
        let r = rng.range(LESION_SEMI_MM.0, LESION_SEMI_MM.1);
        let semi = [rng.vary(r, 0.1), rng.vary(r, 0.1), rng.vary(1.2 * r, 0.1)];
        let lobes: Vec<Lobe> = (2..=3)
            .map(|order| Lobe {
                order: order as f64,
                amp: rng.range(0.0, 0.08) / order as f64,
                phase: rng.range(0.0, TAU),
                twist: rng.range(-0.02, 0.02),
            })
            .collect();
        // The lobes widen the outline by at most this factor.
        let bulge = 1.0 + lobes.iter().map(|l| l.amp).sum::<f64>();
        let (radius, half_z) = (bulge * semi[0].max(semi[1]) + 3.0, semi[2] + 3.0);
        // Points just outside the lesion: 8 directions on 3 levels (the ellipsoid narrows towards
        // its ends) and both ends.
        let around: Vec<[f64; 3]> = [-0.7, 0.0, 0.7]
            .iter()
            .flat_map(|&t: &f64| {
                let ring = radius * (1.0 - t * t).sqrt();
                (0..8).map(move |a| {
                    let angle = f64::from(a) * TAU / 8.0;
                    [ring * angle.cos(), ring * angle.sin(), t * half_z]
                })
            })
            .chain([[0.0, 0.0, half_z], [0.0, 0.0, -half_z]])
            .collect();
        let fits = |c: [f64; 3]| around.iter().all(|d| self.tissue([c[0] + d[0], c[1] + d[1], c[2] + d[2]]).1 == LIVER);
        // The liver's centre as the fallback: its semi-axes are about 4 times the largest lesion's.
        let mut centre = liver.centre;
        for _ in 0..32 {
            let c = [
                liver.centre[0] + rng.range(-0.5, 0.5) * liver.semi[0],
                liver.centre[1] + rng.range(-0.5, 0.5) * liver.semi[1],
                liver.centre[2] + rng.range(-0.4, 0.4) * liver.semi[2],
            ];
            if fits(c) {
                centre = c;
                break;
            }
        }
        let tilt = rng.range(0.0, TAU);
        let shape = Shape { centre, semi, ends: ELLIPSOID, tilt: (tilt.cos(), tilt.sin()), drift: [0.0, 0.0], lobes };
        self.organs.insert(liver_at, Organ { nominal: &LESION, shape });
    }

    /// Nominal HU and label at `p` (layout mm).
    fn tissue(&self, p: [f64; 3]) -> (f64, u8) {
        let skin = self.body.depth(p);
        if skin <= 0.0 {
            return (AIR_HU, 0);
        }
        if skin < self.fat_mm {
            return (FAT_HU, 0);
        }
        if skin >= self.fat_mm + WALL_MM {
            for Organ { nominal, shape } in &self.organs {
                let depth = shape.depth(p);
                if depth > 0.0 {
                    let hu = match nominal.rim {
                        Some((thickness, rim_hu)) if depth < thickness => rim_hu,
                        _ => nominal.hu,
                    };
                    return (hu, nominal.label);
                }
                if depth > -nominal.halo_mm {
                    return (FAT_HU, 0);
                }
            }
            if self.gas.iter().any(|g| g.depth(p) > 0.0) {
                return (GAS_HU, 0);
            }
        }
        (SOFT_TISSUE_HU, 0)
    }

    /// Smooth variation of tissue density (HU) at `p`.
    fn texture(&self, p: [f64; 3]) -> f64 {
        self.texture.iter().map(|w| w.amp * (w.k[0] * p[0] + w.k[1] * p[1] + w.k[2] * p[2] + w.phase).sin()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn phantom() -> &'static Phantom {
        static PHANTOM: OnceLock<Phantom> = OnceLock::new();
        PHANTOM.get_or_init(|| generate(&PhantomConfig::default(), 7))
    }

    /// Voxel indices of `label`.
    fn voxels(p: &Phantom, label: u8) -> Vec<usize> {
        p.labels.iter().enumerate().filter(|(_, &l)| l == label).map(|(i, _)| i).collect()
    }

    fn mean_hu(p: &Phantom, voxels: &[usize]) -> f64 {
        voxels.iter().map(|&i| f64::from(p.volume.data[i])).sum::<f64>() / voxels.len() as f64
    }

    /// Voxels of `label` whose in-plane neighbours up to `r` voxels away (chessboard) all have it.
    fn interior(p: &Phantom, label: u8, r: isize) -> Vec<usize> {
        let [nx, ny, _] = p.volume.dims();
        let is = |i: usize, di: isize, dj: isize| {
            let (x, y) = ((i % nx) as isize + di, (i / nx % ny) as isize + dj);
            x >= 0
                && y >= 0
                && x < nx as isize
                && y < ny as isize
                && p.labels[(i as isize + di + dj * nx as isize) as usize] == label
        };
        voxels(p, label).into_iter().filter(|&i| (-r..=r).all(|dj| (-r..=r).all(|di| is(i, di, dj)))).collect()
    }

    #[test]
    fn same_seed_same_phantom_other_seed_differs() {
        let a = phantom();
        let b = generate(&PhantomConfig::default(), 7);
        assert_eq!(a.volume.data, b.volume.data);
        assert_eq!(a.labels, b.labels);
        let c = generate(&PhantomConfig::default(), 8);
        assert_ne!(a.volume.data, c.volume.data);
        assert_ne!(a.labels, c.labels);
        assert_eq!(a.volume.dims(), [128, 128, 48]);
        assert_eq!(a.volume.grid.slice_axis, 2);
        assert_eq!(a.labels.len(), a.volume.data.len());
        assert_eq!(a.classes, CLASSES.to_vec());
    }

    #[test]
    fn organs_have_plausible_volumes_and_sides() {
        for seed in [7, 11, 12] {
            let p = generate(&PhantomConfig::default(), seed);
            let ml = |label| voxels(&p, label).len() as f64 * p.volume.voxel_ml();
            // Adult ranges, a little wide; over seeds 0..40 the phantom gives liver 1080..1680 mL,
            // spleen 120..240, kidneys 100..220, aorta 55..80, vertebral column 180..260.
            let plausible = [
                (LIVER, 900.0, 2200.0),
                (SPLEEN, 80.0, 350.0),
                (KIDNEY_LEFT, 70.0, 300.0),
                (KIDNEY_RIGHT, 70.0, 300.0),
                (AORTA, 35.0, 120.0),
                (VERTEBRA, 120.0, 350.0),
                (LIVER_LESION, 3.0, 60.0),
            ];
            for (label, lo, hi) in plausible {
                assert!(
                    (lo..=hi).contains(&ml(label)),
                    "seed {seed}: class {label} has {:.0} mL, expected {lo}..{hi}",
                    ml(label)
                );
            }
            // Radiological convention: the patient's right (liver, right kidney) on the image's left.
            let nx = p.volume.dims()[0];
            let mean_column = |label| {
                voxels(&p, label).iter().map(|&i| (i % nx) as f64).sum::<f64>() / voxels(&p, label).len() as f64
            };
            let middle = nx as f64 / 2.0;
            assert!(mean_column(LIVER) < middle && mean_column(KIDNEY_RIGHT) < middle);
            assert!(mean_column(SPLEEN) > middle && mean_column(KIDNEY_LEFT) > middle);
        }
    }

    #[test]
    fn organs_have_their_nominal_hu() {
        let p = phantom();
        // Kidneys: medulla 22 HU in a 42 HU cortex, about 30 on average.
        for (label, nominal) in [
            (LIVER, 60.0),
            (SPLEEN, 50.0),
            (KIDNEY_LEFT, 30.0),
            (KIDNEY_RIGHT, 30.0),
            (AORTA, 180.0),
            (LIVER_LESION, 25.0),
        ] {
            let mean = mean_hu(p, &voxels(p, label));
            assert!((mean - nominal).abs() <= 25.0, "class {label}: mean {mean:.1} HU, nominal {nominal}");
        }
        // Trabecular bone inside, the cortical rim brightens the whole.
        let core = mean_hu(p, &interior(p, VERTEBRA, 2));
        assert!((core - 250.0).abs() <= 25.0, "trabecular bone {core:.1} HU");
        let whole = mean_hu(p, &voxels(p, VERTEBRA));
        assert!(whole > core + 50.0 && whole < 700.0, "vertebra {whole:.1} HU");
    }

    #[test]
    fn labels_lie_inside_the_body() {
        // Without noise, air outside the body is exactly -1000 and bowel gas -900.
        let p = generate(&PhantomConfig { noise_hu: 0.0, ..Default::default() }, 7);
        let [nx, ny, _] = p.volume.dims();
        let r = 4; // 10 mm
        for (i, _) in p.labels.iter().enumerate().filter(|(_, &l)| l != 0) {
            let (x, y) = (i % nx, i / nx % ny);
            assert!(x >= r && y >= r && x + r < nx && y + r < ny, "voxel {i} near the edge");
            for dj in -(r as isize)..=r as isize {
                for di in -(r as isize)..=r as isize {
                    let n = (i as isize + di + dj * nx as isize) as usize;
                    assert!(p.volume.data[n] > AIR_HU as f32, "labelled voxel {i} within 10 mm of the air");
                }
            }
        }
    }

    #[test]
    fn objects_start_and_end_inside_the_scan() {
        let p = phantom();
        let nz = p.volume.num_slices();
        for (label, name) in &p.classes {
            let present: Vec<bool> = (0..nz).map(|s| p.volume.grid.extract(&p.labels, s).contains(label)).collect();
            let first = present.iter().position(|&x| x).unwrap_or_else(|| panic!("{name} missing"));
            let last = present.iter().rposition(|&x| x).unwrap();
            assert!(first > 0 && last < nz - 1, "{name} spans slices {first}..={last} of {nz}");
            assert!(present[first..=last].iter().all(|&x| x), "{name} has a gap between slices {first} and {last}");
            // Lesions are short; organs span at least 9 slices.
            let least = if *label == LIVER_LESION { 4 } else { 9 };
            assert!(last - first + 1 >= least, "{name} spans only {} slices", last - first + 1);
        }
    }

    #[test]
    fn the_lesion_lies_inside_the_liver_and_takes_only_liver_voxels() {
        for seed in [7, 11, 12, 30] {
            let p = generate(&PhantomConfig::default(), seed);
            let [nx, ny, nz] = p.volume.dims();
            let lesion = voxels(&p, LIVER_LESION);
            assert!(!lesion.is_empty(), "seed {seed}: no lesion");
            // Every in-plane neighbour of a lesion voxel is lesion or liver: the liver surrounds it.
            for &i in &lesion {
                let (x, y) = (i % nx, i / nx % ny);
                for n in [i - 1, i + 1, i - nx, i + nx] {
                    assert!(x > 0 && y > 0 && x + 1 < nx && y + 1 < ny, "seed {seed}: lesion at the edge");
                    assert!(
                        [LIVER, LIVER_LESION].contains(&p.labels[n]),
                        "seed {seed}: lesion voxel {i} touches class {}",
                        p.labels[n]
                    );
                }
            }
            // The lesion takes liver voxels and no others: liver + lesion is the liver of the same
            // anatomy without its lesion (the lesion draws from its own random stream).
            let without = Anatomy::sample(&mut SplitMix64(seed));
            let liver_with = voxels(&p, LIVER).len() + lesion.len();
            let mut liver_without = 0;
            for k in 0..nz {
                for j in 0..ny {
                    for i in 0..nx {
                        let q = [layout_mm(i, nx, 0), layout_mm(j, ny, 1), layout_mm(k, nz, 2)];
                        liver_without += usize::from(without.tissue(q).1 == LIVER);
                    }
                }
            }
            assert_eq!(liver_with, liver_without, "seed {seed}: the lesion is carved out of the liver alone");
        }
    }
}
