//! The one model this worker holds: loaded on its own thread at start, swapped between jobs when
//! a job asks for another model (never during one). Its version string goes with every result.

use anyhow::{bail, Context, Result};
use radsam::model::{ModelConfig, ModelThread, Sam, MODEL_NAMES};
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

/// Loads `name` (blocking: call from spawn_blocking).
pub fn load(name: &str, weights: Option<PathBuf>, device_name: &str, threads: Option<i32>) -> Result<LoadedModel> {
    let config = ModelConfig::by_name(name)
        .with_context(|| format!("unknown model `{name}`; known: {}", MODEL_NAMES.join(", ")))?;
    let weights = weights.unwrap_or_else(|| radsam::assets::weights_path(name));
    if !weights.exists() {
        bail!("weights {} not found (run `make setup`, or set RADSAM_WEIGHTS)", weights.display());
    }
    let (version, sha256) = radsam::assets::weights_version(name, &weights)?;
    let device = radsam::model::device_by_name(device_name).map_err(|e| anyhow::anyhow!("device {e}"))?;
    let path = weights.clone();
    let thread = ModelThread::spawn(move || -> Result<Sam> {
        if let Some(n) = threads {
            tch::set_num_threads(n);
        }
        Ok(Sam::load(config, &path, device)?.0)
    })?;
    Ok(LoadedModel { name: name.to_string(), source: name.to_string(), version, sha256, thread: Arc::new(thread) })
}
