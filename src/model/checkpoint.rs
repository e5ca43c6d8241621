//! Strict checkpoint import. Official checkpoints (.pth/.pt pickles) are converted once to
//! safetensors by `scripts/convert_checkpoint.py`; this module loads a safetensors file into a
//! model's variables and refuses anything that does not fit exactly: every variable of the model
//! must be present with its shape, and every tensor of the file must be consumed.
//! The only tensors read and deliberately dropped are BatchNorm's `num_batches_tracked` counters,
//! which matter only to training-time momentum and have no effect on the network's outputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: cannot be read as safetensors ({reason}); a truncated or corrupt file, or not converted yet (scripts/convert_checkpoint.py)")]
    Unreadable { path: PathBuf, reason: String },
    #[error("checkpoint {path}: tensor `{name}` is missing (the model expects shape {expected:?})")]
    Missing { path: PathBuf, name: String, expected: Vec<i64> },
    #[error("checkpoint {path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch { path: PathBuf, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("checkpoint {path}: tensor `{name}` has dtype {found:?}, expected a floating-point tensor")]
    BadDtype { path: PathBuf, name: String, found: Kind },
    #[error("fine-tuned checkpoint {path}: its base checkpoint {base} is missing: run `make setup`")]
    BaseMissing { path: PathBuf, base: PathBuf },
    #[error("fine-tuned checkpoint {path}: base {base} has SHA-256 {found}, the file was trained from {expected}")]
    BaseMismatch { path: PathBuf, base: PathBuf, expected: String, found: String },
    #[error(
        "checkpoint {path}: tensor `{name}` (shape {found:?}) is not used by this model; wrong model for this file?"
    )]
    Unexpected { path: PathBuf, name: String, found: Vec<i64> },
}

/// What a successful load consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub tensors_loaded: usize,
    pub counters_skipped: usize,
}

fn is_training_counter(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

/// Loads `path` into `vs`. Errors name the first mismatch in the model's own parameter order
/// (sorted names), then the first unexpected tensor of the file. Half-precision files are
/// accepted and widened to the variables' dtype.
pub fn load_strict(vs: &mut VarStore, path: &Path) -> Result<LoadReport, CheckpointError> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| CheckpointError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut file: HashMap<String, Tensor> = tensors.into_iter().collect();
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let err_path = || path.to_path_buf();

    // Check everything before writing anything, so a bad file leaves the model untouched.
    for name in &names {
        let expected = vars[*name].size();
        let Some(src) = file.get(*name) else {
            return Err(CheckpointError::Missing { path: err_path(), name: (*name).clone(), expected });
        };
        if src.size() != expected {
            return Err(CheckpointError::ShapeMismatch {
                path: err_path(),
                name: (*name).clone(),
                expected,
                found: src.size(),
            });
        }
        if !src.is_floating_point() {
            return Err(CheckpointError::BadDtype { path: err_path(), name: (*name).clone(), found: src.kind() });
        }
    }
    let mut extra: Vec<(&String, &Tensor)> = file.iter().filter(|(n, _)| !vars.contains_key(*n)).collect();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    let mut counters_skipped = 0;
    for (name, t) in extra {
        if is_training_counter(name) && t.numel() == 1 {
            counters_skipped += 1;
        } else {
            return Err(CheckpointError::Unexpected { path: err_path(), name: name.clone(), found: t.size() });
        }
    }

    let _guard = tch::no_grad_guard();
    for name in &names {
        let src = file.remove(*name).expect("checked above");
        let mut dst = vars[*name].shallow_clone();
        dst.copy_(&src.to_kind(dst.kind()).to_device(dst.device()));
    }
    Ok(LoadReport { tensors_loaded: names.len(), counters_skipped })
}
