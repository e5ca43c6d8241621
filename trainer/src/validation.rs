//! Validation during training, on whole volumes of the validation split (never trained on): for
//! each object, a box on its largest slice propagated between its true boundaries with mask carry
//! (RadSAM's use) and with box carry (the baseline), and slice-level Dice from a box and from a
//! point on every slice. Prompts are the deterministic ones of the benchmark (tight box, deepest
//! point), so epochs compare like for like.

use radsam::dataset::LabeledVolume;
use radsam::evaluate::extent;
use radsam::metrics::dice;
use radsam::model::Sam;
use radsam::prompt::{bounding_box, interior_point, simulate_click, SlicePrompt};
use radsam::rng::SplitMix64;
use radsam::segment::{Carry, MaskChoice, Segmenter, VolumeSession};
use std::collections::BTreeMap;

/// An object of a validation volume.
pub struct ValObject {
    pub case: usize,
    pub id: u16,
    pub name: String,
    pub truth: Vec<u8>,
}

/// The validation volumes, their objects, and (with a frozen encoder) their embeddings.
pub struct ValidationSet<'a> {
    pub cases: &'a [LabeledVolume],
    pub objects: Vec<ValObject>,
    sessions: Vec<VolumeSession<'a>>,
}

/// Mean Dice (%) over the validation objects, by measure; per object too.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
pub struct ValidationResult {
    pub mean: BTreeMap<String, f64>,
    pub per_object: BTreeMap<String, BTreeMap<String, f64>>,
}

pub const MEASURES: [&str; 5] =
    ["volume box/mask carry", "volume box/box carry", "slice box", "slice point", "volume box/mask carry + 5 clicks"];

/// Correction clicks of the editing measure (simulated as in the benchmark, seeded per object).
const VALIDATION_CLICKS: usize = 5;

impl<'a> ValidationSet<'a> {
    /// Objects: classes with at least `min_voxels` voxels over at least 2 slices, optionally limited
    /// to `classes` by name. Encodes every volume once (progress on stderr).
    pub fn new(
        sam: &'a Sam,
        cases: &'a [LabeledVolume],
        min_voxels: usize,
        classes: &[String],
    ) -> anyhow::Result<Self> {
        let mut objects = Vec::new();
        let mut sessions = Vec::new();
        for (ci, case) in cases.iter().enumerate() {
            let mut ids: Vec<u16> = case.labels.iter().copied().filter(|&v| v != 0).collect();
            ids.sort();
            ids.dedup();
            for id in ids {
                let name = case.class_name(id);
                if !classes.is_empty() && !classes.contains(&name) {
                    continue;
                }
                let truth: Vec<u8> = case.labels.iter().map(|&v| (v == id) as u8).collect();
                let voxels = truth.iter().filter(|&&v| v != 0).count();
                let Some((lo, hi, _)) = extent(&case.volume, &truth) else { continue };
                if voxels >= min_voxels && hi > lo {
                    objects.push(ValObject { case: ci, id, name: format!("{}/{}", case.name, name), truth });
                }
            }
            let n = case.volume.num_slices();
            eprintln!("validation: encoding {} ({n} slices)", case.name);
            sessions.push(VolumeSession::new(
                sam,
                &case.volume,
                (0, n - 1),
                VolumeSession::default_batch(sam.device()),
                &mut |_, _| {},
            )?);
        }
        Ok(Self { cases, objects, sessions })
    }

    /// Runs the measures with the model's current weights. `reencode`: the encoder was trained, so
    /// the cached embeddings are stale and every volume is encoded again.
    pub fn run(&mut self, sam: &'a Sam, reencode: bool) -> anyhow::Result<ValidationResult> {
        if reencode {
            for (s, case) in self.sessions.iter_mut().zip(self.cases) {
                let n = case.volume.num_slices();
                *s = VolumeSession::new(
                    sam,
                    &case.volume,
                    (0, n - 1),
                    VolumeSession::default_batch(sam.device()),
                    &mut |_, _| {},
                )?;
            }
        }
        let mut result = ValidationResult::default();
        for obj in &self.objects {
            let volume = &self.cases[obj.case].volume;
            let (lo, hi, largest) = extent(volume, &obj.truth).expect("objects are not empty");
            let session = self.sessions[obj.case].restrict((lo, hi))?;
            let cols = volume.grid.plane_shape().1;
            let plane = |s: usize| volume.grid.extract(&obj.truth, s);
            let mut scores = BTreeMap::new();
            let start = SlicePrompt { bbox: bounding_box(&plane(largest), cols), ..Default::default() };
            for (measure, carry) in [(MEASURES[0], Carry::Mask), (MEASURES[1], Carry::Box)] {
                let mut seg = Segmenter::new(&session, carry, MaskChoice::Primary, None);
                seg.start(largest, &start)?;
                scores.insert(measure.to_string(), 100.0 * dice(&seg.mask(), &obj.truth));
                if carry == Carry::Mask {
                    // Editing: clicks in the largest error region, as the benchmark simulates them.
                    let mut rng = SplitMix64(0x5eed ^ obj.id as u64);
                    for _ in 0..VALIDATION_CLICKS {
                        if let Some(click) = simulate_click(&seg.mask(), &obj.truth, &volume.grid, (lo, hi), &mut rng) {
                            seg.add_click(click)?;
                        }
                    }
                    scores.insert(MEASURES[4].to_string(), 100.0 * dice(&seg.mask(), &obj.truth));
                }
            }
            for (measure, point) in [(MEASURES[2], false), (MEASURES[3], true)] {
                let prompts: BTreeMap<usize, SlicePrompt> = (lo..=hi)
                    .filter_map(|s| {
                        let m = plane(s);
                        let p = if point {
                            SlicePrompt { points: interior_point(&m, cols).into_iter().collect(), ..Default::default() }
                        } else {
                            SlicePrompt {
                                bbox: bounding_box(&m, cols).filter(|b| b.x0 < b.x1 && b.y0 < b.y1),
                                ..Default::default()
                            }
                        };
                        (p.bbox.is_some() || !p.points.is_empty()).then_some((s, p))
                    })
                    .collect();
                let mut seg = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
                seg.slice_level(&prompts)?;
                scores.insert(measure.to_string(), 100.0 * dice(&seg.mask(), &obj.truth));
            }
            result.per_object.insert(obj.name.clone(), scores);
        }
        for m in MEASURES {
            let v: Vec<f64> = result.per_object.values().map(|s| s[m]).collect();
            result.mean.insert(m.to_string(), v.iter().sum::<f64>() / v.len().max(1) as f64);
        }
        Ok(result)
    }
}
