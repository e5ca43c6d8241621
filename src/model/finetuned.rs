//! Fine-tuned checkpoints: the tensors a training run changed, in half precision, on top of a base
//! checkpoint that the file names in its safetensors metadata (with the base file's SHA-256, so a
//! different base is refused instead of silently mixed). The project's RadSAM weights ship this way:
//! the encoder is frozen when training on a CPU, so the file holds the prompt encoder and the mask
//! decoder only (8 MB instead of 20 MB for the whole model).

use super::checkpoint::CheckpointError;
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

/// The `__metadata__` of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
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
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| unreadable(path, e))?;
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

/// Copies every tensor of a fine-tuned file into `vs`. Strict: each tensor must name a variable of
/// the model with the same shape; all are checked before any is written.
pub fn apply(vs: &mut VarStore, path: &Path) -> Result<usize, CheckpointError> {
    let file: HashMap<String, Tensor> =
        Tensor::read_safetensors(path).map_err(|e| unreadable(path, e))?.into_iter().collect();
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
