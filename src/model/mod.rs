//! SAM-family networks in tch: one model with pluggable image encoders (SAM's ViT, TinyViT), the
//! prompt encoder (points, box, binary mask) and the mask decoder (always 4 masks + IoU).
//!
//! A fine-tuned file may also hold a second prompt encoder and mask decoder, the *correction
//! head* (`edit.` tensors, [`finetuned::compose`]): the decoder pair that reads a mask and the
//! user's clicks on a clicked slice ([`Sam::decode_correction`]), beside the one that reads the
//! first prompt and carries masks ([`Sam::decode`]). Both read the same image embeddings, so a
//! slice is still encoded once. Why two: the fine-tunes that learnt to edit (v2, v3) lost some of
//! what the shipped one propagates from a single prompt, and the shipped one ignores clicks.
//!
//! A file may also hold a *point assist* (`assist.` tensors, [`finetuned::compose_point_assist`]):
//! a whole second model, of any SAM-family architecture with its own encoder, that answers the
//! user's slice when its prompt is points alone ([`Sam::point_assist`]; the segmenter's
//! `PointStart::Assist`), while this model carries the mask on and takes the clicks. Why: the
//! fine-tune of MobileSAM reads a lone point far better than RadSAM on LiteMedSAM, and carries a
//! mask worse. It encodes only the slices it answers.
//!
//! Public surface: [`Sam`], [`ModelConfig`], [`PromptBatch`], [`MaskPrediction`], and the
//! strict checkpoint loader's error type.

mod checkpoint;
mod config;
pub mod finetuned;
mod layers;
mod mask_decoder;
pub mod preprocess;
mod prompt_encoder;
mod spec;
mod thread;
mod tiny_vit;
mod transformer;
mod vit;

pub use checkpoint::{CheckpointError, LoadReport};
pub use config::{
    EncoderConfig, HuWindow, InputNormalization, InputWindow, ModelConfig, MODEL_NAMES, RADSAM_WINDOW, SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
};
pub use mask_decoder::{MaskPrediction, NUM_MASKS};
pub use preprocess::SliceGeometry;
pub use prompt_encoder::PromptBatch;
pub use spec::{ModelSpec, ModelSpecError, ResolvedModel};
pub use thread::{panic_message, ModelThread, ModelThreadStopped};
pub use tiny_vit::TinyVitConfig;
pub use vit::VitConfig;

use std::path::Path;
use tch::{nn, Device, Tensor};

/// `cpu`, `cuda` or `auto` (CUDA when libtorch sees a device): the device names every command
/// and service accepts.
pub fn device_by_name(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err("cuda: no CUDA device is available to libtorch".into()),
        "auto" => Ok(Device::cuda_if_available()),
        other => Err(format!("{other}: expected cpu, cuda or auto")),
    }
}

#[derive(Debug)]
enum ImageEncoder {
    TinyVit(tiny_vit::TinyVit),
    Vit(vit::Vit),
}

/// A SAM-family model with its weights. Build with [`Sam::load`] (weights from a checkpoint) or
/// [`Sam::new`] (initial weights, for tests and training from scratch).
#[derive(Debug)]
pub struct Sam {
    pub config: ModelConfig,
    vs: nn::VarStore,
    image_encoder: ImageEncoder,
    prompt_encoder: prompt_encoder::PromptEncoder,
    mask_decoder: mask_decoder::MaskDecoder,
    dense_pe: Tensor,
    /// The correction head, when the weights file holds one (module docs).
    correction: Option<CorrectionHead>,
    /// The point assist, when the weights file holds one (module docs).
    point_assist: Option<Box<PointAssist>>,
    /// SHA-256 of the image encoder's weights, computed on first use (the embedding cache's key);
    /// forgotten whenever the weights change (`prepare_inference`).
    encoder_fingerprint: std::sync::OnceLock<[u8; 32]>,
    /// Mixed precision (CUDA autocast to f16) for encode and decode; outputs stay f32.
    half: bool,
}

/// A point assist: its model, and the file's `assist.` tensors and point-assist metadata as read,
/// so that a fine-tune of this model writes them again unchanged (training leaves the assist be).
#[derive(Debug)]
struct PointAssist {
    model: Sam,
    file_tensors: Vec<(String, Tensor)>,
    metadata: std::collections::BTreeMap<String, String>,
}

/// A second prompt encoder and mask decoder, under `edit.` in the model's variables.
#[derive(Debug)]
struct CorrectionHead {
    prompt_encoder: prompt_encoder::PromptEncoder,
    mask_decoder: mask_decoder::MaskDecoder,
    dense_pe: Tensor,
}

/// Variables that training never changes (fixed buffers: SAM's Fourier position matrix, batch-norm
/// statistics), so fine-tuned files hold none of them.
fn is_fixed_buffer(name: &str) -> bool {
    name.ends_with("positional_encoding_gaussian_matrix")
        || name.ends_with("running_mean")
        || name.ends_with("running_var")
}

/// A prompt encoder's or mask decoder's variable (of the propagation head): what a decoder-only
/// fine-tune trains and a fine-tuned file holds.
pub(crate) fn is_decoder_tensor(name: &str) -> bool {
    name.starts_with("prompt_encoder.") || name.starts_with("mask_decoder.")
}

/// The variables' prefix of the correction head (and its tensors' in a weights file).
pub const CORRECTION_PREFIX: &str = "edit.";

/// The prefix of a point assist's tensors in a weights file (module docs).
pub const POINT_ASSIST_PREFIX: &str = "assist.";

impl Sam {
    pub fn new(config: ModelConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let image_encoder = match &config.encoder {
            EncoderConfig::TinyVit(c) => ImageEncoder::TinyVit(tiny_vit::TinyVit::new(&root / "image_encoder", c)),
            EncoderConfig::Vit(c) => ImageEncoder::Vit(vit::Vit::new(&root / "image_encoder", c)),
        };
        let e = config.embedding_size();
        let prompt_encoder = prompt_encoder::PromptEncoder::new(&root / "prompt_encoder", 256, e, config.image_size);
        let mask_decoder = mask_decoder::MaskDecoder::new(&root / "mask_decoder", 256);
        let dense_pe = Tensor::zeros([1], (tch::Kind::Float, device));
        let mut sam = Self {
            config,
            vs,
            image_encoder,
            prompt_encoder,
            mask_decoder,
            dense_pe,
            correction: None,
            point_assist: None,
            encoder_fingerprint: Default::default(),
            half: false,
        };
        sam.prepare_inference();
        sam
    }

    /// Builds the model and loads a safetensors checkpoint strictly (see [`CheckpointError`]). A
    /// fine-tuned file (see [`finetuned`]) loads its base checkpoint first, found by
    /// `base_weights(base model name)`, then its own tensors. (Where a named model's weights live
    /// is the loader's business, not the model's: [`Sam::load`] in spec.rs.)
    pub fn load_with(
        config: ModelConfig,
        weights: &Path,
        device: Device,
        base_weights: &dyn Fn(&str) -> std::path::PathBuf,
    ) -> Result<(Self, LoadReport), CheckpointError> {
        let mut sam = Self::new(config, device);
        let metadata = finetuned::read_metadata(weights)?;
        // A file trained on another window carries it: its decoder learned that window's embeddings.
        if let Some(w) = metadata.get(finetuned::META_INPUT_WINDOW) {
            sam.config.window = InputWindow::parse(w).map_err(|reason| CheckpointError::Unreadable {
                path: weights.to_path_buf(),
                reason: format!("{}: {reason}", finetuned::META_INPUT_WINDOW),
            })?;
        }
        let correction_head = finetuned::has_correction_head(weights)?;
        if correction_head {
            finetuned::check_correction_head(weights)?;
        }
        let report = match metadata.get(finetuned::META_BASE_MODEL) {
            Some(base) => {
                let base_path = base_weights(base);
                finetuned::base_of(weights, &metadata, &base_path)?;
                let report = checkpoint::load_strict(&mut sam.vs, &base_path)?;
                if correction_head {
                    // A copy of the base's decoder (its fixed buffers, never trained, are not in
                    // the file), then the file's trained tensors over it, as for the other head.
                    sam.add_correction_head();
                    sam.copy_into_correction_head();
                }
                finetuned::apply(&mut sam.vs, weights)?;
                report
            }
            // A whole checkpoint (scripts/gpu_bundle.sh merges one) holds every tensor of both heads.
            None => {
                if correction_head {
                    sam.add_correction_head();
                }
                checkpoint::load_strict(&mut sam.vs, weights)?
            }
        };
        if finetuned::has_point_assist(&metadata) {
            let (model, file_tensors) = Self::load_point_assist(weights, &metadata, device, base_weights)?;
            let metadata = metadata.into_iter().filter(|(k, _)| finetuned::is_point_assist_key(k)).collect();
            sam.point_assist = Some(Box::new(PointAssist { model, file_tensors, metadata }));
        }
        sam.prepare_inference();
        Ok((sam, report))
    }

    /// The point assist of a composed file: its base model built and loaded from its own base
    /// checkpoint (checked against the recorded SHA-256), then the file's `assist.` tensors, which
    /// it also returns as the file holds them.
    fn load_point_assist(
        weights: &Path,
        metadata: &std::collections::BTreeMap<String, String>,
        device: Device,
        base_weights: &dyn Fn(&str) -> std::path::PathBuf,
    ) -> Result<(Self, Vec<(String, Tensor)>), CheckpointError> {
        let unreadable = |reason: String| CheckpointError::Unreadable { path: weights.to_path_buf(), reason };
        let own = finetuned::point_assist_metadata(metadata);
        let name = &own[finetuned::META_BASE_MODEL];
        let mut config = ModelConfig::by_name(name)
            .ok_or_else(|| unreadable(format!("{}: no model named {name}", finetuned::META_POINT_ASSIST_MODEL)))?;
        if let Some(w) = own.get(finetuned::META_INPUT_WINDOW) {
            config.window = InputWindow::parse(w)
                .map_err(|reason| unreadable(format!("{}: {reason}", finetuned::META_POINT_ASSIST_WINDOW)))?;
        }
        let mut assist = Self::new(config, device);
        let base_path = base_weights(name);
        finetuned::base_of(weights, &own, &base_path)?;
        checkpoint::load_strict(&mut assist.vs, &base_path)?;
        let file_tensors = finetuned::apply_point_assist(&mut assist.vs, weights)?;
        assist.prepare_inference();
        Ok((assist, file_tensors))
    }

    /// The point assist, when the weights hold one (module docs).
    pub fn point_assist(&self) -> Option<&Sam> {
        self.point_assist.as_deref().map(|a| &a.model)
    }

    /// The point assist as its file held it: its tensors (`assist.` names) and metadata, for a
    /// fine-tune of this model to write again (empty without one).
    pub fn point_assist_part(&self) -> (Vec<(String, Tensor)>, std::collections::BTreeMap<String, String>) {
        match self.point_assist.as_deref() {
            Some(a) => {
                (a.file_tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), a.metadata.clone())
            }
            None => Default::default(),
        }
    }

    /// Recomputes what inference derives from the weights: folded batch norms, gathered attention
    /// biases, the dense position encoding. Called by `new`/`load`; call again after changing weights.
    pub fn prepare_inference(&mut self) {
        let _guard = tch::no_grad_guard();
        if let ImageEncoder::TinyVit(t) = &mut self.image_encoder {
            t.fuse();
        }
        self.dense_pe = self.prompt_encoder.dense_pe();
        if let Some(head) = &mut self.correction {
            head.dense_pe = head.prompt_encoder.dense_pe();
        }
        self.encoder_fingerprint = Default::default();
    }

    /// Adds an (initialised) correction head under `edit.`, for the loader (and unit tests) to fill.
    pub(crate) fn add_correction_head(&mut self) {
        let root = self.vs.root() / "edit";
        let e = self.config.embedding_size();
        let prompt_encoder =
            prompt_encoder::PromptEncoder::new(&root / "prompt_encoder", 256, e, self.config.image_size);
        let mask_decoder = mask_decoder::MaskDecoder::new(&root / "mask_decoder", 256);
        let dense_pe = prompt_encoder.dense_pe();
        self.correction = Some(CorrectionHead { prompt_encoder, mask_decoder, dense_pe });
    }

    /// Sets the correction head's variables to the propagation head's.
    fn copy_into_correction_head(&mut self) {
        let _guard = tch::no_grad_guard();
        let variables = self.vs.variables();
        for (name, mut t) in
            variables.iter().filter(|(n, _)| n.starts_with(CORRECTION_PREFIX)).map(|(n, t)| (n, t.shallow_clone()))
        {
            t.copy_(&variables[&name[CORRECTION_PREFIX.len()..]]);
        }
    }

    /// Whether the weights hold a correction head (module docs).
    pub fn has_correction_head(&self) -> bool {
        self.correction.is_some()
    }

    /// The correction head's variables by name (`edit.`...), sorted, without its fixed buffers (as
    /// a fine-tuned file holds them); empty without one. Training leaves them as they are and
    /// writes them beside the trained tensors.
    pub fn correction_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(name, _)| name.starts_with(CORRECTION_PREFIX) && !is_fixed_buffer(name))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// SHA-256 of the image encoder's variables (names, shapes and values, in name order): equal
    /// for equal encoder weights whatever file they came from (a fine-tuned file that kept its
    /// base's encoder shares its base's embeddings). Hashed once per loaded model (~0.1 s for
    /// TinyViT's 23 MB).
    pub fn encoder_fingerprint(&self) -> [u8; 32] {
        *self.encoder_fingerprint.get_or_init(|| {
            use sha2::{Digest, Sha256};
            let variables = self.vs.variables();
            let mut names: Vec<&String> = variables.keys().filter(|n| n.starts_with("image_encoder.")).collect();
            names.sort();
            let mut h = Sha256::new();
            for name in names {
                let t = variables[name].to_device(Device::Cpu).to_kind(tch::Kind::Float).contiguous();
                let numel = t.numel();
                let mut bytes = vec![0u8; numel * 4];
                t.copy_data_u8(&mut bytes, numel);
                h.update((name.len() as u64).to_le_bytes());
                h.update(name.as_bytes());
                for d in t.size() {
                    h.update(d.to_le_bytes());
                }
                h.update(&bytes);
            }
            if self.half {
                h.update(b"autocast f16");
            }
            h.finalize().into()
        })
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Side of the low-resolution mask grid (256 for every shipped configuration).
    pub fn mask_size(&self) -> i64 {
        self.prompt_encoder.mask_input_size()
    }

    /// Image embeddings of preprocessed slices: (B, 3, S, S) -> (B, 256, E, E). Prompt-independent:
    /// compute once per slice and reuse for every prompt and edit.
    pub fn encode(&self, images: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let forward = || match &self.image_encoder {
            ImageEncoder::TinyVit(t) => t.forward(images),
            ImageEncoder::Vit(v) => v.forward(images),
        };
        if !self.half {
            return forward();
        }
        tch::autocast(true, forward).to_kind(tch::Kind::Float)
    }

    /// Mixed precision on (CUDA autocast to f16; the caller checks the device) or off. The
    /// encoder's fingerprint (the embedding cache's key) changes with it: f16 embeddings are not
    /// f32 ones.
    pub fn set_half(&mut self, on: bool) {
        if on != self.half {
            self.half = on;
            self.encoder_fingerprint = std::sync::OnceLock::new();
        }
        if let Some(assist) = &mut self.point_assist {
            assist.model.set_half(on);
        }
    }

    pub fn is_half(&self) -> bool {
        self.half
    }

    /// Training: chooses the variables that learn and returns them by name. Only the prompt encoder
    /// and the mask decoder learn unless `encoder` is set; the Fourier position matrix never does
    /// (it is a fixed buffer in SAM). A trained encoder runs unfused, its batch norms in inference
    /// mode with their checkpoint statistics (the usual choice for small-batch fine-tuning).
    pub fn set_trainable(&mut self, encoder: bool) -> Vec<(String, Tensor)> {
        self.vs.freeze();
        if encoder {
            if let ImageEncoder::TinyVit(t) = &mut self.image_encoder {
                t.unfuse();
            }
        }
        let mut out: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(name, _)| {
                let part = is_decoder_tensor(name) || (encoder && name.starts_with("image_encoder."));
                part && !is_fixed_buffer(name)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, t) in out.iter_mut() {
            let _ = t.set_requires_grad(true);
        }
        out
    }

    /// `encode` with gradients, for training the encoder (after `set_trainable(true)`).
    pub fn encode_train(&self, images: &Tensor) -> Tensor {
        match &self.image_encoder {
            ImageEncoder::TinyVit(t) => t.forward(images),
            ImageEncoder::Vit(v) => v.forward(images),
        }
    }

    /// `decode` with gradients, for training.
    pub fn decode_train(&self, embeddings: &Tensor, prompts: &PromptBatch) -> MaskPrediction {
        let (sparse, dense) = self.prompt_encoder.forward(prompts);
        self.mask_decoder.forward(embeddings, &self.dense_pe, &sparse, &dense)
    }

    /// All four masks and their IoU predictions for B prompts. `embeddings` is (B, 256, E, E), one
    /// per prompt, or (1, 256, E, E) shared by all prompts.
    pub fn decode(&self, embeddings: &Tensor, prompts: &PromptBatch) -> MaskPrediction {
        self.decode_by(&self.prompt_encoder, &self.mask_decoder, &self.dense_pe, embeddings, prompts)
    }

    /// [`decode`](Self::decode) by the correction head, for a clicked slice: the slice's mask and
    /// its clicks (module docs). Without a correction head, the same as `decode`.
    pub fn decode_correction(&self, embeddings: &Tensor, prompts: &PromptBatch) -> MaskPrediction {
        match &self.correction {
            Some(head) => self.decode_by(&head.prompt_encoder, &head.mask_decoder, &head.dense_pe, embeddings, prompts),
            None => self.decode(embeddings, prompts),
        }
    }

    fn decode_by(
        &self,
        prompt_encoder: &prompt_encoder::PromptEncoder,
        mask_decoder: &mask_decoder::MaskDecoder,
        dense_pe: &Tensor,
        embeddings: &Tensor,
        prompts: &PromptBatch,
    ) -> MaskPrediction {
        let _guard = tch::no_grad_guard();
        let forward = || {
            let (sparse, dense) = prompt_encoder.forward(prompts);
            mask_decoder.forward(embeddings, dense_pe, &sparse, &dense)
        };
        if !self.half {
            return forward();
        }
        let pred = tch::autocast(true, forward);
        MaskPrediction {
            low_res_logits: pred.low_res_logits.to_kind(tch::Kind::Float),
            iou: pred.iou.to_kind(tch::Kind::Float),
        }
    }
}
