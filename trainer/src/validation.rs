//! Validation during training, on whole volumes of the validation split (never trained on): the
//! project's evaluation protocol (radsam::evaluate::validation_scores) on each object: a box on
//! its largest slice propagated between its true boundaries with mask carry (RadSAM's use, then 5
//! clicks) and with box carry (the baseline), and slice-level Dice from a box and from a point on
//! every slice. Prompts are the deterministic ones (tight box, deepest point), so epochs compare
//! like for like.

use radsam::dataset::LabeledVolume;
pub use radsam::evaluate::ValidationResult;
use radsam::evaluate::{extent, validation_scores, ValidationMeasure};
use radsam::model::Sam;
use radsam::segment::VolumeSession;

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
            // Clicks are seeded per object, the same in every epoch.
            let scores = validation_scores(&self.sessions[obj.case], &obj.truth, 0x5eed ^ obj.id as u64)?;
            result.per_object.insert(obj.name.clone(), scores);
        }
        for m in ValidationMeasure::ALL {
            let v: Vec<f64> = result.per_object.values().filter_map(|s| s.get(&m).copied()).collect();
            result.mean.insert(m, v.iter().sum::<f64>() / v.len().max(1) as f64);
        }
        Ok(result)
    }
}
