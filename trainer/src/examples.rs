//! Training examples: one sample per (slice view, object) with at least `min_pixels` pixels of the
//! object, from labelled volumes and phantoms. Each slice gets `views` versions (the original and
//! random augmentations, labels moved alike). With a frozen encoder each view is encoded once and
//! its embedding cached (in memory as f16, and on disk so a resumed run does not encode again).

use crate::augment::{random_view, Augmentation};
use indicatif::{ProgressBar, ProgressStyle};
use radsam::dataset::LabeledVolume;
use radsam::model::preprocess::{slices_to_input, SliceGeometry};
use radsam::model::Sam;
use radsam::rng::SplitMix64;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// One view of one slice.
#[derive(Debug)]
pub struct SliceView {
    pub case: usize,
    pub slice: usize,
    pub view: usize,
    pub geometry: SliceGeometry,
    /// Class ids of the view, row-major (h x w).
    pub labels: Vec<u16>,
    /// The neighbouring slices' class ids under the same transform (below, above), when they exist:
    /// a neighbour's true mask is the prompt propagation really presents.
    pub neighbours: [Option<Vec<u16>>; 2],
}

impl SliceView {
    pub fn mask_of(&self, id: u16) -> Vec<u8> {
        self.labels.iter().map(|&v| (v == id) as u8).collect()
    }
}

/// What the decoder reads for a view: the cached embedding, or (when the encoder trains) the
/// preprocessed input, encoded anew at every step.
pub enum ViewInputs {
    Embeddings(Tensor),
    Images(Tensor),
}

pub struct ExampleSet {
    pub views: Vec<SliceView>,
    /// (view index, object id).
    pub samples: Vec<(usize, u16)>,
    /// (N, 256, E, E) f16 embeddings, or (N, 3, S, S) f16 inputs: row i is view i.
    pub inputs: ViewInputs,
    /// Case names, by `SliceView::case`.
    pub cases: Vec<String>,
    /// Class names by id, by `SliceView::case` (for sampling by class).
    pub case_classes: Vec<std::collections::BTreeMap<u16, String>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExampleSettings {
    pub views: usize,
    pub min_pixels: usize,
    pub augmentation: Augmentation,
    pub seed: u64,
    /// Only these class names (all when empty).
    pub classes: Vec<String>,
}

fn objects(labels: &[u16], min_pixels: usize, allowed: &dyn Fn(u16) -> bool) -> Vec<u16> {
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    for &v in labels {
        if v != 0 {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts.into_iter().filter(|&(id, n)| n >= min_pixels && allowed(id)).map(|(id, _)| id).collect()
}

/// Calls `keep_view` with every view of every slice that holds an object, and the view's HU.
fn make_views(
    cases: &[LabeledVolume],
    settings: &ExampleSettings,
    input_size: i64,
    mut keep_view: impl FnMut(SliceView, Tensor),
) -> usize {
    let mut count = 0;
    for (ci, case) in cases.iter().enumerate() {
        let grid = &case.volume.grid;
        let (rows, cols) = grid.plane_shape();
        let allowed = |id: u16| settings.classes.is_empty() || settings.classes.contains(&case.class_name(id));
        let plane = |s: usize| -> Vec<u16> { grid.extract(&case.labels, s) };
        for s in 0..case.volume.num_slices() {
            let labels = plane(s);
            if objects(&labels, settings.min_pixels, &allowed).is_empty() {
                continue;
            }
            let hu = case.volume.slice(s);
            let neighbours = [s.checked_sub(1).map(plane), (s + 1 < case.volume.num_slices()).then(|| plane(s + 1))];
            for v in 0..settings.views.max(1) {
                let (hu_v, labels_v, neighbours_v) = if v == 0 {
                    (hu.shallow_clone(), labels.clone(), neighbours.clone())
                } else {
                    // A view's randomness depends on (seed, case, slice, view) only.
                    let mut rng = SplitMix64(settings.seed ^ ((ci as u64) << 40) ^ ((s as u64) << 16) ^ v as u64);
                    let to_t = |l: &Vec<u16>| {
                        Tensor::from_slice(&l.iter().map(|&x| x as i32).collect::<Vec<_>>())
                            .view([rows as i64, cols as i64])
                    };
                    let mut planes = vec![to_t(&labels)];
                    planes.extend(neighbours.iter().flatten().map(to_t));
                    let (hu_v, moved) = random_view(&hu, &planes, &settings.augmentation, &mut rng);
                    let back = |t: &Tensor| -> Vec<u16> {
                        Vec::<i32>::try_from(t.flatten(0, -1)).expect("ids").into_iter().map(|x| x as u16).collect()
                    };
                    let mut it = moved.iter().map(back);
                    let labels_v = it.next().expect("labels");
                    let below = neighbours[0].as_ref().and_then(|_| it.next());
                    let above = neighbours[1].as_ref().and_then(|_| it.next());
                    let neighbours_v = [below, above];
                    (hu_v, labels_v, neighbours_v)
                };
                if objects(&labels_v, settings.min_pixels, &allowed).is_empty() {
                    continue;
                }
                let geometry = SliceGeometry::new(rows as i64, cols as i64, input_size);
                keep_view(
                    SliceView { case: ci, slice: s, view: v, geometry, labels: labels_v, neighbours: neighbours_v },
                    hu_v,
                );
                count += 1;
            }
        }
    }
    count
}

/// A key for the embedding cache: the encoder's weights (as loaded, whatever the file), its input
/// window, the data and the view settings.
fn cache_key(sam: &Sam, cases: &[LabeledVolume], settings: &ExampleSettings) -> String {
    let mut h = Sha256::new();
    h.update(sam.config.window.to_string().as_bytes());
    let mut encoder: Vec<(String, Tensor)> =
        sam.var_store().variables().into_iter().filter(|(n, _)| n.starts_with("image_encoder.")).collect();
    encoder.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in encoder {
        h.update(name.as_bytes());
        let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
        let mut bytes = vec![0u8; t.numel() * 4];
        t.copy_data_u8(&mut bytes, t.numel());
        h.update(&bytes);
    }
    for c in cases {
        h.update(c.name.as_bytes());
        h.update(bytemuck_u16(&c.labels));
        h.update(c.volume.data.len().to_le_bytes());
        h.update(
            c.volume
                .data
                .iter()
                .step_by(997)
                .map(|v| v.to_bits())
                .fold(0u64, |a, b| a.rotate_left(5) ^ b as u64)
                .to_le_bytes(),
        );
    }
    h.update(serde_json::to_string(settings).expect("settings").as_bytes());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn bytemuck_u16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Builds the example set. `frozen`: embeddings cached (under `cache_dir` when given); otherwise the
/// views' preprocessed inputs are kept for the encoder to run on at every step.
pub fn build(
    sam: &Sam,
    cases: &[LabeledVolume],
    settings: &ExampleSettings,
    frozen: bool,
    cache_dir: Option<&Path>,
    batch: usize,
) -> anyhow::Result<ExampleSet> {
    let device = sam.device();
    let size = sam.config.image_size;
    let mut views = Vec::new();
    let mut pending: Vec<Tensor> = Vec::new();
    make_views(cases, settings, size, |view, hu| {
        let (input, _) = slices_to_input(&hu.unsqueeze(0), &sam.config);
        views.push(view);
        pending.push(input.to_kind(Kind::Half));
    });
    let cache: Option<PathBuf> =
        cache_dir.map(|d| d.join(format!("embeddings-{}.safetensors", cache_key(sam, cases, settings))));
    let inputs = if !frozen {
        ViewInputs::Images(Tensor::cat(&pending, 0))
    } else if let Some(t) = cache
        .as_ref()
        .filter(|p| p.exists())
        .and_then(|p| Tensor::read_safetensors(p).ok())
        .and_then(|v| v.into_iter().find(|(n, _)| n == "embeddings"))
        .map(|(_, t)| t)
        .filter(|t| t.size()[0] == views.len() as i64)
    {
        eprintln!("embeddings: {} views from the cache {}", views.len(), cache.as_ref().unwrap().display());
        ViewInputs::Embeddings(t)
    } else {
        let bar = ProgressBar::new(views.len() as u64).with_message("encoding training slices");
        bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed} eta {eta}").unwrap());
        let mut out = Vec::with_capacity(views.len());
        // Views of one size are encoded together (slices of one case share a size).
        let mut i = 0;
        while i < pending.len() {
            let mut j = i + 1;
            while j < pending.len() && j - i < batch.max(1) && views[j].geometry == views[i].geometry {
                j += 1;
            }
            let input = Tensor::cat(&pending[i..j], 0).to_kind(Kind::Float).to_device(device);
            out.push(sam.encode(&input).to_kind(Kind::Half).to_device(tch::Device::Cpu));
            bar.inc((j - i) as u64);
            if bar.is_hidden() && j / 50 != i / 50 {
                eprintln!("encoding training slices: {j}/{}", views.len());
            }
            i = j;
        }
        bar.finish();
        let t = Tensor::cat(&out, 0);
        if let Some(path) = &cache {
            std::fs::create_dir_all(path.parent().expect("cache dir"))?;
            let tmp = path.with_extension("partial");
            Tensor::write_safetensors(&[("embeddings", &t)], &tmp)?;
            std::fs::rename(&tmp, path)?;
        }
        ViewInputs::Embeddings(t)
    };
    let mut samples = Vec::new();
    for (i, v) in views.iter().enumerate() {
        let case = &cases[v.case];
        let allowed = |id: u16| settings.classes.is_empty() || settings.classes.contains(&case.class_name(id));
        samples.extend(objects(&v.labels, settings.min_pixels, &allowed).into_iter().map(|id| (i, id)));
    }
    Ok(ExampleSet {
        views,
        samples,
        inputs,
        cases: cases.iter().map(|c| c.name.clone()).collect(),
        case_classes: cases.iter().map(|c| c.names.clone()).collect(),
    })
}

impl ExampleSet {
    /// The class name of sample `i`: the same structure in two scans is one class (`label N` of
    /// its case where the case names no classes).
    pub fn class_of(&self, i: usize) -> String {
        let (view, id) = self.samples[i];
        let case = self.views[view].case;
        match self.case_classes.get(case).and_then(|names| names.get(&id)) {
            Some(name) => name.clone(),
            None => format!("{} label {id}", self.cases.get(case).map(String::as_str).unwrap_or("?")),
        }
    }

    /// The decoder's image embeddings for the given views, (B, 256, E, E) f32 on `sam`'s device.
    pub fn embeddings(&self, sam: &Sam, idx: &[usize]) -> Tensor {
        let index = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
        match &self.inputs {
            ViewInputs::Embeddings(t) => t.index_select(0, &index).to_device(sam.device()).to_kind(Kind::Float),
            ViewInputs::Images(t) => {
                sam.encode_train(&t.index_select(0, &index).to_device(sam.device()).to_kind(Kind::Float))
            }
        }
    }
}

/// `a` followed by `b` (whose case indices follow `a`'s `a_cases` cases).
pub fn merge(a: ExampleSet, b: ExampleSet, a_cases: usize) -> ExampleSet {
    let offset = a.views.len();
    let inputs = match (a.inputs, b.inputs) {
        (ViewInputs::Embeddings(x), ViewInputs::Embeddings(y)) => ViewInputs::Embeddings(Tensor::cat(&[x, y], 0)),
        (ViewInputs::Images(x), ViewInputs::Images(y)) => ViewInputs::Images(Tensor::cat(&[x, y], 0)),
        _ => unreachable!("both sets are built in the same encoder mode"),
    };
    let mut views = a.views;
    views.extend(b.views.into_iter().map(|mut v| {
        v.case += a_cases;
        v
    }));
    let mut samples = a.samples;
    samples.extend(b.samples.into_iter().map(|(v, id)| (v + offset, id)));
    let mut cases = a.cases;
    cases.extend(b.cases);
    let mut case_classes = a.case_classes;
    case_classes.extend(b.case_classes);
    ExampleSet { views, samples, inputs, cases, case_classes }
}
