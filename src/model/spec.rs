//! What to load and where: a model name, its weights, a device, CPU threads and an optional input
//! window, resolved and checked in one place for every binary (the CLI's commands, the worker,
//! the trainer, the benchmark's pre-check), so all of them refuse a bad request with the same
//! codes and words.

use super::{device_by_name, CheckpointError, InputWindow, LoadReport, ModelConfig, Sam, MODEL_NAMES};
use std::path::{Path, PathBuf};
use tch::Device;

/// A model as a user names it. `weights: None` means the model's own weights (fetched into the
/// cache, or the project's trained files in models/).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub weights: Option<PathBuf>,
    /// cpu, cuda or auto.
    pub device: String,
    /// libtorch intra-op threads on CPU; None: libtorch's choice.
    pub threads: Option<i32>,
    /// The encoder's input window "LO,HI" in HU instead of the model's own.
    pub window: Option<String>,
    /// On CUDA, run the model in mixed precision (f16 autocast); ignored on CPU.
    pub half: bool,
}

/// A spec checked against this build and this machine: everything needed to load it.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub config: ModelConfig,
    pub weights: PathBuf,
    pub device: Device,
    pub threads: Option<i32>,
    pub window: Option<InputWindow>,
    pub half: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelSpecError {
    #[error("unknown model `{name}`; known: {}", MODEL_NAMES.join(", "))]
    UnknownModel { name: String },
    #[error("weights {} not found (run `make setup`, or name the weights file)", path.display())]
    WeightsNotFound { path: PathBuf },
    #[error("device {0}")]
    Device(String),
    #[error("window {0}")]
    Window(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("hashing {}: {reason}", path.display())]
    Hash { path: PathBuf, reason: String },
}

impl crate::error::Coded for ModelSpecError {
    fn code(&self) -> &'static str {
        match self {
            // A job's model_version that names no model: the job's to fix.
            Self::UnknownModel { .. } => "JOB_UNKNOWN_MODEL",
            Self::WeightsNotFound { .. } | Self::Checkpoint(_) | Self::Hash { .. } => "MODEL_LOAD",
            Self::Device(_) | Self::Window(_) => "CONFIG_INVALID",
        }
    }
}

impl Sam {
    /// [`Sam::load_with`], a fine-tuned file's base found where the project keeps every named
    /// model's weights (crate::assets::weights_path): the one place models are located.
    pub fn load(config: ModelConfig, weights: &Path, device: Device) -> Result<(Self, LoadReport), CheckpointError> {
        Self::load_with(config, weights, device, &crate::assets::weights_path)
    }
}

impl ModelSpec {
    /// The named model with its own weights on `device`, libtorch's threads, its own window.
    pub fn named(name: &str, device: &str) -> Self {
        Self {
            name: name.to_string(),
            weights: None,
            device: device.to_string(),
            threads: None,
            window: None,
            half: false,
        }
    }

    /// Checks the name, the weights file, the device and the window, without loading anything.
    pub fn resolve(&self) -> Result<ResolvedModel, ModelSpecError> {
        let config =
            ModelConfig::by_name(&self.name).ok_or_else(|| ModelSpecError::UnknownModel { name: self.name.clone() })?;
        let weights = self.weights.clone().unwrap_or_else(|| crate::assets::weights_path(&self.name));
        if !weights.exists() {
            return Err(ModelSpecError::WeightsNotFound { path: weights });
        }
        let device = device_by_name(&self.device).map_err(ModelSpecError::Device)?;
        let window = self.window.as_deref().map(InputWindow::parse).transpose().map_err(ModelSpecError::Window)?;
        Ok(ResolvedModel { config, weights, device, threads: self.threads, window, half: self.half })
    }

    /// Resolves and loads (blocking: seconds for the large encoders). Sets libtorch's threads on
    /// the calling thread: call it on the thread that will run the model.
    pub fn load(&self) -> Result<Sam, ModelSpecError> {
        self.resolve()?.load()
    }
}

impl ResolvedModel {
    /// Loads the weights strictly (see [`Sam::load`]) and applies the window, if one was asked for.
    pub fn load(&self) -> Result<Sam, ModelSpecError> {
        if let Some(n) = self.threads {
            tch::set_num_threads(n);
        }
        let (mut sam, _) = Sam::load(self.config.clone(), &self.weights, self.device)?;
        if let Some(w) = self.window {
            sam.config.window = w;
        }
        // Half precision only where it pays and is supported: CUDA's tensor cores.
        sam.set_half(self.half && self.device.is_cuda());
        Ok(sam)
    }

    /// `name@sha256:<16 hex digits>` of the weights (what results record) and the full digest.
    pub fn version(&self) -> Result<(String, String), ModelSpecError> {
        crate::assets::weights_version(&self.config.name, &self.weights)
            .map_err(|e| ModelSpecError::Hash { path: self.weights.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;

    #[test]
    fn bad_specs_are_refused_with_their_codes_before_any_loading() {
        let unknown = ModelSpec::named("sam_vit_z", "cpu").resolve().unwrap_err();
        assert_eq!(unknown.code(), "JOB_UNKNOWN_MODEL");
        assert!(unknown.to_string().contains("lite_medsam"), "{unknown}");

        let missing =
            ModelSpec { weights: Some("/nonexistent/w.safetensors".into()), ..ModelSpec::named("radsam", "cpu") };
        let e = missing.resolve().unwrap_err();
        assert_eq!(e.code(), "MODEL_LOAD");
        assert!(e.to_string().contains("/nonexistent/w.safetensors"), "{e}");

        let file = tempfile::NamedTempFile::new().unwrap();
        let on = |device: &str, window: Option<&str>| ModelSpec {
            weights: Some(file.path().to_path_buf()),
            window: window.map(String::from),
            ..ModelSpec::named("lite_medsam", device)
        };
        assert_eq!(on("tpu", None).resolve().unwrap_err().code(), "CONFIG_INVALID");
        assert_eq!(on("cpu", Some("1000,-500")).resolve().unwrap_err().code(), "CONFIG_INVALID");
        let resolved = on("cpu", Some("-160,240")).resolve().unwrap();
        assert_eq!(resolved.device, Device::Cpu);
        assert_eq!(resolved.window, Some(InputWindow::parse("-160,240").unwrap()));
        // An empty file is no checkpoint: refused when loaded, with the loader's code.
        assert_eq!(resolved.load().unwrap_err().code(), "MODEL_LOAD");
    }
}
