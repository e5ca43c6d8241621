//! Fine-tuned checkpoints: the tensors a training run changed, in half precision, on top of a base
//! checkpoint that the file names in its safetensors metadata (with the base file's SHA-256, so a
//! different base is refused instead of silently mixed). The project's RadSAM weights ship this way:
//! the encoder is frozen when training on a CPU, so the file holds the prompt encoder and the mask
//! decoder only (8 MB instead of 20 MB for the whole model).

use super::checkpoint::CheckpointError;
use super::{is_decoder_tensor, InputWindow, CORRECTION_PREFIX, POINT_ASSIST_PREFIX, RADSAM_WINDOW};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Kind, Tensor};

/// Metadata key: the named model (see `assets::weights_path`) the file applies to.
pub const META_BASE_MODEL: &str = "radsam.base_model";
/// Metadata key: the input window `LO,HI` or `LO,HI/LO,HI/LO,HI` the file was trained with
/// (`InputWindow`); absent: RADSAM_WINDOW, grey.
pub const META_INPUT_WINDOW: &str = "radsam.input_window";
/// Metadata key: SHA-256 (hex) of the base model's safetensors file.
pub const META_BASE_SHA256: &str = "radsam.base_sha256";

fn unreadable(path: &Path, reason: impl ToString) -> CheckpointError {
    CheckpointError::Unreadable { path: path.to_path_buf(), reason: reason.to_string() }
}

/// The JSON header of a safetensors file (tensor names, shapes and `__metadata__`).
fn read_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, CheckpointError> {
    let mut f = std::fs::File::open(path).map_err(|e| unreadable(path, e))?;
    let file_len = f.metadata().map_err(|e| unreadable(path, e))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| unreadable(path, e))?;
    let len = u64::from_le_bytes(len);
    // A header longer than the file is corrupt; refuse before allocating it.
    if len > file_len.saturating_sub(8) || len > 100 << 20 {
        return Err(unreadable(path, format!("header length {len} exceeds the file")));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| unreadable(path, e))?;
    match serde_json::from_slice(&header).map_err(|e| unreadable(path, e))? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(unreadable(path, "the header is not a JSON object")),
    }
}

/// Every tensor of a safetensors file, in its own dtype.
fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    Tensor::read_safetensors(path).map_err(|e| unreadable(path, e))
}

/// The `__metadata__` of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    let header = read_header(path)?;
    let mut out = BTreeMap::new();
    if let Some(meta) = header.get("__metadata__").and_then(|m| m.as_object()) {
        for (k, v) in meta {
            if let Some(v) = v.as_str() {
                out.insert(k.clone(), v.to_string());
            }
        }
    }
    Ok(out)
}

/// Whether a fine-tuned file holds a correction head (`edit.` tensors; crate::model docs), read
/// from its header alone.
pub fn has_correction_head(path: &Path) -> Result<bool, CheckpointError> {
    Ok(read_header(path)?.keys().any(|k| k.starts_with(CORRECTION_PREFIX)))
}

/// A file's correction head holds a tensor for every decoder tensor of its propagation head, of the same
/// shape: the first that it lacks is refused by name (otherwise that tensor would silently keep
/// the base's value). What [`apply`] cannot see: it checks the file's tensors against the model.
pub fn check_correction_head(path: &Path) -> Result<(), CheckpointError> {
    let header = read_header(path)?;
    let shape =
        |name: &str| -> Option<Vec<i64>> { serde_json::from_value(header.get(name)?.get("shape")?.clone()).ok() };
    // The decoder's tensors: a file trained with its encoder holds image_encoder ones too, which
    // both heads share.
    let mut names: Vec<&String> = header.keys().filter(|n| is_decoder_tensor(n)).collect();
    names.sort();
    for name in names {
        let edit = format!("{CORRECTION_PREFIX}{name}");
        let expected = shape(name).unwrap_or_default();
        match shape(&edit) {
            None => return Err(CheckpointError::Missing { path: path.to_path_buf(), name: edit, expected }),
            Some(found) if found != expected => {
                return Err(CheckpointError::ShapeMismatch { path: path.to_path_buf(), name: edit, expected, found })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

pub fn sha256_hex(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `tensors` as half precision with `metadata`, atomically (a temporary file renamed into
/// place), so a killed writer never leaves a truncated checkpoint under the final name.
pub fn write(path: &Path, tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> std::io::Result<()> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("string map"));
    let mut blobs = Vec::with_capacity(sorted.len());
    let mut offset = 0usize;
    for (name, t) in sorted {
        let t = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Half).contiguous();
        let n = t.numel();
        let mut bytes = vec![0u8; n * 2];
        t.copy_data_u8(&mut bytes, n);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F16", "shape": t.size(), "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
        blobs.push(bytes);
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let tmp = path.with_extension("safetensors.partial");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(&header)?;
        for b in &blobs {
            f.write_all(b)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The base file a fine-tuned file applies to, checked against the recorded SHA-256.
pub fn base_of(path: &Path, metadata: &BTreeMap<String, String>, base_path: &Path) -> Result<(), CheckpointError> {
    if !base_path.exists() {
        return Err(CheckpointError::BaseMissing { path: path.to_path_buf(), base: base_path.to_path_buf() });
    }
    if let Some(expected) = metadata.get(META_BASE_SHA256) {
        let found = sha256_hex(base_path).map_err(|e| unreadable(base_path, e))?;
        if &found != expected {
            return Err(CheckpointError::BaseMismatch {
                path: path.to_path_buf(),
                base: base_path.to_path_buf(),
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// Copies every tensor of a fine-tuned file into `vs`, but its point assist's (`assist.`, which
/// [`apply_point_assist`] loads into the assist's own model). Strict: each tensor must name a
/// variable of the model with the same shape; all are checked before any is written.
pub fn apply(vs: &mut VarStore, path: &Path) -> Result<usize, CheckpointError> {
    let file: HashMap<String, Tensor> =
        read_tensors(path)?.into_iter().filter(|(n, _)| !n.starts_with(POINT_ASSIST_PREFIX)).collect();
    apply_tensors(vs, path, file)
}

/// Copies a composed file's point-assist tensors (`assist.`, the prefix taken off) into the
/// assist model's `vs`, as strictly as [`apply`]; returns them as the file holds them (`assist.`
/// names), read once, for a fine-tune of the model to write again.
pub fn apply_point_assist(vs: &mut VarStore, path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let held: Vec<(String, Tensor)> =
        read_tensors(path)?.into_iter().filter(|(n, _)| n.starts_with(POINT_ASSIST_PREFIX)).collect();
    let file: HashMap<String, Tensor> =
        held.iter().map(|(n, t)| (n[POINT_ASSIST_PREFIX.len()..].to_string(), t.shallow_clone())).collect();
    apply_tensors(vs, path, file)?;
    Ok(held)
}

fn apply_tensors(vs: &mut VarStore, path: &Path, file: HashMap<String, Tensor>) -> Result<usize, CheckpointError> {
    let vars = vs.variables();
    let err_path = || -> PathBuf { path.to_path_buf() };
    let mut names: Vec<&String> = file.keys().collect();
    names.sort();
    for name in &names {
        let src = &file[*name];
        let Some(dst) = vars.get(*name) else {
            return Err(CheckpointError::Unexpected { path: err_path(), name: (*name).clone(), found: src.size() });
        };
        if src.size() != dst.size() {
            return Err(CheckpointError::ShapeMismatch {
                path: err_path(),
                name: (*name).clone(),
                expected: dst.size(),
                found: src.size(),
            });
        }
        if !src.is_floating_point() {
            return Err(CheckpointError::BadDtype { path: err_path(), name: (*name).clone(), found: src.kind() });
        }
    }
    let _guard = tch::no_grad_guard();
    for name in &names {
        let mut dst = vars[*name].shallow_clone();
        dst.copy_(&file[*name].to_kind(dst.kind()).to_device(dst.device()));
    }
    Ok(names.len())
}

/// Metadata keys of a file with a point assist ([`compose_point_assist`]): the assist's base model,
/// its base file's SHA-256, its input window (when it has one), the file it came from and its
/// training settings.
pub const META_POINT_ASSIST_MODEL: &str = "radsam.point_assist.base_model";
pub const META_POINT_ASSIST_BASE_SHA256: &str = "radsam.point_assist.base_sha256";
pub const META_POINT_ASSIST_WINDOW: &str = "radsam.point_assist.input_window";
pub const META_POINT_ASSIST_FROM: &str = "radsam.point_assist.from";
pub const META_POINT_ASSIST_SETTINGS: &str = "radsam.point_assist.training_settings";

/// Whether a metadata key describes a file's point assist.
pub fn is_point_assist_key(key: &str) -> bool {
    key.starts_with("radsam.point_assist.")
}

/// Whether a file holds a point assist (its metadata names the assist's base model).
pub fn has_point_assist(metadata: &BTreeMap<String, String>) -> bool {
    metadata.contains_key(META_POINT_ASSIST_MODEL)
}

/// The metadata of a composed file's point assist as a fine-tuned file of its own would hold it
/// (base model, base SHA-256, window), for [`base_of`] and the assist's loader.
pub fn point_assist_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    POINT_ASSIST_KEYS
        .into_iter()
        .filter_map(|(own, composed)| metadata.get(composed).map(|v| (own.to_string(), v.clone())))
        .collect()
}

/// A fine-tuned file's own keys and the keys they take as a composed file's point assist.
const POINT_ASSIST_KEYS: [(&str, &str); 3] = [
    (META_BASE_MODEL, META_POINT_ASSIST_MODEL),
    (META_BASE_SHA256, META_POINT_ASSIST_BASE_SHA256),
    (META_INPUT_WINDOW, META_POINT_ASSIST_WINDOW),
];

/// Writes `out`: the fine-tuned file `main` (its tensors and metadata, bit for bit, a correction
/// head included) plus every tensor of the fine-tuned file `assist` under `assist.`, with the
/// assist's base model, base SHA-256 and window in the metadata (crate::model docs: the point
/// assist answers a slice prompted by points alone; it may be another architecture, with its own
/// encoder). The assist must be a plain fine-tune: no correction head and no assist of its own.
pub fn compose_point_assist(main: &Path, assist: &Path, out: &Path) -> Result<(), ComposeError> {
    let (main_meta, assist_meta) = (read_metadata(main)?, read_metadata(assist)?);
    for (path, meta) in [(main, &main_meta), (assist, &assist_meta)] {
        if !meta.contains_key(META_BASE_MODEL) {
            return Err(ComposeError::NotFineTuned { path: path.to_path_buf() });
        }
        if has_point_assist(meta) {
            return Err(ComposeError::AlreadyComposed { path: path.to_path_buf() });
        }
    }
    if has_correction_head(assist)? {
        return Err(ComposeError::AlreadyComposed { path: assist.to_path_buf() });
    }
    let mut tensors = read_tensors(main)?;
    tensors.extend(read_tensors(assist)?.into_iter().map(|(n, t)| (format!("{POINT_ASSIST_PREFIX}{n}"), t)));
    let mut metadata = main_meta;
    for (key, assist_key) in POINT_ASSIST_KEYS {
        if let Some(v) = assist_meta.get(key) {
            metadata.insert(assist_key.into(), v.clone());
        }
    }
    let sha = sha256_hex(assist).map_err(|e| unreadable(assist, e))?;
    metadata.insert(META_POINT_ASSIST_FROM.into(), format!("{} sha256:{sha}", assist.display()));
    if let Some(settings) = assist_meta.get("radsam.training_settings") {
        metadata.insert(META_POINT_ASSIST_SETTINGS.into(), settings.clone());
    }
    write(out, &tensors, &metadata).map_err(|e| ComposeError::Write { path: out.to_path_buf(), reason: e.to_string() })
}

/// Metadata key of a composed file: the file its correction head came from, with its SHA-256.
pub const META_CORRECTION_FROM: &str = "radsam.correction_head";
/// Metadata key of a composed file: the correction head's own training settings.
pub const META_CORRECTION_SETTINGS: &str = "radsam.correction_training_settings";

/// Why two fine-tuned files cannot be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "{path}: not a fine-tuned file (no `{META_BASE_MODEL}` in its metadata); compose fine-tuned decoders only"
    )]
    NotFineTuned { path: PathBuf },
    #[error("{path}: holds more than a prompt encoder and mask decoder (a trained encoder?); both heads must read one encoder's embeddings")]
    NotDecoderOnly { path: PathBuf },
    #[error("{path}: already composed (it holds a correction head or a point assist); compose from the files training wrote")]
    AlreadyComposed { path: PathBuf },
    #[error("{main} and {edit} differ in `{key}` ({a} against {b}): a correction head must read the same embeddings")]
    Differ { main: PathBuf, edit: PathBuf, key: &'static str, a: String, b: String },
    #[error("{edit}: holds tensor `{name}` that {main} does not (or not in that shape); not the same decoder")]
    TensorMismatch { main: PathBuf, edit: PathBuf, name: String },
    #[error("writing {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the fine-tuned weight must lie in [0, 1] (1: the fine-tuned file, 0: its base), not {weight}")]
    Weight { weight: f64 },
}

/// Writes `out`: the fine-tuned file `main` (its tensors and metadata, bit for bit) plus the
/// prompt encoder and mask decoder of the fine-tuned file `edit` as the correction head, under
/// `edit.` (crate::model docs). Both must apply to the same base checkpoint and input window, since
/// both heads read the same embeddings, and hold the same tensors.
pub fn compose(main: &Path, edit: &Path, out: &Path) -> Result<(), ComposeError> {
    let (main_meta, edit_meta) = (read_metadata(main)?, read_metadata(edit)?);
    for (path, meta) in [(main, &main_meta), (edit, &edit_meta)] {
        if !meta.contains_key(META_BASE_MODEL) {
            return Err(ComposeError::NotFineTuned { path: path.to_path_buf() });
        }
        if has_correction_head(path)? {
            return Err(ComposeError::AlreadyComposed { path: path.to_path_buf() });
        }
    }
    for key in [META_BASE_MODEL, META_BASE_SHA256, META_INPUT_WINDOW] {
        let (a, b) = (main_meta.get(key), edit_meta.get(key));
        let same = match key {
            // A file without a window was trained on RadSAM's, so "-500,1000" and none are equal.
            META_INPUT_WINDOW => {
                let window =
                    |v: Option<&String>| v.map_or(Ok(InputWindow::grey(RADSAM_WINDOW)), |w| InputWindow::parse(w)).ok();
                window(a).is_some() && window(a) == window(b)
            }
            _ => a == b,
        };
        if !same {
            return Err(ComposeError::Differ {
                main: main.to_path_buf(),
                edit: edit.to_path_buf(),
                key,
                a: a.cloned().unwrap_or_else(|| "none".into()),
                b: b.cloned().unwrap_or_else(|| "none".into()),
            });
        }
    }
    let main_tensors = read_tensors(main)?;
    let edit_tensors = read_tensors(edit)?;
    // Both heads read one encoder's embeddings: files that trained their own encoder cannot share.
    for (path, tensors) in [(main, &main_tensors), (edit, &edit_tensors)] {
        if !tensors.iter().all(|(n, _)| is_decoder_tensor(n)) {
            return Err(ComposeError::NotDecoderOnly { path: path.to_path_buf() });
        }
    }
    let shapes: HashMap<&str, Vec<i64>> = main_tensors.iter().map(|(n, t)| (n.as_str(), t.size())).collect();
    if let Some((name, _)) =
        edit_tensors.iter().find(|(n, t)| shapes.get(n.as_str()) != Some(&t.size())).or_else(|| {
            let edit_names: std::collections::HashSet<&str> = edit_tensors.iter().map(|(n, _)| n.as_str()).collect();
            main_tensors.iter().find(|(n, _)| !edit_names.contains(n.as_str()))
        })
    {
        return Err(ComposeError::TensorMismatch {
            main: main.to_path_buf(),
            edit: edit.to_path_buf(),
            name: name.clone(),
        });
    }
    let mut tensors = main_tensors;
    tensors.extend(edit_tensors.into_iter().map(|(n, t)| (format!("{CORRECTION_PREFIX}{n}"), t)));
    let mut metadata = main_meta;
    let sha = sha256_hex(edit).map_err(|e| unreadable(edit, e))?;
    metadata.insert(META_CORRECTION_FROM.into(), format!("{} sha256:{sha}", edit.display()));
    if let Some(settings) = edit_meta.get("radsam.training_settings") {
        metadata.insert(META_CORRECTION_SETTINGS.into(), settings.clone());
    }
    write(out, &tensors, &metadata).map_err(|e| ComposeError::Write { path: out.to_path_buf(), reason: e.to_string() })
}

/// Metadata key of a file moved toward its base ([`toward_base`]): the fine-tuned file it came
/// from, with its SHA-256.
pub const META_TOWARD_BASE_FROM: &str = "radsam.toward_base.from";
/// Metadata key: the weight the fine-tuned tensors kept ([`toward_base`]'s `weight`).
pub const META_TOWARD_BASE_WEIGHT: &str = "radsam.toward_base.fine_tuned_weight";

/// Writes `out`: the fine-tuned file `fine_tuned` moved part of the way back to the base checkpoint
/// it applies to (`base`, checked against the recorded SHA-256): each of its tensors θ becomes
/// `base + weight · (θ − base)`. This is weight-space ensembling (WiSE-FT, Wortsman et al., CVPR
/// 2022): a fine-tune interpolated with the model it started from often keeps most of what it
/// learned and regains what the base did better on data unlike the fine-tuning set, here what the
/// base reads from a box that the fine-tune forgot (issue #17; for v1 it did not:
/// bench/results/toward_base/). `weight` 1 writes the file's
/// tensors, 0 the base's. Only a plain fine-tune is moved: a composed file's correction head or
/// point assist would need bases of their own, so compose after moving.
pub fn toward_base(fine_tuned: &Path, base: &Path, weight: f64, out: &Path) -> Result<(), ComposeError> {
    if !(0.0..=1.0).contains(&weight) {
        return Err(ComposeError::Weight { weight });
    }
    let mut metadata = read_metadata(fine_tuned)?;
    if !metadata.contains_key(META_BASE_MODEL) {
        return Err(ComposeError::NotFineTuned { path: fine_tuned.to_path_buf() });
    }
    if has_point_assist(&metadata) || has_correction_head(fine_tuned)? {
        return Err(ComposeError::AlreadyComposed { path: fine_tuned.to_path_buf() });
    }
    base_of(fine_tuned, &metadata, base)?;
    let base_tensors: HashMap<String, Tensor> = read_tensors(base)?.into_iter().collect();
    let mut moved = Vec::new();
    for (name, tuned) in read_tensors(fine_tuned)? {
        let Some(start) = base_tensors.get(&name).filter(|b| b.size() == tuned.size()) else {
            return Err(ComposeError::TensorMismatch {
                main: base.to_path_buf(),
                edit: fine_tuned.to_path_buf(),
                name,
            });
        };
        // In single precision (the base file is single, the fine-tune half), rounded to half once,
        // when written.
        let start = start.to_kind(Kind::Float);
        let tuned = tuned.to_kind(Kind::Float);
        moved.push((name, &start + (tuned - &start) * weight));
    }
    let sha = sha256_hex(fine_tuned).map_err(|e| unreadable(fine_tuned, e))?;
    metadata.insert(META_TOWARD_BASE_FROM.into(), format!("{} sha256:{sha}", fine_tuned.display()));
    metadata.insert(META_TOWARD_BASE_WEIGHT.into(), weight.to_string());
    write(out, &moved, &metadata).map_err(|e| ComposeError::Write { path: out.to_path_buf(), reason: e.to_string() })
}
