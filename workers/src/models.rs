//! The one model this worker holds: loaded on its own thread at start, swapped between jobs when
//! a job asks for another model (never during one). Its version string goes with every result.

use anyhow::Result;
use radsam::model::{ModelConfig, ModelSpec, ModelThread};
use std::path::PathBuf;
use std::sync::Arc;

pub struct LoadedModel {
    /// The model (architecture) name: radsam, lite_medsam, ...
    pub name: String,
    /// What was asked for: a model name (its default weights) or a registry version.
    pub source: String,
    /// name@sha256:<16 hex digits> of the weights.
    pub version: String,
    pub sha256: String,
    pub thread: Arc<ModelThread>,
}

/// True when `name` is a model this build knows.
pub fn is_known(name: &str) -> bool {
    ModelConfig::by_name(name).is_some()
}

/// Loads `name` (blocking: call from spawn_blocking), resolved as every binary resolves models
/// (radsam::model::ModelSpec); the weights load on the model's own thread.
pub fn load(name: &str, weights: Option<PathBuf>, device: &str, threads: Option<i32>) -> Result<LoadedModel> {
    // RADSAM_HALF (as the CLI's --half): mixed precision on CUDA, ignored on CPU.
    let half = std::env::var("RADSAM_HALF").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let spec = ModelSpec { weights, threads, half, ..ModelSpec::named(name, device) };
    let model = spec.resolve().map_err(radsam::error::with_code)?;
    let (version, sha256) = model.version().map_err(radsam::error::with_code)?;
    let thread = ModelThread::spawn(move || model.load())?;
    Ok(LoadedModel { name: name.to_string(), source: name.to_string(), version, sha256, thread: Arc::new(thread) })
}
