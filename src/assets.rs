//! Where the fetched assets live: a cache outside git (`$RADSAM_CACHE`, default
//! `~/.cache/radsam`), filled and checked by `scripts/fetch_assets.sh`.

use std::path::PathBuf;

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RADSAM_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("radsam")
}

/// Safetensors weights of a named model: the project's own RadSAM weights (`radsam*`) from the
/// repository's models/ (or `$RADSAM_MODELS`), the fetched and converted ones (`lite_medsam`,
/// `mobile_sam`) from the cache.
pub fn weights_path(model: &str) -> PathBuf {
    if model.starts_with("radsam") {
        return models_dir().join(format!("{model}.safetensors"));
    }
    cache_dir().join("weights").join(format!("{model}.safetensors"))
}

/// The project's trained weights: `$RADSAM_MODELS`, else models/ of the source tree.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("RADSAM_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models")),
    }
}

/// The sample CT data of TotalSegmentator's test files (`example_ct.nii.gz`, ...).
pub fn sample_data_dir() -> PathBuf {
    cache_dir().join("data").join("totalsegmentator")
}

/// Parity fixtures written by `scripts/parity_reference.py`.
pub fn parity_dir() -> PathBuf {
    cache_dir().join("parity")
}

/// "name@sha256:<first 16 hex digits>" and the full SHA-256 of a weights file: which weights
/// made a result (recorded with every result, CLI and queue alike).
pub fn weights_version(name: &str, weights: &std::path::Path) -> std::io::Result<(String, String)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(weights)?, &mut hasher)?;
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("{name}@sha256:{}", &hex[..16]), hex))
}
